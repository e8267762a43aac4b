"""The timers of a pilot's construction years: the implementation plan, the yearly
progress reports, a rectification; each a reminder or two and a due day.

A pilot's own deadlines (its plan, its rectification) are timers of that pilot, made by
the event the programme names (``starts_on``: confirm, fail_evaluation) in that event's
transaction, and cancelled in the transaction of the move that makes them moot: the
pilot leaves the states the family applies in (a plan submitted, a rectification
accepted, a revocation).

The yearly reports fall due on one day for every pilot, so they are rounds, not
per-pilot timers: one reminder and one due day per batch and year, made (if missing) by
each ``approve_plan``. When a round falls due, one statement finds the batch's pilots
that owe that year's report, and each province's DRC gets one letter listing its own:
10,000 pilots cost one query and fifteen letters, not 10,000 timers and transactions.
A pilot that reported (or left the states the reports apply in) is simply not listed.

A due day is the end of the day in the programme's time zone ("by 31 January").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from peakpilot.config.construction import PlanTimers, RectificationTimers, ReportTimers
from peakpilot.config.program import Program
from peakpilot.notifications.compose import BatchInfo, Notifier, Outgoing
from peakpilot.vocabulary import TimerKind
from peakpilot.workflow import audit
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.snapshots import TimerOutcome
from peakpilot.workflow.store.nominations import NominationRecord
from peakpilot.workflow.store.timers import TimerRecord
from peakpilot.workflow.store.transaction import Transaction

Family = PlanTimers | ReportTimers | RectificationTimers
# family -> (its reminder's kind, its due day's kind)
KINDS: Mapping[type, tuple[TimerKind, TimerKind]] = {
    PlanTimers: (TimerKind.PLAN_REMINDER, TimerKind.PLAN_DUE),
    ReportTimers: (TimerKind.REPORT_REMINDER, TimerKind.REPORT_DUE),
    RectificationTimers: (TimerKind.RECTIFICATION_REMINDER, TimerKind.RECTIFICATION_DUE),
}
# the notice each kind sends
NOTICES: Mapping[TimerKind, str] = {
    TimerKind.PLAN_REMINDER: "plan_reminder",
    TimerKind.PLAN_DUE: "plan_overdue",
    TimerKind.REPORT_REMINDER: "report_reminder",
    TimerKind.REPORT_DUE: "report_overdue",
    TimerKind.RECTIFICATION_REMINDER: "rectification_reminder",
    TimerKind.RECTIFICATION_DUE: "rectification_overdue",
}
# the due days of a pilot's own timers (the reports' are rounds: see report_due)
DUE_KINDS = (TimerKind.PLAN_DUE, TimerKind.RECTIFICATION_DUE)


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The instant a thing due "on ``day``" is late: the next midnight, local time."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)


def due_day(due_at: datetime, zone: ZoneInfo) -> str:
    """The day a thing is due on, as letters write it: the day before its instant."""
    return (due_at.astimezone(zone) - timedelta(microseconds=1)).date().isoformat()


def report_due(report: ReportTimers, period: int, zone: ZoneInfo) -> datetime:
    """When the progress report of ``period`` is late."""
    return end_of_day(date(period + 1, report.due_month, report.due_day), zone)


def started_by(
    program: Program,
    event: str,
    nomination: NominationRecord,
    data: Mapping[str, Any] | None,
    now: datetime,
) -> list[TimerRecord]:
    """The timers ``event`` starts for the pilot (none for most events), and the report
    rounds of its batch it needs (to be added only where missing)."""
    zone = program.timezone
    local_now = now.astimezone(zone)
    made: list[TimerRecord] = []
    for family in program.pilot_timers.families():
        if family.starts_on != event:
            continue
        if isinstance(family, PlanTimers):
            due = end_of_day((local_now + timedelta(days=family.due_days)).date(), zone)
            made += _family(family, nomination, f"{nomination.id}/plan", due, now, {})
        elif isinstance(family, ReportTimers):
            for period in range(local_now.year, family.last_year):
                key = f"{nomination.batch_id}/report/{period}"
                due = report_due(family, period, zone)
                made += _family(family, None, key, due, now, {"period": period}, nomination)
        else:
            day = date.fromisoformat(str((data or {})[family.due_field]))
            key = f"{nomination.id}/rectification/{now.isoformat()}"
            made += _family(family, nomination, key, end_of_day(day, zone), now, {})
    return made


def _family(
    family: Family,
    owner: NominationRecord | None,
    key: str,
    due: datetime,
    now: datetime,
    payload: dict[str, Any],
    batch_of: NominationRecord | None = None,
) -> list[TimerRecord]:
    """A due day and its reminders (those still ahead: a late start sends no reminder
    for a moment that has gone), of one pilot (``owner``) or of its batch."""
    reminder_kind, due_kind = KINDS[type(family)]
    pilot = owner or batch_of
    assert pilot is not None
    timers = [
        TimerRecord(
            id=new_id(),
            unique_key=f"{key}/reminder/{days}",
            kind=reminder_kind,
            due_at=due - timedelta(days=days),
            batch_id=pilot.batch_id,
            province=None if owner is None else owner.province,
            nomination_id=None if owner is None else owner.id,
            payload={**payload, "due_at": due.isoformat(), "days_before": days},
            created_at=now,
        )
        for days in family.reminder_days
        if due - timedelta(days=days) > now
    ]
    timers.append(
        TimerRecord(
            id=new_id(),
            unique_key=f"{key}/due",
            kind=due_kind,
            due_at=due,
            batch_id=pilot.batch_id,
            province=None if owner is None else owner.province,
            nomination_id=None if owner is None else owner.id,
            payload=payload,
            created_at=now,
        )
    )
    return timers


def end_timers(
    tx: Transaction, program: Program, nomination_id: str, to_state: str, now: datetime
) -> None:
    """Cancel the pilot's own pending timers that this move made moot: every family not
    applying in ``to_state``, and the milestones once the pilot reaches a final state."""
    kinds: list[TimerKind] = []
    for family in program.pilot_timers.families():
        if not isinstance(family, ReportTimers) and to_state not in family.applies_in:
            kinds += KINDS[type(family)]
    if to_state in program.final_states:
        kinds.append(TimerKind.MILESTONE)
    if kinds:
        tx.timers.cancel_of_nomination(nomination_id, kinds, now)


def run(tx: Transaction, notifier: Notifier, now: datetime, timer: TimerRecord) -> TimerOutcome:
    """A pilot timer's notice: a reminder (unless its due day has passed, when the
    overdue notice says it instead) or the overdue notice; a report round's letters."""
    due_at = timer.due_at
    if "due_at" in timer.payload:
        due_at = datetime.fromisoformat(timer.payload["due_at"])
        if due_at <= now:
            return _outcome(timer, "skipped: the due day has passed", 0)
    if timer.nomination_id is None:
        return _report_round(tx, notifier, now, timer, due_at)
    nomination, batch = tx.nominations.get_with_batch(timer.nomination_id)
    kind = NOTICES[timer.kind]
    context = partial(_context, notifier, nomination, due_at, now, timer.kind)
    outgoing = notifier.compose(
        kind,
        notifier.timer_recipients(kind, nomination.province),
        context,
        at=now,
        batch=BatchInfo(batch.id, batch.deadline_at),
        dedupe=(timer.id,),
        nomination_id=nomination.id,
    )
    tx.outbox.add(outgoing, now)
    return _outcome(timer, f"sent {kind}", len(outgoing))


