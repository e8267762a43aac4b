"""The walkthrough of docs/PROGRAMME.md ("Changing the programme safely"), as written: a
database with a nomination in every state (docs/examples/every_state.py), the second
version loaded with its migration file, and back, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.acceptance.test_cli import doc, fails, ok

ROOT = Path(__file__).parents[2]
FIRST = ROOT / "peakpilot/config/programs/carbon_peak_2023.yaml"
SECOND = ROOT / "peakpilot/config/programs/carbon_peak_2023_expert_review.yaml"
FORWARD = ROOT / "docs/examples/migrate_to_expert_review.yaml"
BACK = ROOT / "docs/examples/migrate_back_to_2023.yaml"
NOW = "2023-10-21T09:00:00+08:00"


def test_the_walkthrough_runs_as_written(db_url: str) -> None:
    filled = subprocess.run(
        [sys.executable, str(ROOT / "docs/examples/every_state.py"), db_url],
        capture_output=True,
        text=True,
        check=True,
    )
    states = [line.split()[1] for line in filled.stdout.splitlines()]
    assert len(states) == 13 and "revoked" in states

    dry = ok("init", "--program", str(SECOND), "--dry-run", db=db_url, now=NOW).stdout
    assert "version 1 -> 2 (dry run: nothing written)" in dry
    assert "+ expert_review" in dry and "refused unless fixed" not in dry
    moved = ok(
        "init",
        "--program",
        str(SECOND),
        "--migrate",
        str(FORWARD),
        "--as",
        "ndrc",
        db=db_url,
        now=NOW,
    ).stdout
    assert "submitted -> expert_review: 1" in moved
    [reviewed] = doc("list", "--state", "expert_review", db=db_url, now=NOW)
    assert (reviewed["name"], reviewed["program_version"]) == ("大连市", 2)
    assert doc("audit", "verify", db=db_url, now=NOW)["ok"] is True

    back = fails(5, "init", "--program", str(FIRST), db=db_url, now=NOW)
    assert "state expert_review is removed but holds 1 nomination" in back.stderr
    ok("init", "--program", str(FIRST), "--migrate", str(BACK), db=db_url, now=NOW)
    assert doc("show", reviewed["id"], db=db_url, now=NOW)["state"] == "submitted"
    versions = doc("program", "versions", db=db_url, now=NOW)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[0]["sha256"] == versions[2]["sha256"]  # the first text, loaded again
