"""What a material may be: a document of a known type, recognised by its content (a file
named ``.pdf`` that is not a PDF is refused), no larger than the limit.

Pure: the caller reads the file. The signatures are the formats' own: PDF's ``%PDF-``,
PNG's and JPEG's magic numbers, and for the ZIP containers (OFD, DOCX, XLSX) the part
each format requires, looked up in the archive's directory.
"""

from __future__ import annotations

import io
import zipfile

from peakpilot.errors import InvalidInput

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "ofd": "application/ofd",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "png": "image/png",
    "jpeg": "image/jpeg",
}
_SUFFIXES = {
    "pdf": "pdf",
    "ofd": "ofd",
    "docx": "docx",
    "xlsx": "xlsx",
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
}
_ACCEPTED = "PDF, OFD, DOCX, XLSX, PNG or JPEG"


def recognise(content: bytes) -> str | None:
    """The format of ``content`` (a key of :data:`MEDIA_TYPES`), or None."""
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if "OFD.xml" in names:
            return "ofd"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
    return None


def check_material(content: bytes, filename: str, max_bytes: int) -> str:
    """The media type of a document that may be attached, or why it may not.

    Raises:
        InvalidInput: empty, too large, not a format peakpilot keeps, or named with the
            suffix of another format than its content's.
    """
    if not content:
        raise InvalidInput(f"{filename} is empty: attach the document itself")
    if len(content) > max_bytes:
        raise InvalidInput(
            f"{filename} is {len(content):,} bytes, more than the {max_bytes:,} a material "
            "may have (PEAKPILOT_MAX_MATERIAL_BYTES)"
        )
    found = recognise(content)
    if found is None:
        raise InvalidInput(f"{filename} is not a {_ACCEPTED} document (judged by its content)")
    suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
    named = _SUFFIXES.get(suffix)
    if suffix and named is not None and named != found:
        raise InvalidInput(
            f"{filename} is named .{suffix} but its content is {found.upper()}: "
            "rename it or attach the right file"
        )
    return MEDIA_TYPES[found]


__all__ = ["MEDIA_TYPES", "check_material", "recognise"]
