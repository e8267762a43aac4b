"""The pending timers after a programme change: each follows the new version's offsets.

Every timer is known by its unique key (``2023-first/reminder/7``,
``<pilot>/plan/reminder/30``, ``2023-first/report/2024/due``), which no two timers share
and which a done timer keeps: so a timer the new version still wants is rescheduled,
never doubled; one it no longer wants is cancelled; one it adds is made only where no
timer of that key exists (a cancelled one is put back in force), and never for a
moment already past. A reminder that was sent is therefore not sent again, whatever the
new offsets.

What follows: the reminders and deadline of each open batch, the pilots' milestones,
and the construction years' families (the plan's and a rectification's due day and
reminders, the yearly report rounds). A family the new version drops is cancelled; one
it adds starts with the next event that starts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from peakpilot.config.construction import PlanTimers, RectificationTimers, ReportTimers
from peakpilot.config.program import Program
from peakpilot.vocabulary import TimerKind
from peakpilot.workflow import pilot_timers
from peakpilot.workflow.change_report import TimerChanges
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.store.timers import TimerRecord
from peakpilot.workflow.store.transaction import Transaction
from peakpilot.workflow.timers import batch_due_at, batch_timers, milestone_timers

Family = PlanTimers | ReportTimers | RectificationTimers


@dataclass
class _Tally:
    added: int = 0
    rescheduled: int = 0
    cancelled: int = 0


def follow(tx: Transaction, old: Program, new: Program, now: datetime) -> TimerChanges:
    """Move, cancel and add pending timers so that they are what ``new`` would have made."""
    tally = _Tally()
    _batches(tx, new, now, tally)
    if old.milestones != new.milestones:
        _milestones(tx, new, now, tally)
    for kind in (PlanTimers, ReportTimers, RectificationTimers):
        before, after = _family(old, kind), _family(new, kind)
        if before is not None and before != after:
            _pilot_family(tx, new, before, after, now, tally)
    return TimerChanges(tally.added, tally.rescheduled, tally.cancelled)


def _batches(tx: Transaction, new: Program, now: datetime, tally: _Tally) -> None:
    """Each open batch's reminders at the new offsets, and its deadline timer on its
    deadline (which the first batch may just have moved)."""
    for batch_id in tx.batches.open_quotas():
        deadline_at = tx.batches.get(batch_id).deadline_at
        for timer in tx.timers.pending(
            batch=batch_id, kinds=(TimerKind.REMINDER, TimerKind.DEADLINE)
        ):
            if timer.kind == TimerKind.REMINDER and (
                timer.payload["days_before"] not in new.first_batch.reminder_days
            ):
                _cancel(tx, timer, now, tally)
            else:
                _move(tx, timer, batch_due_at(timer, deadline_at), tally)
        _add_missing(tx, batch_timers(new, batch_id, deadline_at, now, skip_past=True), tally)


def _milestones(tx: Transaction, new: Program, now: datetime, tally: _Tally) -> None:
    wanted = {m.year: m for m in new.milestones}
    for timer in tx.timers.pending(kinds=(TimerKind.MILESTONE,)):
        milestone = wanted.get(timer.payload["year"])
        if milestone is None:
            _cancel(tx, timer, now, tally)
        else:
            _move(tx, timer, milestone.at - milestone.notice_before, tally)
    building = [s for s in new.piloted_states if s not in new.final_states]
    if building:  # a milestone the new version adds, for every pilot still building
        for nomination_id, batch_id, province in tx.nominations.in_states(building):
            made = milestone_timers(new, nomination_id, batch_id, province, now)
            _add_missing(tx, made, tally)


def _pilot_family(
    tx: Transaction, new: Program, old: Family, family: Family | None, now: datetime, tally: _Tally
) -> None:
    """One family's pending timers, instance by instance (a pilot's plan, a batch's
    report round of one year): its due day moved as the new settings place it, its
    reminders at the new offsets before that day."""
    reminder_kind, due_kind = pilot_timers.KINDS[type(old)]
    pending = tx.timers.pending(kinds=(reminder_kind, due_kind))
    if family is None:
        for timer in pending:
            _cancel(tx, timer, now, tally)
        return
    dues = {t.unique_key.removesuffix("/due"): t for t in pending if t.kind == due_kind}
    reminders: dict[str, list[TimerRecord]] = {}
    for timer in pending:
        if timer.kind == reminder_kind:
            base = timer.unique_key.rsplit("/reminder/", 1)[0]
            reminders.setdefault(base, []).append(timer)
    for base, due in dues.items():
        due_at = _new_due(new, old, family, due)
        if due_at is None:  # a report round past the new last year
            for timer in [due, *reminders.get(base, ())]:
                _cancel(tx, timer, now, tally)
            continue
        _move(tx, due, due_at, tally)
        for timer in reminders.get(base, ()):
            days = timer.payload["days_before"]
            if days not in family.reminder_days:
                _cancel(tx, timer, now, tally)
            else:
                payload = {**timer.payload, "due_at": due_at.isoformat()}
                _move(tx, timer, due_at - timedelta(days=days), tally, payload)
        made = [
            _reminder(due, base, reminder_kind, due_at, days, now)
            for days in family.reminder_days
            if due_at - timedelta(days=days) > now
        ]
        _add_missing(tx, made, tally)
    if isinstance(old, ReportTimers) and isinstance(family, ReportTimers):
        _later_rounds(tx, new, old, family, list(dues.values()), now, tally)


def _new_due(new: Program, old: Family, family: Family, due: TimerRecord) -> datetime | None:
    if isinstance(old, PlanTimers) and isinstance(family, PlanTimers):
        return due.due_at + timedelta(days=family.due_days - old.due_days)
    if isinstance(family, ReportTimers):
        period = int(due.payload["period"])
        if period >= family.last_year:
            return None
        return pilot_timers.report_due(family, period, new.timezone)
    return due.due_at  # a rectification's day is the event's own data


def _later_rounds(
    tx: Transaction,
    new: Program,
    old: ReportTimers,
    family: ReportTimers,
    rounds: Sequence[TimerRecord],
    now: datetime,
    tally: _Tally,
) -> None:
    """The report rounds a later last year adds, for each batch whose rounds were made."""
    if family.last_year <= old.last_year:
        return
    reminder_kind, due_kind = pilot_timers.KINDS[ReportTimers]
    for batch_id in sorted({r.batch_id for r in rounds}):
        for period in range(old.last_year, family.last_year):
            key = f"{batch_id}/report/{period}"
            due_at = pilot_timers.report_due(family, period, new.timezone)
            due = TimerRecord(
                id=new_id(),
                unique_key=f"{key}/due",
                kind=due_kind,
                due_at=due_at,
                batch_id=batch_id,
                province=None,
                nomination_id=None,
                payload={"period": period},
                created_at=now,
            )
            made = [due] + [
                _reminder(due, key, reminder_kind, due_at, days, now)
                for days in family.reminder_days
                if due_at - timedelta(days=days) > now
            ]
            _add_missing(tx, made, tally)


def _reminder(
    due: TimerRecord, base: str, kind: TimerKind, due_at: datetime, days: int, now: datetime
) -> TimerRecord:
    """A reminder ``days`` before the due day ``due`` now falls on, as its family makes."""
    return TimerRecord(
        id=new_id(),
        unique_key=f"{base}/reminder/{days}",
        kind=kind,
        due_at=due_at - timedelta(days=days),
        batch_id=due.batch_id,
        province=due.province,
        nomination_id=due.nomination_id,
        payload={**due.payload, "due_at": due_at.isoformat(), "days_before": days},
        created_at=now,
    )


def _family(program: Program, kind: type) -> Family | None:
    return next((f for f in program.pilot_timers.families() if isinstance(f, kind)), None)


def _move(
    tx: Transaction,
    timer: TimerRecord,
    due_at: datetime,
    tally: _Tally,
    payload: dict[str, object] | None = None,
) -> None:
    if timer.due_at != due_at:
        tx.timers.reschedule(timer.id, due_at, payload)
        tally.rescheduled += 1


def _cancel(tx: Transaction, timer: TimerRecord, now: datetime, tally: _Tally) -> None:
    tx.timers.cancel(timer.id, now)
    tally.cancelled += 1


def _add_missing(tx: Transaction, timers: list[TimerRecord], tally: _Tally) -> None:
    tally.added += tx.timers.add_missing(timers)


__all__ = ["follow"]
