"""The ``pilots`` view: every nomination from confirmation on, with where its plan
stands, the last year it reported, and the next thing it owes (overdue or not).

"Owes" comes from the pilot timers (:mod:`peakpilot.workflow.pilot_timers`): a due day's
timer is cancelled when its work is done, so one that is pending or has fired is still
owed, and one that has fired (or is due) is overdue.
"""

from __future__ import annotations

import builtins

from peakpilot.errors import InvalidInput
from peakpilot.states.actors import Actor
from peakpilot.vocabulary import TimerKind, TimerStatus
from peakpilot.workflow.pilot_timers import DUE_KINDS, KINDS
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import Due, Pilot
from peakpilot.workflow.store.timers import TimerRecord
from peakpilot.workflow.store.transaction import Transaction

_DUE_NAMES = {
    TimerKind.PLAN_DUE: "plan",
    TimerKind.REPORT_DUE: "progress_report",
    TimerKind.RECTIFICATION_DUE: "rectification",
}


def pilots(
    rt: Runtime,
    *,
    province: str | None,
    state: str | None,
    overdue_only: bool,
    actor: Actor | str | None,
) -> builtins.list[Pilot]:
    """The pilots in creation order, filtered; a provincial actor sees its own."""
    program = rt.program
    states = program.pilot_states
    if state is not None and program.state(state) not in states:
        raise InvalidInput(f"{state} is not a state of a pilot: use one of {', '.join(states)}")
    province = None if province is None else program.province(province).slug
    if actor is not None:
        reader = rt.actor(actor)
        if province is not None:
            rt.check_reader(reader, province)
        elif program.roles[reader.role].scope == "province":
            province = reader.province
    now = rt.now()
    report = program.pilot_timers.report
    # each due day's kind -> the states its family applies in
    applies = {KINDS[type(f)][1]: f.applies_in for f in program.pilot_timers.families()}

    def read(tx: Transaction) -> builtins.list[Pilot]:
        records = tx.nominations.list(province=province, state=state, states=states)
        reported: dict[str, set[int]] = {}
        if report is not None:
            for nomination, data in tx.trail.event_data(report.done_by, states):
                if "period" in data:
                    reported.setdefault(nomination, set()).add(int(data["period"]))
        owed: dict[str, list[TimerRecord]] = {}
        for timer in tx.timers.of_kinds(DUE_KINDS, (TimerStatus.PENDING, TimerStatus.DONE)):
            if timer.nomination_id is not None:
                owed.setdefault(timer.nomination_id, []).append(timer)
        found = []
        for record in records:  # owed: its family applies now, its year is not reported
            periods = reported.get(record.id, set())
            due = [
                t
                for t in owed.get(record.id, [])
                if record.state in applies.get(t.kind, (record.state,))
                and t.payload.get("period") not in periods
            ]
            first = min(due, key=lambda t: t.due_at) if due else None
            overdue = any(t.status == TimerStatus.DONE or t.due_at <= now for t in due)
            if overdue_only and not overdue:
                continue
            found.append(
                Pilot(
                    id=record.id,
                    batch=record.batch_id,
                    province=record.province,
                    name=record.name,
                    kind=record.kind,
                    state=record.state,
                    plan=_plan(record.state),
                    last_period=max(periods, default=None),
                    next_due=None
                    if first is None
                    else Due(
                        _DUE_NAMES[first.kind], rt.local(first.due_at), first.payload.get("period")
                    ),
                    overdue=overdue,
                )
            )
        return found

    return rt.db.run(read, write=False)


def _plan(state: str) -> str:
    """Where the implementation plan stands, read from the pilot's state."""
    return {
        "confirmed": "awaited",
        "plan_review": "in review",
        "revoked": "-",
    }.get(state, "approved")


__all__ = ["pilots"]
