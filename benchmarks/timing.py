"""Repetitions and their summary.

Contenders are measured in interleaved repetitions whose order rotates (rep 1: A, B, C;
rep 2: B, C, A; rep 3: C, A, B; ...), so that a slow moment of a shared, noisy machine
falls on every contender in turn instead of on one of them; a figure is the median of
the repetitions, reported with their minimum and maximum.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Samples:
    """The values of one contender, one per repetition (or per event, for latencies)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def percentile(self, fraction: float) -> float:
        """The nearest-rank percentile (``fraction`` in 0..1): a value that occurred."""
        ordered = sorted(self.values)
        rank = max(1, -(-len(ordered) * fraction // 1))  # ceil, at least the first
        return ordered[int(rank) - 1]


def interleaved(
    contenders: Mapping[str, Callable[[], float]], reps: int, log: Log, unit: str = ""
) -> dict[str, Samples]:
    """Run each contender once per repetition, rotating the order; each call returns
    the value of that repetition (a rate or a time)."""
    names = list(contenders)
    values: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            value = contenders[name]()
            values[name].append(value)
            log(f"rep {rep + 1}/{reps} {name}: {value:.4g}{unit}")
    return {name: Samples(tuple(found)) for name, found in values.items()}
