"""Shared fixtures: real databases (an SQLite file, a fresh PostgreSQL database), a frozen
clock, an initialised Engine on each."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from peakpilot import Engine, FrozenClock

BEIJING = timezone(timedelta(hours=8))
BEFORE_DEADLINE = datetime(2023, 10, 20, 9, 0, tzinfo=BEIJING)
DEADLINE = datetime(2023, 11, 15, 0, 0, tzinfo=BEIJING)
ADMIN_URL = os.environ.get(
    "PEAKPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session", autouse=True)
def compiled_templates_kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI and daemon processes the tests start keep their compiled templates in one
    folder for the session, as an operator would with PEAKPILOT_TEMPLATE_CACHE_DIR:
    otherwise every `peakpilot init` would compile all of them again (about 0.3 s)."""
    previous = os.environ.get("PEAKPILOT_TEMPLATE_CACHE_DIR")
    os.environ["PEAKPILOT_TEMPLATE_CACHE_DIR"] = str(tmp_path_factory.mktemp("templates"))
    yield
    if previous is None:
        del os.environ["PEAKPILOT_TEMPLATE_CACHE_DIR"]
    else:
        os.environ["PEAKPILOT_TEMPLATE_CACHE_DIR"] = previous


def _postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    engine = sa.create_engine(ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except Exception as error:  # any failure to connect means "no server here"
        return f"no PostgreSQL at {ADMIN_URL}: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An autocommit engine on the server's maintenance database (to create and drop)."""
    why = _postgres_unavailable()
    if why is not None:
        if os.environ.get("PEAKPILOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PEAKPILOT_REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(why)
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"peakpilot_test_{secrets.token_hex(6)}"
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """The URL of a new SQLite file."""
    return f"sqlite:///{os.path.join(tmp_path, 'peakpilot.db')}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each contract test runs on an SQLite file and on a fresh PostgreSQL database."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def clock() -> FrozenClock:
    """Three weeks and a half before the 2023 deadline."""
    return FrozenClock(BEFORE_DEADLINE)


@pytest.fixture
def engine(db_url: str, clock: FrozenClock) -> Iterator[Engine]:
    """An Engine on an initialised database holding the shipped programme."""
    with Engine(db_url, clock=clock) as engine:
        engine.init()
        yield engine


# -- long runs -------------------------------------------------------------------------
#
# Long fault and load tests are always marked `slow`, so `pytest -m "not slow"` leaves
# them out. The default run (and CI) runs them shortened; PEAKPILOT_FULL_RUN=1 runs them
# at full size (the sizes each test's `full_run` picks), with 30 minutes each instead of
# the suite's 5.

FULL_RUN = os.environ.get("PEAKPILOT_FULL_RUN") == "1"
FULL_RUN_TIMEOUT = 1800


@pytest.fixture(scope="session")
def full_run() -> bool:
    """Whether a long (`slow`) test runs at full size: PEAKPILOT_FULL_RUN=1."""
    return FULL_RUN


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """At full size, a `slow` test without a timeout of its own gets the longer one."""
    if not FULL_RUN:
        return
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(FULL_RUN_TIMEOUT))
