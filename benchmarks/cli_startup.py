"""Whole-process wall time of the command line: what a clerk waits for.

Each figure runs the venv's interpreter as ``python -m peakpilot`` (the console script
does the same import plus a wrapper) against the floor of any peakpilot command that
touches a database: ``python -c "import sqlalchemy"``. The read commands (``list``,
``show``, ``history``, ``deadlines``, ``notices``, ``board``, ``audit verify``, all with
``--json``) read one database of N nominations seeded straight into the schema, one of
which has been taken once round the workload's cycle through the Engine, so that its
history, its pending notices and ``show`` have something to print. ``fire`` sends that
nomination for approval again, each run on a fresh copy of the database (copied before
the clock starts), so that every run does the same transition; ``--now`` is inside the
batch's open period. ``--help`` touches nothing.

The commands run in interleaved repetitions (the baseline's samples serve every figure),
each once untimed first so that every ``.pyc`` exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import seed
from benchmarks.context import Context
from benchmarks.databases import checkpoint, copy_sqlite, sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import interleaved
from benchmarks.workload import BATCH, BEFORE_DEADLINE, Cycler, Nominated, engine_fire
from peakpilot import Engine, FrozenClock

BASELINE = [sys.executable, "-c", "import sqlalchemy"]
BASELINE_LABEL = "import sqlalchemy"
PEAKPILOT = [sys.executable, "-m", "peakpilot"]
NOW = BEFORE_DEADLINE.isoformat()
# Every figure of this runner, in the order they are reported.
FIGURES = (
    "cli_list",
    "cli_show",
    "cli_history",
    "cli_deadlines",
    "cli_notices",
    "cli_board",
    "cli_audit_verify",
    "cli_fire",
    "cli_help",
)

Check = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Command:
    """One contender: its argv, a check of its stdout, and untimed work before each run."""

    figure: str
    argv: list[str]
    check: Check | None = None
    prepare: Callable[[], None] | None = None
    details: dict[str, Any] | None = None

    def run(self) -> float:
        if self.prepare is not None:
            self.prepare()
        return wall_time(self.argv, self.check)


@dataclass(frozen=True, slots=True)
class Seeded:
    """The database the read commands share, and what it holds."""

    path: Path
    nominations: int
    cycled: Nominated  # the one nomination taken round the cycle
    history: int  # its audit records
    notices: int  # notices in the outbox
    records: int  # audit records in all


# Settings of the caller's environment a measured command must not inherit: any
# PEAKPILOT_* (it would change what the command does), and PYTHONDONTWRITEBYTECODE, which
# would have every command compile peakpilot from source while sqlalchemy (the baseline)
# loads the .pyc files written when it was installed; an installed peakpilot has its
# .pyc files too (pip writes them), and the untimed first run exists to write them.
_NOT_INHERITED = ("PYTHONDONTWRITEBYTECODE",)


def clean_environment() -> dict[str, str]:
    """The caller's environment without the settings that would change what is measured
    (see ``_NOT_INHERITED``)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PEAKPILOT_") and k not in _NOT_INHERITED
    }


def wall_time(command: Sequence[str], check: Check | None = None) -> float:
    env = clean_environment()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.strip()}")
    if check is not None:
        check(done.stdout)
    return elapsed


def seed_database(path: Path, rows: int) -> Seeded:
    """``rows`` drafted nominations of the first batch; the first of them taken once round
    the cycle (four events, four notices) and left drafted."""
    with Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
    made = seed.sqlite_nominations(path, rows, keep=True)
    cycled = made[0]
    with Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        Cycler([cycled]).cycles(engine_fire(engine), 1)
        history = len(engine.history(cycled.id))
        notices = len(engine.notices())
        records = engine.verify_audit().records
    checkpoint(path)
    return Seeded(path, rows, cycled, history, notices, records)


def _expect(what: str, found: object, wanted: object) -> None:
    if found != wanted:
        raise AssertionError(f"{what}: {found!r}, expected {wanted!r}")


