"""The command line's quick reads answer what the Engine answers, from the stored facts,
on SQLite and PostgreSQL; a database stored before the facts were kept still answers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from peakpilot import Engine, FrozenClock, NotFound
from peakpilot.config.facts import ProgramFacts
from peakpilot.config.program import load_program
from peakpilot.workflow.quick import read_board


def _forget_facts(url: str) -> None:
    """What a database initialised before schema 0005 looks like after the upgrade."""
    database = sa.create_engine(url)
    with database.begin() as connection:
        connection.execute(sa.text("UPDATE programs SET facts = NULL"))
    database.dispose()


def _some_work(engine: Engine) -> None:
    for province, name in (("hebei", "唐山市"), ("hebei", "张家口市"), ("shanxi", "大同市")):
        made = engine.nominate(
            f"drc:{province}", province=province, kind="city", name=name, level="prefecture"
        )
        engine.fire(made.id, "submit_for_approval", f"drc:{province}")
    engine.fire(made.id, "approve", "gov:shanxi")
    engine.fire(made.id, "submit", "drc:shanxi")


def test_the_quick_board_is_the_engines_board(engine: Engine, db_url: str) -> None:
    _some_work(engine)
    view = read_board(db_url, None)
    assert view is not None
    assert view.board == engine.board()
    named = read_board(db_url, "2023-first")
    assert named is not None and view.board == engine.board("2023-first") == named.board
    assert view.states == engine.program.states
    shanxi = {p.province: p for p in view.board.provinces}["shanxi"]
    assert (shanxi.quota, shanxi.used, shanxi.left, shanxi.states["submitted"]) == (2, 1, 1, 1)


def test_the_quick_board_refuses_what_the_engine_refuses(engine: Engine, db_url: str) -> None:
    with pytest.raises(NotFound, match="no batch 'later'"):
        read_board(db_url, "later")
    with pytest.raises(NotFound, match="no batch"):
        read_board(db_url, "not a batch id; DROP TABLE batches")


def test_an_empty_database_holds_no_programme(db_url: str) -> None:
    with pytest.raises(NotFound, match="holds no programme: run `peakpilot init` first"):
        read_board(db_url, None)


def test_facts_missing_leave_the_answer_to_the_engine_until_init_stores_them(
    engine: Engine, db_url: str, clock: FrozenClock
) -> None:
    _forget_facts(db_url)
    assert read_board(db_url, None) is None
    with Engine(db_url, clock=clock) as again:
        assert again.board().batch == "2023-first"  # the engine reads the programme's text
        assert again.init()["changed"] is False  # the facts are filled in, nothing else
    view = read_board(db_url, None)
    assert view is not None and view.board == engine.board()


def test_the_stored_facts_are_the_programmes() -> None:
    program = load_program(None)
    facts = ProgramFacts.from_json(program.facts.to_json())
    assert facts == program.facts
    assert facts.timezone == program.timezone
    assert facts.provinces[:3] == ("hebei", "shanxi", "inner_mongolia")
    assert set(facts.quota_counts) == {"submitted", "confirmed"}
