"""Deadline work at scale (figure 5): ``Engine.tick(deadline)`` lapsing N unsubmitted
nominations, each with its audit record, against the same change written by hand as
set-based SQL in one transaction. (This replaces ``benchmarks/deadline_scale.py``.)

Seeding N nominations is slow and not what is measured, so it is done once per kind of
database; every repetition works on a fresh copy (an SQLite file copy, or a PostgreSQL
``CREATE DATABASE ... TEMPLATE``), made before its clock starts.

The raw baseline is the floor for the tick: one ``INSERT ... SELECT`` of the lapse
records and one ``UPDATE`` of the nominations, no hashing (SQL cannot reproduce the
chain's canonical hash), no notices. The engine's tick does more: it hashes every
record, renders the shortfall notices (which list every lapsed nomination) and the
NDRC's summary, and closes the batch. The engine's result is checked by what it left
behind, not by its report (whose format may change): every seeded nomination is in
``follow_up_batch``, and (first repetition) ``verify_audit`` passes.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg

from benchmarks import seed
from benchmarks.context import Context
from benchmarks.databases import (
    checkpoint,
    conninfo,
    copy_sqlite,
    remove_sqlite,
    sqlite_url,
)
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import Samples, interleaved
from benchmarks.workload import BATCH, BEFORE_DEADLINE, DEADLINE, sqlite_stamp
from peakpilot import Engine, FrozenClock

LAPSING = ("drafted", "provincial_approval", "approved")
RAW_RECORDS = (
    "INSERT INTO audit_records (nomination_id, seq, event, from_state, to_state, actor, at, "
    "reason, batch_id, prev_hash, hash) "
    "SELECT id, version + 1, 'lapse', state, 'follow_up_batch', 'system', ?, NULL, batch_id, "
    "audit_head, '' FROM nominations WHERE batch_id = ? AND state IN (?, ?, ?)"
)
RAW_MOVE = (
    "UPDATE nominations SET state = 'follow_up_batch', version = version + 1, updated_at = ? "
    "WHERE batch_id = ? AND state IN (?, ?, ?)"
)


def engine_lapse(url: str, count: int, *, verify: bool) -> float:
    """Seconds ``Engine.tick(deadline)`` takes; then check what it left behind."""
    with Engine(url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.check_templates()  # programme and templates load before the clock starts
        started = time.perf_counter()
        engine.tick(DEADLINE)
        elapsed = time.perf_counter() - started
        board = engine.board(BATCH)
        lapsed = sum(p.states.get("follow_up_batch", 0) for p in board.provinces)
        if lapsed != count:
            raise AssertionError(f"the tick lapsed {lapsed} nominations, not {count}")
        if verify:
            report = engine.verify_audit()
            if not report.ok:
                raise AssertionError(f"the audit trail is broken after the tick: {report}")
    return elapsed


def raw_lapse_sqlite(path: Path, count: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("busy_timeout = 30000", "synchronous = FULL", "foreign_keys = ON"):
            connection.execute(f"PRAGMA {pragma}")
        at = sqlite_stamp(DEADLINE)
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(RAW_RECORDS, (at, BATCH, *LAPSING))
        moved = connection.execute(RAW_MOVE, (at, BATCH, *LAPSING)).rowcount
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if moved != count:
        raise AssertionError(f"the raw lapse moved {moved} nominations, not {count}")
    return elapsed


def raw_lapse_postgres(dsn: str, count: int) -> float:
    with psycopg.connect(dsn) as connection:
        started = time.perf_counter()
        connection.execute(RAW_RECORDS.replace("?", "%s"), (DEADLINE, BATCH, *LAPSING))
        moved = connection.execute(RAW_MOVE.replace("?", "%s"), (DEADLINE, BATCH, *LAPSING))
        connection.commit()
        elapsed = time.perf_counter() - started
    if moved.rowcount != count:
        raise AssertionError(f"the raw lapse moved {moved.rowcount} nominations, not {count}")
    return elapsed


def _figure(name: str, samples: Mapping[str, Samples], count: int) -> Figure:
    figure = Figure(SPECS[name], measured=samples["engine"], baseline=samples["raw"])
    figure.details = {"nominations_lapsed": count, "verify_audit": "ok (first repetition)"}
    return figure


def run_lapse_sqlite(ctx: Context) -> list[Figure]:
    folder = ctx.folder("lapse_sqlite")
    count = ctx.sizes.lapse_rows
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
            return engine_lapse(sqlite_url(path), count, verify=next(first) == 0)

    def raw_rep() -> float:
        with fresh() as path:
            return raw_lapse_sqlite(path, count)

    samples = interleaved({"engine": engine_rep, "raw": raw_rep}, ctx.reps, ctx.log, " s")
    return [_figure("lapse_sqlite", samples, count)]


def run_lapse_postgres(ctx: Context) -> list[Figure]:
    server = ctx.postgres
    if server is None:
        raise RuntimeError("no PostgreSQL server")
    count = ctx.sizes.lapse_rows
    with server.database("lapse_seeded") as template:
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
                    "lapse_engine", lambda u: engine_lapse(u, count, verify=next(first) == 0)
                ),
                "raw": rep("lapse_raw", lambda u: raw_lapse_postgres(conninfo(u), count)),
            },
            ctx.reps,
            ctx.log,
            " s",
        )
    return [_figure("lapse_pg", samples, count)]
