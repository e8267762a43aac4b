"""``Engine.fire`` throughput on PostgreSQL against raw psycopg doing the same work:
one client in this process (figure 3), and eight client processes on eight provinces
firing at once (figure 4).

The engine and the baseline each get a database of their own, created for the figure
and dropped after it; both are set up with ``Engine.init`` and the same nominations
made through ``Engine.nominate``, and both databases' chains are verified at the end.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.context import Context
from benchmarks.databases import PostgresServer, conninfo
from benchmarks.figures import SPECS, Figure
from benchmarks.pg_clients import Clients
from benchmarks.raw import NOTICE_NOTE, RawPostgres
from benchmarks.timing import interleaved
from benchmarks.workload import (
    BEFORE_DEADLINE,
    PROVINCES,
    Cycler,
    Nominated,
    engine_fire,
    nominate,
    timed_window,
)
from peakpilot import Engine, FrozenClock

PER_PROVINCE = 2


def prepare(url: str, provinces: tuple[str, ...]) -> list[Nominated]:
    with Engine(url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
        return nominate(engine, PER_PROVINCE, provinces)


def verified(url: str) -> bool:
    with Engine(url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        return engine.verify_audit().ok


def _server(ctx: Context) -> PostgresServer:
    if ctx.postgres is None:
        raise RuntimeError("no PostgreSQL server")
    return ctx.postgres


def run_fire_pg_1(ctx: Context) -> list[Figure]:
    server = _server(ctx)
    with server.database("fire1_engine") as engine_db, server.database("fire1_raw") as raw_db:
        engine_url, raw_url = server.url(engine_db), server.url(raw_db)
        engine_nominations = prepare(engine_url, PROVINCES)
        raw_nominations = prepare(raw_url, PROVINCES)
        engine = Engine(engine_url, clock=FrozenClock(BEFORE_DEADLINE))
        raw = RawPostgres(conninfo(raw_url), BEFORE_DEADLINE)
        try:
            cyclers = {"engine": Cycler(engine_nominations), "raw": Cycler(raw_nominations)}
            fires = {"engine": engine_fire(engine), "raw": raw}
            for kind, cycler in cyclers.items():  # warm-up
                cycler.cycles(fires[kind], 1)
            seconds = ctx.sizes.fire_seconds

            def contender(kind: str) -> Callable[[], float]:
                return lambda: timed_window(cyclers[kind], fires[kind], seconds)

            samples = interleaved(
                {kind: contender(kind) for kind in cyclers}, ctx.reps, ctx.log, " fires/s"
            )
        finally:
            engine.close()
            raw.close()
        chains = {"engine": verified(engine_url), "raw": verified(raw_url)}
    if not all(chains.values()):
        raise AssertionError(f"an audit chain does not verify after the run: {chains}")
    figure = Figure(SPECS["fire_pg_1"], measured=samples["engine"], baseline=samples["raw"])
    figure.details = {
        "window_seconds": seconds,
        "chains_verified": chains,
        "baseline_notice": NOTICE_NOTE,
    }
    return [figure]


def run_fire_pg_8(ctx: Context) -> list[Figure]:
    server = _server(ctx)
    count = ctx.sizes.pg_clients
    if not 1 <= count <= len(PROVINCES):
        raise ValueError(f"--pg-clients must be 1 to {len(PROVINCES)}: one province each")
    provinces = PROVINCES[:count]
    seconds = ctx.sizes.fire_seconds
    with server.database("fire8_engine") as engine_db, server.database("fire8_raw") as raw_db:
        engine_url, raw_url = server.url(engine_db), server.url(raw_db)
        engine_nominations = prepare(engine_url, provinces)
        raw_nominations = prepare(raw_url, provinces)
        ctx.log(f"starting {count} client processes")
        with Clients(
            engine_url,
            conninfo(raw_url),
            [[n for n in engine_nominations if n.province == p] for p in provinces],
            [[n for n in raw_nominations if n.province == p] for p in provinces],
        ) as clients:
            ctx.log("clients ready")
            for mode in ("engine", "raw"):  # warm-up windows, not timed
                clients.window(mode, min(seconds, 1.0))
            samples = interleaved(
                {
                    "engine": lambda: clients.window("engine", seconds),
                    "raw": lambda: clients.window("raw", seconds),
                },
                ctx.reps,
                ctx.log,
                " fires/s",
            )
        chains = {"engine": verified(engine_url), "raw": verified(raw_url)}
    if not all(chains.values()):
        raise AssertionError(f"an audit chain does not verify after the run: {chains}")
    figure = Figure(SPECS["fire_pg_8"], measured=samples["engine"], baseline=samples["raw"])
    figure.details = {
        "clients": count,
        "provinces": list(provinces),
        "window_seconds": seconds,
        "chains_verified": chains,
        "baseline_notice": NOTICE_NOTE,
    }
    return [figure]