def commands(db: Seeded, scratch: Path) -> list[Command]:
    """Every contender of this runner but the baseline."""
    url = sqlite_url(db.path)
    cycled = db.cycled.id

    def reading(*argv: str, now: bool = False) -> list[str]:
        return [*PEAKPILOT, "--db", url, *(["--now", NOW] if now else []), "--json", *argv]

    def listed(stdout: str) -> None:
        _expect("nominations listed", len(json.loads(stdout)), db.nominations)

    def shown(stdout: str) -> None:
        document = json.loads(stdout)
        _expect(
            "nomination shown", (document["id"], len(document["history"])), (cycled, db.history)
        )

    def history(stdout: str) -> None:
        _expect("history records", len(json.loads(stdout)), db.history)

    def deadlines(stdout: str) -> None:
        timers = json.loads(stdout)
        if not timers or {t["batch"] for t in timers} != {BATCH}:
            raise AssertionError(f"deadlines of another batch, or none: {timers!r}")

    def notices(stdout: str) -> None:
        _expect("notices listed", len(json.loads(stdout)), db.notices)

    def board(stdout: str) -> None:
        document = json.loads(stdout)
        counted = sum(sum(p["states"].values()) for p in document["provinces"])
        _expect("board", (document["batch"], counted), (BATCH, db.nominations))

    def verified(stdout: str) -> None:
        document = json.loads(stdout)
        _expect("audit verify", (document["ok"], document["records"]), (True, db.records))

    def fired(stdout: str) -> None:
        _expect("state after fire", json.loads(stdout)["state"], "provincial_approval")

    copy = scratch / "fire.db"
    fire = [*PEAKPILOT, "--db", sqlite_url(copy), "--now", NOW, "--json", "fire", cycled]
    fire += ["submit_for_approval", "--as", f"drc:{db.cycled.province}"]

    def fresh_copy() -> None:
        copy_sqlite(db.path, copy)

    return [
        Command("cli_list", reading("list"), listed),
        Command("cli_show", reading("show", cycled, now=True), shown),
        Command("cli_history", reading("history", cycled), history),
        Command("cli_deadlines", reading("deadlines"), deadlines),
        Command("cli_notices", reading("notices"), notices),
        Command("cli_board", reading("board"), board),
        Command("cli_audit_verify", reading("audit", "verify"), verified),
        Command(
            "cli_fire",
            fire,
            fired,
            prepare=fresh_copy,
            details={"database": "a fresh copy of the seeded database each run (untimed)"},
        ),
    ]


def run_cli(ctx: Context) -> list[Figure]:
    wanted = [name for name in FIGURES if ctx.wants(name)]
    contenders: dict[str, Command] = {}
    seeded: Seeded | None = None
    if any(name != "cli_help" for name in wanted):
        folder = ctx.folder("cli")
        seeded = seed_database(folder / "cli.db", ctx.sizes.board_rows)
        contenders.update((c.figure, c) for c in commands(seeded, folder) if c.figure in wanted)
    if "cli_help" in wanted:
        contenders["cli_help"] = Command("cli_help", [*PEAKPILOT, "--help"])
    contenders[BASELINE_LABEL] = Command(BASELINE_LABEL, BASELINE)
    for command in contenders.values():  # untimed: byte-code caches, page cache
        command.run()

    samples = interleaved(
        {label: command.run for label, command in contenders.items()}, ctx.reps, ctx.log, " s"
    )
    baseline = samples[BASELINE_LABEL]
    figures = []
    for name in wanted:
        command = contenders[name]
        figure = Figure(SPECS[name], measured=samples[name], baseline=baseline)
        figure.details = {
            "command": " ".join(["python", *command.argv[1:]]),
            "baseline_command": 'python -c "import sqlalchemy"',
            "interpreter": sys.executable,
            **(command.details or {}),
        }
        if seeded is not None and name != "cli_help":
            figure.details["nominations"] = seeded.nominations
        figures.append(figure)
    return figures
