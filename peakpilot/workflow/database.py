"""Connections and transactions: SQLite tuned for safe concurrent writers, PostgreSQL as is.

Every unit of work is one transaction from :meth:`Database.write` or :meth:`Database.read`.
On SQLite a writer starts with ``BEGIN IMMEDIATE`` so it holds the write lock before it
reads what it will change (a deferred BEGIN lets two writers read the same quota and then
fail or both succeed); readers keep a deferred BEGIN and, thanks to WAL, never wait.
On PostgreSQL a reader runs at REPEATABLE READ, read only, so that it sees one state.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import PoolProxiedConnection

from peakpilot.errors import InvalidInput, Unavailable
from peakpilot.workflow.reads import Reads
from peakpilot.workflow.sql import SqlDialect

if TYPE_CHECKING:
    from sqlmodel import Session

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "peakpilot_write"
_PREPARED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def masked(url: sa.URL | str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<invalid database URL>"


def create_engine(url: str) -> sa.Engine:
    """An SQLAlchemy engine for ``url`` (``sqlite:///file`` or ``postgresql+psycopg://``)."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise InvalidInput(
            f"cannot read database URL {url!r}: write sqlite:///FILE or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise InvalidInput(f"cannot use database URL {masked(parsed)}: {error}") from None
    return engine


def prepare_sqlite(engine: sa.Engine) -> None:
    """Make an SQLite engine safe for several writers (idempotent).

    The driver's own transaction handling is switched off so that the ``begin`` listener
    decides: ``BEGIN IMMEDIATE`` for writers, a deferred ``BEGIN`` for readers.
    """
    if engine.dialect.name != "sqlite" or engine in _PREPARED:
        return
    _PREPARED.add(engine)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Hands out transactions on one SQLAlchemy engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.sql = SqlDialect(engine.dialect)
        prepare_sqlite(engine)
        self._own = threading.local()  # each thread's long-lived connection
        self._held: list[PoolProxiedConnection] = []
        self._held_lock = threading.Lock()

    def transact(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """Run ``work`` in one write transaction on this thread's own connection.

        The hot path's unit of work: checking a connection out of the pool and starting
        SQLAlchemy's transaction around it cost as much as the durable commit itself, so
        each thread keeps one connection for the Engine's life and runs the transaction on
        the driver. A connection found lost before the commit (a restarted server, a
        terminated backend) is replaced and ``work`` runs once more: nothing of it was
        kept, and ``work`` has no effect outside the transaction."""
        for attempt in (1, 2):
            connection = self._own_connection()
            committing = False
            try:
                if self.dialect == "sqlite":
                    self._driver(connection, "BEGIN IMMEDIATE")
                result = work(connection)
                committing = True
                self._driver(connection, "COMMIT")
                return result
            except exc.DBAPIError as error:
                self._rollback(connection)
                if error.connection_invalidated and not committing and attempt == 1:
                    continue
                raise self._failure(error) from None
            except BaseException:
                self._rollback(connection)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _driver(self, connection: PoolProxiedConnection, command: str) -> None:
        try:
            if command == "COMMIT":
                connection.commit()
            else:
                connection.driver_connection.execute(command)  # type: ignore[union-attr]
        except self.sql.error as error:
            raise self.sql.translated(command, (), error, connection) from error

    def _rollback(self, connection: PoolProxiedConnection) -> None:
        if not connection.is_valid:
            self._drop_own_connection(connection)
            return
        try:
            connection.rollback()
        except self.sql.error as error:  # the connection died meanwhile
            connection.invalidate(error)
            self._drop_own_connection(connection)

    def _own_connection(self) -> PoolProxiedConnection:
        connection: PoolProxiedConnection | None = getattr(self._own, "connection", None)
        if connection is None:
            try:
                connection = self.engine.raw_connection()
            except exc.DBAPIError as error:
                raise self.unreachable(error) from None
            self._own.connection = connection
            with self._held_lock:
                self._held.append(connection)
        return connection

    def _drop_own_connection(self, connection: PoolProxiedConnection) -> None:
        self._own.connection = None
        with self._held_lock:
            self._held.remove(connection)
        connection.close()

    def close(self) -> None:
        """Give every thread's own connection back to the pool."""
        with self._held_lock:
            held, self._held = self._held, []
        for connection in held:
            connection.close()
        self._own = threading.local()

    def _failure(self, error: exc.DBAPIError) -> Exception:
        """The clerk's error for a database failure, or ``error`` itself."""
        if _is_disconnect(error):
            return self.unreachable(error)
        if isinstance(error, exc.OperationalError) and "database is locked" in str(error.orig):
            return Unavailable(
                f"database {masked(self.engine.url)} stayed locked by another writer for "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s: try again"
            )
        return error

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction: committed on success, rolled back on any error."""
        with self._transaction(write=True) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (rolled back at the end; nothing it did is kept)."""
        with self._transaction(write=False) as session:
            yield session

    @contextmanager
    def reads(self) -> Iterator[Reads]:
        """A read-only transaction for SQL-text reads only: the quick commands' path,
        which never imports the ORM."""
        with self._connection(write=False) as (connection, _):
            yield Reads(connection.connection, self.sql)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        from sqlmodel import Session  # the ORM only for the units of work that use it

        with (
            self._connection(write=write) as (connection, transaction),
            Session(bind=connection, autoflush=False, expire_on_commit=False) as session,
        ):
            yield session
            session.flush()
            if not write:
                transaction.rollback()

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[tuple[sa.Connection, sa.RootTransaction]]:
        """A connection in a transaction, committed at the end unless rolled back; the
        driver's errors become the clerk's (an unreachable database, a lock held)."""
        try:
            connection = self.engine.connect()
        except exc.DBAPIError as error:
            raise self.unreachable(error) from None
        try:
            if write:
                connection.execution_options(**{_WRITE: True})
            elif self.dialect == "postgresql":
                # One snapshot for the whole read: `show` and `audit verify` run several
                # statements, and READ COMMITTED would let a commit land between them.
                connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            with connection.begin() as transaction:
                yield connection, transaction
                if not write and transaction.is_active:
                    transaction.rollback()
        except exc.DBAPIError as error:
            failure = self._failure(error)
            if failure is error:
                raise
            raise failure from None
        finally:
            connection.close()

    def unreachable(self, error: BaseException) -> Unavailable:
        detail = str(getattr(error, "orig", error)).strip().splitlines()
        return Unavailable(
            f"cannot reach database {masked(self.engine.url)}: {detail[0] if detail else error}"
        )


def _is_disconnect(error: exc.DBAPIError) -> bool:
    return bool(error.connection_invalidated) or "could not connect" in str(error.orig)
