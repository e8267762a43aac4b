"""The benchmark harness runs (issue 6): ``python -m benchmarks --tiny`` measures every
figure, PostgreSQL included, and writes them all to results.json with numbers.

No timing is asserted: tiny sizes on a shared CI machine say nothing about speed. This
only keeps ``make bench`` from rotting between full runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
# The figures, named here rather than read from the harness, so that a figure
# the harness silently stopped producing is caught; all but due_to_done* have a baseline.
FIGURES = (
    "fire_sqlite_vs_raw",
    "fire_sqlite_vs_naive",
    "fire_pg_1",
    "fire_pg_8",
    "lapse_sqlite",
    "lapse_pg",
    "migration_sqlite",
    "migration_pg",
    "report_catchup_sqlite",
    "fire_at_1m",
    "cli_list",
    "cli_show",
    "cli_history",
    "cli_deadlines",
    "cli_notices",
    "cli_board",
    "cli_audit_verify",
    "cli_fire",
    "cli_help",
    "daemon_timers",
    "due_to_done",
    "due_to_done_live",
)
WITHOUT_BASELINE = ("due_to_done", "due_to_done_live")


@pytest.mark.postgres
def test_the_tiny_run_measures_every_figure(postgres_admin: sa.Engine, tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    admin_url = postgres_admin.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--postgres",
            admin_url,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["tiny"] is True
    assert {"cores", "ram_gib", "python", "sqlite", "postgresql"} <= results["machine"].keys()
    assert results["machine"]["postgresql"]
    assert results["command"].startswith("python -m benchmarks --tiny")
    figures = results["figures"]
    assert set(figures) == set(FIGURES)
    for name, figure in figures.items():
        assert figure["status"] == "ok", (name, figure)
        assert isinstance(figure["value"], int | float), (name, figure)
        assert all(isinstance(v, int | float) for v in figure["samples"]), (name, figure)
        assert isinstance(figure["met"], bool), (name, figure)
        if name not in WITHOUT_BASELINE:
            assert isinstance(figure["baseline"]["value"], int | float), (name, figure)
            assert isinstance(figure["ratio"], int | float), (name, figure)


@pytest.mark.parametrize("options", [[], ["--short-notice"]], ids=["as is", "short notice"])
def test_the_breakdown_of_a_transition_runs(options: list[str]) -> None:
    """``python -m benchmarks.breakdown``, the profile docs/BENCHMARKS.md quotes."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.breakdown", "--fires", "40", "--json", *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    engine, raw = result["engine"], result["raw"]
    assert set(engine["parts_us"]) == {"begin_commit", "render", "compose", "rest"}
    assert set(raw["parts_us"]) == {"begin_commit", "rest"}
    assert engine["wal_pages_per_fire"] > 0 and raw["wal_pages_per_fire"] > 0
    assert result["fires_per_contender"] == 40


def test_the_breakdown_of_a_lapse_runs() -> None:
    """``python -m benchmarks.breakdown --lapse``: the lapse's profile in BENCHMARKS.md."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.breakdown", "--lapse", "--rows", "300", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    parts = result["engine"]["parts_seconds"]
    assert {"commits", "chunk_reads", "chunk_inserts", "chunk_updates", "closing_render"} <= set(
        parts
    )
    assert all(seconds > 0 for name, seconds in parts.items() if name != "rest"), parts
    assert set(result["raw"]["parts_seconds"]) == {"insert_select", "update", "commit"}
    assert result["rows"] == 300