def _report_round(
    tx: Transaction, notifier: Notifier, now: datetime, timer: TimerRecord, due_at: datetime
) -> TimerOutcome:
    """One year's reports of a batch: each province with pilots that owe it gets one
    letter listing them."""
    program = notifier.program
    report = program.pilot_timers.report
    assert report is not None, "a report round of a programme without reports"
    period = int(timer.payload["period"])
    owing = tx.nominations.owing(
        timer.batch_id,
        report.applies_in,
        started_by=report.starts_on,
        started_before=end_of_day(date(period, 12, 31), program.timezone),
        done_by=report.done_by,
        done_data=audit.data_text({"period": period}) or "",
    )
    by_province: dict[str, list[tuple[str, str, str, str]]] = {}
    for pilot in owing:
        by_province.setdefault(pilot[1], []).append(pilot)
    batch = tx.batches.get(timer.batch_id)
    kind = NOTICES[timer.kind]
    outgoing: list[Outgoing] = []
    for province in program.provinces:
        if province in by_province:
            context = partial(
                _round_context,
                notifier,
                province,
                by_province[province],
                period,
                due_at,
                now,
                timer.kind,
            )
            outgoing += notifier.compose(
                kind,
                notifier.timer_recipients(kind, province),
                context,
                at=now,
                batch=BatchInfo(batch.id, batch.deadline_at),
                dedupe=(timer.id, province),
            )
    tx.outbox.add(outgoing, now)
    return _outcome(
        timer,
        f"sent {kind} for {len(owing)} pilots of {len(by_province)} provinces",
        len(outgoing),
    )


def _round_context(
    notifier: Notifier,
    province: str,
    pilots: list[tuple[str, str, str, str]],
    period: int,
    due_at: datetime,
    now: datetime,
    kind: TimerKind,
    locale: str,
) -> dict[str, Any]:
    program = notifier.program
    kinds = {code: spec.names.get(locale) for code, spec in program.kinds.items()}
    context: dict[str, Any] = {
        "province": {"slug": province, "name": program.provinces[province].names.get(locale)},
        "period": period,
        "due": due_day(due_at, program.timezone),
        "pilots": [(id_, name, kinds[kind_]) for id_, _, name, kind_ in pilots],
    }
    if kind == TimerKind.REPORT_REMINDER:
        context["days_left"] = max((due_at - now).days, 0)
    return context


def _context(
    notifier: Notifier,
    nomination: NominationRecord,
    due_at: datetime,
    now: datetime,
    kind: TimerKind,
    locale: str,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "nomination": notifier.nomination_context(nomination, nomination.state, locale),
        # the day it is due on, as the letter that set it wrote it ("by 30 June")
        "due": due_day(due_at, notifier.program.timezone),
    }
    if kind not in (TimerKind.PLAN_DUE, TimerKind.RECTIFICATION_DUE):
        context["days_left"] = max((due_at - now).days, 0)
    return context


def _outcome(timer: TimerRecord, action: str, notices: int) -> TimerOutcome:
    return TimerOutcome(
        timer.id,
        timer.kind.value,
        timer.batch_id,
        timer.province,
        timer.nomination_id,
        action,
        notices=notices,
    )


__all__ = [
    "DUE_KINDS",
    "KINDS",
    "NOTICES",
    "due_day",
    "end_of_day",
    "end_timers",
    "report_due",
    "run",
    "started_by",
]
