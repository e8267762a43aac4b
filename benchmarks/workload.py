"""The workload every fire figure shares, so that the engine and its baselines do the
same thing: nominations of the 2023 batch taken round a cycle of four events that ends
where it started (``drafted``).

One nomination goes round the whole cycle before the next starts, so a province never
has more than one nomination ``submitted`` and its quota (2 or 3) is never full: a run
can go on for as long as it likes on a handful of nominations.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

from peakpilot import Engine

BEIJING = timezone(timedelta(hours=8))
# The engine's frozen clock: before the deadline, so the batch is open.
BEFORE_DEADLINE = datetime(2023, 10, 20, 9, tzinfo=BEIJING)
DEADLINE = datetime(2023, 11, 15, tzinfo=BEIJING)
BATCH = "2023-first"
PROVINCES = (
    "hebei",
    "shanxi",
    "inner_mongolia",
    "liaoning",
    "heilongjiang",
    "jiangsu",
    "zhejiang",
    "anhui",
    "shandong",
    "henan",
    "hubei",
    "hunan",
    "guangdong",
    "shaanxi",
    "xinjiang",
)


@dataclass(frozen=True, slots=True)
class Step:
    """One event of the cycle and the role that fires it."""

    event: str
    role: str
    reason: str | None = None

    def actor(self, province: str) -> str:
        return "ndrc" if self.role == "ndrc" else f"{self.role}:{province}"


CYCLE = (
    Step("submit_for_approval", "drc"),
    Step("approve", "gov"),
    Step("submit", "drc"),  # the one whose guard reads the province's quota
    Step("send_back", "ndrc", "bench"),
)


class Fire(Protocol):
    """What a contender does for one step: one transition, one transaction."""

    def __call__(self, nomination_id: str, province: str, step: Step) -> None: ...


@dataclass(frozen=True, slots=True)
class Nominated:
    id: str
    province: str


class Cycler:
    """Walks nominations round the cycle one nomination at a time, and remembers where it
    stopped, so that the next repetition carries on from there."""

    def __init__(self, nominations: Sequence[Nominated]) -> None:
        if not nominations:
            raise ValueError("the cycle needs at least one nomination")
        self.nominations = list(nominations)
        self.position = 0  # steps taken so far

    def step(self, fire: Fire) -> None:
        cycle, index = divmod(self.position, len(CYCLE))
        nomination = self.nominations[cycle % len(self.nominations)]
        fire(nomination.id, nomination.province, CYCLE[index])
        self.position += 1

    def cycles(self, fire: Fire, count: int) -> int:
        """Take ``count`` whole cycles; the number of fires."""
        for _ in range(count * len(CYCLE)):
            self.step(fire)
        return count * len(CYCLE)

    def until(self, fire: Fire, end: float) -> int:
        """Fire until ``time.monotonic()`` reaches ``end``; the fires completed by then
        (one that straddles the end is done but not counted)."""
        done = 0
        while time.monotonic() < end:
            self.step(fire)
            if time.monotonic() <= end:
                done += 1
        return done


def timed_window(cycler: Cycler, fire: Fire, seconds: float) -> float:
    """Fires per second over a window of ``seconds``: every contender gets the same
    stretch of wall time, so a hiccup of the machine weighs the same on each."""
    end = time.monotonic() + seconds
    return cycler.until(fire, end) / seconds


def engine_fire(engine: Engine) -> Fire:
    """The engine as a contender: ``Engine.fire``, one durable transaction each."""

    def fire(nomination_id: str, province: str, step: Step) -> None:
        engine.fire(nomination_id, step.event, step.actor(province), reason=step.reason)

    return fire


def nominate(
    engine: Engine, per_province: int, provinces: Sequence[str] = PROVINCES
) -> list[Nominated]:
    """Drafted nominations made through ``Engine.nominate``, province by province in
    turn (so consecutive cycles touch different provinces)."""
    made = []
    for index in range(per_province):
        for province in provinces:
            nomination = engine.nominate(
                f"drc:{province}",
                province=province,
                kind="city",
                name=f"bench-{province}-{index}",
                level="prefecture",
                batch=BATCH,
            )
            made.append(Nominated(nomination.id, province))
    return made


def sqlite_stamp(at: datetime) -> str:
    """How the schema's datetime columns hold an instant on SQLite: naive UTC text."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
