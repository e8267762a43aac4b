"""Where one transition's time goes: ``python -m benchmarks.breakdown [--fires N]``;
and where a deadline's lapse goes: ``python -m benchmarks.breakdown --lapse [--rows N]``.

The profile behind docs/BENCHMARKS.md's account of ``fire_sqlite_vs_raw``. It takes the
engine and the raw baseline round the same workload as the figure (SQLite, WAL,
synchronous=FULL, one durable transaction per fire), in alternating slices, and splits
each fire's wall-clock time into the transaction's ``BEGIN IMMEDIATE`` + ``COMMIT`` (the
durable part), rendering the notice (Jinja2), composing it (recipients, variables,
dedupe key) and the rest (the engine's reads, the machine, the compare-and-set, the
audit record and its hash, the outbox row, the snapshot). It also counts the pages each
fire appends to the WAL, which is what the commit's cost follows.

The parts are timed by wrapping the methods that do them, which adds about a
microsecond per wrapped call: compare the parts with each other and with the raw
baseline, not with the figure's own throughput.

``--short-notice`` replaces each rendered notice by a fixed line like the baseline's
(no Jinja2, a 100-byte row): what the engine costs when its notice costs what the
baseline's does.

``--lapse`` splits ``lapse_sqlite`` the same way: one ``Engine.tick`` at the deadline of
N seeded unsubmitted nominations into its chunks' locking reads, record INSERTs and
compare-and-set UPDATEs, the rest of the chunks (hashing, building the rows), the
commits, and the closing transaction (rendering the shortfall notices, the rest); and
the raw baseline, on a copy of the same database, into its ``INSERT ... SELECT``,
``UPDATE`` and ``COMMIT``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import seed
from benchmarks.databases import checkpoint, copy_sqlite, sqlite_url
from benchmarks.fire import new_database
from benchmarks.lapse import LAPSING, RAW_MOVE, RAW_RECORDS
from benchmarks.raw import RawSqlite
from benchmarks.workload import (
    BATCH,
    BEFORE_DEADLINE,
    DEADLINE,
    Cycler,
    Fire,
    engine_fire,
    sqlite_stamp,
)
from peakpilot import Engine, FrozenClock
from peakpilot.notifications.compose import Notifier
from peakpilot.notifications.render import RenderedNotice, Renderer
from peakpilot.workflow.store.database import Database
from peakpilot.workflow.store.lapses import Lapses
from peakpilot.workflow.timers import TimerWork

WAL_FRAME = 4096 + 24  # an SQLite WAL frame: one page and its header
SLICES = 10  # alternating slices per contender


@dataclass
class Timed:
    """Seconds spent inside wrapped calls, by part."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds


