"""The stored programme: the ``programs`` table, one row per database.

``init`` stores the programme's text (the rules' source) and its compiled form (JSON,
read back without validating it again), so that a process that only reads needs neither
PyYAML nor pydantic to know the programme.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peakpilot.workflow.store.driver import Statements

_EXISTS = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'programs'",
    "postgresql": "SELECT count(to_regclass('programs'))",
}


@dataclass(frozen=True, slots=True)
class StoredProgram:
    id: str
    digest: str
    source: str
    compiled: str | None  # None: stored before compiled forms were kept (schema < 0006)


class Programs:
    """The ``programs`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def stored(self) -> StoredProgram | None:
        """The database's programme; None when it holds none (not initialised, or
        initialised before the table existed)."""
        if not self.sql.count(_EXISTS[self.sql.dialect.name]):
            return None
        # every column: a schema older than the compiled column (0006) has none to name
        cursor = self.sql.execute("SELECT * FROM programs")
        row = cursor.fetchone()
        if row is None:
            return None
        values = dict(zip((column[0] for column in cursor.description), row, strict=True))
        return StoredProgram(
            values["id"], values["digest"], values["source"], values.get("compiled")
        )

    def store(
        self, program_id: str, *, digest: str, source: str, compiled: str, now: datetime
    ) -> None:
        """Keep this programme text and its compiled form (the first, or a new version)."""
        at = self.sql.dialect.time_in(now)
        updated = self.sql.execute(
            "UPDATE programs SET digest = ?, source = ?, compiled = ?, loaded_at = ? WHERE id = ?",
            (digest, source, compiled, at, program_id),
        ).rowcount
        if not updated:
            self.sql.execute(
                "INSERT INTO programs (id, digest, source, compiled, loaded_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (program_id, digest, source, compiled, at),
            )


__all__ = ["Programs", "StoredProgram"]
