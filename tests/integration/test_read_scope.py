"""Reads are scoped like writes (DESIGN 4), through the Python API: every read x every
kind of actor, on SQLite and PostgreSQL (the table is tests/read_scope.py).

A provincial actor (drc:P, gov:P) reads its own province only: another province's
nomination, material or notice is NotPermitted (4), a list is filtered to its province
(asking for another province by name is 4); ndrc and no actor read everything; an
unparsable actor is InvalidInput (5). No read, refused or not, writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from peakpilot import Engine, FrozenClock, PeakpilotError
from peakpilot.workflow.snapshots import to_jsonable
from tests.read_scope import (
    ACTORS,
    BACKENDS,
    READ_AT,
    READS,
    World,
    build,
    expected,
    module_database,
    rows,
)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, Engine]]:
    for url in module_database(request, tmp_path_factory):
        shared = build(url)
        with Engine(url, clock=FrozenClock(READ_AT)) as engine:
            yield shared, engine


@pytest.mark.parametrize("kind", ACTORS)
@pytest.mark.parametrize("name", READS)
def test_read(world: tuple[World, Engine], name: str, kind: str) -> None:
    shared, engine = world
    read, (actor, reads) = READS[name], ACTORS[kind]
    want = expected(read, shared, reads)
    before = rows(engine.database.engine)
    if isinstance(want, int):
        with pytest.raises(PeakpilotError) as refused:
            read.api(engine, shared, actor)
        assert refused.value.exit_code == want, (name, kind, refused.value)
        assert str(refused.value), "a refusal says why"
    else:
        assert read.view(to_jsonable(read.api(engine, shared, actor))) == want
    assert rows(engine.database.engine) == before, f"{name} as {actor} wrote to the database"


def test_a_refusal_names_the_reader_and_the_province(world: tuple[World, Engine]) -> None:
    shared, engine = world
    with pytest.raises(PeakpilotError, match="drc:shanxi may not read the nominations of hebei"):
        engine.show(shared.hebei, "drc:shanxi")
    notice = shared.notices["summary-to-ndrc"]
    with pytest.raises(PeakpilotError, match=f"gov:hebei may not read notice {notice}"):
        engine.notice(notice, actor="gov:hebei")
