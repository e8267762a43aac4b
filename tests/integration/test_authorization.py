"""Authorization through the engine: every event x every actor x every state.

Only the cells DESIGN section 2 allows succeed; every other cell is refused (NotPermitted
when the move exists for another actor, Refused when the state has no such move) and
writes nothing. Reads can be limited to an actor's own province.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from peakpilot import Engine, FrozenClock, NotPermitted, PeakpilotError, Refused
from peakpilot.config.program import load_program, parse_program
from tests.conftest import BEFORE_DEADLINE, DEADLINE

STATES = (
    "drafted",
    "provincial_approval",
    "approved",
    "submitted",
    "confirmed",
    "rejected",
    "withdrawn",
    "follow_up_batch",
)
EVENTS = (
    "submit_for_approval",
    "approve",
    "send_back",
    "submit",
    "confirm",
    "reject",
    "defer",
    "withdraw",
    "lapse",
    "carry_over",
)
ACTORS = ("ndrc", "system", "drc:hebei", "gov:hebei", "drc:shanxi", "gov:shanxi")

# DESIGN section 2, written out independently of the programme file:
# (event, from state) -> (the one actor allowed for a Hebei nomination, the state after)
ALLOWED = {
    ("submit_for_approval", "drafted"): ("drc:hebei", "provincial_approval"),
    ("approve", "provincial_approval"): ("gov:hebei", "approved"),
    ("send_back", "provincial_approval"): ("gov:hebei", "drafted"),
    ("send_back", "approved"): ("gov:hebei", "drafted"),
    ("send_back", "submitted"): ("ndrc", "drafted"),
    ("submit", "approved"): ("drc:hebei", "submitted"),
    ("confirm", "submitted"): ("ndrc", "confirmed"),
    ("reject", "submitted"): ("ndrc", "rejected"),
    ("defer", "submitted"): ("ndrc", "follow_up_batch"),
    **{
        ("withdraw", state): ("drc:hebei", "withdrawn")
        for state in ("drafted", "provincial_approval", "approved", "submitted", "follow_up_batch")
    },
    **{
        ("lapse", state): ("system", "follow_up_batch")
        for state in ("drafted", "provincial_approval", "approved")
    },
    ("carry_over", "follow_up_batch"): ("drc:hebei", "drafted"),
}
PATHS = {  # how a fresh Hebei nomination reaches each state
    "drafted": [],
    "provincial_approval": [("submit_for_approval", "drc:hebei")],
    "approved": [("submit_for_approval", "drc:hebei"), ("approve", "gov:hebei")],
    "submitted": [
        ("submit_for_approval", "drc:hebei"),
        ("approve", "gov:hebei"),
        ("submit", "drc:hebei"),
    ],
}
PATHS["confirmed"] = [*PATHS["submitted"], ("confirm", "ndrc")]
PATHS["rejected"] = [*PATHS["submitted"], ("reject", "ndrc")]
PATHS["follow_up_batch"] = [*PATHS["submitted"], ("defer", "ndrc")]
PATHS["withdrawn"] = [("withdraw", "drc:hebei")]


class Nominations:
    """Makes Hebei nominations in a given state, each with a new name."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0

    def in_state(self, state: str) -> str:
        self.count += 1
        created = self.engine.nominate(
            "drc:hebei",
            province="hebei",
            kind="city",
            name=f"城市{self.count:03d}",
            level="prefecture",
            batch="2023-first",
        )
        for event, actor in PATHS[state]:
            self.engine.fire(created.id, event, actor, reason="理由")
        assert self.engine.get(created.id).state == state
        return created.id


def rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.database.engine.connect() as connection:
        return [
            tuple(row)
            for table in ("nominations", "audit_records", "notices", "timers")
            for row in connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1"))
        ]


def test_every_event_actor_and_state(engine: Engine, clock: FrozenClock) -> None:
    # room for every submitted-path nomination the matrix makes (the quota is not tested here)
    engine.init(parse_program(load_program().source.replace("    hebei: 3\n", "    hebei: 99\n")))
    engine.open_batch(
        "ndrc",
        "2024-second",
        deadline=datetime(2024, 6, 30, tzinfo=DEADLINE.tzinfo),
        quotas={"hebei": 3},
    )
    make = Nominations(engine)
    shared = {state: make.in_state(state) for state in STATES}
    moves = {(event, state) for event, state in ALLOWED}
    outcomes = {"allowed": 0, "not_permitted": 0, "refused": 0}
    for state in STATES:
        for event in EVENTS:
            # lapse belongs to the deadline; every other event is tried before it
            clock.set(DEADLINE if event == "lapse" else BEFORE_DEADLINE)
            for actor in ACTORS:
                allowed = ALLOWED.get((event, state))
                if allowed is not None and allowed[0] == actor:
                    clock.set(BEFORE_DEADLINE)
                    fresh = make.in_state(state)
                    clock.set(DEADLINE if event == "lapse" else BEFORE_DEADLINE)
                    after = engine.fire(fresh, event, actor, reason="理由")
                    assert after.state == allowed[1], (event, state, actor)
                    outcomes["allowed"] += 1
                    continue
                before = rows(engine)
                expected = NotPermitted if (event, state) in moves else Refused
                with pytest.raises(PeakpilotError) as refused:
                    engine.fire(shared[state], event, actor, reason="理由")
                assert type(refused.value) is expected, (event, state, actor, refused.value)
                assert rows(engine) == before, (event, state, actor)
                outcomes["not_permitted" if expected is NotPermitted else "refused"] += 1
    assert outcomes["allowed"] == len(ALLOWED)
    assert sum(outcomes.values()) == len(STATES) * len(EVENTS) * len(ACTORS)


def test_reads_can_be_limited_to_an_actors_province(engine: Engine) -> None:
    hebei = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
    )
    shanxi = engine.nominate(
        "drc:shanxi", province="shanxi", kind="city", name="太原市", level="prefecture"
    )
    assert [n.id for n in engine.list(actor="drc:hebei")] == [hebei.id]
    assert [n.id for n in engine.list(actor="gov:140000")] == [shanxi.id]
    assert [n.id for n in engine.list(actor="ndrc")] == [hebei.id, shanxi.id]
    assert engine.get(hebei.id, actor="gov:hebei") == hebei
    assert [h.event for h in engine.history(hebei.id, actor="ndrc")] == ["nominate"]
    with pytest.raises(NotPermitted, match="drc:shanxi may not read the nominations of hebei"):
        engine.get(hebei.id, actor="drc:shanxi")
    with pytest.raises(NotPermitted):
        engine.history(hebei.id, actor="gov:shanxi")
    with pytest.raises(NotPermitted):
        engine.list(actor="drc:hebei", province="shanxi")


def test_show_is_scoped_like_get_and_history(engine: Engine) -> None:
    """`show` as another province's actor returned the nomination with its history while
    `get` and `history` refused it (issue 13)."""
    hebei = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
    )
    assert engine.show(hebei.id, "gov:130000").nomination == hebei
    assert engine.show(hebei.id, "ndrc").allowed_events == ()
    for other in ("drc:shanxi", "gov:shanxi"):
        before = rows(engine)
        with pytest.raises(NotPermitted, match=f"{other} may not read the nominations of hebei"):
            engine.show(hebei.id, other)
        assert rows(engine) == before
