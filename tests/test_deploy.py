"""The systemd unit (deploy/peakpilot.service): systemd itself checks it where it is
installed, and its command line is the one the daemon tests run (tests/acceptance/
test_daemon.py runs ExecStart's arguments and scrapes the daemon)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[1] / "deploy" / "peakpilot.service"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # the unit names the installed binary; systemd checks that it is executable
    installed = Path(sys.executable).with_name("peakpilot")
    unit = tmp_path / "peakpilot.service"
    unit.write_text(UNIT.read_text().replace("/opt/peakpilot/.venv/bin/peakpilot", str(installed)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_unit_restarts_on_failure_stops_by_sigterm_and_logs_to_the_journal() -> None:
    lines = set(UNIT.read_text().splitlines())
    assert {"Restart=on-failure", "KillSignal=SIGTERM", "StandardOutput=journal"} <= lines
    [start] = [line for line in lines if line.startswith("ExecStart=")]
    assert " daemon --log-format json --http 127.0.0.1:" in start  # loopback metrics
