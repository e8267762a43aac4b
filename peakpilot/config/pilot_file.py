"""The parts of a programme file about a pilot's construction years: their shape
(pydantic), the rules that span the whole file, and their build into the records of
:mod:`peakpilot.config.construction`.

Split from :mod:`peakpilot.config.program_file` so each module reads as one concern;
that module calls these functions and reports their problems with the line they are on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from peakpilot.config.construction import (
    DataField,
    FieldType,
    MaterialRule,
    MaterialSince,
    PilotTimers,
    PlanTimers,
    RectificationTimers,
    ReportTimers,
)

Problem = tuple[tuple[str | int, ...], str]
_MONTH_DAY = r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"  # MM-DD


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DataFieldFile(_Strict):
    type: FieldType
    choices: list[str] = []
    future: StrictBool = False
    required: StrictBool = True


class MaterialRuleFile(_Strict):
    kind: str
    since: MaterialSince


def _positive_days(days: list[int]) -> list[int]:
    if any(day < 1 for day in days):
        raise ValueError("reminder days must be whole days of 1 or more before the due day")
    return days


class _PlanFile(_Strict):
    starts_on: str
    applies_in: list[str] = Field(min_length=1)
    due_days: StrictInt = Field(ge=1, alias="plan_due_days")
    reminder_days: list[StrictInt] = []

    _check_days = field_validator("reminder_days")(lambda cls, v: _positive_days(v))


class _ReportFile(_Strict):
    starts_on: str
    applies_in: list[str] = Field(min_length=1)
    due: str = Field(alias="progress_report_due", pattern=_MONTH_DAY)
    last_year: StrictInt = Field(ge=2000, le=2100)
    reminder_days: list[StrictInt] = []
    done_by: str

    _check_days = field_validator("reminder_days")(lambda cls, v: _positive_days(v))

    @field_validator("due")
    @classmethod
    def _a_real_day(cls, due: str) -> str:
        try:
            date(2000, int(due[:2]), int(due[3:]))  # a leap year: 02-29 is refused below
        except ValueError:
            raise ValueError(f"{due} is not a day of the year (MM-DD)") from None
        if due == "02-29":
            raise ValueError("02-29 is not a day of every year: use 02-28 or 03-01")
        return due


class _RectificationFile(_Strict):
    starts_on: str
    applies_in: list[str] = Field(min_length=1)
    due_field: str
    reminder_days: list[StrictInt] = []

    _check_days = field_validator("reminder_days")(lambda cls, v: _positive_days(v))


class PilotTimersFile(_Strict):
    plan: _PlanFile | None = None
    progress_report: _ReportFile | None = None
    rectification: _RectificationFile | None = None


class AttachFile(_Strict):
    roles: list[str] = Field(min_length=1)


# The notices the pilot timers send, by family: (reminder kind, overdue kind).
PILOT_TIMER_NOTICES: Mapping[str, tuple[str, str]] = {
    "plan": ("plan_reminder", "plan_overdue"),
    "progress_report": ("report_reminder", "report_overdue"),
    "rectification": ("rectification_reminder", "rectification_overdue"),
}


def data_problems(
    loc: tuple[str | int, ...], fields: Mapping[str, DataFieldFile]
) -> Iterable[Problem]:
    for name, spec in fields.items():
        if not name.isidentifier() or name != name.lower():
            yield (*loc, "data", name), "data keys are lower-case words such as period"
        if spec.type == "choice" and not spec.choices:
            yield (*loc, "data", name), "a choice needs its choices"
        if spec.type != "choice" and spec.choices:
            yield (*loc, "data", name), f"choices are for a choice, not a {spec.type}"
        if spec.future and spec.type != "date":
            yield (*loc, "data", name), "only a date can be required to lie in the future"


def material_problems(
    loc: tuple[str | int, ...], rule: MaterialRuleFile | None, kinds: Mapping[str, object]
) -> Iterable[Problem]:
    if rule is not None and rule.kind not in kinds:
        yield (*loc, "needs_material", "kind"), f"unknown material kind {rule.kind!r}"


def timer_problems(
    timers: PilotTimersFile,
    states: Iterable[str],
    events: Mapping[str, Mapping[str, DataFieldFile]],
) -> Iterable[Problem]:
    """Each family's events and states must exist, and a rectification's due day must be
    a date its event carries. (A family's notices go to the roles ``timer_notices``
    lists for them: to nobody when it lists none.)"""
    known_states = set(states)
    for family in ("plan", "progress_report", "rectification"):
        spec = getattr(timers, family)
        if spec is None:
            continue
        loc: tuple[str | int, ...] = ("pilot_timers", family)
        if spec.starts_on not in events:
            yield (*loc, "starts_on"), f"unknown event {spec.starts_on!r}"
        for state in spec.applies_in:
            if state not in known_states:
                yield (*loc, "applies_in"), f"unknown state {state!r}"
        if isinstance(spec, _ReportFile) and spec.done_by not in events:
            yield (*loc, "done_by"), f"unknown event {spec.done_by!r}"
        if isinstance(spec, _RectificationFile) and spec.starts_on in events:
            field = events[spec.starts_on].get(spec.due_field)
            if field is None or field.type != "date":
                yield (
                    (*loc, "due_field"),
                    (f"{spec.starts_on} carries no date named {spec.due_field!r}"),
                )


def build_data(fields: Mapping[str, DataFieldFile]) -> dict[str, DataField]:
    return {
        name: DataField(
            name=name,
            type=spec.type,
            choices=tuple(spec.choices),
            future=spec.future,
            required=spec.required,
        )
        for name, spec in fields.items()
    }


def build_material(rule: MaterialRuleFile | None) -> MaterialRule | None:
    return None if rule is None else MaterialRule(kind=rule.kind, since=rule.since)


def build_timers(timers: PilotTimersFile | None) -> PilotTimers:
    if timers is None:
        return PilotTimers()
    plan, report, rect = timers.plan, timers.progress_report, timers.rectification
    return PilotTimers(
        plan=None
        if plan is None
        else PlanTimers(
            starts_on=plan.starts_on,
            applies_in=tuple(plan.applies_in),
            due_days=plan.due_days,
            reminder_days=_days(plan.reminder_days),
        ),
        report=None
        if report is None
        else ReportTimers(
            starts_on=report.starts_on,
            applies_in=tuple(report.applies_in),
            due_month=int(report.due[:2]),
            due_day=int(report.due[3:]),
            last_year=report.last_year,
            reminder_days=_days(report.reminder_days),
            done_by=report.done_by,
        ),
        rectification=None
        if rect is None
        else RectificationTimers(
            starts_on=rect.starts_on,
            applies_in=tuple(rect.applies_in),
            due_field=rect.due_field,
            reminder_days=_days(rect.reminder_days),
        ),
    )


def _days(days: list[int]) -> tuple[int, ...]:
    return tuple(sorted(set(days), reverse=True))


__all__ = [
    "PILOT_TIMER_NOTICES",
    "AttachFile",
    "DataFieldFile",
    "MaterialRuleFile",
    "PilotTimersFile",
    "build_data",
    "build_material",
    "build_timers",
    "data_problems",
    "material_problems",
    "timer_problems",
]
