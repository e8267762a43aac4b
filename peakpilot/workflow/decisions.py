"""What the pure rules read: the facts of a nomination's batch, its province's quota and
a carry-over's target batch, gathered in the caller's transaction.

Shared by the commands (which decide) and ``show`` (which lists what an actor could do).
A quota and a target cost queries, so they are read only when a guard of the events in
question needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from peakpilot.states.guards import (
    BatchFacts,
    DecisionContext,
    QuotaFacts,
    TargetFacts,
    TrailEntry,
    TrailFacts,
)
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.store.batches import BatchRecord
from peakpilot.workflow.store.nominations import NominationRecord
from peakpilot.workflow.store.transaction import Transaction


def decision_context(
    rt: Runtime,
    tx: Transaction,
    record: NominationRecord,
    batch: BatchRecord,
    events: tuple[str, ...],
    now: datetime,
    reason: str | None,
    *,
    lock: bool,
    data: Mapping[str, Any] | None = None,
) -> DecisionContext:
    """What the rules of ``events`` (from the nomination's state) read about it in its
    batch and its trail. With ``lock``, the quota row is locked (a command about to
    decide). ``data`` is the event's data as given."""
    program, machine = rt.program, rt.machine
    needs = frozenset().union(*(machine.needs(e, record.state) for e in events))
    return DecisionContext(
        now=rt.local(now),  # a year begins at local midnight (a period's rules)
        batch=batch_facts(rt, batch),
        province_name=program.provinces[record.province].names.en,
        reason=reason,
        quota=quota_facts(rt, tx, record.batch_id, record.province, lock=lock)
        if "quota" in needs
        else None,
        target=carry_over_target(rt, tx, record) if "target" in needs else None,
        data=data,
        trail=trail_facts(tx, record.id) if "trail" in needs else None,
    )


def trail_facts(tx: Transaction, nomination_id: str) -> TrailFacts:
    """The nomination's audit trail as the rules read it."""
    return TrailFacts(
        tuple(
            TrailEntry(r.event, r.from_state, r.to_state, r.at, r.data)
            for r in tx.trail.history(nomination_id)
        )
    )


def batch_facts(rt: Runtime, batch: BatchRecord) -> BatchFacts:
    return BatchFacts(id=batch.id, deadline_at=rt.local(batch.deadline_at), is_open=batch.is_open)


def quota_facts(
    rt: Runtime, tx: Transaction, batch_id: str, province: str, *, lock: bool
) -> QuotaFacts | None:
    """The province's places in the batch and how many are used. With ``lock``,
    submissions of one province queue on its quota row (PostgreSQL; SQLite's write lock
    already serialises), so a second submitter sees the first one's place as used."""
    places = tx.batches.quota(batch_id, province, lock=lock)
    if places is None:
        return None
    used = tx.nominations.count_in_states(batch_id, province, rt.program.quota_counts)
    return QuotaFacts(quota=places, used=used)


def carry_over_target(rt: Runtime, tx: Transaction, record: NominationRecord) -> TargetFacts:
    """The newest open batch other than the nomination's own, as the rules see it."""
    newest = tx.batches.newest(open_only=True, other_than=record.batch_id)
    if newest is None:
        return TargetFacts(batch=None, quota=None, name_taken=False)
    return TargetFacts(
        batch=batch_facts(rt, newest),
        quota=tx.batches.quota(newest.id, record.province),
        name_taken=tx.nominations.name_taken(newest.id, record.province, record.kind, record.name),
    )


__all__ = ["batch_facts", "carry_over_target", "decision_context", "quota_facts", "trail_facts"]
