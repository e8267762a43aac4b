"""Shared by the tests of the construction years: small real documents and a pilot."""

from __future__ import annotations

import io
import zipfile

from peakpilot import Engine, Nomination

# The smallest documents each format's recogniser accepts (real signatures and parts).
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def zipped(*names: str) -> bytes:
    """A ZIP container holding ``names`` (OFD, DOCX and XLSX are such containers)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


DOCX = zipped("[Content_Types].xml", "word/document.xml")
XLSX = zipped("[Content_Types].xml", "xl/workbook.xml")
OFD = zipped("OFD.xml", "Doc_0/Document.xml")


def confirmed(engine: Engine, name: str = "唐山市", province: str = "hebei") -> Nomination:
    """A nomination taken from draft to confirmation."""
    n = engine.nominate(
        f"drc:{province}", province=province, kind="city", name=name, level="prefecture"
    )
    for event, actor in (
        ("submit_for_approval", f"drc:{province}"),
        ("approve", f"gov:{province}"),
        ("submit", f"drc:{province}"),
        ("confirm", "ndrc"),
    ):
        n = engine.fire(n.id, event, actor)
    return n


def in_construction(engine: Engine, name: str = "唐山市", province: str = "hebei") -> Nomination:
    n = confirmed(engine, name, province)
    engine.attach(n.id, PDF, kind="implementation_plan", actor=f"drc:{province}", filename="p.pdf")
    engine.fire(n.id, "submit_plan", f"drc:{province}")
    return engine.fire(n.id, "approve_plan", "ndrc")
