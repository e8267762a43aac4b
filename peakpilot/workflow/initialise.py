"""``init``: the schema brought to head and a programme put in force (the first, the one
kept, or a new version: :mod:`peakpilot.workflow.versions`), with the warnings an
operator should read before starting the daemon."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peakpilot.config.program import Program, load_program, rebuild_program
from peakpilot.errors import NotFound
from peakpilot.states.actors import Actor
from peakpilot.vocabulary import SYSTEM
from peakpilot.workflow.change_report import ProgramChange
from peakpilot.workflow.runtime import Runtime

if TYPE_CHECKING:
    from peakpilot.workflow.store.batches import BatchRecord
    from peakpilot.workflow.store.programs import StoredProgram


def initialise(
    runtime: Runtime,
    program: Program | str | Path | None,
    *,
    migrate: Mapping[str, str] | str | Path | None,
    dry_run: bool,
    actor: Actor | str,
    stale_after: timedelta,
) -> dict[str, Any]:
    """What :meth:`Engine.init` does; returns what was done, the change and warnings."""
    from peakpilot.workflow.migrations import upgrade_to_head
    from peakpilot.workflow.versions import keep, load

    if program is not None and not isinstance(program, Program):
        program = load_program(program)
    mapping = _migration(migrate)
    who = _loader(runtime, actor, program)
    now = runtime.now()
    if program is not None:  # a missing template is refused before anything is stored
        runtime.notifier_for(program).check_templates()
    if dry_run:
        target = program or load_program()
        change = _dry_run(runtime, target, mapping, who, now)
        return _result(change, target.first_batch.id, changed=False)
    with runtime.db.schema_transaction() as (connection, tx):
        upgrade_to_head(connection)
        stored = tx.programs.lock()
        repaired = False
        if program is None and stored is not None:
            kept = _stored_program(stored)
            repaired = keep(tx, stored, kept, now)
            loaded_program, version = kept, stored.version
            change = ProgramChange(kept.id, "unchanged", version, version)
        else:
            loaded = load(tx, program or load_program(), now, actor=who, mapping=mapping)
            change, loaded_program, version = loaded.change, loaded.program, loaded.version
        overdue = tx.batches.open_past_deadline(now)
    runtime.use_program(loaded_program, version)
    if program is None:  # the stored (or shipped) one's, with the operator's overrides
        runtime.notifier.check_templates()
    changed = repaired or change.outcome != "unchanged"
    result = _result(change, loaded_program.first_batch.id, changed=changed)
    result["warnings"] = [_overdue_warning(runtime, batch, stale_after) for batch in overdue]
    result["warnings"] += address_warnings(runtime)
    return result


def address_warnings(runtime: Runtime) -> list[str]:
    """The actors that notices go to with no address in the contacts, as one sentence:
    their notices fail, retried, until one is given."""
    program = runtime.program
    missing = runtime.contacts_for(program).unaddressed(program.notified_actors)
    if not missing:
        return []
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return [
        f"no address for {len(missing)} of the {len(program.notified_actors)} actors that "
        f"notices go to ({shown}): give them one in the contacts file "
        "(PEAKPILOT_CONTACTS); until then their notices are kept, failing and retried"
    ]


def _overdue_warning(runtime: Runtime, batch: BatchRecord, stale_after: timedelta) -> str:
    deadline = runtime.local(batch.deadline_at).isoformat()
    days = stale_after.total_seconds() / 86400
    return (
        f"the deadline of open batch {batch.id} ({deadline}) has passed: the next tick "
        "or daemon start lapses its unsubmitted nominations and closes it, and stores "
        f"its letters as suppressed (not sent) if that is more than {days:g} days after "
        "the deadline"
    )


def _loader(runtime: Runtime, actor: Actor | str, program: Program | None) -> str:
    """Who loads a programme: the system, or a national actor (the NDRC)."""
    if str(actor) == SYSTEM:
        return SYSTEM
    from peakpilot.states.actors import ActorResolver
    from peakpilot.states.program_change import check_loader

    resolved = ActorResolver(program or _current_or_shipped(runtime))(actor)
    check_loader(resolved)
    return str(resolved)


def _current_or_shipped(runtime: Runtime) -> Program:
    try:
        return runtime.program
    except NotFound:
        return load_program()


def _dry_run(
    runtime: Runtime, program: Program, mapping: Mapping[str, str], actor: str, now: datetime
) -> ProgramChange:
    """What loading ``program`` would do, read in a transaction that writes nothing
    (a database that was never initialised is not created)."""
    from peakpilot.workflow.versions import load

    db = runtime.db
    if not db.exists():
        return ProgramChange(program.id, "dry_run", None, 1)
    return db.run(
        lambda tx: load(tx, program, now, actor=actor, mapping=mapping, dry_run=True).change,
        write=False,
    )


def _migration(migrate: Mapping[str, str] | str | Path | None) -> dict[str, str]:
    """The state mapping of a programme change: given, read from a file, or none."""
    if migrate is None:
        return {}
    if isinstance(migrate, Mapping):
        return {str(old): str(new) for old, new in migrate.items()}
    from peakpilot.config.migration_file import load_migration

    return load_migration(migrate)


def _stored_program(stored: StoredProgram) -> Program:
    return rebuild_program(stored.source, stored.compiled, f"programme version {stored.version}")


def _result(change: ProgramChange, batch: str, *, changed: bool) -> dict[str, Any]:
    return {
        "program": change.program,
        "batch": batch,
        "version": change.to_version,
        "changed": changed,
        "change": change,
    }


__all__ = ["address_warnings", "initialise"]
