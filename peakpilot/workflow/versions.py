"""Programme versions: loading a programme text, the database's first or a change.

A change is applied in the transaction that checks it, after locking the programme row
that every writer reads first (:meth:`Runtime.write`): nothing is decided by the old
rules once the new version is in force, and nothing counted for the check moves before
it is applied. The version in force is stored as a new numbered version; the
nominations the migration maps move with a ``migrate`` audit record each (set-based, as
a deadline's lapse); open batches take the new quotas; the pending timers of open
batches and pilots follow the new offsets, each timer kept by its unique key, so none is
doubled and one already done is not made again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from peakpilot.config.program import Program, rebuild_program
from peakpilot.config.program_diff import compare
from peakpilot.errors import Conflict, Refused
from peakpilot.states.program_change import Census, ChangePlan, plan_change
from peakpilot.vocabulary import SYSTEM
from peakpilot.workflow import timer_changes
from peakpilot.workflow.change_report import ProgramChange
from peakpilot.workflow.store.lapses import LAPSE_CHUNK
from peakpilot.workflow.store.programs import StoredProgram
from peakpilot.workflow.store.transaction import Transaction
from peakpilot.workflow.timers import batch_timers

MIGRATE_EVENT = "migrate"  # the audit record of a nomination a programme change moved


class ChangeRefused(Refused):
    """A programme change that would strand nominations or places; ``change`` says
    what it would have done."""

    def __init__(self, change: ProgramChange) -> None:
        super().__init__(
            f"programme version {change.to_version} refused: {'; '.join(change.problems)}"
        )
        self.change = change


@dataclass(frozen=True, slots=True)
class Loaded:
    """What loading did, and the programme now in force with its number."""

    change: ProgramChange
    program: Program
    version: int


def load(
    tx: Transaction,
    program: Program,
    now: datetime,
    *,
    actor: str = SYSTEM,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> Loaded:
    """Put ``program`` in force (or, with ``dry_run``, only say what that would do)."""
    stored = tx.programs.stored() if dry_run else tx.programs.lock()
    if stored is not None and stored.id != program.id:
        raise Refused(
            f"the database holds programme {stored.id}; it cannot also hold {program.id}: "
            "use another database"
        )
    if stored is None:
        version = 1 if dry_run else _create(tx, program, now, actor)
        outcome = "dry_run" if dry_run else "created"
        return Loaded(ProgramChange(program.id, outcome, None, version), program, version)
    if stored.digest == program.digest:
        if not dry_run:
            keep(tx, stored, program, now)
        unchanged = ProgramChange(program.id, "unchanged", stored.version, stored.version)
        return Loaded(unchanged, program, stored.version)
    old = rebuild_program(stored.source, stored.compiled, f"programme version {stored.version}")
    mapping = dict(mapping or {})
    census = Census(tx.nominations.census(), tx.batches.open_quotas())
    plan = plan_change(old, program, census, mapping)
    change = ProgramChange(
        program.id,
        "dry_run" if dry_run else "applied",
        stored.version,
        stored.version + 1,  # the version in force is always the newest loaded
        compare(old, program),
        plan.moves,
        plan.quotas,
        None,
        plan.problems,
    )
    if dry_run:
        return Loaded(change, old, stored.version)
    if plan.problems:
        raise ChangeRefused(change)
    version = _apply(tx, old, program, census, plan, now, actor, stored.version)
    timers = timer_changes.follow(tx, old, program, now)
    return Loaded(dataclasses.replace(change, to_version=version, timers=timers), program, version)


def keep(tx: Transaction, stored: StoredProgram, program: Program, now: datetime) -> bool:
    """The programme in force stays; one stored before compiled forms or versions were
    kept gets them, and the first batch is made if it is missing. Returns whether
    anything was written."""
    compiled = program.to_compiled()
    recompiled = stored.compiled != compiled
    if recompiled:
        tx.programs.recompile(stored, compiled, now)
    if tx.batches.exists(program.first_batch.id):
        return recompiled
    _open_first_batch(tx, program, now)
    return True


def _create(tx: Transaction, program: Program, now: datetime, actor: str) -> int:
    version = tx.programs.store(
        program.id,
        digest=program.digest,
        source=program.source,
        compiled=program.to_compiled(),
        now=now,
        actor=actor,
    )
    _open_first_batch(tx, program, now)
    return version


def _open_first_batch(tx: Transaction, program: Program, now: datetime) -> None:
    spec = program.first_batch
    tx.batches.open(
        spec.id, program_id=program.id, deadline_at=spec.deadline_at, quotas=spec.quotas, now=now
    )
    # All its timers, past ones included: a 2023 batch loaded later still does its
    # deadline work when ticked (a reminder due after the deadline sends nothing).
    tx.timers.add(batch_timers(program, spec.id, spec.deadline_at, now, skip_past=False))


def _apply(
    tx: Transaction,
    old: Program,
    new: Program,
    census: Census,
    plan: ChangePlan,
    now: datetime,
    actor: str,
    from_version: int,
) -> int:
    version = tx.programs.store(
        new.id,
        digest=new.digest,
        source=new.source,
        compiled=new.to_compiled(),
        now=now,
        actor=actor,
    )
    data = {"from_version": from_version, "to_version": version}
    for move in plan.moves:
        left: dict[str, int] = {}
        for (batch_id, _, state), count in census.counts.items():
            if state == move.from_state:
                left[batch_id] = left.get(batch_id, 0) + count
        for batch_id, count in sorted(left.items()):
            while count > 0:  # the census was taken under the lock: nothing else moves them
                moved = len(
                    tx.lapses.lapse(
                        batch_id,
                        (move.from_state,),
                        move.to_state,
                        event=MIGRATE_EVENT,
                        actor=SYSTEM,
                        at=now,
                        limit=min(count, LAPSE_CHUNK),
                        program_version=version,
                        data=data,
                    )
                )
                if not moved:
                    raise Conflict(
                        f"nominations of batch {batch_id} left {move.from_state} while the "
                        "programme change moved them: nothing was changed; try again"
                    )
                count -= moved
    for quota in plan.quotas:
        if quota.after is None:
            tx.batches.remove_quota(quota.batch, quota.province)
        else:
            tx.batches.set_quota(quota.batch, quota.province, quota.after)
    spec = new.first_batch
    if spec.id in census.open_quotas and spec.deadline_at != old.first_batch.deadline_at:
        tx.batches.move_deadline(spec.id, spec.deadline_at)
    return version


__all__ = ["MIGRATE_EVENT", "ChangeRefused", "Loaded", "keep", "load"]
