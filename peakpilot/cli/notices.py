"""The outbox: ``notices`` (the list), ``notices show``, ``notices dispatch``,
``notices retry``."""

from __future__ import annotations

import click

from peakpilot.cli.app import READ_AS, as_option, current_settings, json_option, open_engine
from peakpilot.cli.output import emit, rich_console, when
from peakpilot.vocabulary import NoticeStatus


@click.group(invoke_without_command=True)
@click.option(
    "--status",
    type=click.Choice([status.value for status in NoticeStatus]),
    help="Only notices of this status.",
)
@as_option(READ_AS, required=False)
@json_option
@click.pass_context
def notices(ctx: click.Context, status: str | None, actor: str | None) -> None:
    """The outbox: rendered notices and their delivery."""
    if ctx.invoked_subcommand is not None:
        command = ctx.invoked_subcommand
        if actor is not None and command != "show":  # dropped, it would look obeyed
            raise click.UsageError(f"--as goes with the list and `notices show`, not {command}")
        return
    rows = open_engine().notices(status, actor=actor)

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
                when(n.created_at),
                n.subject,
            )
        rich_console().print(table)

    emit(rows, human)


@notices.command("show")
@click.argument("notice_id", metavar="ID")
@as_option(READ_AS, required=False)
@json_option
@click.pass_context
def notices_show(ctx: click.Context, notice_id: str, actor: str | None) -> None:
    """One notice as rendered: headers and plain text."""
    given = ctx.parent.params.get("actor") if ctx.parent is not None else None
    if given is not None and actor is not None and given != actor:
        raise click.UsageError(f"two readers: --as {given} and --as {actor}")
    detail = open_engine().notice(notice_id, actor=actor or given)

    def human() -> None:
        n = detail.notice
        click.echo(
            f"Subject: {n.subject}\nTo: {n.recipient} ({n.actor}, {n.locale})\n"
            f"Kind: {n.kind}\nStatus: {n.status} after {n.attempts} attempt(s)"
            + (f"\nLast error: {n.last_error}" if n.last_error else "")
            + "\n"
        )
        click.echo(detail.text)

    emit(detail, human)


@notices.command("dispatch")
@json_option
def notices_dispatch() -> None:
    """Send every notice due now; failures are recorded in the outbox (exit 0)."""
    from peakpilot.notifications.channels import channel_from_settings

    settings = current_settings()
    report = open_engine().dispatch_notices(
        channel_from_settings(settings), max_attempts=settings.notify_max_attempts
    )
    emit(
        report,
        lambda: click.echo(f"sent {report.sent}, failed {report.failed}, dead {report.dead}"),
    )


@notices.command("retry")
@click.argument("notice_id", metavar="ID")
@json_option
def notices_retry(notice_id: str) -> None:
    """Put a failed or dead notice back in the queue."""
    notice = open_engine().retry_notice(notice_id)
    emit(notice, lambda: click.echo(f"{notice.id}: {notice.status}"))


COMMANDS = (notices,)
