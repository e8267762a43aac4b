"""Storing a programme: what ``init`` does after the schema is at head."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from peakpilot.config.program import Program
from peakpilot.errors import Refused
from peakpilot.workflow.reads import OPEN
from peakpilot.workflow.tables import BatchRow, NominationRow, ProgramRow, QuotaRow, TimerRow
from peakpilot.workflow.timers import DEADLINE, PENDING, REMINDER, batch_due_at, batch_timers


def store_program(session: Session, program: Program, now: datetime) -> bool:
    """Store the programme and its first batch; return whether anything changed.

    A database holds one programme. Loading a changed version of it updates the stored
    text and the first batch's deadline and quotas, unless nominations are in a state
    the new text no longer declares.
    """
    stored = session.exec(select(ProgramRow)).first()
    if stored is not None and stored.id != program.id:
        raise Refused(
            f"the database holds programme {stored.id}; it cannot also hold {program.id}: "
            "use another database"
        )
    changed = False
    facts = program.facts.to_json()
    if stored is None:
        session.add(
            ProgramRow(
                id=program.id,
                digest=program.digest,
                source=program.source,
                facts=facts,
                loaded_at=now,
            )
        )
        changed = True
    elif stored.digest != program.digest:
        stranded = session.exec(
            select(NominationRow.state)
            .where(col(NominationRow.state).not_in(program.states))
            .limit(1)
        ).first()
        if stranded is not None:
            raise Refused(
                f"cannot load this programme: nominations are in state {stranded!r}, "
                "which it does not declare"
            )
        stored.digest, stored.source, stored.loaded_at = program.digest, program.source, now
        stored.facts = facts
        changed = True
    elif stored.facts != facts:  # stored before its facts were kept (schema 0005)
        stored.facts = facts
    session.flush()
    return _store_first_batch(session, program, now) or changed


def _store_first_batch(session: Session, program: Program, now: datetime) -> bool:
    spec = program.first_batch
    batch = session.get(BatchRow, spec.id)
    if batch is None:
        session.add(
            BatchRow(
                id=spec.id,
                program_id=program.id,
                position=1,
                deadline_at=spec.deadline_at,
                status=OPEN,
                opened_at=now,
            )
        )
        session.flush()
        session.add_all(
            QuotaRow(batch_id=spec.id, province=province, quota=quota)
            for province, quota in spec.quotas.items()
        )
        # All its timers, past ones included: a 2023 batch loaded later still does its
        # deadline work when ticked (a reminder due after the deadline sends nothing).
        session.add_all(batch_timers(program, spec.id, spec.deadline_at, now, skip_past=False))
        return True
    changed = False
    if batch.deadline_at != spec.deadline_at:
        batch.deadline_at = spec.deadline_at
        for timer in session.exec(
            select(TimerRow).where(
                col(TimerRow.batch_id) == spec.id,
                col(TimerRow.status) == PENDING,
                col(TimerRow.kind).in_((REMINDER, DEADLINE)),
            )
        ):
            timer.due_at = batch_due_at(timer, spec.deadline_at)
        changed = True
    existing = {
        row.province: row
        for row in session.exec(select(QuotaRow).where(col(QuotaRow.batch_id) == spec.id))
    }
    for province, quota in spec.quotas.items():
        if province not in existing:
            session.add(QuotaRow(batch_id=spec.id, province=province, quota=quota))
            changed = True
        elif existing[province].quota != quota:
            existing[province].quota = quota
            changed = True
    return changed
