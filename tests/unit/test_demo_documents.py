"""The demo's generated PDFs: a reader finds every object where the xref table says."""

from __future__ import annotations

import re

import pytest

from peakpilot.demo_documents import pdf_document
from peakpilot.states.materials import MEDIA_TYPES, recognise


def parse_xref(pdf: bytes) -> tuple[int, list[bytes]]:
    """The table's offset (from ``startxref``) and its entries, as a reader finds them."""
    tail = re.search(rb"startxref\n(\d+)\n%%EOF\n\Z", pdf)
    assert tail, "the file must end with startxref, its offset and %%EOF"
    xref_at = int(tail.group(1))
    assert pdf[xref_at:].startswith(b"xref\n0 "), "startxref must point at the xref keyword"
    header, _, rest = pdf[xref_at + len(b"xref\n") :].partition(b"\n")
    first, count = map(int, header.split())
    assert first == 0
    entries = [rest[i * 20 : (i + 1) * 20] for i in range(count)]
    assert rest[count * 20 :].startswith(b"trailer\n")
    return xref_at, entries


@pytest.mark.parametrize(
    "text", ["Tangshan implementation plan (v2)", "", "a \\ backslash", "x" * 300]
)
def test_every_xref_entry_points_at_its_object(text: str) -> None:
    pdf = pdf_document(text)
    assert pdf.startswith(b"%PDF-1.4\n%")
    assert all(byte >= 128 for byte in pdf[10:14]), "the binary marker line"
    _, entries = parse_xref(pdf)
    assert entries[0] == b"0000000000 65535 f\r\n"
    assert len(entries) == 6  # the free entry, catalog, pages, page, content, font
    for number, entry in enumerate(entries[1:], start=1):
        assert re.fullmatch(rb"\d{10} 00000 n\r\n", entry), entry
        offset = int(entry[:10])
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number), (number, offset)


def test_the_trailer_names_the_catalog_and_the_size() -> None:
    pdf = pdf_document("Suzhou progress report 2024")
    trailer = re.search(rb"trailer\n<< /Size (\d+) /Root (\d+) 0 R >>\n", pdf)
    assert trailer and trailer.group(1) == b"6"
    root = int(trailer.group(2))
    assert re.search(rb"%d 0 obj\n<< /Type /Catalog /Pages 2 0 R >>" % root, pdf)
    assert b"/Type /Page " in pdf and b"/Count 1" in pdf


def test_the_content_streams_length_is_its_byte_count() -> None:
    pdf = pdf_document("Cangzhou rectification report (a) (b)")
    found = re.search(rb"<< /Length (\d+) >>\nstream\n(.*?)\nendstream", pdf, re.S)
    assert found
    assert int(found.group(1)) == len(found.group(2))
    assert b"(Cangzhou rectification report \\(a\\) \\(b\\)) Tj" in found.group(2)


def test_the_engine_recognises_it_as_a_pdf() -> None:
    assert MEDIA_TYPES[recognise(pdf_document("plan"))] == "application/pdf"


def test_distinct_texts_give_distinct_documents() -> None:
    assert pdf_document("plan v1") != pdf_document("plan v2")


def test_text_the_standard_font_cannot_show_is_refused() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        pdf_document("唐山市")
