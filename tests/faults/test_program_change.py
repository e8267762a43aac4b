"""A programme change under faults (issue 12, points 5 and 8), on an SQLite file and on
PostgreSQL:

- ``peakpilot init --program NEW --migrate MAP`` migrating 50,000 nominations, SIGKILLed
  while it moves them: the old version stays whole (no version 2, no ``migrate`` record,
  every nomination where it was, the audit trail verifying), and the same command run
  again completes the migration;
- a second process that loaded the old version before the change and fires afterwards:
  it decides by the new version, or is refused by it, and never writes a state the new
  version does not have.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from benchmarks import seed
from benchmarks.databases import conninfo
from peakpilot import Engine, FrozenClock
from peakpilot.config.program import load_program
from tests.conftest import BEFORE_DEADLINE

MIGRATING = 50_000
RENAMED = load_program().source.replace("drafted", "in_preparation")
MIGRATE = "states:\n  drafted: in_preparation\n"


def seeded(url: str, tmp_path: Path) -> None:
    with Engine(url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
    if url.startswith("sqlite"):
        seed.sqlite_nominations(Path(url.removeprefix("sqlite:///")), MIGRATING)
    else:
        seed.postgres_nominations(conninfo(url), MIGRATING)


def counts(url: str) -> dict[str, object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:

            def one(sql: str) -> object:
                return connection.execute(sa.text(sql)).scalar()

            return {
                "version": one("SELECT version FROM programs"),
                "versions": one("SELECT count(*) FROM program_versions"),
                "migrate_records": one(
                    "SELECT count(*) FROM audit_records WHERE event = 'migrate'"
                ),
                "drafted": one("SELECT count(*) FROM nominations WHERE state = 'drafted'"),
                "moved": one("SELECT count(*) FROM nominations WHERE state = 'in_preparation'"),
                "on_version_2": one("SELECT count(*) FROM nominations WHERE program_version = 2"),
            }
    finally:
        engine.dispose()


def migrating(url: str) -> bool:
    """Whether another connection is writing the migration's audit records now (SQLite:
    it holds the write lock and its pages spill into the WAL; PostgreSQL: it holds a
    write lock on the audit records)."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        spilled = wal.exists() and wal.stat().st_size > 1_000_000
        return spilled and sqlite_write_locked(path)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = 'audit_records' AND l.mode = 'RowExclusiveLock' "
                        "AND l.pid <> pg_backend_pid()"
                    )
                ).scalar()
            )
    finally:
        engine.dispose()


def sqlite_write_locked(path: Path) -> bool:
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    finally:
        connection.close()


def init_command(url: str, tmp_path: Path) -> list[str]:
    program, mapping = tmp_path / "renamed.yaml", tmp_path / "migrate.yaml"
    program.write_text(RENAMED, encoding="utf-8")
    mapping.write_text(MIGRATE, encoding="utf-8")
    return [
        sys.executable,
        "-m",
        "peakpilot",
        "--db",
        url,
        "--now",
        BEFORE_DEADLINE.isoformat(),
        "init",
        "--program",
        str(program),
        "--migrate",
        str(mapping),
    ]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_migration_killed_midway_leaves_the_old_version_whole(
    db_url: str, tmp_path: Path
) -> None:
    seeded(db_url, tmp_path)
    before = counts(db_url)
    assert before == {
        "version": 1,
        "versions": 1,
        "migrate_records": 0,
        "drafted": MIGRATING,
        "moved": 0,
        "on_version_2": 0,
    }
    command = init_command(db_url, tmp_path)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    limit = time.monotonic() + 120
    while not migrating(db_url):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < limit, "the migration never started"
        time.sleep(0.005)
    time.sleep(random.uniform(0.0, 0.3))  # a migration of 50,000 takes about a second
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the migration finished before the kill"
    assert counts(db_url) == before
    with Engine(db_url) as engine:
        assert engine.program_version == 1
        assert engine.verify_audit().ok
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "drafted -> in_preparation: 50000" in done.stdout
    assert counts(db_url) == {
        "version": 2,
        "versions": 2,
        "migrate_records": MIGRATING,
        "drafted": 0,
        "moved": MIGRATING,
        "on_version_2": MIGRATING,
    }
    with Engine(db_url) as engine:
        report = engine.verify_audit()
        assert report.ok and report.records == 2 * MIGRATING


STALE = """
import json, sys
from datetime import datetime
from peakpilot import Engine, FrozenClock, PeakpilotError
engine = Engine(sys.argv[1], clock=FrozenClock(datetime.fromisoformat(sys.argv[2])))
engine.program  # the version in force now
print(json.dumps({"version": engine.program_version}), flush=True)
for line in sys.stdin:
    nomination, event, actor = line.split()
    try:
        after = engine.fire(nomination, event, actor)
        print(json.dumps({"state": after.state, "version": after.program_version}), flush=True)
    except PeakpilotError as error:
        print(json.dumps({"refused": str(error), "code": error.exit_code}), flush=True)
"""


def without_approved(text: str) -> str:
    """The government's approval submits at once; and a nomination can no longer be
    withdrawn before it is reported."""
    import yaml

    document = yaml.safe_load(text)
    del document["states"]["approved"]
    kept = []
    for row in document["transitions"]:
        row["from"] = [s for s in row["from"] if s != "approved"]
        if row.get("to") == "approved":
            row["to"] = "submitted"
        if row["event"] == "withdraw":
            row["from"] = [s for s in row["from"] if s != "provincial_approval"]
        if row["from"]:
            kept.append(row)
    document["transitions"] = kept
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


@pytest.mark.postgres
def test_a_process_holding_the_old_version_decides_by_the_new_one(postgres_url: str) -> None:
    with Engine(postgres_url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
        ids = []
        for name in ("唐山市", "保定市"):
            n = engine.nominate(
                "drc:hebei", province="hebei", kind="city", name=name, level="prefecture"
            )
            engine.fire(n.id, "submit_for_approval", "drc:hebei")
            ids.append(n.id)
        stale = subprocess.Popen(
            [sys.executable, "-c", STALE, postgres_url, BEFORE_DEADLINE.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert stale.stdout is not None and stale.stdin is not None

            def ask(line: str) -> dict[str, object]:
                assert stale.stdin is not None and stale.stdout is not None
                stale.stdin.write(line + "\n")
                stale.stdin.flush()
                return dict(json.loads(stale.stdout.readline()))

            assert json.loads(stale.stdout.readline()) == {"version": 1}
            engine.change_program(without_approved(load_program().source))
            # v1 would leave it in `approved`, a state v2 does not have
            assert ask(f"{ids[0]} approve gov:hebei") == {"state": "submitted", "version": 2}
            refused = ask(f"{ids[1]} withdraw drc:hebei")
            assert refused["code"] == 5
            assert "withdraw" in str(refused["refused"])
        finally:
            stale.communicate(timeout=30)  # closes its stdin, reads the rest, reaps it
        states = {n.state for n in engine.list()}
        assert states == {"submitted", "provincial_approval"}
        assert engine.get(ids[1]).program_version == 1  # refused: not moved
