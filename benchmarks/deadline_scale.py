"""Deadline work at scale: lapsing N unsubmitted nominations, and the daemon's footprint
with N pending timers.

    .venv/bin/python benchmarks/deadline_scale.py --count 100000 [--postgres ADMIN_URL]

Setup writes the rows directly (valid hash chains included), since creating 100,000
nominations through the engine is not what is measured. The raw baseline is the same
change done by hand in the same run: one UPDATE ... WHERE batch_id = ? AND state IN (...)
plus a bulk INSERT of the audit rows, with no hashing, no notices and no engine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from peakpilot import Engine, FrozenClock
from peakpilot.workflow import audit
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.tables import AuditRecordRow, NominationRow, TimerRow

START = datetime(2023, 10, 20, 1, tzinfo=UTC)
DEADLINE = datetime(2023, 11, 14, 16, tzinfo=UTC)
PROVINCES = ("hebei", "shanxi", "jiangsu", "guangdong")


def seed(engine: Engine, count: int) -> None:
    """``count`` drafted nominations of batch 2023-first, each with its nominate record."""
    nominations, records = [], []
    for index in range(count):
        nomination_id = new_id()
        province = PROVINCES[index % len(PROVINCES)]
        head = audit.record_hash(
            nomination_id=nomination_id,
            seq=1,
            event="nominate",
            from_state=None,
            to_state="drafted",
            actor=f"drc:{province}",
            at=START,
            reason=None,
            batch_id="2023-first",
            prev_hash=audit.GENESIS,
        )
        nominations.append(
            {
                "id": nomination_id,
                "batch_id": "2023-first",
                "province": province,
                "kind": "city",
                "name": f"候选{index:06d}",
                "level": "prefecture",
                "state": "drafted",
                "version": 1,
                "audit_head": head,
                "created_at": START,
                "updated_at": START,
            }
        )
        records.append(
            {
                "nomination_id": nomination_id,
                "seq": 1,
                "event": "nominate",
                "from_state": None,
                "to_state": "drafted",
                "actor": f"drc:{province}",
                "at": START,
                "reason": None,
                "batch_id": "2023-first",
                "prev_hash": audit.GENESIS,
                "hash": head,
            }
        )
    nominations_table = NominationRow.__table__  # type: ignore[attr-defined]
    audit_table = AuditRecordRow.__table__  # type: ignore[attr-defined]
    with engine.database.engine.begin() as connection:
        for start in range(0, count, 10_000):
            connection.execute(nominations_table.insert(), nominations[start : start + 10_000])
            connection.execute(audit_table.insert(), records[start : start + 10_000])


def fresh(postgres: str | None, folder: Path, name: str) -> str:
    """A new empty database: an SQLite file, or a database created on the server."""
    if postgres is None:
        return f"sqlite:///{folder / name}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    database = f"peakpilot_bench_{new_id()}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
    admin.dispose()
    return sa.make_url(postgres).set(database=database).render_as_string(hide_password=False)


def lapse(url: str, count: int) -> dict[str, float]:
    clock = FrozenClock(START)
    with Engine(url, clock=clock) as engine:
        engine.init()
        seed(engine, count)
        started = time.perf_counter()
        report = engine.tick(DEADLINE)
        elapsed = time.perf_counter() - started
        deadline = next(o for o in report.outcomes if o.kind == "deadline")
        assert deadline.lapsed == count, deadline
        verified = engine.verify_audit()
        assert verified.ok and verified.records == 2 * count, verified
    return {"tick_s": round(elapsed, 3)}


def raw_lapse(url: str, count: int) -> float:
    """The same state change and audit rows by hand: the floor for the engine's tick."""
    clock = FrozenClock(START)
    with Engine(url, clock=clock) as engine:
        engine.init()
        seed(engine, count)
        sa_engine = engine.database.engine
        started = time.perf_counter()
        with sa_engine.begin() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    sa.text(
                        "SELECT id FROM nominations WHERE batch_id = '2023-first' "
                        "AND state IN ('drafted', 'provincial_approval', 'approved')"
                    )
                )
            ]
            connection.execute(
                sa.text(
                    "UPDATE nominations SET state = 'follow_up_batch', version = version + 1 "
                    "WHERE batch_id = '2023-first' "
                    "AND state IN ('drafted', 'provincial_approval', 'approved')"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO audit_records (nomination_id, seq, event, from_state, "
                    "to_state, actor, at, reason, batch_id, prev_hash, hash) VALUES "
                    "(:id, 2, 'lapse', 'drafted', 'follow_up_batch', 'system', :at, NULL, "
                    "'2023-first', '', '')"
                ),
                [{"id": i, "at": DEADLINE.isoformat()} for i in ids],
            )
        return round(time.perf_counter() - started, 3)


def daemon_footprint(url: str, count: int, folder: Path) -> dict[str, float]:
    """Start the daemon over ``count`` pending (future) milestone timers: its job count
    and resident memory after the first sweep."""
    clock = FrozenClock(START)
    with Engine(url, clock=clock) as engine:
        engine.init()
        engine.tick(DEADLINE)  # the 2023 deadline work, so only future timers remain
        timers = TimerRow.__table__  # type: ignore[attr-defined]
        with engine.database.engine.begin() as connection:
            due = datetime.now(UTC) + timedelta(days=365)
            rows = [
                {
                    "id": new_id(),
                    "unique_key": f"bench/{i}",
                    "kind": "reminder",
                    "due_at": due + timedelta(seconds=i),
                    "batch_id": "2023-first",
                    "province": None,
                    "nomination_id": None,
                    "payload": '{"days_before": 1}',
                    "status": "pending",
                    "done_at": None,
                    "created_at": START,
                }
                for i in range(count)
            ]
            for start in range(0, count, 10_000):
                connection.execute(timers.insert(), rows[start : start + 10_000])
    return run_daemon(url, folder)


def run_daemon(url: str, folder: Path) -> dict[str, float]:
    """``peakpilot daemon`` in its own process: job count and resident memory once it has
    caught up (the first sweep), then SIGTERM."""
    env = {
        **os.environ,
        "PEAKPILOT_OUTBOX_DIR": str(folder / "outbox"),
        "PEAKPILOT_SWEEP_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "peakpilot", "--db", url, "daemon", "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            event = json.loads(line)
            if event["message"] == "caught up":
                status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
                rss = next(entry for entry in status if entry.startswith("VmRSS"))
                return {"jobs": event["jobs"], "rss_mib": round(int(rss.split()[1]) / 1024, 1)}
        raise RuntimeError("the daemon stopped before it caught up")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="create fresh PostgreSQL databases through this URL (default: fresh SQLite files)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        engine_run = lapse(fresh(args.postgres, folder, "lapse.db"), args.count)
        baseline = raw_lapse(fresh(args.postgres, folder, "raw.db"), args.count)
        footprint = daemon_footprint(fresh(args.postgres, folder, "daemon.db"), args.count, folder)
    print(
        json.dumps(
            {
                "count": args.count,
                "database": "sqlite" if args.postgres is None else "postgresql",
                "lapse_tick_s": engine_run["tick_s"],
                "raw_lapse_s": baseline,
                "ratio_to_raw": round(engine_run["tick_s"] / baseline, 2) if baseline else None,
                "daemon_jobs": footprint.get("jobs"),
                "daemon_rss_mib": footprint.get("rss_mib"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
