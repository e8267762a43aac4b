"""Connections and transactions: the one way peakpilot reaches its database.

Every unit of work is one transaction from :meth:`Database.transaction` (or
:meth:`Database.run`, which runs it again once when the connection turned out to be
lost before anything committed). Each transaction checks a connection out of the pool
and gives it back at its end, so no thread ever holds one between calls, however many
threads call. On SQLite a writer starts with ``BEGIN IMMEDIATE`` so it holds the write
lock before it reads what it will change (a deferred BEGIN lets two writers read the
same quota and then fail or both succeed); readers keep a deferred BEGIN and, thanks to
WAL, never wait. On PostgreSQL a reader runs at REPEATABLE READ, read only, so that it
sees one state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import asbool

from peakpilot.errors import (
    ConnectionLost,
    DatabaseLocked,
    NotFound,
    PeakpilotError,
    Unavailable,
    UsageError,
)
from peakpilot.workflow.store.driver import SqlDialect, StatementProbe, Statements
from peakpilot.workflow.store.errors import first_line, translate
from peakpilot.workflow.store.transaction import LapseProbe, Transaction

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
SUPPORTED_URLS = (
    "sqlite:///FILE (a path from the working folder; sqlite:////FILE from the root) or "
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (also written postgres:// or "
    "postgresql+psycopg://)"
)
# the drivers the store is written for (pysqlite, psycopg 3), by how a URL may name them;
# postgres:// is libpq's other spelling, which SQLAlchemy no longer reads
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}
_PREPARED = "peakpilot_prepared"  # marks a DBAPI connection whose PRAGMAs are set


@dataclass(frozen=True, slots=True)
class StoreHooks:
    """Explicit seams for tests that inject faults or watch statements; an embedding
    backend passes none.

    ``statement`` is called after every statement with its text and row count;
    ``after_lapse_read`` inside a deadline's lapse chunk, after its locking read, with
    the chunk's transaction (a test changes rows there as a writer the lock did not stop
    would); ``most_params`` lowers the parameters one statement may bind."""

    statement: StatementProbe | None = None
    after_lapse_read: LapseProbe | None = None
    most_params: int | None = None


def masked(url: sa.URL | str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<invalid database URL>"


def create_engine(url: str) -> sa.Engine:
    """An SQLAlchemy engine for ``url``, one of :data:`SUPPORTED_URLS`.

    Raises:
        UsageError: a URL that cannot be read, or of a kind peakpilot's store is not
            written for (another database, another driver), listing the forms it takes.
    """
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(
            f"cannot read database URL {_hide_password(url)!r}: write {SUPPORTED_URLS}"
        ) from None
    driver = _DRIVERS.get(parsed.drivername.lower())
    if driver is None:
        raise UsageError(
            f"database URL {masked(parsed)} is of a kind peakpilot does not support: "
            f"write {SUPPORTED_URLS}"
        )
    parsed = parsed.set(drivername=driver)
    try:
        # No pool_pre_ping: a ping at every checkout cost each PostgreSQL transaction a
        # round trip (~24 us a fire). A connection that died while pooled (a restarted
        # server) is found by the transaction's first statement instead, before anything
        # was written, and Database.run runs the work again on another connection.
        return sa.create_engine(parsed)
    except (exc.ArgumentError, TypeError, ValueError) as error:  # e.g. ?timeout=abc
        raise UsageError(f"cannot use database URL {masked(parsed)}: {error}") from None
    except ImportError as error:  # an installation without psycopg
        raise Unavailable(
            f"cannot use database URL {masked(parsed)}: its driver is not installed ({error})"
        ) from None


def _hide_password(url: str) -> str:
    """``url`` (one SQLAlchemy could not read) with anything like a password hidden."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


