"""The ``pilots`` view: every nomination from confirmation on, with where its plan
stands, the last year it reported, and the next thing it owes (overdue or not).

"Owes" comes from the pilot's own timers (:mod:`peakpilot.workflow.pilot_timers`): a
due day's timer is cancelled when its work is done, so one pending or fired is still
owed. A progress report is owed for each year from the plan's approval on that has no
report; what is owed is overdue once its due day has passed.
"""

from __future__ import annotations

import builtins

from peakpilot.errors import InvalidInput
from peakpilot.states.actors import Actor
from peakpilot.vocabulary import TimerKind, TimerStatus
from peakpilot.workflow.pilot_timers import DUE_KINDS, KINDS, report_due
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import Due, Pilot
from peakpilot.workflow.store.transaction import Transaction

_DUE_NAMES = {TimerKind.PLAN_DUE: "plan", TimerKind.RECTIFICATION_DUE: "rectification"}
_KIND_OF = {name: kind for kind, name in _DUE_NAMES.items()}


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
    province = rt.scoped_province(rt.reader(actor), province)
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
        started = {} if report is None else tx.trail.last_times(report.starts_on, states)
        owed: dict[str, list[Due]] = {}
        for timer in tx.timers.of_kinds(DUE_KINDS, (TimerStatus.PENDING, TimerStatus.DONE)):
            if timer.nomination_id is not None and timer.kind in applies:
                owed.setdefault(timer.nomination_id, []).append(
                    Due(_DUE_NAMES[timer.kind], rt.local(timer.due_at), None)
                )
        found = []
        for record in records:
            periods = reported.get(record.id, set())
            # a pilot's own due days, while its family applies; and its first unreported
            # year, once its plan was approved and while the reports apply
            due = [d for d in owed.get(record.id, []) if record.state in applies[_KIND_OF[d.kind]]]
            if report is not None and record.id in started and record.state in report.applies_in:
                first_year = rt.local(started[record.id]).year
                unreported = [p for p in range(first_year, report.last_year) if p not in periods]
                if unreported:
                    period = unreported[0]
                    due_at = rt.local(report_due(report, period, program.timezone))
                    due.append(Due("progress_report", due_at, period))
            first = min(due, key=lambda d: d.due_at) if due else None
            overdue = first is not None and first.due_at <= now
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
                    next_due=first,
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
