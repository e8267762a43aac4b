"""Random command sequences never break the engine's invariants (hypothesis, stateful).

Whatever clerks do, in whatever order: every nomination is in a declared state, no
province ever uses more places than its quota, each nomination's history holds one record
per successful command (and its version counts them), and the audit chain verifies.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
)

from peakpilot import Engine, FrozenClock, PeakpilotError
from tests.conftest import BEFORE_DEADLINE, DEADLINE

PROVINCES = ("hebei", "shanxi")
ACTORS = ("ndrc", "system", "drc:hebei", "gov:hebei", "drc:shanxi", "gov:shanxi")
NAMES = ("甲市", "乙市", "丙市", "丁市", "戊市")
LEVELS = ("prefecture", "municipality", "county")
REASONS = (None, "", "理由\n第二行")


def make_machine(
    engine: Engine, clock: FrozenClock, reached: set[str]
) -> type[RuleBasedStateMachine]:
    events = engine.program.events

    class Lifecycle(RuleBasedStateMachine):
        nominations = Bundle("nominations")

        def __init__(self) -> None:
            super().__init__()
            with engine.database.engine.begin() as connection:  # back to a fresh batch
                for statement in (
                    "DELETE FROM notices",
                    "DELETE FROM idempotency_keys",
                    "DELETE FROM audit_records",
                    "DELETE FROM timers WHERE nomination_id IS NOT NULL",
                    "DELETE FROM nominations",
                    "UPDATE timers SET status = 'pending', done_at = NULL",
                    "UPDATE batches SET status = 'open', closed_at = NULL",
                ):
                    connection.execute(sa.text(statement))
            clock.set(BEFORE_DEADLINE)
            self.successes: Counter[str] = Counter()
            self.reached = reached

        @rule(
            target=nominations,
            province=st.sampled_from(PROVINCES),
            name=st.sampled_from(NAMES),
            level=st.sampled_from(LEVELS),
            actor=st.sampled_from(ACTORS),
        )
        def nominate(self, province: str, name: str, level: str, actor: str) -> object:
            try:
                created = engine.nominate(
                    actor, province=province, kind="city", name=name, level=level
                )
            except PeakpilotError:
                return multiple()
            assert actor == f"drc:{province}" and level != "county"
            self.successes[created.id] += 1
            return created.id

        @rule(target=nominations, province=st.sampled_from(PROVINCES), name=st.sampled_from(NAMES))
        def nominate_eligible(self, province: str, name: str) -> object:
            return self.nominate(province, name, "prefecture", f"drc:{province}")

        @rule(
            nomination=nominations,
            event=st.sampled_from(events),
            actor=st.sampled_from(ACTORS),
            reason=st.sampled_from(REASONS),
            key=st.sampled_from((None, "k1", "k2")),
        )
        def fire(
            self, nomination: str, event: str, actor: str, reason: str | None, key: str | None
        ) -> None:
            self._attempt(nomination, event, actor, reason, key)

        @rule(nomination=nominations, steps=st.integers(min_value=1, max_value=8), data=st.data())
        def push(self, nomination: str, steps: int, data: st.DataObject) -> None:
            """Fire events the state allows, as each actor in turn: reaches deep states.

            Withdrawing ends a nomination, so it has a rule of its own rather than
            cutting most of these walks short."""
            for _ in range(steps):
                allowed = [e for e in engine.show(nomination).allowed_events if e != "withdraw"]
                if not allowed:
                    return
                event = data.draw(st.sampled_from(allowed))
                if not any(
                    self._attempt(nomination, event, actor, "理由", None) for actor in ACTORS
                ):
                    return

        def _attempt(
            self, nomination: str, event: str, actor: str, reason: str | None, key: str | None
        ) -> bool:
            before = engine.get(nomination)
            try:
                after = engine.fire(nomination, event, actor, reason=reason, idempotency_key=key)
            except PeakpilotError:
                assert engine.get(nomination) == before  # a refusal changes nothing
                return False
            if after.version == before.version + 1:
                self.successes[nomination] += 1
                self.reached.add(after.state)
                return True
            # only an idempotent replay may return without moving
            assert key is not None and engine.get(nomination) == before
            return False

        @rule(nomination=nominations)
        def report_it(self, nomination: str) -> None:
            """The clerks' usual path, as far as the rules let it go today."""
            province = engine.get(nomination).province
            for event, actor in (
                ("submit_for_approval", "drc"),
                ("approve", "gov"),
                ("submit", "drc"),
            ):
                if engine.get(nomination).state != "submitted":
                    self._attempt(nomination, event, f"{actor}:{province}", None, None)

        @rule()
        def the_scheduler_ticks(self) -> None:
            before = {n.id: n.version for n in engine.list()}
            engine.tick()
            for nomination in engine.list():
                for record in engine.history(nomination.id)[before[nomination.id] :]:
                    assert (record.event, record.actor) == ("lapse", "system")
                    assert record.to_state == "follow_up_batch"
                    self.successes[nomination.id] += 1

        @rule(nomination=nominations)
        def withdraw(self, nomination: str) -> None:
            province = engine.get(nomination).province
            self._attempt(nomination, "withdraw", f"drc:{province}", None, None)

        @rule(hours=st.integers(min_value=1, max_value=48))
        def time_passes(self, hours: int) -> None:
            clock.advance(timedelta(hours=hours))

        @precondition(lambda self: sum(self.successes.values()) >= 12)
        @rule()
        def the_deadline_passes(self) -> None:
            """Late in a run, so that most runs submit before it."""
            clock.set(max(clock.now(), DEADLINE))

        @invariant()
        def states_are_declared_and_quotas_hold(self) -> None:
            board = engine.board("2023-first")
            for province in board.provinces:
                assert province.used <= province.quota, province
            for nomination in engine.list():
                assert nomination.state in engine.program.states

        @invariant()
        def history_counts_successes_and_the_chain_verifies(self) -> None:
            for nomination in engine.list():
                history = engine.history(nomination.id)
                assert len(history) == self.successes[nomination.id] == nomination.version
                assert history[-1].to_state == nomination.state
            assert engine.verify_audit().ok

    return Lifecycle


@pytest.mark.parametrize("examples", [40])
def test_random_command_sequences_keep_the_invariants(
    engine: Engine, clock: FrozenClock, db_url: str, examples: int
) -> None:
    reached: set[str] = set()
    machine = make_machine(engine, clock, reached)
    machine.TestCase.settings = settings(
        max_examples=examples if db_url.startswith("sqlite") else examples // 2,
        stateful_step_count=30,
        # The coverage check below holds for the great majority of random runs, not all
        # (one in dozens fell short once, on a loaded machine): the default run (and CI)
        # replays the same sequences every time; the full run explores new ones.
        derandomize=os.environ.get("PEAKPILOT_FULL_RUN") != "1",
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    machine.TestCase().runTest()
    # the sequences went deep enough to exercise the quota and the final states
    assert {"approved", "submitted", "withdrawn"} <= reached, reached
    assert reached & {"confirmed", "rejected", "follow_up_batch"}, reached
