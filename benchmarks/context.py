"""What every figure's runner is given: the sizes, the repetitions, a scratch folder, the
PostgreSQL server (or None), which figures were asked for, and somewhere to log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from benchmarks.databases import PostgresServer


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each figure's workload is (command-line parameters; ``--tiny`` shrinks
    them all so that CI runs every figure in seconds)."""

    fire_seconds: float  # the timed window of each fire contender, each repetition
    pg_clients: int  # client processes of fire_pg_8
    lapse_rows: int  # nominations lapsed by one tick
    migration_rows: int  # nominations moved by one programme change
    scale_rows: int  # nominations stored for fire_at_1m
    scale_base: int  # ... and for its baseline
    board_rows: int  # nominations in the database of the cli_* figures
    daemon_timers: int  # pending timers held by the daemon of daemon_timers
    due_timers: int  # deadlines timed by due_to_done (each variant)
    due_lead: float  # seconds from opening to the first of them (opened before the daemon)
    due_spread: float  # seconds between the first and the last of them
    sweep_seconds: float | None  # PEAKPILOT_SWEEP_SECONDS for due_to_done; None: default
    catchup_pilots: int  # pilots whose yearly reports report_catchup_sqlite catches up


@dataclass
class Context:
    sizes: Sizes
    reps: int
    tmp: Path
    postgres: PostgresServer | None
    wanted: frozenset[str]
    console: Console
    started: float = 0.0

    def wants(self, *names: str) -> bool:
        return any(name in self.wanted for name in names)

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[dim]{elapsed:6.1f}s[/] {message}", highlight=False)

    def folder(self, name: str) -> Path:
        """A scratch folder of its own for one runner."""
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path
