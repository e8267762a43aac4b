"""The ``peakpilot`` group: its global options, the options commands share, the plumbing
every command uses (settings, the Engine) and :func:`main`, which turns every error into
one line on stderr and the contract's exit code.

Imports Click only: ``peakpilot --help`` must stay cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from peakpilot.errors import PeakpilotError

if TYPE_CHECKING:
    from pathlib import Path

    from peakpilot.clock import Clock
    from peakpilot.config.settings import Settings
    from peakpilot.workflow.engine import Engine

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
    from peakpilot.vocabulary import SYSTEM

    if value is not None and Actor.parse(value).role == SYSTEM:
        raise NotPermitted("`system` is the scheduler's actor: it cannot act from the command line")
    return value


READ_AS = (
    "Read as this actor: drc:P and gov:P see province P only (another province's is "
    "exit 4); without --as, everything."
)


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


def current_options() -> Options:
    """The global options of the command being run."""
    return click.get_current_context().find_object(Options)  # type: ignore[return-value]


def current_settings() -> Settings:
    """The settings, with --db and --now applied."""
    from peakpilot.config.settings import load_settings

    options = current_options()
    return load_settings(database_url=options.db, now=options.now)


def open_engine(*, clock: Clock | None = None, contacts: Path | None = None) -> Engine:
    """The Engine of --db, on ``clock`` if given, else frozen at --now, else the system
    clock; closed when the command ends."""
    from peakpilot.clock import FrozenClock
    from peakpilot.workflow.engine import Engine

    settings = current_settings()
    if clock is None and settings.now is not None:
        clock = FrozenClock(settings.now)
    engine = Engine(
        settings.database_url,
        clock=clock,
        contacts=settings.contacts or contacts,
        templates_dir=settings.templates_dir,
        template_cache_dir=settings.template_cache_dir,
        max_material_bytes=settings.max_material_bytes,
        stale_after=settings.stale_after,
    )
    click.get_current_context().call_on_close(engine.close)
    return engine


def shown_url(engine: Engine) -> str:
    """The engine's database URL with its password hidden."""
    return engine.database.engine.url.render_as_string(hide_password=True)


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
