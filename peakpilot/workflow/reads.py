"""Reads as SQL text on the driver's cursor, importing nothing but SQLAlchemy's core.

:class:`Reads` is the base of every unit of work's statements
(:class:`~peakpilot.workflow.records.Records` adds a transition's writes to it). Its own
queries, the batches and the board, need only the stored tables and the
:class:`~peakpilot.config.facts.ProgramFacts` stored by ``init``, so that a read-only
command can answer them without loading the engine (the programme's validation, the ORM,
Jinja2 and the state machine cost a short process twice what SQLAlchemy itself does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.pool import PoolProxiedConnection

from peakpilot.config.facts import ProgramFacts
from peakpilot.errors import NotFound
from peakpilot.workflow.snapshots import Board, ProvinceBoard
from peakpilot.workflow.sql import SqlDialect

OPEN, CLOSED = "open", "closed"
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # what a batch id may be
BATCH_COLUMNS = "id, deadline_at, status, position"


def is_missing_table(error: exc.DBAPIError) -> bool:
    """Whether ``error`` says a table does not exist (SQLite's or PostgreSQL's words):
    a database nobody has initialised yet."""
    return "no such table" in str(error) or "does not exist" in str(error)


def no_programme(database: str) -> NotFound:
    return NotFound(f"database {database} holds no programme: run `peakpilot init` first")


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    deadline_at: datetime
    status: str
    position: int


class Reads:
    """Statements of one transaction, on the connection that holds it."""

    def __init__(self, connection: PoolProxiedConnection, dialect: SqlDialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def execute(self, text: str, params: Sequence[Any] = ()) -> DBAPICursor:
        """Run one statement; driver errors become SQLAlchemy's, as everywhere else."""
        try:
            self.cursor.execute(self.dialect.sql(text), params)
        except self.dialect.error as error:
            raise self._translated(text, params, error) from error
        return self.cursor

    def execute_many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each of ``rows``. A single row is a plain execute:
        psycopg's ``executemany`` enters pipeline mode and waits for its sync, which cost a
        transition on PostgreSQL a fifth of its time for its one audit record and one
        notice."""
        if not rows:
            return
        if len(rows) == 1:
            self.execute(text, rows[0])
            return
        try:
            self.cursor.executemany(self.dialect.sql(text), rows)
        except self.dialect.error as error:
            raise self._translated(text, rows, error) from error

    @cached_property
    def cursor(self) -> DBAPICursor:
        """One cursor for the transaction's statements."""
        return self.connection.cursor()

    def _translated(self, text: str, params: Any, error: Exception) -> exc.DBAPIError:
        return self.dialect.translated(text, params, error, self.connection, self.cursor)

    # -- the programme ------------------------------------------------------------------

    def program_facts(self, database: str) -> ProgramFacts | None:
        """The stored programme's facts; None when ``init`` stored the programme before
        they were kept (the caller reads the programme's text instead). NotFound, naming
        ``database``, when the database holds no programme."""
        try:
            # every column: a schema older than the facts column (0005) has none to name
            cursor = self.execute("SELECT * FROM programs")
            row = cursor.fetchone()
        except (exc.OperationalError, exc.ProgrammingError) as error:
            if not is_missing_table(error):
                raise
            row = None
        if row is None:
            raise no_programme(database)
        columns = [column[0] for column in cursor.description]
        facts = row[columns.index("facts")] if "facts" in columns else None
        return None if facts is None else ProgramFacts.from_json(facts)

    # -- batches and quotas -------------------------------------------------------------

    def batch(self, batch_id: str) -> BatchRecord:
        row = None
        if isinstance(batch_id, str) and BATCH_ID.fullmatch(batch_id):
            row = self.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return self._batch(row)

    def newest_batch(self, *, open_only: bool = False) -> BatchRecord | None:
        where = " WHERE status = ?" if open_only else ""
        row = self.execute(
            f"SELECT {BATCH_COLUMNS} FROM batches{where} ORDER BY position DESC LIMIT 1",
            (OPEN,) if open_only else (),
        ).fetchone()
        return None if row is None else self._batch(row)

    def _batch(self, row: Sequence[Any]) -> BatchRecord:
        return BatchRecord(row[0], self.dialect.time_out(row[1]), row[2], row[3])

    def quotas(self, batch_id: str) -> dict[str, int]:
        rows = self.execute(
            "SELECT province, quota FROM quota_allocations WHERE batch_id = ?", (batch_id,)
        )
        return dict(rows.fetchall())

    def state_counts(self, batch_id: str) -> dict[str, dict[str, int]]:
        """Nominations of the batch per province and state."""
        rows = self.execute(
            "SELECT province, state, COUNT(*) FROM nominations WHERE batch_id = ? "
            "GROUP BY province, state",
            (batch_id,),
        )
        counts: dict[str, dict[str, int]] = {}
        for province, state, count in rows.fetchall():
            counts.setdefault(province, {})[state] = count
        return counts

    def board(self, facts: ProgramFacts, batch_id: str | None = None) -> Board:
        """Per province of a batch (the newest when ``None``): quota, used, left, and the
        count per state, in the programme's orders; provinces with neither a quota nor a
        nomination in the batch are left out."""
        batch = self.batch(batch_id) if batch_id is not None else self.newest_batch()
        if batch is None:
            raise NotFound("no batch exists yet: run `peakpilot init`")
        quotas = self.quotas(batch.id)
        counts = self.state_counts(batch.id)
        provinces = []
        for slug in facts.provinces:
            if slug not in quotas and slug not in counts:
                continue
            states = {state: counts.get(slug, {}).get(state, 0) for state in facts.states}
            used = sum(states[state] for state in facts.quota_counts)
            quota = quotas.get(slug, 0)
            provinces.append(ProvinceBoard(slug, quota, used, max(quota - used, 0), states))
        return Board(
            batch=batch.id,
            deadline=batch.deadline_at.astimezone(facts.timezone),
            status=batch.status,
            provinces=tuple(provinces),
        )


__all__ = ["BATCH_ID", "CLOSED", "OPEN", "BatchRecord", "Reads"]
