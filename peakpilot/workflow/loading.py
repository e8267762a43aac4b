"""Storing a programme: what ``init`` does after the schema is at head."""

from __future__ import annotations

from datetime import datetime

from peakpilot.config.program import Program
from peakpilot.errors import Refused
from peakpilot.vocabulary import TimerKind
from peakpilot.workflow.store.transaction import Transaction
from peakpilot.workflow.timers import batch_due_at, batch_timers


def store_program(tx: Transaction, program: Program, now: datetime) -> bool:
    """Store the programme and its first batch; return whether anything changed.

    A database holds one programme. Loading a changed version of it updates the stored
    text and the first batch's deadline and quotas, unless nominations are in a state
    the new text no longer declares.
    """
    stored = tx.programs.stored()
    if stored is not None and stored.id != program.id:
        raise Refused(
            f"the database holds programme {stored.id}; it cannot also hold {program.id}: "
            "use another database"
        )
    changed = stored is None or stored.digest != program.digest
    if stored is not None and changed:
        stranded = tx.nominations.any_state_outside(program.states)
        if stranded is not None:
            raise Refused(
                f"cannot load this programme: nominations are in state {stranded!r}, "
                "which it does not declare"
            )
    compiled = program.to_compiled()
    if changed or stored is None or stored.compiled != compiled:
        # a programme stored before compiled forms were kept gets one, unchanged otherwise
        tx.programs.store(
            program.id, digest=program.digest, source=program.source, compiled=compiled, now=now
        )
    return _store_first_batch(tx, program, now) or changed


def _store_first_batch(tx: Transaction, program: Program, now: datetime) -> bool:
    spec = program.first_batch
    if not tx.batches.exists(spec.id):
        tx.batches.open(
            spec.id,
            program_id=program.id,
            deadline_at=spec.deadline_at,
            quotas=spec.quotas,
            now=now,
        )
        # All its timers, past ones included: a 2023 batch loaded later still does its
        # deadline work when ticked (a reminder due after the deadline sends nothing).
        tx.timers.add(batch_timers(program, spec.id, spec.deadline_at, now, skip_past=False))
        return True
    changed = False
    if tx.batches.get(spec.id).deadline_at != spec.deadline_at:
        tx.batches.move_deadline(spec.id, spec.deadline_at)
        for timer in tx.timers.pending(
            batch=spec.id, kinds=(TimerKind.REMINDER, TimerKind.DEADLINE)
        ):
            tx.timers.reschedule(timer.id, batch_due_at(timer, spec.deadline_at))
        changed = True
    for province, quota in spec.quotas.items():
        changed = tx.batches.set_quota(spec.id, province, quota) or changed
    return changed


__all__ = ["store_program"]
