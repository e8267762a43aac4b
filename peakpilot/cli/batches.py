"""The commands on batches: ``board``, ``deadlines``, ``batch open``."""

from __future__ import annotations

from datetime import datetime

import click

from peakpilot.cli.app import READ_AS, Instant, as_option, json_option, open_engine
from peakpilot.cli.output import emit, rich_console, timers_table, when


@click.command()
@click.option("--batch", help="Batch id (default: the newest).")
@json_option
def board(batch: str | None) -> None:
    """Per province: quota, used, left and nominations per state."""
    engine = open_engine()
    result, program = engine.board(batch), engine.program
    # the selection's states in the table; the construction years' on a line below it
    later = [s for s in program.pilot_states if s not in program.piloted_states[:1]]
    states = [s for s in program.states if s not in later]

    def human() -> None:
        from rich.table import Table

        table = Table(
            title=f"batch {result.batch} ({result.status}), deadline {when(result.deadline)}"
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
        console = rich_console()
        console.print(table)
        if later:
            counts = {s: sum(p.states[s] for p in result.provinces) for s in later}
            console.print("construction: " + ", ".join(f"{s} {n}" for s, n in counts.items()))

    emit(result, human)


@click.command()
@click.option("--batch", help="Only this batch.")
@as_option(READ_AS, required=False)
@json_option
def deadlines(batch: str | None, actor: str | None) -> None:
    """Pending timers, due times in the programme's time zone."""
    timers = open_engine().timers(batch, actor=actor)
    emit(timers, lambda: rich_console().print(timers_table(timers)))


@click.group("batch")
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

    engine = open_engine()
    quotas = load_quotas(quotas_file, engine.program)
    board = engine.open_batch(actor, batch_id, deadline=deadline, quotas=quotas)
    emit(
        board,
        lambda: click.echo(
            f"opened batch {board.batch} (deadline {when(board.deadline)}) for "
            + ", ".join(f"{p.province} {p.quota}" for p in board.provinces)
        ),
    )


COMMANDS = (board, deadlines, batch_group)
