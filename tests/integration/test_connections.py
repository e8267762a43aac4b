"""Connections come from the pool for one transaction and go back at its end: no thread
keeps one, so any number of short-lived threads calling the Engine never exhausts the
pool (it used to be pinned per thread, and the 16th thread got SQLAlchemy's TimeoutError).
Runs on an SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from peakpilot import Engine, Nomination, Unavailable

THREADS = 200


def test_two_hundred_short_lived_threads_each_firing_once_leak_no_connection(
    engine: Engine,
) -> None:
    nominations = [
        engine.nominate(
            "drc:hebei", province="hebei", kind="city", name=f"城市{index:03d}", level="prefecture"
        )
        for index in range(THREADS)
    ]
    results: list[Nomination] = []
    errors: list[BaseException] = []

    def fire_once(nomination_id: str) -> None:
        try:
            results.append(engine.fire(nomination_id, "submit_for_approval", "drc:hebei"))
        except BaseException as error:  # the test reports every failure, of any kind
            errors.append(error)

    threads = [threading.Thread(target=fire_once, args=(n.id,)) for n in nominations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(n.id for n in results) == sorted(n.id for n in nominations)
    assert {n.state for n in engine.list()} == {"provincial_approval"}
    pool = engine.database.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    assert pool.checkedout() == 0  # every transaction gave its connection back


def test_an_exhausted_pool_is_the_clerks_error_not_sqlalchemys(engine: Engine) -> None:
    """A backend that holds every pooled connection itself gets peakpilot's Unavailable
    (exit 1, 'try again') from the Engine, never a foreign TimeoutError."""
    tight = sa.create_engine(
        engine.database.engine.url, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    try:
        with Engine(tight) as small:
            held = tight.raw_connection()  # the backend's own use of its pool
            try:
                with pytest.raises(Unavailable, match="stayed busy") as refused:
                    small.list()
                assert refused.value.exit_code == 1
            finally:
                held.close()
            assert small.list() == []
    finally:
        tight.dispose()
