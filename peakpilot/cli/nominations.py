"""The commands on nominations: ``nominate``, ``fire``, ``show``, ``list``, ``history``."""

from __future__ import annotations

import click

from peakpilot.cli.app import READ_AS, as_option, json_option, open_engine
from peakpilot.cli.output import emit, history_table, nomination_table, rich_console, timers_table


@click.command()
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
    created = open_engine().nominate(
        actor, province=province, kind=kind, name=name, level=level, batch=batch
    )
    emit(created, lambda: click.echo(created.id))


@click.command()
@click.argument("nomination_id", metavar="ID")
@click.argument("event")
@as_option("ndrc, drc:PROVINCE or gov:PROVINCE.")
@click.option("--reason", help="Why (required to send back, reject or defer).")
@click.option(
    "--data",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="What the event carries, e.g. period=2024 (repeatable).",
)
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
    pairs: tuple[str, ...],
    idempotency_key: str | None,
    if_version: int | None,
) -> None:
    """Fire one EVENT on nomination ID."""
    from peakpilot.states.event_data import parse_pairs

    after = open_engine().fire(
        nomination_id,
        event,
        actor,
        reason=reason,
        idempotency_key=idempotency_key,
        expected_version=if_version,
        data=parse_pairs(list(pairs)) if pairs else None,
    )
    emit(after, lambda: click.echo(f"{after.id}: {after.state} (version {after.version})"))


@click.command()
@click.argument("nomination_id", metavar="ID")
@as_option(READ_AS + " List the events it could fire.", required=False)
@json_option
def show(nomination_id: str, actor: str | None) -> None:
    """A nomination: fields, events the actor could fire, history, pending timers."""
    detail = open_engine().show(nomination_id, actor)

    def human() -> None:
        from rich.table import Table
        from rich.text import Text

        console = rich_console()
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
            ("programme", f"version {n.program_version}"),
            ("can fire", ", ".join(detail.allowed_events) or "-"),
        ):
            fields.add_row(Text(label, style="bold"), value)
        console.print(fields)
        console.print(history_table(detail.history))
        if detail.timers:
            console.print(timers_table(detail.timers))

    emit(detail, human)


@click.command("list")
@click.option("--state", help="Only nominations in this state.")
@click.option("--province", help="Only this province (slug or code).")
@click.option("--batch", help="Only this batch.")
@as_option(READ_AS, required=False)
@json_option
def list_(state: str | None, province: str | None, batch: str | None, actor: str | None) -> None:
    """Nominations, oldest first."""
    rows = open_engine().list(state=state, province=province, batch=batch, actor=actor)
    emit(rows, lambda: rich_console().print(nomination_table(rows)))


@click.command()
@click.argument("nomination_id", metavar="ID")
@as_option(READ_AS, required=False)
@json_option
def history(nomination_id: str, actor: str | None) -> None:
    """The audit trail of one nomination, oldest first."""
    records = open_engine().history(nomination_id, actor=actor)
    emit(records, lambda: rich_console().print(history_table(records)))


COMMANDS = (nominate, fire, show, list_, history)
