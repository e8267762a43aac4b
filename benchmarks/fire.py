"""``Engine.fire`` throughput on SQLite: against its raw ``sqlite3`` baseline and the
naive SQLModel version (figures 1 and 2, from the same repetitions), and with a million
nominations stored against a thousand (figure 6).

Each contender works on its own copy of one seeded database (same nominations, same
ids), so they never see each other's rows; each is warmed up with one untimed cycle.
The chains every contender wrote are verified at the end: a baseline that skipped part
of the work would break them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks import seed
from benchmarks.context import Context
from benchmarks.databases import checkpoint, copy_sqlite, sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.naive import NaiveFire
from benchmarks.raw import NOTICE_NOTE, RawSqlite
from benchmarks.timing import interleaved
from benchmarks.workload import (
    BEFORE_DEADLINE,
    Cycler,
    Fire,
    Nominated,
    engine_fire,
    nominate,
    timed_window,
)
from peakpilot import Engine, FrozenClock

PER_PROVINCE = 2  # nominations per province that go round the cycle


def new_database(path: Path, nominations_per_province: int) -> list[Nominated]:
    """An initialised SQLite database with drafted nominations made by the engine."""
    with Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
        made = nominate(engine, nominations_per_province)
    checkpoint(path)
    return made


def chains_ok(path: Path) -> bool:
    """Whether every audit chain of the database verifies."""
    with Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        return engine.verify_audit().ok


def run_fire_sqlite(ctx: Context) -> list[Figure]:
    """Figures 1 and 2: Engine.fire, raw sqlite3 and naive SQLModel, interleaved."""
    folder = ctx.folder("fire_sqlite")
    seeded = folder / "seeded.db"
    nominations = new_database(seeded, PER_PROVINCE)
    kinds = ["engine"]
    if ctx.wants("fire_sqlite_vs_raw"):
        kinds.append("raw")
    if ctx.wants("fire_sqlite_vs_naive"):
        kinds.append("naive")
    paths = {kind: copy_sqlite(seeded, folder / f"{kind}.db") for kind in kinds}
    engine = Engine(sqlite_url(paths["engine"]), clock=FrozenClock(BEFORE_DEADLINE))
    firers: dict[str, tuple[Fire, Callable[[], None]]] = {
        "engine": (engine_fire(engine), engine.close)
    }
    if "raw" in paths:
        raw = RawSqlite(paths["raw"], BEFORE_DEADLINE)
        firers["raw"] = (raw, raw.close)
    if "naive" in paths:
        naive = NaiveFire(paths["naive"], BEFORE_DEADLINE)
        firers["naive"] = (naive, naive.close)
    try:
        cyclers = {kind: Cycler(nominations) for kind in firers}
        for kind, (fire, _) in firers.items():  # warm-up: connections, caches, templates
            cyclers[kind].cycles(fire, 1)
        seconds = ctx.sizes.fire_seconds
        samples = interleaved(
            {kind: _contender(cyclers[kind], fire, seconds) for kind, (fire, _) in firers.items()},
            ctx.reps,
            ctx.log,
            " fires/s",
        )
    finally:
        for _, close in firers.values():
            close()
    verified = {kind: chains_ok(path) for kind, path in paths.items()}
    if not all(verified.values()):
        raise AssertionError(f"an audit chain does not verify after the run: {verified}")
    details = {
        "window_seconds": seconds,
        "nominations": len(nominations),
        "chains_verified": verified,
        "baseline_notice": NOTICE_NOTE,
    }
    figures = []
    for name, kind in (("fire_sqlite_vs_raw", "raw"), ("fire_sqlite_vs_naive", "naive")):
        if kind in samples and ctx.wants(name):
            figures.append(Figure(SPECS[name], measured=samples["engine"], baseline=samples[kind]))
            figures[-1].details = dict(details)
    return figures


def _contender(cycler: Cycler, fire: Fire, seconds: float) -> Callable[[], float]:
    return lambda: timed_window(cycler, fire, seconds)


def run_fire_at_scale(ctx: Context) -> list[Figure]:
    """Figure 6: the same engine workload on a table of a million nominations (each with
    its nominate record) and on one of a thousand."""
    folder = ctx.folder("fire_at_scale")
    sizes = {"large": ctx.sizes.scale_rows, "small": ctx.sizes.scale_base}
    engines: dict[str, Engine] = {}
    cyclers: dict[str, Cycler] = {}
    try:
        for label, rows in sizes.items():
            path = folder / f"{label}.db"
            ctx.log(f"seeding {rows:,} nominations ({label})")
            nominations = new_database(path, 1)
            seed.sqlite_nominations(path, max(rows - len(nominations), 0))
            engines[label] = Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE))
            cyclers[label] = Cycler(nominations)
            cyclers[label].cycles(engine_fire(engines[label]), 1)  # warm-up
        seconds = ctx.sizes.fire_seconds
        samples = interleaved(
            {
                label: _contender(cyclers[label], engine_fire(engines[label]), seconds)
                for label in sizes
            },
            ctx.reps,
            ctx.log,
            " fires/s",
        )
        boards = {label: engines[label].board("2023-first") for label in sizes}
    finally:
        for engine in engines.values():
            engine.close()
    stored = {
        label: sum(sum(p.states.values()) for p in board.provinces)
        for label, board in boards.items()
    }
    figure = Figure(SPECS["fire_at_1m"], measured=samples["large"], baseline=samples["small"])
    figure.details = {
        "nominations_stored": stored,
        "window_seconds": seconds,
        "verify_audit": "skipped (seeded chains are valid; verifying a million takes ~40 s)",
    }
    return [figure]
