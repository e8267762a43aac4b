"""What a programme declares about a pilot's life after confirmation: the data an event
carries, the materials a move needs, and the timers of the construction years.

Plain frozen records, like the rest of :mod:`peakpilot.config.program`: the programme
file is validated into them once (:mod:`peakpilot.config.program_file`), and the rules of
:mod:`peakpilot.states` read them without knowing where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# year: a four-digit year (``period=2024``); choice: one of ``choices``; date: a day,
# YYYY-MM-DD, which must lie ahead of the moment the event is fired when ``future``.
FieldType = Literal["year", "choice", "date"]
# Where a material must have been attached since: the nomination entered its current
# state, or this same event last happened to it (ever, when it never did).
MaterialSince = Literal["entered_state", "last_event"]


@dataclass(frozen=True, slots=True)
class DataField:
    """One item of an event's data (``fire ID EVENT --data KEY=VALUE``)."""

    name: str
    type: FieldType
    choices: tuple[str, ...] = ()
    future: bool = False
    required: bool = True


@dataclass(frozen=True, slots=True)
class MaterialRule:
    """A move that needs a material of ``kind`` attached since a moment (``since``)."""

    kind: str
    since: MaterialSince


@dataclass(frozen=True, slots=True)
class PlanTimers:
    """The implementation plan: due ``due_days`` after ``starts_on``, reminders before."""

    starts_on: str
    applies_in: tuple[str, ...]
    due_days: int
    reminder_days: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReportTimers:
    """The yearly progress report: due every year on ``due`` (MM-DD, for the previous
    year) from the year after ``starts_on`` through ``last_year``. ``done_by`` with the
    year as its ``period`` ends that year's timers."""

    starts_on: str
    applies_in: tuple[str, ...]
    due_month: int
    due_day: int
    last_year: int
    reminder_days: tuple[int, ...]
    done_by: str


@dataclass(frozen=True, slots=True)
class RectificationTimers:
    """A rectification: due on the day its ``starts_on`` event's data names (``due_field``)."""

    starts_on: str
    applies_in: tuple[str, ...]
    due_field: str
    reminder_days: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PilotTimers:
    """The timers of the construction years. Each family ends when the pilot leaves the
    states it ``applies_in`` (and the report's, a year at a time, by ``done_by``)."""

    plan: PlanTimers | None = None
    report: ReportTimers | None = None
    rectification: RectificationTimers | None = None

    def families(self) -> tuple[PlanTimers | ReportTimers | RectificationTimers, ...]:
        return tuple(f for f in (self.plan, self.report, self.rectification) if f is not None)


__all__ = [
    "DataField",
    "FieldType",
    "MaterialRule",
    "MaterialSince",
    "PilotTimers",
    "PlanTimers",
    "RectificationTimers",
    "ReportTimers",
]
