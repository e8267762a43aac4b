"""What the commands print: one JSON document with ``--json``, else text and Rich tables
for people. Rich is imported only when a table is printed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from peakpilot.cli.app import current_options

if TYPE_CHECKING:
    from rich.console import Console

    from peakpilot.workflow.snapshots import Nomination


def rich_console(*, markup: bool = False) -> Console:
    """Rich output. Markup stays off wherever stored text is shown: a name such as
    ``[/]`` or ``[red]x`` is data, never styling (and never a crash)."""
    from rich.console import Console

    # Piped output is read by people too (less, CI logs): don't squeeze tables to 80.
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, markup=markup, width=width)


def emit(document: Any, human: Callable[[], None]) -> None:
    """Print ``document`` as JSON with ``--json``, else call ``human`` to print it."""
    if current_options().json:
        from peakpilot.workflow.snapshots import to_json

        # indented for a person at a terminal; compact (and much quicker to write for a
        # long list) for the scripts that read a pipe
        click.echo(to_json(document, indent=2 if sys.stdout.isatty() else None))
    else:
        human()


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S %z")


def nomination_table(rows: Sequence[Nomination], title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("id", "batch", "province", "kind", "name", "level", "state", "version"):
        table.add_column(column)
    for n in rows:
        table.add_row(n.id, n.batch, n.province, n.kind, n.name, n.level, n.state, str(n.version))
    return table


def history_table(records: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="history")
    for column in ("seq", "at", "event", "from", "to", "actor", "reason", "data"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r.seq),
            when(r.at),
            r.event,
            r.from_state or "-",
            r.to_state,
            r.actor,
            r.reason or "",
            data_text(r.data),
        )
    return table


def data_text(data: Any) -> str:
    """An event's data as one line: ``period=2024, grade=good``."""
    if not data:
        return ""
    return ", ".join(f"{key}={value}" for key, value in data.items() if value is not None)


def materials_table(rows: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="materials")
    for column in ("id", "kind", "title", "doc number", "size", "type", "by", "attached"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for m in rows:
        table.add_row(
            m.id,
            m.kind,
            m.title or "",
            m.doc_number or "",
            f"{m.size:,}",
            m.media_type.rsplit("/", 1)[-1].split(".")[-1],
            m.actor,
            when(m.attached_at),
        )
    return table


def pilots_table(rows: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="pilots")
    for column in ("id", "province", "name", "kind", "state", "plan", "reported", "next due"):
        table.add_column(column)
    for p in rows:
        due = ""
        if p.next_due is not None:
            what = p.next_due.kind + (f" {p.next_due.period}" if p.next_due.period else "")
            due = f"{what} {p.next_due.due_at:%Y-%m-%d}" + (" OVERDUE" if p.overdue else "")
        table.add_row(
            p.id,
            p.province,
            p.name,
            p.kind,
            p.state,
            p.plan,
            "" if p.last_period is None else str(p.last_period),
            due,
        )
    return table


def timers_table(timers: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="pending timers")
    for column in ("id", "kind", "due", "batch", "province", "nomination"):
        table.add_column(column)
    for t in timers:
        table.add_row(t.id, t.kind, when(t.due_at), t.batch, t.province or "-", t.nomination or "-")
    return table
