"""Database faults: connections killed under the daemon, a database held locked.

The daemon must log the failure, reconnect and finish the work, without exiting or doing
anything twice; a writer meeting SQLite's lock waits inside the busy timeout.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from peakpilot import Engine, FrozenClock
from peakpilot.workflow.store.database import StoreHooks
from tests.conftest import BEFORE_DEADLINE

FULL = os.environ.get("PEAKPILOT_FULL_RUN") == "1"
RESULTS = Path(".reliability")


def record(name: str, figures: dict[str, object]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(name, figures)


@pytest.mark.postgres
def test_the_daemon_survives_its_connections_being_terminated(
    postgres_url: str, postgres_admin: sa.Engine, tmp_path: Path
) -> None:
    batches = 12 if FULL else 6
    with Engine(postgres_url) as engine:
        engine.init()
        engine.tick()  # the 2023 batch's deadline work, done before the faults begin
        start = datetime.now(UTC)
        for index in range(batches):
            engine.open_batch(
                "ndrc",
                f"b{index}",
                quotas={"hebei": 1},
                deadline=start + timedelta(seconds=3 + index * 0.5),
            )
            engine.nominate(
                "drc:hebei",
                province="hebei",
                kind="city",
                name=f"城市{index}",
                level="prefecture",
                batch=f"b{index}",
            )
    env = {
        **os.environ,
        "PEAKPILOT_SWEEP_SECONDS": "0.3",
        "PEAKPILOT_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    env.pop("PEAKPILOT_NOW", None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "peakpilot", "--db", postgres_url, "daemon", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    database = sa.make_url(postgres_url).database
    terminated = 0
    stop_at = time.monotonic() + 3 + batches * 0.5 + 1
    while time.monotonic() < stop_at:
        with postgres_admin.connect() as connection:
            terminated += len(
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
        time.sleep(0.25)
    try:
        with Engine(postgres_url) as engine:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and engine.timers() != []:
                time.sleep(0.2)
            pending = [t for t in engine.timers() if t.kind == "deadline"]
            lapses = {
                n.id: [h.event for h in engine.history(n.id)].count("lapse") for n in engine.list()
            }
            assert engine.verify_audit().ok
        assert daemon.poll() is None, "the daemon exited when its connections were killed"
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "error"]
    assert pending == []
    assert list(lapses.values()) == [1] * batches  # each deadline's work done exactly once
    record(
        "pg-terminate-backend",
        {
            "batches": batches,
            "connections_terminated": terminated,
            "errors_logged": len(errors),
            "daemon_exited": False,
            "lost": 0,
            "deadlines_done_twice": sum(1 for n in lapses.values() if n > 1),
        },
    )


def test_a_held_sqlite_write_lock_makes_writers_wait_not_fail(sqlite_url: str) -> None:
    with Engine(sqlite_url) as engine:
        engine.init()
    path = sqlite_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    release = threading.Timer(2.0, lambda: blocker.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "peakpilot",
            "--db",
            sqlite_url,
            "--now",
            BEFORE_DEADLINE.isoformat(),
            "nominate",
            "--province",
            "hebei",
            "--kind",
            "city",
            "--name",
            "唐山市",
            "--level",
            "prefecture",
            "--as",
            "drc:hebei",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    waited = time.monotonic() - started
    release.join()
    blocker.close()
    assert result.returncode == 0, result.stderr
    assert "locked" not in result.stderr
    assert waited >= 1.5  # it waited for the lock instead of failing
    record("sqlite-lock-wait", {"held_s": 2.0, "waited_s": round(waited, 2), "failed": 0})


def test_a_lock_held_past_the_busy_timeout_is_one_clear_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peakpilot import Unavailable
    from peakpilot.workflow.store import database

    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 300)
    with Engine(sqlite_url) as engine:
        engine.init()
        blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(Unavailable, match="stayed locked by another writer"):
                engine.nominate(
                    "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
                )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert engine.list() == []


@pytest.mark.postgres
def test_a_fire_after_its_connection_was_terminated_reconnects_and_succeeds(
    postgres_url: str, postgres_admin: sa.Engine
) -> None:
    """The engine keeps one connection per thread for its transitions: a server that cut
    it while idle costs the next call a reconnect, not an error (nothing was written)."""
    with Engine(postgres_url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
        nomination = engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="石家庄", level="prefecture"
        )
        engine.fire(nomination.id, "submit_for_approval", "drc:hebei")
        database = sa.make_url(postgres_url).database
        with postgres_admin.connect() as connection:
            killed = connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).all()
        assert killed, "the engine's connection should have been there to terminate"
        after = engine.fire(nomination.id, "approve", "gov:hebei")
        assert (after.state, after.version) == ("approved", 3)
        assert [h.event for h in engine.history(nomination.id)] == [
            "nominate",
            "submit_for_approval",
            "approve",
        ]
        assert engine.verify_audit().ok


@pytest.mark.postgres
def test_every_pooled_connection_cut_by_a_restart_costs_retries_not_an_error(
    postgres_url: str, postgres_admin: sa.Engine
) -> None:
    """No ping at checkout: a server restart cuts every idle connection of the pool, and
    each transaction that meets one runs again on another, before anything is written."""
    threads = 4
    warming = threading.Barrier(threads, timeout=30)
    warm = threading.Event()

    def hold_until_all_connected(_text: str, _rows: int) -> None:
        if not warm.is_set():
            warming.wait()  # every thread holds its own connection at the same time

    hooks = StoreHooks(statement=hold_until_all_connected)
    with Engine(postgres_url, clock=FrozenClock(BEFORE_DEADLINE), hooks=hooks) as engine:
        warm.set()
        engine.init()
        nomination = engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="石家庄", level="prefecture"
        )
        warm.clear()
        readers = [threading.Thread(target=engine.list) for _ in range(threads)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        warm.set()
        database = sa.make_url(postgres_url).database
        with postgres_admin.connect() as connection:
            killed = connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).all()
        assert len(killed) >= threads, "the pool should have held a connection per thread"
        after = engine.fire(nomination.id, "submit_for_approval", "drc:hebei")
        assert (after.state, after.version) == ("provincial_approval", 2)
        assert [n.id for n in engine.list()] == [nomination.id]
        assert engine.verify_audit().ok
