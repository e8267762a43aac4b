"""Materials: the documents attached to nominations (``materials``), and their bytes,
stored once per content (``material_blobs``, keyed by SHA-256)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peakpilot.errors import NotFound
from peakpilot.vocabulary import ROW_ID
from peakpilot.workflow.store.driver import Statements

COLUMNS = (
    "id",
    "nomination_id",
    "kind",
    "sha256",
    "size",
    "media_type",
    "title",
    "doc_number",
    "actor",
    "attached_at",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM materials"
_INSERT = f"INSERT INTO materials ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_STREAMED = 64  # blobs fetched at a time while verifying (each up to the size limit)


@dataclass(frozen=True, slots=True)
class MaterialRecord:
    """A material as stored (``attached_at`` in UTC)."""

    id: str
    nomination_id: str
    kind: str
    sha256: str
    size: int
    media_type: str
    title: str | None
    doc_number: str | None
    actor: str
    attached_at: datetime


@dataclass(frozen=True, slots=True)
class BadBlob:
    """Stored bytes that no longer match the hash they are stored under."""

    sha256: str
    found: str


class Materials:
    """The ``materials`` and ``material_blobs`` tables."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def add(self, record: MaterialRecord, content: bytes) -> None:
        """Store the record, and the bytes unless the same bytes are stored already."""
        self.sql.execute(
            "INSERT INTO material_blobs (sha256, size, content) VALUES (?, ?, ?) "
            "ON CONFLICT (sha256) DO NOTHING",
            (record.sha256, record.size, content),
        )
        self.sql.execute(
            _INSERT,
            (
                record.id,
                record.nomination_id,
                record.kind,
                record.sha256,
                record.size,
                record.media_type,
                record.title,
                record.doc_number,
                record.actor,
                self.sql.dialect.time_in(record.attached_at),
            ),
        )

    def get(self, material_id: str) -> MaterialRecord:
        row = None
        if isinstance(material_id, str) and ROW_ID.fullmatch(material_id):
            row = self.sql.one(f"{_SELECT} WHERE id = ?", (material_id,))
        if row is None:
            raise NotFound(f"no material {material_id!r}: `peakpilot materials ID` lists them")
        return self._record(row)

    def content(self, sha256: str) -> bytes:
        row = self.sql.one("SELECT content FROM material_blobs WHERE sha256 = ?", (sha256,))
        if row is None:
            raise NotFound(f"the bytes of material {sha256} are missing from the database")
        return bytes(row[0])

    def of_nomination(self, nomination_id: str) -> list[MaterialRecord]:
        rows = self.sql.all(
            f"{_SELECT} WHERE nomination_id = ? ORDER BY attached_at, id", (nomination_id,)
        )
        return [self._record(row) for row in rows]

    def with_sha256(self, sha256: str) -> list[MaterialRecord]:
        rows = self.sql.all(f"{_SELECT} WHERE sha256 = ? ORDER BY attached_at, id", (sha256,))
        return [self._record(row) for row in rows]

    def bad_blobs(self) -> Iterator[BadBlob]:
        """Every stored content whose SHA-256 is not the one it is stored under (or whose
        row has no content at all for a material that names it)."""
        rows = self.sql.stream(
            "SELECT sha256, content FROM material_blobs ORDER BY sha256", size=_STREAMED
        )
        for sha256, content in rows:
            found = hashlib.sha256(bytes(content)).hexdigest()
            if found != sha256:
                yield BadBlob(sha256, found)
        missing = self.sql.all(
            "SELECT m.sha256 FROM materials m LEFT JOIN material_blobs b ON b.sha256 = m.sha256 "
            "WHERE b.sha256 IS NULL ORDER BY m.sha256"
        )
        for (sha256,) in missing:
            yield BadBlob(sha256, "missing")

    def _record(self, row: Sequence[Any]) -> MaterialRecord:
        values = list(row)
        values[9] = self.sql.dialect.time_out(values[9])
        return MaterialRecord(*values)


__all__ = ["BadBlob", "MaterialRecord", "Materials"]
