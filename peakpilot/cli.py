"""The ``peakpilot`` command line: parse, call the Engine, print. No business rules here.

Exit codes come from the exception classes (see :mod:`peakpilot.errors`); usage errors
are 2. With ``--json`` stdout holds one JSON document on success and nothing on failure.
Heavy modules (SQLAlchemy, Rich) are imported only by the commands that use them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from peakpilot.errors import PeakpilotError

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from peakpilot.clock import Clock
    from peakpilot.config.settings import Settings
    from peakpilot.workflow.engine import Engine
    from peakpilot.workflow.snapshots import Nomination

F = TypeVar("F", bound=Callable[..., Any])
USAGE_ERROR = 2


class Instant(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.5+
    """An ISO 8601 instant with an explicit offset (a naive time would be a guess)."""

    name = "ISO8601"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2023-11-01T09:00:00+08:00")
        if parsed.utcoffset() is None:
            self.fail(f"{value!r} has no UTC offset: add one, e.g. +08:00")
        from peakpilot.clock import require_instant
        from peakpilot.errors import InvalidInput

        try:
            require_instant(parsed, "time")
        except InvalidInput as error:
            self.fail(str(error))
        return parsed


@dataclass
class Options:
    db: str | None
    now: datetime | None
    json: bool


def json_option(command: F) -> F:
    """``--json`` after the command name, as well as before it."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(Options).json = True  # type: ignore[union-attr]

    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="Print one JSON document.",
    )(command)