@contextmanager
def wrapped(owner: Any, name: str, part: str, timed: Timed) -> Iterator[None]:
    """Time every call of ``owner.name`` as ``part`` while the block runs."""
    original = getattr(owner, name)

    def timing(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timed.add(part, time.perf_counter() - started)

    setattr(owner, name, timing)
    try:
        yield
    finally:
        setattr(owner, name, original)


def wal_pages(connection: Any, wal: Path, work: Callable[[], int]) -> float:
    """Pages appended to the WAL per fire by ``work`` (which returns its fires), with the
    automatic checkpoint held off meanwhile so that the file only grows."""
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        fires = work()
        return os.path.getsize(wal) / WAL_FRAME / fires
    finally:
        connection.execute("PRAGMA wal_autocheckpoint = 1000")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


SHORT_NOTICE = RenderedNotice("[peakpilot] notice", "a state changed", "<p>a state changed</p>")


@contextmanager
def short_notices() -> Iterator[None]:
    """Every notice rendered as :data:`SHORT_NOTICE` while the block runs."""
    original = Renderer.render
    Renderer.render = lambda self, kind, locale, context: SHORT_NOTICE  # type: ignore[method-assign]
    try:
        yield
    finally:
        Renderer.render = original  # type: ignore[method-assign]


def measure(folder: Path, fires: int) -> dict[str, Any]:
    seeded = folder / "seeded.db"
    nominations = new_database(seeded, 2)
    engine_path = copy_sqlite(seeded, folder / "engine.db")
    raw_path = copy_sqlite(seeded, folder / "raw.db")
    engine = Engine(sqlite_url(engine_path), clock=FrozenClock(BEFORE_DEADLINE))
    raw = RawSqlite(raw_path, BEFORE_DEADLINE)
    contenders: dict[str, Fire] = {"engine": engine_fire(engine), "raw": raw}
    cyclers = {kind: Cycler(nominations) for kind in contenders}
    for kind, fire in contenders.items():
        cyclers[kind].cycles(fire, 1)  # warm-up: connections, caches, templates
    timed = {kind: Timed() for kind in contenders}
    wall = dict.fromkeys(contenders, 0.0)
    cpu = dict.fromkeys(contenders, 0.0)
    cycles = max(fires // (4 * SLICES), 1)
    try:
        with (
            wrapped(Database, "_begin", "begin_commit", timed["engine"]),
            wrapped(Database, "_end", "begin_commit", timed["engine"]),
            wrapped(Renderer, "render", "render", timed["engine"]),
            wrapped(Notifier, "for_event", "notice", timed["engine"]),
            wrapped(raw, "begin", "begin_commit", timed["raw"]),
            wrapped(raw, "commit", "begin_commit", timed["raw"]),
        ):
            for _ in range(SLICES):
                for kind, fire in contenders.items():
                    started, started_cpu = time.perf_counter(), time.process_time()
                    cyclers[kind].cycles(fire, cycles)
                    wall[kind] += time.perf_counter() - started
                    cpu[kind] += time.process_time() - started_cpu
        # the automatic checkpoint is a setting of the committing connection: the one
        # connection the engine's pool holds, as one thread fires one at a time
        pooled = engine.database.engine.raw_connection()
        own = pooled.driver_connection
        pooled.close()
        pages = {
            "engine": wal_pages(
                own,
                Path(f"{engine_path}-wal"),
                lambda: cyclers["engine"].cycles(contenders["engine"], cycles),
            ),
            "raw": wal_pages(
                raw.connection,
                Path(f"{raw_path}-wal"),
                lambda: cyclers["raw"].cycles(contenders["raw"], cycles),
            ),
        }
    finally:
        engine.close()
        raw.close()
    count = cycles * 4 * SLICES
    result: dict[str, Any] = {"fires_per_contender": count}
    for kind in contenders:
        parts = {part: seconds / count * 1e6 for part, seconds in timed[kind].seconds.items()}
        if "notice" in parts:
            parts["compose"] = parts.pop("notice") - parts["render"]
        per_fire = wall[kind] / count * 1e6
        parts["rest"] = per_fire - sum(parts.values())
        result[kind] = {
            "us_per_fire": per_fire,
            "cpu_us_per_fire": cpu[kind] / count * 1e6,
            "parts_us": parts,
            "wal_pages_per_fire": pages[kind],
        }
    result["ratio"] = result["raw"]["us_per_fire"] / result["engine"]["us_per_fire"]
    return result


def measure_lapse(folder: Path, rows: int) -> dict[str, Any]:
    """One engine tick and one raw baseline over ``rows`` lapses, each on a fresh copy."""
    seeded = folder / "lapse-seeded.db"
    with Engine(sqlite_url(seeded), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
    seed.sqlite_nominations(seeded, rows)
    checkpoint(seeded)
    timed = Timed()
    with Engine(
        sqlite_url(copy_sqlite(seeded, folder / "lapse-engine.db")),
        clock=FrozenClock(BEFORE_DEADLINE),
    ) as engine:
        engine.check_templates()  # programme and templates load before the clock starts
        with (
            wrapped(Lapses, "_lock_in_states", "chunk_reads", timed),
            wrapped(Lapses, "_append_records", "chunk_inserts", timed),
            wrapped(Lapses, "_advance", "chunk_updates", timed),
            wrapped(Lapses, "lapse", "chunks", timed),
            wrapped(Database, "_end", "commits", timed),
            wrapped(TimerWork, "_close", "closing", timed),
            wrapped(Renderer, "render", "closing_render", timed),
        ):
            started = time.perf_counter()
            engine.tick(DEADLINE)
            whole = time.perf_counter() - started
    parts = dict(timed.seconds)
    parts["chunks_rest"] = parts.pop("chunks") - sum(
        parts[part] for part in ("chunk_reads", "chunk_inserts", "chunk_updates")
    )
    parts["closing_rest"] = parts.pop("closing") - parts["closing_render"]
    parts["rest"] = whole - sum(parts.values())
    return {
        "rows": rows,
        "engine": {"seconds": whole, "parts_seconds": parts},
        "raw": _raw_lapse(copy_sqlite(seeded, folder / "lapse-raw.db")),
    }


def _raw_lapse(path: Path) -> dict[str, Any]:
    """``benchmarks.lapse``'s raw baseline, its three statements timed apart."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("busy_timeout = 30000", "synchronous = FULL", "foreign_keys = ON"):
            connection.execute(f"PRAGMA {pragma}")
        at = sqlite_stamp(DEADLINE)
        laps = [time.perf_counter()]
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(RAW_RECORDS, (at, BATCH, *LAPSING))
        laps.append(time.perf_counter())
        connection.execute(RAW_MOVE, (at, BATCH, *LAPSING))
        laps.append(time.perf_counter())
        connection.execute("COMMIT")
        laps.append(time.perf_counter())
    finally:
        connection.close()
    names = ("insert_select", "update", "commit")
    parts = {name: laps[i + 1] - laps[i] for i, name in enumerate(names)}
    return {"seconds": laps[-1] - laps[0], "parts_seconds": parts}


def render_lapse_table(result: dict[str, Any]) -> str:
    engine, raw = result["engine"], result["raw"]
    lines = [
        f"seconds for {result['rows']:,} lapses",
        f"{'engine tick':<28}{engine['seconds']:>8.3f}",
    ]
    lines += [f"  {part:<26}{value:>8.3f}" for part, value in engine["parts_seconds"].items()]
    lines.append(f"{'raw baseline':<28}{raw['seconds']:>8.3f}")
    lines += [f"  {part:<26}{value:>8.3f}" for part, value in raw["parts_seconds"].items()]
    lines.append(f"engine / raw: {engine['seconds'] / raw['seconds']:.2f}")
    return "\n".join(lines)


def render_table(result: dict[str, Any]) -> str:
    parts = ("begin_commit", "render", "compose", "rest")
    lines = [
        f"{'us per fire':<14}{'engine':>10}{'raw':>10}",
        f"{'whole fire':<14}{result['engine']['us_per_fire']:>10.0f}"
        f"{result['raw']['us_per_fire']:>10.0f}",
    ]
    for part in parts:
        values = [result[kind]["parts_us"].get(part) for kind in ("engine", "raw")]
        cells = "".join(f"{'-':>10}" if v is None else f"{v:>10.0f}" for v in values)
        lines.append(f"  {part:<12}{cells}")
    lines.append(
        f"{'cpu':<14}{result['engine']['cpu_us_per_fire']:>10.0f}"
        f"{result['raw']['cpu_us_per_fire']:>10.0f}"
    )
    lines.append(
        f"{'WAL pages':<14}{result['engine']['wal_pages_per_fire']:>10.1f}"
        f"{result['raw']['wal_pages_per_fire']:>10.1f}"
    )
    lines.append(f"engine / raw throughput: {result['ratio']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__)
    parser.add_argument("--fires", type=int, default=4000, help="fires per contender")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--short-notice", action="store_true", help="a fixed short notice instead of rendering"
    )
    parser.add_argument("--lapse", action="store_true", help="break down a deadline's lapse")
    parser.add_argument("--rows", type=int, default=100_000, help="nominations the lapse moves")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="peakpilot-breakdown-") as folder, ExitStack() as stack:
        if args.short_notice:
            stack.enter_context(short_notices())
        if args.lapse:
            result = measure_lapse(Path(folder), args.rows)
            table = render_lapse_table
        else:
            result = measure(Path(folder), args.fires)
            table = render_table
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