class Database:
    """Hands out transactions on one SQLAlchemy engine.

    ``owned``: the Database disposes of the engine on :meth:`close` (not an engine the
    embedding backend passed in). The engine itself is never changed (no listeners, no
    options): what a transaction needs of a connection is set when it is checked out
    and put back when it is returned, so a backend's own use of its engine sees its
    connections as it configured them. The exceptions are SQLite PRAGMAs set once per
    connection (busy_timeout, synchronous, foreign_keys; WAL, which belongs to the file)."""

    def __init__(
        self, engine: sa.Engine, *, owned: bool = False, hooks: StoreHooks | None = None
    ) -> None:
        self.engine = engine
        self.url = masked(engine.url)
        self.dialect = engine.dialect.name
        self.sql = SqlDialect(engine.dialect)
        self._owned = owned
        self._hooks = hooks or StoreHooks()
        self._seen = False  # the database was found there (see require)

    def exists(self) -> bool:
        """Whether the database is there to read: an SQLite file that does not exist is
        not (connecting would create it); a server's database is assumed to be."""
        path = sqlite_file(self.engine.url)
        return path is None or path.exists()

    def require(self) -> None:
        """Refuse to go on with a database that is not there: only ``init`` creates one.

        Every transaction but ``init``'s checks first, since connecting to an SQLite file
        that does not exist creates it: a read, or a command refused for want of a
        programme, would leave an empty database (and its ``-wal`` and ``-shm`` files)
        behind. Once the file was seen, it is not looked for again.

        Raises:
            NotFound: an SQLite file that does not exist (not initialised).
        """
        if self._seen:
            return
        path = sqlite_file(self.engine.url)
        if path is not None and not path.exists():
            raise NotFound(
                f"database {self.url} is not initialised: there is no file "
                f"{path.absolute()}; run `peakpilot init` first"
            )
        self._seen = True

    def close(self) -> None:
        """Dispose of the engine's pool if this Database created the engine."""
        if self._owned:
            self.engine.dispose()

    def run(self, work: Callable[[Transaction], T], *, write: bool = True) -> T:
        """``work`` in one transaction; run again on another connection when the
        connection was found lost before the commit (nothing of the earlier run was kept,
        and ``work`` has no effect outside its transaction).

        A lost connection is dropped from the pool, but a restarted server cut every
        idle connection of the pool at once: the work is tried once more for each
        connection that was idle in the pool when the first loss was found, and once on
        a new one, and no more."""
        retries: int | None = None
        while True:
            try:
                with self.transaction(write=write) as tx:
                    return work(tx)
            except ConnectionLost as lost:
                if not lost.before_commit:
                    raise
                if retries is None:
                    retries = self._idle_connections() + 1
                if retries == 0:
                    raise
                retries -= 1

    def _idle_connections(self) -> int:
        """How many connections wait in the pool (0 for a pool that keeps none)."""
        checkedin = getattr(self.engine.pool, "checkedin", None)
        return int(checkedin()) if callable(checkedin) else 0

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Transaction]:
        """One transaction on a pooled connection: committed when the block ends (a
        reader's is rolled back: nothing it did is kept), rolled back on any error.
        NotFound when the database is not there (:meth:`require`): nothing is created."""
        self.require()
        connection = self._checkout()
        statements = None
        committing = False
        try:
            self._begin(connection, write=write)
            statements = self._statements(connection)
            yield Transaction(statements, self._hooks.after_lapse_read)
            committing = True
            self._end(connection, commit=write)
        except self.sql.error as error:
            raise self._lost_or(translate(error, self.sql, connection), committing) from error
        except ConnectionLost as lost:
            raise self._lost_or(lost, committing) from lost
        finally:
            if statements is not None:
                statements.close()
            self._give_back(connection)

    @contextmanager
    def schema_transaction(self) -> Iterator[tuple[sa.Connection, Transaction]]:
        """A write transaction on an SQLAlchemy connection, for ``init``: Alembic's
        migrations run on the connection, the repositories on the same transaction."""
        try:
            with self.engine.connect() as connection:
                raw = connection.connection
                if self.dialect == "sqlite":
                    _prepare_sqlite(raw)
                    # Python's sqlite3 would commit each DDL statement on its own
                    raw.driver_connection.isolation_level = None  # type: ignore[union-attr]
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    # two concurrent inits must not both create the schema
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7209321)")
                statements = self._statements(raw)
                try:
                    yield connection, Transaction(statements, self._hooks.after_lapse_read)
                    connection.commit()
                finally:
                    statements.close()
                    if self.dialect == "sqlite":
                        connection.rollback()  # a no-op after the commit
                        raw.driver_connection.isolation_level = ""  # type: ignore[union-attr]
        except exc.DBAPIError as error:
            raise self._lost_or(translate(error.orig or error, self.sql), False) from error

    def _statements(self, connection: PoolProxiedConnection) -> Statements:
        hooks = self._hooks
        return Statements(
            connection, self.sql, most_params=hooks.most_params, probe=hooks.statement
        )

    def _checkout(self) -> PoolProxiedConnection:
        try:
            connection = self.engine.raw_connection()
        except exc.TimeoutError:
            pool = self.engine.pool
            raise Unavailable(
                f"every connection to database {self.url} stayed busy ({pool.status()}): "
                "try again, or give the engine a larger pool"
            ) from None
        except (exc.DBAPIError, self.sql.error) as error:  # the pool does not wrap the driver's
            raise self.unreachable(error) from None
        if self.dialect == "sqlite":
            try:
                _prepare_sqlite(connection)
            except self.sql.error as error:
                connection.invalidate(error)
                raise self.unreachable(error) from None
        return connection

    def _begin(self, connection: PoolProxiedConnection, *, write: bool) -> None:
        driver: Any = connection.driver_connection
        try:
            if self.dialect == "sqlite":
                # The driver's own transaction handling is off for the transaction, so
                # that it starts with the BEGIN chosen here.
                driver.isolation_level = None
                driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif self.dialect == "postgresql" and not write:
                # One snapshot for a whole read: `show` and `audit verify` run several
                # statements, and READ COMMITTED would let a commit land between them.
                # psycopg applies both when it opens the transaction; no round trip here.
                driver.read_only = True
                driver.isolation_level = _repeatable_read()
        except self.sql.error as error:
            raise translate(error, self.sql, connection) from error

    def _end(self, connection: PoolProxiedConnection, *, commit: bool) -> None:
        """Commit the transaction (a writer's), or roll it back (a reader's)."""
        if commit:
            connection.commit()
        else:
            connection.rollback()

    def _give_back(self, connection: PoolProxiedConnection) -> None:
        """Return the connection to the pool (which rolls back whatever is left open) as
        it was checked out, or drop it when it is no longer usable."""
        driver: Any = connection.driver_connection
        try:
            if driver is not None and connection.is_valid:
                if self.dialect == "sqlite":
                    if driver.in_transaction:
                        driver.rollback()
                    driver.isolation_level = ""  # the driver's default
                elif driver.read_only or driver.isolation_level is not None:
                    driver.rollback()
                    driver.read_only = driver.isolation_level = None  # the server's defaults
            connection.close()
        except self.sql.error as error:  # the connection died meanwhile
            connection.invalidate(error)

    def _lost_or(self, error: PeakpilotError, committing: bool) -> PeakpilotError:
        """The clerk's words for a failure, naming the database where it helps."""
        if isinstance(error, ConnectionLost):
            return ConnectionLost(
                f"cannot reach database {self.url}: {error}", before_commit=not committing
            )
        if isinstance(error, DatabaseLocked):
            return DatabaseLocked(
                f"database {self.url} stayed locked by another writer for "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s: try again"
            )
        return error

    def unreachable(self, error: BaseException) -> Unavailable:
        return Unavailable(f"cannot reach database {self.url}: {first_line(error)}")


def sqlite_file(url: sa.URL) -> Path | None:
    """The file an SQLite URL names (None: another database, or SQLite in memory), also
    when it is written as an SQLite URI (``sqlite:///file:NAME?mode=ro&uri=true``)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    uri = url.query.get("uri")
    if not (isinstance(uri, str) and asbool(uri)):  # read as pysqlite reads it
        return Path(database)
    parts = urlsplit(database)  # file:NAME or file:///PATH; its parameters are url.query's
    if url.query.get("mode") == "memory" or parts.path in ("", ":memory:"):
        return None
    return Path(unquote(parts.path))


def _prepare_sqlite(connection: PoolProxiedConnection) -> None:
    """Once per SQLite connection: wait for the write lock rather than fail at once,
    WAL (readers never wait for a writer), durable commits, foreign keys enforced."""
    if connection.info.get(_PREPARED):
        return
    cursor = connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()
    connection.info[_PREPARED] = True


def _repeatable_read() -> Any:
    from psycopg import IsolationLevel

    return IsolationLevel.REPEATABLE_READ


__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "SUPPORTED_URLS",
    "Database",
    "StoreHooks",
    "create_engine",
    "masked",
    "sqlite_file",
]
