"""The commands of the construction years: ``attach``, ``materials`` (and ``materials
get``), ``pilots``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from peakpilot.cli.app import READ_AS, as_option, json_option, open_engine
from peakpilot.cli.output import emit, materials_table, pilots_table, rich_console


@click.command()
@click.argument("nomination_id", metavar="ID")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", required=True, help="implementation_plan, progress_report, ...")
@click.option("--title", help="The document's title.")
@click.option("--doc-number", help="Its official document number (文号).")
@as_option("drc:PROVINCE, gov:PROVINCE or ndrc.")
@json_option
def attach(
    nomination_id: str,
    file: Path,
    kind: str,
    title: str | None,
    doc_number: str | None,
    actor: str,
) -> None:
    """Store FILE (PDF, OFD, DOCX, XLSX, PNG, JPEG) with nomination ID."""
    material = open_engine().attach(
        nomination_id, file, kind=kind, actor=actor, title=title, doc_number=doc_number
    )
    emit(
        material,
        lambda: click.echo(
            f"{material.id}: {material.kind}, {material.size:,} bytes, sha256 {material.sha256}"
        ),
    )


@click.command()
@click.argument("target", metavar="ID | get MATERIAL_ID")
@click.argument("material_id", required=False, metavar="")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With get: write the bytes here (default: stdout).",
)
@as_option(READ_AS, required=False)
@json_option
def materials(target: str, material_id: str | None, output: Path | None, actor: str | None) -> None:
    """The materials of nomination ID; `materials get MATERIAL_ID` returns one's bytes."""
    engine = open_engine()
    if target != "get":
        if material_id is not None or output is not None:
            raise click.UsageError("-o and a second argument go with `materials get MATERIAL_ID`")
        rows = engine.materials(target, actor=actor)
        emit(rows, lambda: rich_console().print(materials_table(rows)))
        return
    if material_id is None:
        raise click.UsageError("give the material's id: materials get MATERIAL_ID")
    material, content = engine.material(material_id, actor=actor)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(content)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    emit(material, lambda: click.echo(f"{output}: {material.size:,} bytes ({material.kind})"))


@click.command()
@click.option("--province", help="Only this province (slug or code).")
@click.option("--state", help="Only pilots in this state.")
@click.option("--overdue", is_flag=True, help="Only pilots with something overdue.")
@as_option(READ_AS, required=False)
@json_option
def pilots(province: str | None, state: str | None, overdue: bool, actor: str | None) -> None:
    """The pilots from confirmation on: plan, last report, what is due next."""
    rows = open_engine().pilots(province=province, state=state, overdue=overdue, actor=actor)
    emit(rows, lambda: rich_console().print(pilots_table(rows)))


COMMANDS = (attach, materials, pilots)
