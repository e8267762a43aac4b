"""What ships: the wheel carries the programme, the migrations and the type marker, and
the code passes its own style and type checks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_data_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = tmp_path.glob("peakpilot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "peakpilot/config/programs/carbon_peak_2023.yaml",
        "peakpilot/config/programs/carbon_peak_2023_expert_review.yaml",
        "peakpilot/demo_contacts.yaml",
        "peakpilot/workflow/migrations/env.py",
        "peakpilot/workflow/migrations/script.py.mako",
        "peakpilot/workflow/migrations/versions/0001_initial_schema.py",
        "peakpilot/py.typed",
    ):
        assert expected in names
    assert not any(name.startswith("tests/") for name in names)


def test_ruff_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "peakpilot", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
