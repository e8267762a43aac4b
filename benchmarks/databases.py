"""Where the scratch databases come from: SQLite files in the run's temporary folder,
and PostgreSQL databases created (and always dropped) through an admin URL.

Seeding is slow and never timed, so a seeded database is made once and copied for each
repetition: an SQLite file is checkpointed (its WAL folded in) and copied; a PostgreSQL
database is cloned with ``CREATE DATABASE ... TEMPLATE``.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PREFIX = "peakpilot_bench_"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so that the file alone is the whole database."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def copy_sqlite(source: Path, target: Path) -> Path:
    """A copy of a closed, checkpointed database file (see :func:`checkpoint`)."""
    remove_sqlite(target)
    shutil.copyfile(source, target)
    return target


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".daemon.lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def conninfo(url: str) -> str:
    """The libpq form of an SQLAlchemy URL, for psycopg itself."""
    parsed = sa.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PostgresServer:
    """Creates and drops the benchmark's own databases on one server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.admin = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )

    def version(self) -> str:
        with self.admin.connect() as connection:
            return str(connection.exec_driver_sql("SHOW server_version").scalar_one())

    def url(self, name: str) -> str:
        return sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def create(self, label: str, template: str | None = None) -> str:
        """A new database (a clone of ``template``, a database name, when given); its name."""
        name = f"{PREFIX}{label}_{secrets.token_hex(4)}"
        clone = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{clone}')
        return name

    def clone(self, label: str, template: str) -> str:
        """A copy of the seeded database ``template``; retried while a straggling
        connection (autovacuum) still holds the template."""
        for attempt in range(20):
            try:
                return self.create(label, template=template)
            except Exception as error:
                if "being accessed by other users" not in str(error) or attempt == 19:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, label: str, template: str | None = None) -> Iterator[str]:
        """A database for the block (its name), dropped after it whatever happens."""
        name = self.create(label, template)
        try:
            yield name
        finally:
            self.drop(name)

    def close(self) -> None:
        self.admin.dispose()


def postgres_reachable(admin_url: str) -> str | None:
    """None when the server answers, else why not (one line)."""
    engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except Exception as error:  # any failure to connect means "no server here"
        return str(error).splitlines()[0]
    finally:
        engine.dispose()
