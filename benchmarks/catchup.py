"""The construction years at scale (issue 11): a daemon down for a year catches up the
yearly progress reports of N pilots (figure ``report_catchup_sqlite``).

N pilots of the first batch, their plans approved in 2023, none of which reported; the
tick at 2025-03-01 finds two years' rounds due (each a reminder, skipped because its due
day has passed, and a due day). Seeding is untimed and done once; each repetition works
on a fresh copy of the file.

The raw baseline is the same outcome as set-based SQL in one transaction: the four
round timers marked done, and for each year and province one notice whose text is the
list of its pilots' names (``group_concat``), found with the same "approved before the
year ended, not reported" test. The engine does more: it renders each letter from its
templates in the recipient's language (text and HTML), with dedupe keys, in the order
and transactions its timers fall due.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from benchmarks import seed
from benchmarks.context import Context
from benchmarks.databases import checkpoint, copy_sqlite, remove_sqlite, sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import interleaved
from benchmarks.workload import BATCH, BEFORE_DEADLINE, BEIJING, sqlite_stamp
from peakpilot import Engine, FrozenClock
from peakpilot.demo_documents import pdf_document

APPROVED = datetime(2023, 12, 1, 9, tzinfo=BEIJING)
SETTLED = datetime(2023, 12, 31, 9, tzinfo=BEIJING)  # the batch's deadline work done
CATCH_UP = datetime(2025, 3, 1, 9, tzinfo=BEIJING)  # a year after the 2024 round was due
PERIODS = (2023, 2024)  # the rounds due by then
ROUNDS = 2 * len(PERIODS)  # each a reminder and a due day

RAW_TIMERS = (
    "UPDATE timers SET status = 'done', done_at = :now WHERE status = 'pending' "
    "AND due_at <= :now AND kind IN ('report_reminder', 'report_due')"
)
RAW_NOTICES = """
INSERT INTO notices (id, dedupe_key, kind, actor, recipient, locale, subject, text, html,
                     status, attempts, next_attempt_at, nomination_id, batch_id, created_at)
SELECT lower(hex(randomblob(8))), lower(hex(randomblob(32))), 'report_overdue',
       'drc:' || n.province, 'drc:' || n.province, 'zh-CN',
       n.province || ' ' || p.period, group_concat(n.name, char(10)),
       group_concat(n.name, '<br>'), 'pending', 0, :now, NULL, n.batch_id, :now
FROM nominations n CROSS JOIN (SELECT 2023 AS period UNION ALL SELECT 2024) p
WHERE n.batch_id = :batch AND n.state IN ('in_construction', 'rectification')
  AND EXISTS (SELECT 1 FROM audit_records s WHERE s.nomination_id = n.id
              AND s.event = 'approve_plan' AND s.at < (p.period + 1) || '-01-01')
  AND NOT EXISTS (SELECT 1 FROM audit_records d WHERE d.nomination_id = n.id
                  AND d.event = 'report_progress' AND d.data = '{"period":' || p.period || '}')
GROUP BY n.province, p.period
"""


def seed_pilots(path: Path, count: int) -> None:
    """``count`` pilots under construction since December 2023: one taken there through
    the Engine (which makes the batch's report rounds), the rest written straight into
    the schema (their trails end in an approve_plan record)."""
    clock = FrozenClock(BEFORE_DEADLINE)
    with Engine(sqlite_url(path), clock=clock) as engine:
        engine.init()
        first = engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        )
        for event, actor in (
            ("submit_for_approval", "drc:hebei"),
            ("approve", "gov:hebei"),
            ("submit", "drc:hebei"),
            ("confirm", "ndrc"),
        ):
            engine.fire(first.id, event, actor)
        plan = pdf_document("Implementation plan")
        engine.attach(first.id, plan, kind="implementation_plan", actor="drc:hebei")
        engine.fire(first.id, "submit_plan", "drc:hebei")
        clock.set(APPROVED)
        engine.fire(first.id, "approve_plan", "ndrc")
        engine.tick(SETTLED)
    seed.sqlite_nominations(path, count - 1, prefix="试点")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        stamp = sqlite_stamp(APPROVED)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO audit_records (nomination_id, seq, event, from_state, to_state, actor, "
            "at, reason, batch_id, prev_hash, hash) SELECT id, 2, 'approve_plan', 'drafted', "
            "'in_construction', 'ndrc', ?, NULL, batch_id, audit_head, audit_head "
            "FROM nominations WHERE state = 'drafted'",
            (stamp,),
        )
        connection.execute(
            "UPDATE nominations SET state = 'in_construction', version = 2 WHERE state = 'drafted'"
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    checkpoint(path)


def engine_catchup(path: Path, count: int) -> float:
    with Engine(sqlite_url(path), clock=FrozenClock(CATCH_UP)) as engine:
        engine.check_templates()
        started = time.perf_counter()
        report = engine.tick(CATCH_UP)
        elapsed = time.perf_counter() - started
        listed = sum(
            int(o.action.split(" for ")[1].split()[0])
            for o in report.outcomes
            if o.kind == "report_due"
        )
        if len(report.outcomes) != ROUNDS or listed != count * len(PERIODS):
            raise AssertionError(f"the catch-up did {report.outcomes}, not {count} pilots x 2")
    return elapsed


def raw_catchup(path: Path, count: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous = FULL")
        now = sqlite_stamp(CATCH_UP)
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        done = connection.execute(RAW_TIMERS, {"now": now}).rowcount
        letters = connection.execute(RAW_NOTICES, {"now": now, "batch": BATCH}).rowcount
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if done != ROUNDS or (count >= 15 and letters != 15 * len(PERIODS)):
        raise AssertionError(f"the raw catch-up ended {done} timers and wrote {letters} letters")
    return elapsed


def run_catchup_sqlite(ctx: Context) -> list[Figure]:
    folder = ctx.folder("report_catchup_sqlite")
    count = ctx.sizes.catchup_pilots
    template = folder / "seeded.db"
    ctx.log(f"seeding {count:,} pilots under construction")
    seed_pilots(template, count)
    copies = itertools.count()

    @contextmanager
    def fresh() -> Iterator[Path]:
        path = copy_sqlite(template, folder / f"copy-{next(copies)}.db")
        try:
            yield path
        finally:
            remove_sqlite(path)

    def engine_rep() -> float:
        with fresh() as path:
            return engine_catchup(path, count)

    def raw_rep() -> float:
        with fresh() as path:
            return raw_catchup(path, count)

    samples = interleaved({"engine": engine_rep, "raw": raw_rep}, ctx.reps, ctx.log, " s")
    figure = Figure(
        SPECS["report_catchup_sqlite"], measured=samples["engine"], baseline=samples["raw"]
    )
    figure.details = {"pilots": count, "rounds": ROUNDS, "years": list(PERIODS)}
    return [figure]
