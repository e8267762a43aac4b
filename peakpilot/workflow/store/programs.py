"""The stored programme: the ``programs`` row (the version in force) and the
``program_versions`` table (every text ever loaded, numbered).

Each version keeps the programme's text (the rules' source) and its compiled form (JSON,
read back without validating it again), so that a process that only reads needs neither
PyYAML nor pydantic to know the programme, and ``program show N`` can print any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peakpilot.errors import NotFound
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
    version: int


@dataclass(frozen=True, slots=True)
class ProgramVersion:
    """One loaded programme text: ``version`` counts from 1 in loading order."""

    version: int
    program_id: str
    sha256: str
    loaded_at: datetime
    actor: str


class Programs:
    """The ``programs`` row and the ``program_versions`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def stored(self) -> StoredProgram | None:
        """The programme in force; None when the database holds none (not initialised,
        or initialised before the table existed)."""
        if not self.sql.count(_EXISTS[self.sql.dialect.name]):
            return None
        # every column: a schema older than compiled (0006) or version (0008) lacks some
        cursor = self.sql.execute("SELECT * FROM programs")
        row = cursor.fetchone()
        if row is None:
            return None
        values = dict(zip((column[0] for column in cursor.description), row, strict=True))
        return StoredProgram(
            values["id"],
            values["digest"],
            values["source"],
            values.get("compiled"),
            values.get("version", 1),
        )

    def version_in_force(self, *, lock: bool) -> int:
        """The version writers must decide by. ``lock`` (PostgreSQL): hold the row shared
        until the transaction ends, so that a programme change, which updates the row,
        waits for this transaction, and this one sees a change that committed first."""
        share = " FOR SHARE" if lock and self.sql.dialect.name == "postgresql" else ""
        row = self.sql.one(f"SELECT version FROM programs{share}")
        if row is None:
            raise NotFound("the database holds no programme: run `peakpilot init` first")
        return int(row[0])

    def lock(self) -> StoredProgram | None:
        """The programme in force, its row locked against writers until the transaction
        ends (a programme change: every writer reads the row shared first)."""
        if self.sql.dialect.name == "postgresql" and self.sql.count(_EXISTS["postgresql"]):
            self.sql.execute("SELECT version FROM programs FOR UPDATE")
        return self.stored()

    def store(
        self,
        program_id: str,
        *,
        digest: str,
        source: str,
        compiled: str,
        now: datetime,
        actor: str,
    ) -> int:
        """Keep this text as the next version and put it in force; return its number."""
        at = self.sql.dialect.time_in(now)
        version = self.sql.count("SELECT coalesce(max(version), 0) FROM program_versions") + 1
        updated = self.sql.execute(
            "UPDATE programs SET digest = ?, source = ?, compiled = ?, loaded_at = ?, "
            "version = ? WHERE id = ?",
            (digest, source, compiled, at, version, program_id),
        ).rowcount
        if not updated:
            self.sql.execute(
                "INSERT INTO programs (id, digest, source, compiled, loaded_at, version) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (program_id, digest, source, compiled, at, version),
            )
        self.sql.execute(
            "INSERT INTO program_versions (version, program_id, sha256, source, compiled, "
            "loaded_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version, program_id, digest, source, compiled, at, actor),
        )
        return version

    def recompile(self, stored: StoredProgram, compiled: str, now: datetime) -> None:
        """Store the compiled form this peakpilot writes for the programme in force (one
        stored before compiled forms were kept, or in an older format), and its first
        version row if it was loaded before versions were kept; its rules are unchanged."""
        self.sql.execute("UPDATE programs SET compiled = ? WHERE id = ?", (compiled, stored.id))
        self.sql.execute(
            "UPDATE program_versions SET compiled = ? WHERE version = ?",
            (compiled, stored.version),
        )
        if not self.sql.count("SELECT count(*) FROM program_versions"):
            self.sql.execute(
                "INSERT INTO program_versions (version, program_id, sha256, source, compiled, "
                "loaded_at, actor) VALUES (?, ?, ?, ?, ?, ?, 'system')",
                (
                    stored.version,
                    stored.id,
                    stored.digest,
                    stored.source,
                    compiled,
                    self.sql.dialect.time_in(now),
                ),
            )

    def versions(self) -> list[ProgramVersion]:
        """Every version, oldest first."""
        time_out = self.sql.dialect.time_out
        return [
            ProgramVersion(int(version), program_id, sha256, time_out(at), actor)
            for version, program_id, sha256, at, actor in self.sql.all(
                "SELECT version, program_id, sha256, loaded_at, actor FROM program_versions "
                "ORDER BY version"
            )
        ]

    def text(self, version: int) -> tuple[str, str]:
        """Version ``version``'s source text and compiled form."""
        row = self.sql.one(
            "SELECT source, compiled FROM program_versions WHERE version = ?", (version,)
        )
        if row is None:
            raise NotFound(
                f"no programme version {version}: `peakpilot program versions` lists them"
            )
        return str(row[0]), str(row[1])


__all__ = ["ProgramVersion", "Programs", "StoredProgram"]
