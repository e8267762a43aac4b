"""The quota holds when many processes submit at once (SQLite and PostgreSQL).

Each worker is a separate process that imports everything first and then waits for a
common start instant, so that the submissions really race: exactly `quota` must succeed,
the rest be refused (exit 5, quota full), never a conflict (exit 6) or a crash.
"""

from __future__ import annotations

import subprocess
import sys
import time

from peakpilot import Engine

WORKERS = 12
WORKER = """
import sys, time
import peakpilot.cli, peakpilot.workflow.engine  # imported before the start line
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
peakpilot.cli.main(sys.argv[2:])
"""


def test_twelve_processes_submitting_at_once_fill_the_quota_exactly(
    engine: Engine, db_url: str
) -> None:
    ids = []
    for index in range(WORKERS):
        created = engine.nominate(
            "drc:hebei",
            province="hebei",
            kind="city",
            name=f"候选城市{index:02d}",
            level="prefecture",
        )
        engine.fire(created.id, "submit_for_approval", "drc:hebei")
        ids.append(engine.fire(created.id, "approve", "gov:hebei").id)
    start = time.time() + 3.0
    now = engine.clock.now().isoformat()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(start),
                "--db",
                db_url,
                "--now",
                now,
                "fire",
                nomination_id,
                "submit",
                "--as",
                "drc:hebei",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for nomination_id in ids
    ]
    outcomes = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        outcomes.append((worker.returncode, stdout, stderr))

    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0] * 3 + [5] * 9, outcomes
    for code, _stdout, stderr in outcomes:
        if code == 5:
            assert "Hebei has used 3 of 3 places in batch 2023-first" in stderr
            assert len(stderr.strip().splitlines()) == 1
    hebei = next(p for p in engine.board().provinces if p.province == "hebei")
    assert (hebei.used, hebei.states["submitted"], hebei.states["approved"]) == (3, 3, 9)
    assert engine.verify_audit().ok
