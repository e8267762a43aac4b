"""What differs between the database drivers, for statements written as SQL text.

Every statement is written once with ``?`` placeholders and run on the driver's own
cursor; this turns it into the driver's paramstyle, converts the tables' time values the
way SQLAlchemy's column types do, and translates the driver's errors into SQLAlchemy's,
so that the SQL-text paths and the ORM paths raise and store the same things.
"""

from __future__ import annotations

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

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders, in the driver's own paramstyle (cached)."""
        statement = self._statements.get(text)
        if statement is None:
            statement = text if self.dialect.paramstyle == "qmark" else text.replace("?", "%s")
            self._statements[text] = statement
        return statement
