"""``python -m benchmarks``: measure every figure of issue 6 against its baseline in one
run, print the table, write ``benchmarks/results.json``.

    python -m benchmarks                 # the full run (under 5 minutes on 2 cores)
    python -m benchmarks --tiny          # every figure at tiny sizes, for CI
    python -m benchmarks --only fire_sqlite_vs_raw --only cli_help --reps 7
    python -m benchmarks --no-postgres   # PostgreSQL figures marked "not run"

A figure that fails is reported as failed and the others still run; the exit status is
1 when any figure failed, 0 otherwise (goals that are not met are results, not errors).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks import report
from benchmarks.context import Context, Sizes
from benchmarks.databases import DEFAULT_ADMIN_URL, PostgresServer, postgres_reachable
from benchmarks.figures import SPECS, Figure, failed, not_run

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
MIN_REPS = 5
TINY_REPS = 1  # --tiny checks that every figure runs; its numbers mean nothing


@dataclass(frozen=True, slots=True)
class Runner:
    """One piece of work that yields one or more figures."""

    names: tuple[str, ...]
    run: Callable[[Context], list[Figure]]

    @property
    def postgres(self) -> bool:
        return any(SPECS[name].postgres for name in self.names)


def runners() -> tuple[Runner, ...]:
    """Every figure's runner, in the order they run. (Imported here, not at the top: the
    client processes of fire_pg_8 are spawned, and a spawned child imports this module
    again, which should cost it nothing.)"""
    from benchmarks import catchup, cli_startup, daemon, due, fire, lapse, migration, postgres

    return (
        Runner(("fire_sqlite_vs_raw", "fire_sqlite_vs_naive"), fire.run_fire_sqlite),
        Runner(("fire_pg_1",), postgres.run_fire_pg_1),
        Runner(("fire_pg_8",), postgres.run_fire_pg_8),
        Runner(("lapse_sqlite",), lapse.run_lapse_sqlite),
        Runner(("lapse_pg",), lapse.run_lapse_postgres),
        Runner(("migration_sqlite",), migration.run_migration_sqlite),
        Runner(("migration_pg",), migration.run_migration_postgres),
        Runner(("report_catchup_sqlite",), catchup.run_catchup_sqlite),
        Runner(("fire_at_1m",), fire.run_fire_at_scale),
        Runner(cli_startup.FIGURES, cli_startup.run_cli),
        Runner(("daemon_timers",), daemon.run_daemon_timers),
        Runner(("due_to_done", "due_to_done_live"), due.run_due_to_done),
    )


# (option, type, default, tiny default, help)
SIZES: tuple[tuple[str, type, float, float, str], ...] = (
    ("fire-seconds", float, 1.0, 0.2, "timed window of a fire contender, per repetition"),
    ("pg-clients", int, 8, 2, "client processes of fire_pg_8"),
    ("lapse-rows", int, 100_000, 300, "nominations lapsed by the tick"),
    ("migration-rows", int, 100_000, 300, "nominations moved by the programme change"),
    ("scale-rows", int, 1_000_000, 20_000, "nominations stored for fire_at_1m"),
    ("scale-base", int, 1_000, 1_000, "nominations stored for fire_at_1m's baseline"),
    ("board-rows", int, 10_000, 300, "nominations in the database of the cli_* figures"),
    ("daemon-timers", int, 100_000, 1_000, "pending timers held by the daemon"),
    ("due-timers", int, 20, 4, "deadlines timed by due_to_done, per variant"),
    ("due-lead", float, 4.0, 2.0, "seconds from opening to the first deadline"),
    ("due-spread", float, 4.0, 0.5, "seconds from the first deadline to the last"),
    ("sweep-seconds", float, 0.0, 1.0, "PEAKPILOT_SWEEP_SECONDS for due_to_done (0: default)"),
    ("catchup-pilots", int, 10_000, 100, "pilots whose reports report_catchup_sqlite catches up"),
)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure peakpilot against raw baselines in one run (issue 6).",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="every figure at tiny sizes, for CI (a smoke run: its numbers mean nothing)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        help=f"repetitions per figure (default {MIN_REPS}; {TINY_REPS} with --tiny)",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        default=DEFAULT_ADMIN_URL,
        help=f"server to create scratch databases on (default {DEFAULT_ADMIN_URL})",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL figures ('not run')"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SPECS),
        metavar="NAME",
        help="run only this figure (repeatable): " + ", ".join(SPECS),
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the JSON results (default benchmarks/results.json)",
    )
    for option, kind, default, tiny, text in SIZES:
        parser.add_argument(
            f"--{option}", type=kind, help=f"{text} (default {default:g}, tiny {tiny:g})"
        )
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def sizes(args: argparse.Namespace) -> Sizes:
    """Each size as given, else its tiny or full default."""
    chosen: dict[str, Any] = {}
    for option, _, default, tiny, _ in SIZES:
        given = getattr(args, option.replace("-", "_"))
        chosen[option.replace("-", "_")] = (
            given if given is not None else (tiny if args.tiny else default)
        )
    sweep = chosen.pop("sweep_seconds")
    return Sizes(**chosen, sweep_seconds=sweep or None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    console = Console(stderr=True)
    wanted = frozenset(args.only or SPECS)
    reps = args.reps if args.reps is not None else (TINY_REPS if args.tiny else MIN_REPS)
    begun, date = time.monotonic(), datetime.now().astimezone()

    server, postgres_version, why_not = None, None, "--no-postgres"
    if not args.no_postgres and any(SPECS[name].postgres for name in wanted):
        why_not = postgres_reachable(args.postgres) or ""
        if not why_not:
            server = PostgresServer(args.postgres)
            postgres_version = server.version()
        else:
            console.print(f"[yellow]no PostgreSQL at {args.postgres}: {why_not}[/]")

    figures: dict[str, Figure] = {}
    with tempfile.TemporaryDirectory(prefix="peakpilot-bench-") as scratch:
        ctx = Context(
            sizes=sizes(args),
            reps=reps,
            tmp=Path(scratch),
            postgres=server,
            wanted=wanted,
            console=console,
            started=begun,
        )
        try:
            for runner in runners():
                names = [name for name in runner.names if name in wanted]
                if not names:
                    continue
                if runner.postgres and server is None:
                    figures.update((n, not_run(n, f"no PostgreSQL ({why_not})")) for n in names)
                    continue
                ctx.log(f"[bold]{' + '.join(names)}[/]")
                started = time.monotonic()
                try:
                    for figure in runner.run(ctx):
                        figure.details["runner_seconds"] = round(time.monotonic() - started, 1)
                        figures[figure.spec.name] = figure
                except Exception as error:  # report it, run the other figures
                    console.print(traceback.format_exc(), markup=False, highlight=False)
                    figures.update(
                        (n, failed(n, f"{type(error).__name__}: {error}")) for n in names
                    )
                ctx.log(f"done in {time.monotonic() - started:.1f} s")
        finally:
            if server is not None:
                server.close()

    ordered = [
        figures.get(name)
        or not_run(name, "not asked for (--only)" if name not in wanted else "no result")
        for name in SPECS
    ]
    duration = round(time.monotonic() - begun, 1)
    header = {
        "command": shlex.join(["python", "-m", "benchmarks", *argv]),
        "date": date.isoformat(timespec="seconds"),
        "duration_seconds": duration,
        "commit": report.git_commit(),
        "repetitions": reps,
        "tiny": args.tiny,
        "sizes": _sizes_dict(ctx.sizes),
        "machine": report.machine(postgres_version),
        "notes": NOTES,
    }
    report.write_json(args.output, header, ordered)
    report.show(Console() if sys.stdout.isatty() else Console(width=130), ordered)
    console.print(f"{duration:.1f} s; results in {args.output}")
    return 1 if any(f.status == "failed" for f in ordered) else 0


def _sizes_dict(chosen: Sizes) -> dict[str, object]:
    return {name: getattr(chosen, name) for name in chosen.__slots__}


NOTES = (
    "Each timed figure is the median of interleaved repetitions whose order rotates; "
    "min and max are those of the repetitions. Ratio = value / baseline, both from this "
    "run. The CLI figures run the venv's interpreter as `python -m peakpilot`."
)


if __name__ == "__main__":
    sys.exit(main())
