"""Statements as SQL text on the driver's own cursor, the same text for every driver.

Every statement of the repositories is written once, with ``?`` placeholders, and run on
the DBAPI cursor of the transaction's connection: building ORM objects and expression
trees cost a transition more than the database's own work (docs/BENCHMARKS.md). This
module is what differs between the drivers: the paramstyle, how an instant is stored
(through SQLAlchemy's own type processors, so a value reads back as the declared column
type would return it), row locks, and a table of values for set-based statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.pool import PoolProxiedConnection

from peakpilot.workflow.store.errors import translate

SQLITE_MOST_PARAMS = 32_766  # SQLite's default limit, when the driver cannot tell
POSTGRESQL_MOST_PARAMS = 65_535

# called after each statement with its text and row count (a test's probe)
StatementProbe = Callable[[str, int], None]


class SqlDialect:
    """What differs between the drivers: placeholders, time values, row locks."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.name = dialect.name
        self.error: type[Exception] = dialect.loaded_dbapi.Error
        self.for_update = " FOR UPDATE" if dialect.name == "postgresql" else ""
        # the conversions of the tables' time columns (stored in UTC; SQLite keeps no offset)
        time_type = sa.DateTime(timezone=True).dialect_impl(dialect)
        self._time_in = time_type.bind_processor(dialect)
        self._time_out = time_type.result_processor(dialect, None)
        self._statements: dict[str, str] = {}

    def time_in(self, value: datetime) -> Any:
        """An aware instant as the driver stores it: in UTC."""
        utc = value.astimezone(UTC)
        return utc if self._time_in is None else self._time_in(utc)

    def time_out(self, value: Any) -> datetime:
        """A stored instant, aware and in UTC. (On every row a list reads, twice: SQLite's
        text goes straight through ``fromisoformat``, which reads the processor's
        format, rather than through the processor and a second check; the UTC offset is
        appended to the text, because ``replace(tzinfo=...)`` parses its keyword argument
        at several times the cost of the parse itself.)"""
        if type(value) is str:
            try:
                return datetime.fromisoformat(value + "+00:00")
            except ValueError:  # text stored with its own offset (written by another tool)
                return datetime.fromisoformat(value).astimezone(UTC)
        instant = value if self._time_out is None else self._time_out(value)
        assert isinstance(instant, datetime), "a NOT NULL time column"
        if instant.utcoffset() is None:
            return instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)

    def maybe_time_out(self, value: Any) -> datetime | None:
        return None if value is None else self.time_out(value)

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders, in the driver's own paramstyle (cached)."""
        statement = self._statements.get(text)
        if statement is None:
            statement = text if self.dialect.paramstyle == "qmark" else text.replace("?", "%s")
            self._statements[text] = statement
        return statement

    def values_table(
        self,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        most_params: int,
    ) -> Iterator[tuple[str, list[Any]]]:
        """``rows`` as a derived table with the named, typed ``columns``
        (``FROM <table> AS v``), with its parameters: one statement then takes thousands
        of rows, where ``executemany`` would run one statement per row.

        PostgreSQL gets one array per column (``unnest``), whatever the number of rows;
        SQLite a ``VALUES`` list, split so that no part binds more than ``most_params``
        parameters (the driver's limit). Not a ``WITH`` clause: Python's ``sqlite3``
        reports no row count for a statement that does not start with its verb."""
        names = [name for name, _ in columns]
        if self.name == "postgresql":
            # %b: psycopg sends the arrays in binary, which took 40% less time than text
            # for a chunk's 5,000 rows (no quoting by the client, no parsing by the server)
            arrays = ", ".join(f"%b::{type_}[]" for _, type_ in columns)
            params = [list(column) for column in zip(*rows, strict=True)] if rows else []
            yield (
                f"(SELECT * FROM unnest({arrays}) AS u ({', '.join(names)}))",
                params or [[] for _ in columns],
            )
            return
        select = ", ".join(f"column{i} AS {name}" for i, name in enumerate(names, 1))
        row_text = f"({', '.join('?' * len(columns))})"
        per_part = max(1, most_params // len(columns))
        for start in range(0, len(rows), per_part):
            part = rows[start : start + per_part]
            yield (
                f"(SELECT {select} FROM (VALUES {', '.join([row_text] * len(part))}))",
                [value for row in part for value in row],
            )


class Statements:
    """The statements of one transaction, on the connection that holds it. Driver errors
    leave here already translated into peakpilot's hierarchy."""

    def __init__(
        self,
        connection: PoolProxiedConnection,
        dialect: SqlDialect,
        *,
        most_params: int | None = None,
        probe: StatementProbe | None = None,
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        self.cursor: DBAPICursor = connection.cursor()
        self._most_params = most_params
        self._probe = probe

    def execute(self, text: str, params: Sequence[Any] = ()) -> DBAPICursor:
        """Run one statement and return the cursor holding its rows."""
        try:
            self.cursor.execute(self.dialect.sql(text), params)
        except self.dialect.error as error:
            raise translate(error, self.dialect, self.connection, self.cursor) from error
        if self._probe is not None:
            self._probe(text, self.cursor.rowcount)
        return self.cursor

    def execute_many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each of ``rows``. A single row is a plain execute:
        psycopg's ``executemany`` enters pipeline mode and waits for its sync, which cost a
        transition on PostgreSQL a fifth of its time for its one audit record and one
        notice."""
        if len(rows) <= 1:
            for row in rows:
                self.execute(text, row)
            return
        try:
            self.cursor.executemany(self.dialect.sql(text), rows)
        except self.dialect.error as error:
            raise translate(error, self.dialect, self.connection, self.cursor) from error

    def stream(
        self, text: str, params: Sequence[Any] = (), *, size: int
    ) -> Iterator[Sequence[Any]]:
        """The rows of one statement, fetched ``size`` at a time on a cursor of their own
        (on PostgreSQL a server-side one, so memory stays flat however many rows)."""
        driver: Any = self.connection.driver_connection
        if self.dialect.name == "postgresql":
            cursor = driver.cursor(name="peakpilot_stream")
        else:
            cursor = self.connection.cursor()
        try:
            try:
                cursor.execute(self.dialect.sql(text), params)
            except self.dialect.error as error:
                raise translate(error, self.dialect, self.connection, cursor) from error
            if self._probe is not None:
                self._probe(text, cursor.rowcount)
            while rows := cursor.fetchmany(size):
                yield from rows
        finally:
            cursor.close()

    def one(self, text: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        return self.execute(text, params).fetchone()

    def all(self, text: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        return self.execute(text, params).fetchall()

    def count(self, text: str, params: Sequence[Any] = ()) -> int:
        row = self.one(text, params)
        assert row is not None, "count(*) always answers"
        return int(row[0])

    def values_table(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, list[Any]]]:
        """:meth:`SqlDialect.values_table` within this connection's parameter limit."""
        return self.dialect.values_table(columns, rows, most_params=self.most_params)

    @cached_property
    def most_params(self) -> int:
        """The most parameters one statement may bind: SQLite's limit (what the driver
        reports), PostgreSQL's 65,535; lower when the Database was told so."""
        if self._most_params is not None:
            return self._most_params
        getlimit = getattr(self.connection.driver_connection, "getlimit", None)
        if self.dialect.name == "sqlite":
            if getlimit is None:
                return SQLITE_MOST_PARAMS
            return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return POSTGRESQL_MOST_PARAMS

    def close(self) -> None:
        self.cursor.close()


def placeholders(count: int) -> str:
    """``?, ?, ?`` for ``count`` values."""
    return ", ".join("?" * count)


__all__ = ["SqlDialect", "StatementProbe", "Statements", "placeholders"]
