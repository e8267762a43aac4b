"""The timers of a pilot's construction years: the implementation plan, the yearly
progress reports, a rectification; each a reminder or two and a due day.

They are made by the event the programme names (``starts_on``: confirm, approve_plan,
fail_evaluation), in that event's transaction, and end, cancelled in the transaction of
the move that makes them pointless: the pilot leaves the states the family applies in
(a plan submitted, a rectification accepted, a revocation), or a report names their year.
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
from peakpilot.notifications.compose import BatchInfo, Notifier
from peakpilot.vocabulary import TimerKind
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
DUE_KINDS = (TimerKind.PLAN_DUE, TimerKind.REPORT_DUE, TimerKind.RECTIFICATION_DUE)


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The instant a thing due "on ``day``" is late: the next midnight, local time."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)


def started_by(
    program: Program,
    event: str,
    nomination: NominationRecord,
    data: Mapping[str, Any] | None,
    now: datetime,
) -> list[TimerRecord]:
    """The timers ``event`` starts for the pilot (none for most events)."""
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
            for year in range(local_now.year + 1, family.last_year + 1):
                due = end_of_day(date(year, family.due_month, family.due_day), zone)
                key = f"{nomination.id}/report/{year - 1}"
                made += _family(family, nomination, key, due, now, {"period": year - 1})
        else:
            day = date.fromisoformat(str((data or {})[family.due_field]))
            key = f"{nomination.id}/rectification/{now.isoformat()}"
            made += _family(family, nomination, key, end_of_day(day, zone), now, {})
    return made


def _family(
    family: Family,
    nomination: NominationRecord,
    key: str,
    due: datetime,
    now: datetime,
    payload: dict[str, Any],
) -> list[TimerRecord]:
    """A due day and its reminders (those still ahead: a late start sends no reminder
    for a moment that has gone)."""
    reminder_kind, due_kind = KINDS[type(family)]
    timers = [
        _timer(
            f"{key}/reminder/{days}",
            reminder_kind,
            due - timedelta(days=days),
            nomination,
            now,
            {**payload, "due_at": due.isoformat(), "days_before": days},
        )
        for days in family.reminder_days
        if due - timedelta(days=days) > now
    ]
    timers.append(_timer(f"{key}/due", due_kind, due, nomination, now, payload))
    return timers


def _timer(
    key: str,
    kind: TimerKind,
    due_at: datetime,
    nomination: NominationRecord,
    now: datetime,
    payload: dict[str, Any],
) -> TimerRecord:
    return TimerRecord(
        id=new_id(),
        unique_key=key,
        kind=kind,
        due_at=due_at,
        batch_id=nomination.batch_id,
        province=nomination.province,
        nomination_id=nomination.id,
        payload=payload,
        created_at=now,
    )


def end_timers(
    tx: Transaction,
    program: Program,
    nomination_id: str,
    event: str,
    to_state: str,
    data: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """Cancel the pilot's pending timers that this move made pointless: every family not
    applying in ``to_state``, the year a report names, and the milestones once the pilot
    reaches a final state."""
    kinds: list[TimerKind] = []
    for family in program.pilot_timers.families():
        if to_state not in family.applies_in:
            kinds += KINDS[type(family)]
        elif isinstance(family, ReportTimers) and event == family.done_by and data:
            tx.timers.cancel_by_key_prefix(f"{nomination_id}/report/{data['period']}/", now)
    if to_state in program.final_states:
        kinds.append(TimerKind.MILESTONE)
    if kinds:
        tx.timers.cancel_of_nomination(nomination_id, kinds, now)


def run(tx: Transaction, notifier: Notifier, now: datetime, timer: TimerRecord) -> TimerOutcome:
    """A pilot timer's notice: a reminder (unless its due day has passed, when the
    overdue notice says it instead) or the overdue notice."""
    assert timer.nomination_id is not None
    nomination, batch = tx.nominations.get_with_batch(timer.nomination_id)
    due_at = timer.due_at
    if "due_at" in timer.payload:
        due_at = datetime.fromisoformat(timer.payload["due_at"])
        if due_at <= now:
            return _outcome(timer, "skipped: the due day has passed", 0)
    kind = NOTICES[timer.kind]
    context = partial(_context, notifier, nomination, timer, due_at, now)
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


def _context(
    notifier: Notifier,
    nomination: NominationRecord,
    timer: TimerRecord,
    due_at: datetime,
    now: datetime,
    locale: str,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "nomination": notifier.nomination_context(nomination, nomination.state, locale),
        # the day it is due on, as the letter that set it wrote it ("by 30 June")
        "due": (due_at.astimezone(notifier.program.timezone) - timedelta(microseconds=1))
        .date()
        .isoformat(),
    }
    if "period" in timer.payload:
        context["period"] = timer.payload["period"]
    if timer.kind not in DUE_KINDS:
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


__all__ = ["DUE_KINDS", "KINDS", "NOTICES", "end_of_day", "end_timers", "run", "started_by"]
