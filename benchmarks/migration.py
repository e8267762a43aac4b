"""A programme change at scale (figures ``migration_sqlite`` and ``migration_pg``):
``Engine.change_program`` putting a second version of the programme in force and moving
N nominations the migration maps, each with its ``migrate`` audit record, against the
same change written by hand as set-based SQL in one transaction.

The new version is the shipped programme with its state ``drafted`` renamed
``in_preparation`` (a whole-word replacement in the YAML), loaded with the migration
``{"drafted": "in_preparation"}``: every seeded nomination (all drafted) moves.

As in ``benchmarks/lapse.py``, seeding is done once per kind of database and every
repetition works on a fresh copy made before its clock starts. The engine is opened, its
programme in force loaded and the new text parsed before the clock starts too: what is
timed is the change itself, in its one transaction.

The raw baseline is the floor of that change: the new ``program_versions`` row and the
``programs`` row updated, one ``INSERT ... SELECT`` of the migrate records and one
``UPDATE`` of the nominations, no hashing (SQL cannot reproduce the chain's canonical
hash). The engine does more: it checks the change (the differences, the nominations and
quotas it would strand), hashes every record, moves the nominations in compare-and-set
chunks, and re-derives the open batches' timers. Its result is checked by what it left
behind: every seeded nomination is in ``in_preparation``, and (first repetition)
``verify_audit`` passes.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks import seed
from benchmarks.context import Context
from benchmarks.databases import checkpoint, conninfo, copy_sqlite, remove_sqlite, sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import Samples, interleaved
from benchmarks.workload import BATCH, BEFORE_DEADLINE, sqlite_stamp
from peakpilot import Engine, FrozenClock
from peakpilot.config.program import Program, load_program, parse_program
from peakpilot.workflow import audit

OLD_STATE, NEW_STATE = "drafted", "in_preparation"
MIGRATE = {OLD_STATE: NEW_STATE}
FROM_VERSION, TO_VERSION = 1, 2
# the record's data as the trail stores it (canonical JSON)
DATA = audit.data_text({"from_version": FROM_VERSION, "to_version": TO_VERSION})

RAW_PROGRAM = (
    "UPDATE programs SET digest = ?, source = ?, compiled = ?, loaded_at = ?, version = ? "
    "WHERE id = ?"
)
RAW_VERSION = (
    "INSERT INTO program_versions (version, program_id, sha256, source, compiled, loaded_at, "
    "actor) VALUES (?, ?, ?, ?, ?, ?, 'system')"
)
RAW_RECORDS = (
    "INSERT INTO audit_records (nomination_id, seq, event, from_state, to_state, actor, at, "
    "reason, batch_id, prev_hash, hash, data) "
    "SELECT id, version + 1, 'migrate', state, ?, 'system', ?, NULL, batch_id, audit_head, '', ? "
    "FROM nominations WHERE state = ?"
)
RAW_MOVE = (
    "UPDATE nominations SET state = ?, version = version + 1, program_version = ?, "
    "updated_at = ? WHERE state = ?"
)


def renamed_text() -> str:
    """The shipped programme's YAML with ``drafted`` renamed ``in_preparation``."""
    return re.sub(rf"\b{OLD_STATE}\b", NEW_STATE, load_program().source)


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What the raw baseline writes for the programme itself (made before its clock)."""

    program_id: str
    digest: str
    source: str
    compiled: str

    @classmethod
    def of(cls, program: Program) -> NewVersion:
        return cls(program.id, program.digest, program.source, program.to_compiled())


def engine_migrate(url: str, text: str, count: int, *, verify: bool) -> float:
    """Seconds ``Engine.change_program`` takes; then check what it left behind."""
    with Engine(url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.check_templates()  # the programme in force and its templates load untimed
        program = parse_program(text, "the renamed programme")
        started = time.perf_counter()
        change = engine.change_program(program, migrate=MIGRATE)
        elapsed = time.perf_counter() - started
        if (change.from_version, change.to_version) != (FROM_VERSION, TO_VERSION):
            raise AssertionError(f"the change went {change.from_version} -> {change.to_version}")
        board = engine.board(BATCH)
        moved = sum(p.states.get(NEW_STATE, 0) for p in board.provinces)
        left = sum(p.states.get(OLD_STATE, 0) for p in board.provinces)
        if moved != count or left:
            raise AssertionError(f"the change moved {moved} of {count} nominations")
        if verify:
            report = engine.verify_audit()
            if not report.ok:
                raise AssertionError(f"the audit trail is broken after the change: {report}")
    return elapsed


def _raw_params(new: NewVersion, at: object) -> tuple[tuple[object, ...], ...]:
    """The parameters of the raw statements, in order: programme, version, records, move."""
    return (
        (new.digest, new.source, new.compiled, at, TO_VERSION, new.program_id),
        (TO_VERSION, new.program_id, new.digest, new.source, new.compiled, at),
        (NEW_STATE, at, DATA, OLD_STATE),
        (NEW_STATE, TO_VERSION, at, OLD_STATE),
    )


def raw_migrate_sqlite(path: Path, new: NewVersion, count: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("busy_timeout = 30000", "synchronous = FULL", "foreign_keys = ON"):
            connection.execute(f"PRAGMA {pragma}")
        program, version, records, move = _raw_params(new, sqlite_stamp(BEFORE_DEADLINE))
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(RAW_PROGRAM, program)
        connection.execute(RAW_VERSION, version)
        connection.execute(RAW_RECORDS, records)
        moved = connection.execute(RAW_MOVE, move).rowcount
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if moved != count:
        raise AssertionError(f"the raw migration moved {moved} nominations, not {count}")
    return elapsed


def raw_migrate_postgres(dsn: str, new: NewVersion, count: int) -> float:
    program, version, records, move = _raw_params(new, BEFORE_DEADLINE)
    with psycopg.connect(dsn) as connection:
        started = time.perf_counter()
        connection.execute(RAW_PROGRAM.replace("?", "%s"), program)
        connection.execute(RAW_VERSION.replace("?", "%s"), version)
        connection.execute(RAW_RECORDS.replace("?", "%s"), records)
        moved = connection.execute(RAW_MOVE.replace("?", "%s"), move).rowcount
        connection.commit()
        elapsed = time.perf_counter() - started
    if moved != count:
        raise AssertionError(f"the raw migration moved {moved} nominations, not {count}")
    return elapsed


def _figure(name: str, samples: Mapping[str, Samples], count: int) -> Figure:
    figure = Figure(SPECS[name], measured=samples["engine"], baseline=samples["raw"])
    figure.details = {"nominations_migrated": count, "verify_audit": "ok (first repetition)"}
    return figure


def run_migration_sqlite(ctx: Context) -> list[Figure]:
    folder = ctx.folder("migration_sqlite")
    count = ctx.sizes.migration_rows
    text = renamed_text()
    new = NewVersion.of(parse_program(text, "the renamed programme"))
    template = folder / "seeded.db"
    with Engine(sqlite_url(template), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
    ctx.log(f"seeding {count:,} nominations")
    seed.sqlite_nominations(template, count)
    checkpoint(template)
    copies = itertools.count()

    @contextmanager
    def fresh() -> Iterator[Path]:
        path = copy_sqlite(template, folder / f"copy-{next(copies)}.db")
        try:
            yield path
        finally:
            remove_sqlite(path)

    first = itertools.count()

    def engine_rep() -> float:
        with fresh() as path:
            return engine_migrate(sqlite_url(path), text, count, verify=next(first) == 0)

    def raw_rep() -> float:
        with fresh() as path:
            return raw_migrate_sqlite(path, new, count)

    samples = interleaved({"engine": engine_rep, "raw": raw_rep}, ctx.reps, ctx.log, " s")
    return [_figure("migration_sqlite", samples, count)]


def run_migration_postgres(ctx: Context) -> list[Figure]:
    server = ctx.postgres
    if server is None:
        raise RuntimeError("no PostgreSQL server")
    count = ctx.sizes.migration_rows
    text = renamed_text()
    new = NewVersion.of(parse_program(text, "the renamed programme"))
    with server.database("migration_seeded") as template:
        url = server.url(template)
        with Engine(url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
            engine.init()
        ctx.log(f"seeding {count:,} nominations")
        seed.postgres_nominations(conninfo(url), count)
        first = itertools.count()

        def rep(label: str, work: Callable[[str], float]) -> Callable[[], float]:
            def run() -> float:
                name = server.clone(label, template)
                try:
                    return work(server.url(name))
                finally:
                    server.drop(name)

            return run

        samples = interleaved(
            {
                "engine": rep(
                    "migration_engine",
                    lambda u: engine_migrate(u, text, count, verify=next(first) == 0),
                ),
                "raw": rep(
                    "migration_raw", lambda u: raw_migrate_postgres(conninfo(u), new, count)
                ),
            },
            ctx.reps,
            ctx.log,
            " s",
        )
    return [_figure("migration_pg", samples, count)]
