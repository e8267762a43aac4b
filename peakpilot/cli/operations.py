"""The operator's commands: ``init``, ``diagram``, ``audit verify``, ``tick``,
``daemon`` and ``demo`` (the 2023 replay of :mod:`peakpilot.demo`)."""

from __future__ import annotations

import click

from peakpilot.cli.app import (
    as_option,
    current_options,
    current_settings,
    json_option,
    open_engine,
    shown_url,
)
from peakpilot.cli.batches import board
from peakpilot.cli.output import emit, rich_console, when
from peakpilot.errors import NotFound


@click.command()
@click.option(
    "--program",
    "program_file",
    type=click.Path(dir_okay=False),
    help="A programme file: the first, or a new version of the one in force "
    "(default: keep the stored programme; a new database gets the shipped one).",
)
@click.option(
    "--migrate",
    "migrate_file",
    type=click.Path(dir_okay=False),
    help="YAML `states: {old: new}`: where the nominations of states the new version "
    "removes (or that you move) go.",
)
@click.option("--dry-run", is_flag=True, help="Print what loading the programme would change.")
@as_option("Who loads the programme: ndrc (default: system).", required=False)
@json_option
def init(
    program_file: str | None, migrate_file: str | None, dry_run: bool, actor: str | None
) -> None:
    """Create or upgrade the schema and load the programme (safe to repeat)."""
    from peakpilot.cli.programs import change_report
    from peakpilot.vocabulary import SYSTEM

    if (migrate_file or dry_run) and program_file is None:
        raise click.UsageError("--migrate and --dry-run go with --program FILE")
    engine = open_engine()
    result = engine.init(program_file, migrate=migrate_file, dry_run=dry_run, actor=actor or SYSTEM)
    result["database"] = shown_url(engine)
    change = result["change"]
    for warning in result.get("warnings", ()):
        click.echo(f"peakpilot: warning: {warning}", err=True)

    def human() -> None:
        if change.outcome in ("applied", "dry_run") and change.from_version is not None:
            click.echo(change_report(change))
            if change.outcome == "dry_run":
                return
        verb = (
            "dry run: would initialise"
            if dry_run
            else ("initialised" if result["changed"] else "up to date")
        )
        click.echo(
            f"{verb}: {result['database']} (programme {result['program']} version "
            f"{result['version']}, batch {result['batch']})"
        )

    emit(result, human)


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@json_option
def diagram(fmt: str) -> None:
    """The state machine as Mermaid or DOT text."""
    try:
        program = open_engine().program
    except NotFound:  # a database that holds no programme (or no database file) yet
        from peakpilot.config.program import load_program

        program = load_program()  # draw the shipped programme
    from peakpilot.states.diagram import render

    text = render(program, fmt)
    emit({"format": fmt, "text": text}, lambda: click.echo(text))


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@json_option
def verify() -> None:
    """Check every nomination's hash chain; exit 7 naming the first broken record."""
    report = open_engine().verify_audit()

    def human() -> None:
        if report.ok:
            click.echo(f"audit trail intact: {report.records} records verified")
        else:
            broken = report.first_broken
            assert broken is not None
            click.echo(
                f"audit trail BROKEN at nomination {broken.nomination} record "
                f"{broken.seq}: {broken.problem}"
            )

    emit(report, human)
    if not report.ok:
        raise click.exceptions.Exit(7)


@click.command()
@json_option
def status() -> None:
    """Health for operators and monitors: daemons, backlogs, problems (exit 8 when unhealthy)."""
    report = open_engine().status(sweep_seconds=current_settings().sweep_seconds)

    def human() -> None:
        verdict = "healthy" if report.healthy else "UNHEALTHY"
        click.echo(
            f"{verdict} (schema {report.schema}, programme version {report.program_version})"
        )
        for daemon in report.daemons:
            click.echo(
                f"daemon {daemon.host}:{daemon.pid}: started {when(daemon.started_at)}, "
                f"last seen {when(daemon.last_seen)}"
            )
        if not report.daemons:
            click.echo("daemons: none registered")
        t, n = report.timers, report.notices
        click.echo(f"timers: {t.pending} pending, {t.overdue} overdue")
        click.echo(f"notices: {n.pending} pending, {n.failed} failed, {n.dead} dead")
        for problem in report.problems:
            click.echo(f"problem: {problem}")

    emit(report, human)
    if not report.healthy:
        raise click.exceptions.Exit(8)


@click.command()
@json_option
def demo() -> None:
    """Replay the 2023 first batch on a simulated clock into --db (new or empty)."""
    from peakpilot.clock import FrozenClock
    from peakpilot.demo import DEMO_CONTACTS, START, run_demo
    from peakpilot.notifications.channels import channel_from_settings

    clock = FrozenClock(START)  # the replay's own time: --now does not apply
    engine = open_engine(clock=clock, contacts=DEMO_CONTACTS)
    console = rich_console(markup=True)  # the narration's own styling; its texts are the demo's
    quiet = current_options().json
    channel = channel_from_settings(current_settings())
    summary = {
        "database": shown_url(engine),
        **run_demo(engine, clock, channel, narrate=None if quiet else console.print),
    }
    if quiet:
        emit(summary, lambda: None)
    else:
        console.print(
            f"\n[bold]The boards at the end of the replay[/] ({summary['elapsed_s']:.1f} s)"
        )
        for batch_id in summary["batches"]:
            click.get_current_context().invoke(board, batch=batch_id)


@click.command()
@json_option
def tick() -> None:
    """Do all timer work due at --now (or the clock), then exit."""
    report = open_engine().tick()

    def human() -> None:
        if not report.outcomes:
            click.echo(f"nothing due at {when(report.now)}")
        for o in report.outcomes:
            where = " ".join(
                f"{key}={value}"
                for key, value in (
                    ("batch", o.batch),
                    ("province", o.province),
                    ("nomination", o.nomination),
                )
                if value
            )
            click.echo(f"{o.kind}: {o.action} ({where}; {o.notices} notices, {o.lapsed} lapsed)")

    emit(report, human)


@click.command()
@click.option(
    "--log-format",
    type=click.Choice(["plain", "json"]),
    default=None,
    help="Log lines as `plain` text (the default) or one JSON object each (as --json).",
)
@click.option(
    "--http",
    metavar="[HOST:]PORT",
    help="Serve /healthz and /metrics here (loopback unless a HOST is given).",
)
@json_option
def daemon(log_format: str | None, http: str | None) -> None:
    """Run the scheduler and the notice dispatcher until SIGINT or SIGTERM.

    With --json (before or after the command) it logs one JSON object per line: a daemon
    prints no document, its log is its output."""
    if log_format is None:
        log_format = "json" if current_options().json else "plain"
    elif current_options().json and log_format != "json":
        raise click.UsageError("--json logs JSON lines: it does not go with --log-format plain")
    from peakpilot.notifications.channels import channel_from_settings
    from peakpilot.workflow.daemon import Daemon
    from peakpilot.workflow.daemon_log import configure_logging
    from peakpilot.workflow.monitoring import serve

    settings = current_settings()
    if settings.now is not None:
        raise click.UsageError("the daemon runs on the system clock: drop --now / PEAKPILOT_NOW")
    engine = open_engine()
    listen = http or settings.http
    with serve(engine, listen, settings.sweep_seconds) as metrics:
        configure_logging(log_format)
        Daemon(
            engine,
            channel_from_settings(settings),
            sweep_seconds=settings.sweep_seconds,
            max_attempts=settings.notify_max_attempts,
            metrics=metrics,
        ).run()


COMMANDS = (init, diagram, audit, tick, daemon, demo, status)
