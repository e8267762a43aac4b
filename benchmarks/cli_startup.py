"""Whole-process wall time of the command line (figures 7 and 8): what a clerk waits for.

Both run the venv's interpreter as ``python -m peakpilot`` (the console script does the
same import plus a wrapper), against the floor of any peakpilot command that touches a
database: ``python -c "import sqlalchemy"``. ``board`` reads a database of N nominations
seeded straight into the schema; ``--help`` touches nothing. The three commands run in
interleaved repetitions (the baseline's samples serve both figures), each once untimed
first so that every ``.pyc`` exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks import seed
from benchmarks.context import Context
from benchmarks.databases import checkpoint, sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import interleaved
from benchmarks.workload import BATCH, BEFORE_DEADLINE
from peakpilot import Engine, FrozenClock

BASELINE = [sys.executable, "-c", "import sqlalchemy"]


def clean_environment() -> dict[str, str]:
    """The caller's environment without any PEAKPILOT_* setting that would change what
    the command does."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}


def wall_time(command: Sequence[str], check: Callable[[str], None] | None = None) -> float:
    env = clean_environment()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.strip()}")
    if check is not None:
        check(done.stdout)
    return elapsed


def run_cli(ctx: Context) -> list[Figure]:
    folder = ctx.folder("cli")
    path = folder / "board.db"
    rows = ctx.sizes.board_rows
    with Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
    seed.sqlite_nominations(path, rows)
    checkpoint(path)
    board = [sys.executable, "-m", "peakpilot", "--db", sqlite_url(path), "--json", "board"]
    help_ = [sys.executable, "-m", "peakpilot", "--help"]

    def board_holds_every_nomination(stdout: str) -> None:
        document = json.loads(stdout)
        counted = sum(sum(p["states"].values()) for p in document["provinces"])
        if document["batch"] != BATCH or counted != rows:
            raise AssertionError(f"board shows {counted} nominations of {document['batch']}")

    commands: dict[str, tuple[list[str], Callable[[str], None] | None]] = {}
    if ctx.wants("cli_board"):
        commands["board"] = (board, board_holds_every_nomination)
    if ctx.wants("cli_help"):
        commands["help"] = (help_, None)
    commands["import sqlalchemy"] = (BASELINE, None)
    for command, check in commands.values():  # untimed: byte-code caches, page cache
        wall_time(command, check)

    def contender(label: str) -> Callable[[], float]:
        command, check = commands[label]
        return lambda: wall_time(command, check)

    samples = interleaved({label: contender(label) for label in commands}, ctx.reps, ctx.log, " s")
    baseline = samples["import sqlalchemy"]
    figures = []
    for name, label, command in (("cli_board", "board", board), ("cli_help", "help", help_)):
        if label in samples:
            figure = Figure(SPECS[name], measured=samples[label], baseline=baseline)
            figure.details = {
                "command": " ".join(["python", *command[1:]]),
                "baseline_command": 'python -c "import sqlalchemy"',
                "interpreter": sys.executable,
            }
            if label == "board":
                figure.details["nominations"] = rows
            figures.append(figure)
    return figures
