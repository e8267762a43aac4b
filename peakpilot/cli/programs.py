"""The programme's versions: ``program versions``, ``program show [N]``,
``program diff N M``, and the change report ``init --program FILE`` prints."""

from __future__ import annotations

import json
import shutil
import textwrap
from typing import TYPE_CHECKING, Any

import click

from peakpilot.cli.app import json_option, open_engine
from peakpilot.cli.output import emit, rich_console, when

if TYPE_CHECKING:
    from peakpilot.workflow.change_report import ProgramChange

_MARKS = {"added": "+", "removed": "-", "changed": "~"}
_OUTCOMES = {
    "created": "loaded as version {to}",
    "unchanged": "unchanged: version {to} is in force",
    "applied": "version {frm} -> {to}, in force",
    "dry_run": "version {frm} -> {to} (dry run: nothing written)",
    "diff": "version {frm} -> {to}",
}


def change_report(change: ProgramChange, width: int | None = None) -> str:
    """A programme change for people: what each section gains, loses and changes, what
    moves, which quotas change, what happened to the timers, and what is unsafe; each
    item wrapped to ``width`` (the terminal's, by default) under its own indent."""
    head = _OUTCOMES[change.outcome].format(frm=change.from_version, to=change.to_version)
    lines = [f"programme {change.program}: {head}"]
    section = None
    for difference in change.differences:
        if difference.section != section:
            section = difference.section
            lines.append(f"{section.replace('_', ' ')}:")
        mark = _MARKS[difference.change]
        lines.append(f"  {mark} {difference.item}{_values(difference.before, difference.after)}")
    if change.moves:
        lines.append(
            "nominations that would move:" if change.outcome == "dry_run" else "nominations moved:"
        )
        lines += [f"  {m.from_state} -> {m.to_state}: {m.nominations}" for m in change.moves]
    if change.quotas:
        lines.append("open batches' quotas:")
        for q in change.quotas:
            after = "removed" if q.after is None else q.after
            lines.append(f"  {q.batch} {q.province}: {q.before} -> {after} ({q.used} used)")
    if change.timers is not None and any(
        (change.timers.added, change.timers.rescheduled, change.timers.cancelled)
    ):
        t = change.timers
        lines.append(
            f"pending timers: {t.added} added, {t.rescheduled} rescheduled, {t.cancelled} cancelled"
        )
    if change.outcome in ("applied", "dry_run", "diff") and not change.differences:
        lines.append("(no difference in the rules: comments or layout only)")
    if change.problems:
        lines.append("refused unless fixed:" if change.outcome == "dry_run" else "problems:")
        lines += [f"  ! {problem}" for problem in change.problems]
    width = width or shutil.get_terminal_size().columns
    return "\n".join(
        textwrap.fill(line, width, subsequent_indent="      ", break_on_hyphens=False)
        for line in lines
    )


def _values(before: Any, after: Any) -> str:
    if before is None and after is None:
        return ""
    if before is None:
        return f": {_describe(after)}"
    if after is None:
        return f" (was {_describe(before)})"
    if _is_list(before) and _is_list(after):  # a list of names: what it gains and loses
        gains = [f"+{x}" for x in after if x not in before]
        losses = [f"-{x}" for x in before if x not in after]
        if gains or losses:
            return ": " + " ".join([*gains, *losses])
    return f": {_describe(before)} -> {_describe(after)}"


def _is_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _describe(value: Any) -> str:
    """A value of the change report as a clerk reads it: a transition as a sentence
    (``to confirmed, by ndrc, if reason_given, notice confirmed to drc, gov``), a list
    of names comma-separated, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if _is_list(value):
        return ", ".join(value) or "none"
    if isinstance(value, dict) and {"to", "who", "guards"} <= set(value):
        parts = [f"to {value['to'] or '(the same state)'}", f"by {', '.join(value['who'])}"]
        if value["guards"]:
            parts.append(f"if {', '.join(value['guards'])}")
        if value.get("notice"):
            notice = value["notice"]
            parts.append(f"notice {notice['kind']} to {', '.join(notice['to'])}")
        if value.get("data"):
            parts.append(f"data {', '.join(value['data'])}")
        if value.get("needs_material"):
            parts.append(f"needs {value['needs_material']['kind']}")
        return ", ".join(parts)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@click.group("program")
def program_group() -> None:
    """The programme's versions: every text the database loaded."""


@program_group.command("versions")
@json_option
def versions() -> None:
    """Every version: number, sha256, when and by whom it was loaded."""
    rows = open_engine().program_versions()

    def human() -> None:
        from rich.table import Table

        table = Table()
        for column in ("version", "loaded at", "by", "sha256"):
            table.add_column(column, no_wrap=column != "sha256")
        for row in rows:
            table.add_row(str(row.version), when(row.loaded_at), row.actor, row.sha256[:16])
        rich_console().print(table)

    emit(rows, human)


@program_group.command("show")
@click.argument("version", type=int, required=False)
@json_option
def show(version: int | None) -> None:
    """The text of version VERSION (default: the one in force)."""
    engine = open_engine()
    text = engine.program_text(version)
    shown = engine.program_version if version is None else version
    emit({"version": shown, "text": text}, lambda: click.echo(text, nl=False))


@program_group.command("diff")
@click.argument("from_version", type=int)
@click.argument("to_version", type=int)
@json_option
def diff(from_version: int, to_version: int) -> None:
    """What changed in the rules from version FROM_VERSION to TO_VERSION."""
    change = open_engine().program_diff(from_version, to_version)
    emit(change, lambda: click.echo(change_report(change)))


COMMANDS = (program_group,)
