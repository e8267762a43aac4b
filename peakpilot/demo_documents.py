"""Tiny, valid PDF 1.4 documents for the demo's materials, written by hand.

The demo attaches an implementation plan, progress reports and a rectification report to
its pilots; each is a one-page PDF with one line of text, generated here so that the
replay needs no fixture file and no PDF library. The file is the smallest one a reader
opens without repair: a header, a catalog, a page tree with one page, its content stream
and font, a cross-reference table whose offsets are the objects' real byte positions, and
a trailer ending in ``%%EOF``.

The text is drawn with a standard Type 1 font (Helvetica), which covers printable ASCII
only: callers pass an English line (the Chinese title goes in the material's metadata).
"""

from __future__ import annotations

__all__ = ["pdf_document"]


def pdf_document(text: str) -> bytes:
    """A one-page PDF 1.4 document showing ``text`` (printable ASCII) in one line.

    Raises:
        ValueError: ``text`` has a character outside printable ASCII, which the standard
            font cannot show.
    """
    if not all(" " <= ch <= "~" for ch in text):
        raise ValueError(f"a demo PDF shows printable ASCII only, not {text!r}")
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "  # A4, in points
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    # the second line's high bytes tell transfer tools the file is binary (PDF 7.5.2)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    # each entry is exactly 20 bytes: 10-digit offset, 5-digit generation, type, CR LF
    out += b"xref\n0 %d\n0000000000 65535 f\r\n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n\r\n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)