def _claimable(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """People act from the command line; ``system`` is the scheduler's own actor."""
    from peakpilot.errors import NotPermitted
    from peakpilot.states.actors import Actor

    if value is not None and Actor.parse(value).role == "system":
        raise NotPermitted("`system` is the scheduler's actor: it cannot act from the command line")
    return value


def as_option(help_text: str, *, required: bool = True) -> Callable[[F], F]:
    """The ``--as ACTOR`` option of the commands people run."""
    return click.option(
        "--as", "actor", required=required, metavar="ACTOR", help=help_text, callback=_claimable
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    metavar="URL",
    help="Database URL [env PEAKPILOT_DATABASE_URL; default sqlite:///peakpilot.db].",
)
@click.option(
    "--now",
    type=Instant(),
    help="Run at this instant instead of the system clock [env PEAKPILOT_NOW].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="peakpilot")
@click.pass_context
def cli(
    ctx: click.Context, db: str | None, now: datetime | None, as_json: bool, debug: bool
) -> None:
    """peakpilot: nominations to the national carbon-peak pilot programme."""
    ctx.obj = Options(db=db, now=now, json=as_json)


# -- plumbing -------------------------------------------------------------------------


def _options() -> Options:
    return click.get_current_context().find_object(Options)  # type: ignore[return-value]


def _settings() -> Settings:
    from peakpilot.config.settings import load_settings

    options = _options()
    return load_settings(database_url=options.db, now=options.now)


def _engine(*, clock: Clock | None = None, contacts: Path | None = None) -> Engine:
    """The Engine of --db, on ``clock`` if given, else frozen at --now, else the system
    clock; closed when the command ends."""
    from peakpilot.clock import FrozenClock
    from peakpilot.workflow.engine import Engine

    settings = _settings()
    if clock is None and settings.now is not None:
        clock = FrozenClock(settings.now)
    engine = Engine(
        settings.database_url,
        clock=clock,
        contacts=settings.contacts or contacts,
        templates_dir=settings.templates_dir,
    )
    click.get_current_context().call_on_close(engine.close)
    return engine


def _database_shown(engine: Engine) -> str:
    """The engine's database URL with its password hidden."""
    return engine.database.engine.url.render_as_string(hide_password=True)


def _console(*, markup: bool = False) -> Console:
    """Rich output. Markup stays off wherever stored text is shown: a name such as
    ``[/]`` or ``[red]x`` is data, never styling (and never a crash)."""
    from rich.console import Console

    # Piped output is read by people too (less, CI logs): don't squeeze tables to 80.
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, markup=markup, width=width)


def _emit(document: Any, human: Callable[[], None]) -> None:
    if _options().json:
        from peakpilot.workflow.snapshots import to_jsonable

        click.echo(json.dumps(to_jsonable(document), ensure_ascii=False, indent=2))
    else:
        human()


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S %z")


def _nomination_table(rows: Sequence[Nomination], title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("id", "batch", "province", "kind", "name", "level", "state", "version"):
        table.add_column(column)
    for n in rows:
        table.add_row(n.id, n.batch, n.province, n.kind, n.name, n.level, n.state, str(n.version))
    return table


# -- commands -------------------------------------------------------------------------


@cli.command()
@click.option(
    "--program",
    "program_file",
    type=click.Path(dir_okay=False),
    help="A programme file (default: the shipped 2023 programme).",
)
@json_option
def init(program_file: str | None) -> None:
    """Create or upgrade the schema and load the programme (safe to repeat)."""
    engine = _engine()
    result = engine.init(program_file)
    result["database"] = _database_shown(engine)
    _emit(
        result,
        lambda: click.echo(
            f"{'initialised' if result['changed'] else 'up to date'}: {result['database']} "
            f"(programme {result['program']}, batch {result['batch']})"
        ),
    )


@cli.command()
@click.option("--province", required=True, help="Slug (hebei) or GB/T 2260 code (130000).")
@click.option("--kind", required=True, help="city or park.")
@click.option("--name", required=True, help="The city's or park's name.")
@click.option("--level", required=True, help="Administrative level, e.g. prefecture.")
@click.option("--batch", help="Batch id (default: the newest open batch with a quota).")
@as_option("drc:PROVINCE.")
@json_option
def nominate(
    province: str, kind: str, name: str, level: str, batch: str | None, actor: str
) -> None:
    """Create a nomination; prints its id."""
    created = _engine().nominate(
        actor, province=province, kind=kind, name=name, level=level, batch=batch
    )
    _emit(created, lambda: click.echo(created.id))


@cli.command()
@click.argument("nomination_id", metavar="ID")
@click.argument("event")
@as_option("ndrc, drc:PROVINCE or gov:PROVINCE.")
@click.option("--reason", help="Why (required to send back, reject or defer).")
@click.option("--idempotency-key", help="Retrying with the same key does the event once.")
@click.option(
    "--if-version", type=int, help="Refuse (exit 6) unless the nomination is still at this version."
)
@json_option
def fire(
    nomination_id: str,
    event: str,
    actor: str,
    reason: str | None,
    idempotency_key: str | None,
    if_version: int | None,
) -> None:
    """Fire one EVENT on nomination ID."""
    after = _engine().fire(
        nomination_id,
        event,
        actor,
        reason=reason,
        idempotency_key=idempotency_key,
        expected_version=if_version,
    )
    _emit(after, lambda: click.echo(f"{after.id}: {after.state} (version {after.version})"))


@cli.command()
@click.argument("nomination_id", metavar="ID")
@as_option("List the events this actor could fire.", required=False)
@json_option
def show(nomination_id: str, actor: str | None) -> None:
    """A nomination: fields, events the actor could fire, history, pending timers."""
    detail = _engine().show(nomination_id, actor)

    def human() -> None:
        from rich.table import Table
        from rich.text import Text

        console = _console()
        n = detail.nomination
        fields = Table.grid(padding=(0, 2))
        for label, value in (
            ("id", n.id),
            ("name", n.name),
            ("province", n.province),
            ("kind", f"{n.kind} ({n.level})"),
            ("batch", n.batch),
            ("state", n.state),
            ("version", str(n.version)),
            ("can fire", ", ".join(detail.allowed_events) or "-"),
        ):
            fields.add_row(Text(label, style="bold"), value)
        console.print(fields)
        console.print(_history_table(detail.history))
        if detail.timers:
            console.print(_timers_table(detail.timers))

    _emit(detail, human)


def _history_table(records: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="history")
    for column in ("seq", "at", "event", "from", "to", "actor", "reason"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r.seq),
            _when(r.at),
            r.event,
            r.from_state or "-",
            r.to_state,
            r.actor,
            r.reason or "",
        )
    return table


def _timers_table(timers: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="pending timers")
    for column in ("id", "kind", "due", "batch", "province", "nomination"):
        table.add_column(column)
    for t in timers:
        table.add_row(
            t.id, t.kind, _when(t.due_at), t.batch, t.province or "-", t.nomination or "-"
        )
    return table


@cli.command("list")
@click.option("--state", help="Only nominations in this state.")
@click.option("--province", help="Only this province (slug or code).")
@click.option("--batch", help="Only this batch.")
@json_option
def list_(state: str | None, province: str | None, batch: str | None) -> None:
    """Nominations, oldest first."""
    rows = _engine().list(state=state, province=province, batch=batch)
    _emit(rows, lambda: _console().print(_nomination_table(rows)))


@cli.command()
@click.option("--batch", help="Batch id (default: the newest).")
@json_option
def board(batch: str | None) -> None:
    """Per province: quota, used, left and nominations per state."""
    from peakpilot.config.quick import quick_database_url
    from peakpilot.workflow.quick import read_board

    # A quick read: the engine (and the settings model) only for a database whose
    # programme was stored before its facts were kept, or settings from a TOML file.
    url = quick_database_url(_options().db)
    view = read_board(url, batch) if url is not None else None
    if view is None:
        engine = _engine()
        result, states = engine.board(batch), engine.program.states
    else:
        result, states = view.board, view.states

    def human() -> None:
        from rich.table import Table

        table = Table(
            title=f"batch {result.batch} ({result.status}), deadline {_when(result.deadline)}"
        )
        for column in ("province", "quota", "used", "left", *states):
            table.add_column(column, justify="left" if column == "province" else "right")
        for p in result.provinces:
            table.add_row(
                p.province,
                str(p.quota),
                str(p.used),
                str(p.left),
                *(str(p.states[s] or "") for s in states),
            )
        _console().print(table)

    _emit(result, human)


@cli.command()
@click.argument("nomination_id", metavar="ID")
@json_option
def history(nomination_id: str) -> None:
    """The audit trail of one nomination, oldest first."""
    records = _engine().history(nomination_id)
    _emit(records, lambda: _console().print(_history_table(records)))


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@json_option
def diagram(fmt: str) -> None:
    """The state machine as Mermaid or DOT text."""
    engine = _engine()
    try:
        program = engine.program
    except PeakpilotError:
        from peakpilot.config.program import load_program

        program = load_program()  # no database yet: draw the shipped programme
    from peakpilot.states.diagram import render

    text = render(program, fmt)
    _emit({"format": fmt, "text": text}, lambda: click.echo(text))


@cli.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@json_option
def verify() -> None:
    """Check every nomination's hash chain; exit 7 naming the first broken record."""
    report = _engine().verify_audit()

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

    _emit(report, human)
    if not report.ok:
        raise click.exceptions.Exit(7)


@cli.command()
@json_option
def demo() -> None:
    """Replay the 2023 first batch on a simulated clock into --db (new or empty)."""
    from peakpilot.clock import ManualClock
    from peakpilot.demo import DEMO_CONTACTS, START, run_demo
    from peakpilot.notifications.channels import channel_from_settings

    clock = ManualClock(START)  # the replay's own time: --now does not apply
    engine = _engine(clock=clock, contacts=DEMO_CONTACTS)
    console = _console(markup=True)  # the narration's own styling; its texts are the demo's
    quiet = _options().json
    channel = channel_from_settings(_settings())
    summary = {
        "database": _database_shown(engine),
        **run_demo(engine, clock, channel, narrate=None if quiet else console.print),
    }
    if quiet:
        _emit(summary, lambda: None)
    else:
        console.print(
            f"\n[bold]The boards at the end of the replay[/] ({summary['elapsed_s']:.1f} s)"
        )
        for batch_id in summary["batches"]:
            click.get_current_context().invoke(board, batch=batch_id)


@cli.command()
@json_option
def tick() -> None:
    """Do all timer work due at --now (or the clock), then exit."""
    report = _engine().tick()

    def human() -> None:
        if not report.outcomes:
            click.echo(f"nothing due at {_when(report.now)}")
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

    _emit(report, human)


@cli.command()
@click.option(
    "--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True
)
def daemon(log_format: str) -> None:
    """Run the scheduler and the notice dispatcher until SIGINT or SIGTERM."""
    from peakpilot.notifications.channels import channel_from_settings
    from peakpilot.workflow.daemon import Daemon, configure_logging

    settings = _settings()
    if settings.now is not None:
        raise click.UsageError("the daemon runs on the system clock: drop --now / PEAKPILOT_NOW")
    configure_logging(log_format)
    Daemon(
        _engine(),
        channel_from_settings(settings),
        sweep_seconds=settings.sweep_seconds,
        max_attempts=settings.notify_max_attempts,
    ).run()


@cli.command()
@click.option("--batch", help="Only this batch.")
@json_option
def deadlines(batch: str | None) -> None:
    """Pending timers, due times in the programme's time zone."""
    timers = _engine().timers(batch)
    _emit(timers, lambda: _console().print(_timers_table(timers)))


@cli.group("batch")
def batch_group() -> None:
    """Batches of the programme."""


@batch_group.command("open")
@click.option("--id", "batch_id", required=True, help="The new batch's id, e.g. 2024-second.")
@click.option("--deadline", required=True, type=Instant(), help="ISO 8601 with offset.")
@click.option(
    "--quotas",
    "quotas_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML mapping province: quota.",
)
@as_option("ndrc.")
@json_option
def batch_open(batch_id: str, deadline: datetime, quotas_file: str, actor: str) -> None:
    """Open a follow-up batch; its provinces are notified."""
    from peakpilot.config.quotas import load_quotas

    engine = _engine()
    quotas = load_quotas(quotas_file, engine.program)
    board = engine.open_batch(actor, batch_id, deadline=deadline, quotas=quotas)
    _emit(
        board,
        lambda: click.echo(
            f"opened batch {board.batch} (deadline {_when(board.deadline)}) for "
            + ", ".join(f"{p.province} {p.quota}" for p in board.provinces)
        ),
    )


@cli.group(invoke_without_command=True)
@click.option(
    "--status",
    type=click.Choice(["pending", "sent", "failed", "dead"]),
    help="Only notices of this status.",
)
@json_option
@click.pass_context
def notices(ctx: click.Context, status: str | None) -> None:
    """The outbox: rendered notices and their delivery."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _engine().notices(status)

    def human() -> None:
        from rich.table import Table

        table = Table()
        for column in (
            "id",
            "kind",
            "recipient",
            "locale",
            "status",
            "attempts",
            "created",
            "subject",
        ):
            table.add_column(column)
        for n in rows:
            table.add_row(
                n.id,
                n.kind,
                n.recipient,
                n.locale,
                n.status,
                str(n.attempts),
                _when(n.created_at),
                n.subject,
            )
        _console().print(table)

    _emit(rows, human)


@notices.command("show")
@click.argument("notice_id", metavar="ID")
@json_option
def notices_show(notice_id: str) -> None:
    """One notice as rendered: headers and plain text."""
    detail = _engine().notice(notice_id)

    def human() -> None:
        n = detail.notice
        click.echo(
            f"Subject: {n.subject}\nTo: {n.recipient} ({n.actor}, {n.locale})\n"
            f"Kind: {n.kind}\nStatus: {n.status} after {n.attempts} attempt(s)"
            + (f"\nLast error: {n.last_error}" if n.last_error else "")
            + "\n"
        )
        click.echo(detail.text)

    _emit(detail, human)


@notices.command("dispatch")
@json_option
def notices_dispatch() -> None:
    """Send every notice due now; failures are recorded in the outbox (exit 0)."""
    from peakpilot.notifications.channels import channel_from_settings

    settings = _settings()
    report = _engine().dispatch_notices(
        channel_from_settings(settings), max_attempts=settings.notify_max_attempts
    )
    _emit(
        report,
        lambda: click.echo(f"sent {report.sent}, failed {report.failed}, dead {report.dead}"),
    )


@notices.command("retry")
@click.argument("notice_id", metavar="ID")
@json_option
def notices_retry(notice_id: str) -> None:
    """Put a failed or dead notice back in the queue."""
    notice = _engine().retry_notice(notice_id)
    _emit(notice, lambda: click.echo(f"{notice.id}: {notice.status}"))


# -- entry point ----------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    one_line = " ".join(message.splitlines()) or "unknown error"
    click.echo(f"peakpilot: {one_line}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the CLI and exit with the contract's exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="peakpilot", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "peakpilot"
        _fail(f"{error.format_message()} (see `{command} --help`)", USAGE_ERROR)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except click.Abort:
        _fail("aborted", 1)
    except PeakpilotError as error:
        _fail(str(error), error.exit_code)
    except Exception as error:  # the contract: one line, no traceback unless --debug
        if "--debug" in args:
            raise
        _fail(f"unexpected error ({type(error).__name__}): {error}; rerun with --debug", 1)
    sys.exit(code if isinstance(code, int) else 0)
