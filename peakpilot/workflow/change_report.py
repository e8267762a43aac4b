"""What a programme change reports (``init --program``, ``Engine.change_program``,
``program diff``): frozen snapshots like those of :mod:`peakpilot.workflow.snapshots`,
kept apart so that the commands that never change the programme do not import the
comparison and the rules of a change."""

from __future__ import annotations

import dataclasses

from peakpilot.config.program_diff import Difference
from peakpilot.states.program_change import QuotaChange, StateMove


@dataclasses.dataclass(frozen=True, slots=True)
class TimerChanges:
    """What a programme change did to the pending timers (none doubled, none lost)."""

    added: int = 0
    rescheduled: int = 0
    cancelled: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class ProgramChange:
    """Loading a programme text: ``outcome`` is ``created`` (the database's first),
    ``unchanged`` (the text in force), ``applied`` (a new version) or ``dry_run`` (what
    applying it would do; nothing written). ``problems`` name what makes it unsafe: a
    change with problems is refused unless it is a dry run."""

    program: str
    outcome: str
    from_version: int | None
    to_version: int
    differences: tuple[Difference, ...] = ()
    moves: tuple[StateMove, ...] = ()
    quotas: tuple[QuotaChange, ...] = ()
    timers: TimerChanges | None = None  # None: not worked out (a dry run)
    problems: tuple[str, ...] = ()


__all__ = ["ProgramChange", "TimerChanges"]
