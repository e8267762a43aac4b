"""From due to done (figure 10): how late the running daemon does a deadline.

Follow-up batches are opened (by the NDRC, quota ``{"hebei": 1}``, one drafted
nomination each) with deadlines a few seconds ahead and spread out, and a daemon runs on
the system clock with its default sweep. For each deadline timer the figure is
``done_at - due_at`` from the ``timers`` table (``done_at`` is the tick's own instant);
the harness also polls the table and notes when each timer is seen done, which adds the
tick's work and commit (``observed``).

Two variants: ``due_to_done``, batches opened before the daemon starts (it arms its
wake-up when it catches up); ``due_to_done_live``, batches opened while it runs, at
least a sweep plus 2 s ahead (the sweep finds them and re-arms the wake-up). A deadline
that fell due before the daemon caught up measures the catch-up, not the wake-up: it is
counted apart and left out of the percentiles.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.context import Context
from benchmarks.daemon import CAUGHT_UP, DaemonProcess
from benchmarks.databases import sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import Samples
from peakpilot import Engine

DAEMON_DEFAULT_SWEEP = 5.0  # PEAKPILOT_SWEEP_SECONDS's default (DESIGN section 4)
POLL = 0.01


def fresh(path: Path) -> Engine:
    """An Engine on the system clock over a new database whose 2023 work is done."""
    engine = Engine(sqlite_url(path))
    engine.init()
    engine.tick()
    return engine


def open_batches(
    engine: Engine, label: str, count: int, first: datetime, spread: float
) -> list[str]:
    """``count`` batches with deadlines from ``first`` to ``first + spread``; their ids."""
    ids = []
    for index in range(count):
        step = spread * index / max(count - 1, 1)
        batch = f"{label}-{index:03d}"
        engine.open_batch(
            "ndrc", batch, deadline=first + timedelta(seconds=step), quotas={"hebei": 1}
        )
        engine.nominate(
            "drc:hebei",
            province="hebei",
            kind="city",
            name=f"{batch}-city",
            level="prefecture",
            batch=batch,
        )
        ids.append(batch)
    return ids


def _instant(stored: str) -> datetime:
    return datetime.strptime(stored, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def watch(path: Path, batches: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll the deadline timers of ``batches`` until all are done: for each, due_at,
    done_at, and when the harness first saw it done."""
    seen: dict[str, dict[str, Any]] = {}
    marks = ", ".join("?" for _ in batches)
    query = (
        "SELECT batch_id, due_at, done_at FROM timers WHERE kind = 'deadline' "
        f"AND status = 'done' AND batch_id IN ({marks})"
    )
    limit = time.monotonic() + timeout
    connection = sqlite3.connect(path)
    try:
        while len(seen) < len(batches):
            now = datetime.now(UTC)
            for batch, due_at, done_at in connection.execute(query, tuple(batches)):
                if batch not in seen:
                    seen[batch] = {"due": _instant(due_at), "done": _instant(done_at), "seen": now}
            if time.monotonic() > limit:
                missing = sorted(set(batches) - set(seen))
                raise TimeoutError(f"deadlines not done after {timeout:.0f} s: {missing}")
            time.sleep(POLL)
    finally:
        connection.close()
    return seen


def _figure(name: str, timers: dict[str, dict[str, Any]], caught_up: datetime) -> Figure:
    woken = {b: t for b, t in timers.items() if t["due"] > caught_up}
    if not woken:
        raise RuntimeError("every deadline fell due before the daemon caught up")
    delays = Samples(tuple((t["done"] - t["due"]).total_seconds() for t in woken.values()))
    seen = Samples(tuple((t["seen"] - t["due"]).total_seconds() for t in woken.values()))
    figure = Figure(SPECS[name], measured=delays)
    figure.details = {
        "timers": len(woken),
        "p50": round(delays.percentile(0.5), 4),
        "p99": round(delays.percentile(0.99), 4),
        "max": round(delays.max, 4),
        "observed_p50": round(seen.percentile(0.5), 4),
        "observed_p99": round(seen.percentile(0.99), 4),
        "observed_max": round(seen.max, 4),
        "due_before_caught_up": len(timers) - len(woken),
    }
    return figure


def run_due_to_done(ctx: Context) -> list[Figure]:
    return [
        _measure(ctx, name, before_start)
        for name, before_start in (("due_to_done", True), ("due_to_done_live", False))
        if ctx.wants(name)
    ]


def _measure(ctx: Context, name: str, before_start: bool) -> Figure:
    """One variant: a new database, its batches opened before the daemon starts or once
    it has caught up, then the deadline timers watched until all are done."""
    sizes, sweep = ctx.sizes, ctx.sizes.sweep_seconds
    path = ctx.folder("due_to_done") / f"{name}.db"
    lead = sizes.due_lead if before_start else (sweep or DAEMON_DEFAULT_SWEEP) + 2

    def open_now(engine: Engine) -> list[str]:
        first = datetime.now(UTC) + timedelta(seconds=lead)
        return open_batches(engine, name, sizes.due_timers, first, sizes.due_spread)

    engine = fresh(path)
    try:
        batches = open_now(engine) if before_start else []
        daemon = DaemonProcess(sqlite_url(path), path.parent, name, sweep)
        try:
            caught_up = datetime.fromisoformat(daemon.wait_for(CAUGHT_UP, timeout=60)["at"])
            if not before_start:
                batches = open_now(engine)
            timers = watch(path, batches, lead + sizes.due_spread + 60)
        finally:
            daemon.stop()
        _check_lapsed(engine, batches)
    finally:
        engine.close()
    figure = _figure(name, timers, caught_up)
    figure.details["sweep_seconds"] = sweep or DAEMON_DEFAULT_SWEEP
    figure.details["lead_seconds"] = lead
    ctx.log(f"{name}: {figure.details}")
    return figure


def _check_lapsed(engine: Engine, batches: Sequence[str]) -> None:
    """Each batch's drafted nomination lapsed: the timer did its work, not just finished."""
    for batch in batches:
        states = engine.board(batch).provinces[0].states
        if states.get("follow_up_batch") != 1:
            raise AssertionError(f"batch {batch} after its deadline: {dict(states)}")
