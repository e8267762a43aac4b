"""Read-only answers for the command line that do not load the engine.

A ``peakpilot board`` is a whole process around two small queries; loading the engine
for it (the programme's validation with pydantic, the ORM, Jinja2, the state machine)
cost twice what importing SQLAlchemy does. The answers here are the Engine's own, from
the same statements (:class:`~peakpilot.workflow.reads.Reads`) and the programme facts
that ``init`` stored; only what gets loaded differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from peakpilot.workflow.database import Database, create_engine, masked
from peakpilot.workflow.snapshots import Board


@dataclass(frozen=True, slots=True)
class BoardView:
    board: Board
    states: tuple[str, ...]  # every state of the programme, in its order


def read_board(url: str, batch: str | None) -> BoardView | None:
    """The board of ``batch`` (the newest when None), or None when the database's
    programme was stored before its facts were kept: then ask the Engine, which reads
    the programme's text (the next ``init`` stores the facts)."""
    database = Database(create_engine(url))
    try:
        with database.reads() as reads:
            facts = reads.program_facts(masked(database.engine.url))
            if facts is None:
                return None
            return BoardView(reads.board(facts, batch), facts.states)
    finally:
        database.close()
        database.engine.dispose()


__all__ = ["BoardView", "read_board"]
