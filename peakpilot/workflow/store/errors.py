"""The one adapter from database drivers' errors to peakpilot's hierarchy.

Decided by what the drivers report as codes, never by message text: PostgreSQL's
SQLSTATE (psycopg's ``sqlstate``) and SQLite's extended result code name (``sqlite3``'s
``sqlite_errorname``), and the dialect's own test for a lost connection. A repository
that knows what a unique key stands for catches :class:`UniqueViolation` and raises the
rule's refusal instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peakpilot.errors import (
    Conflict,
    ConnectionLost,
    DatabaseLocked,
    PeakpilotError,
    StoreError,
    UniqueViolation,
)

if TYPE_CHECKING:
    from sqlalchemy.pool import PoolProxiedConnection

    from peakpilot.workflow.store.driver import SqlDialect

CONCURRENT = "another writer changed the same records at the same time: try again"
LOCKED = "the database stayed locked by another writer past its busy timeout: try again"

_SQLITE_LOCKED = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
_SQLITE_PRIMARY_KEY = "SQLITE_CONSTRAINT_PRIMARYKEY"
_SQLITE_UNIQUE = frozenset({_SQLITE_PRIMARY_KEY, "SQLITE_CONSTRAINT_UNIQUE"})
_PG_UNIQUE = "23505"
_PG_CONCURRENT = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_PG_LOCKED = frozenset({"55P03", "57014"})  # lock not available, statement timeout


def translate(
    error: Exception,
    dialect: SqlDialect,
    connection: PoolProxiedConnection | None = None,
    cursor: Any = None,
) -> PeakpilotError:
    """peakpilot's error for a driver's ``error``; a connection found lost is invalidated,
    so that the pool never hands it out again."""
    driver_connection = None if connection is None else connection.driver_connection
    if dialect.dialect.is_disconnect(error, driver_connection, cursor):  # type: ignore[arg-type]
        if connection is not None:
            connection.invalidate(error)
        return ConnectionLost(f"the database connection was lost: {first_line(error)}")
    code = getattr(error, "sqlstate", None) or getattr(error, "sqlite_errorname", None) or ""
    if code in _SQLITE_UNIQUE or code == _PG_UNIQUE:
        return UniqueViolation(CONCURRENT, primary_key=_is_primary_key(error, code))
    if code.startswith(("23", "SQLITE_CONSTRAINT")) or code in _PG_CONCURRENT:
        return Conflict(CONCURRENT)
    if code in _SQLITE_LOCKED or code in _PG_LOCKED:
        return DatabaseLocked(LOCKED)
    if code.startswith("08"):  # connection exceptions the dialect did not call a disconnect
        return ConnectionLost(f"the database connection failed: {first_line(error)}")
    return StoreError(
        f"the database refused a statement ({code or type(error).__name__}): {first_line(error)}"
    )


def _is_primary_key(error: Exception, code: str) -> bool:
    if code == _SQLITE_PRIMARY_KEY:
        return True
    diag = getattr(error, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    return constraint.endswith("_pkey")


def first_line(error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = ["CONCURRENT", "LOCKED", "first_line", "translate"]
