"""What differs between the database drivers, for statements written as SQL text.

Every statement is written once with ``?`` placeholders and run on the driver's own
cursor; this turns it into the driver's paramstyle, converts the tables' time values the
way SQLAlchemy's column types do, and translates the driver's errors into SQLAlchemy's,
so that the SQL-text paths and the ORM paths raise and store the same things.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.pool import PoolProxiedConnection


class SqlDialect:
    """What differs between the drivers: placeholders, time values, row locks, errors."""

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
        """A stored instant, aware and in UTC."""
        instant = value if self._time_out is None else self._time_out(value)
        assert isinstance(instant, datetime)  # the time columns are NOT NULL
        if instant.utcoffset() is None:
            return instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)

    def translated(
        self,
        text: str,
        params: Any,
        error: Exception,
        connection: PoolProxiedConnection,
        cursor: DBAPICursor | None = None,
    ) -> exc.DBAPIError:
        """SQLAlchemy's exception for a driver's ``error`` (what the ORM path raises too);
        a connection found lost is invalidated, so the pool never hands it out again."""
        disconnect = self.dialect.is_disconnect(
            error,  # type: ignore[arg-type]  # a DBAPI error, typed by the driver
            connection.driver_connection,
            cursor,
        )
        if disconnect:
            connection.invalidate(error)
        translated = exc.DBAPIError.instance(
            text, params, error, self.error, connection_invalidated=disconnect, dialect=self.dialect
        )
        assert isinstance(translated, exc.DBAPIError)  # the driver's errors all are
        return translated

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

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders, in the driver's own paramstyle (cached)."""
        statement = self._statements.get(text)
        if statement is None:
            statement = text if self.dialect.paramstyle == "qmark" else text.replace("?", "%s")
            self._statements[text] = statement
        return statement
