"""Random events with random data on pilots never break the invariants (hypothesis):
the audit chain verifies, every state is one the machine declares, every material has
its ``attach`` record (and no such record lacks its material), and what was refused
wrote nothing."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from peakpilot import Engine, FrozenClock, PeakpilotError
from tests.conftest import BEFORE_DEADLINE
from tests.construction_helpers import DOCX, PDF, PNG, confirmed

EVENTS = (
    "submit_plan",
    "return_plan",
    "approve_plan",
    "report_progress",
    "pass_midterm",
    "fail_evaluation",
    "accept_rectification",
    "complete",
    "revoke",
)
ACTORS = ("ndrc", "drc:hebei", "gov:hebei", "drc:shanxi")
KINDS = ("implementation_plan", "progress_report", "rectification_report", "other", "poem")
DOCUMENTS = (PDF, PNG, DOCX, b"not a document")
DATA = st.one_of(
    st.none(),
    st.fixed_dictionaries({"period": st.sampled_from([2022, 2023, 2024, "2025", "x"])}),
    st.fixed_dictionaries({"grade": st.sampled_from(["excellent", "good", "pass", "bad"])}),
    st.fixed_dictionaries({"due": st.sampled_from(["2024-06-30", "2020-01-01", "soon"])}),
    st.fixed_dictionaries({"other": st.just("1")}),
)


def counts(engine: Engine) -> dict[str, int]:
    with engine.database.engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("audit_records", "materials", "timers", "notices")
        }


def make_machine(engine: Engine, clock: FrozenClock) -> type[RuleBasedStateMachine]:
    states = set(engine.program.states)

    class Construction(RuleBasedStateMachine):
        pilots = Bundle("pilots")

        def __init__(self) -> None:
            super().__init__()
            with engine.database.engine.begin() as connection:
                for statement in (
                    "DELETE FROM notices",
                    "DELETE FROM materials",
                    "DELETE FROM material_blobs",
                    "DELETE FROM audit_records",
                    "DELETE FROM timers WHERE nomination_id IS NOT NULL",
                    "DELETE FROM nominations",
                    "UPDATE timers SET status = 'pending', done_at = NULL",
                    "UPDATE batches SET status = 'open', closed_at = NULL",
                ):
                    connection.execute(sa.text(statement))
            clock.set(BEFORE_DEADLINE)

        @initialize(target=pilots)
        def confirm_two_pilots(self) -> MultipleResults[str]:
            """Confirmed in the first batch, before any time passes."""
            return multiple(
                confirmed(engine, "唐山市", "hebei").id, confirmed(engine, "太原市", "shanxi").id
            )

        @rule(
            pilot=pilots,
            event=st.sampled_from(EVENTS),
            actor=st.sampled_from(ACTORS),
            data=DATA,
            reason=st.sampled_from([None, "理由"]),
        )
        def fire(
            self,
            pilot: str,
            event: str,
            actor: str,
            data: dict[str, object] | None,
            reason: str | None,
        ) -> None:
            before = counts(engine)
            try:
                engine.fire(pilot, event, actor, data=data, reason=reason)
            except PeakpilotError:
                assert counts(engine) == before  # a refusal writes nothing

        @rule(
            pilot=pilots,
            kind=st.sampled_from(KINDS),
            content=st.sampled_from(DOCUMENTS),
            actor=st.sampled_from(ACTORS),
        )
        def attach(self, pilot: str, kind: str, content: bytes, actor: str) -> None:
            before = counts(engine)
            try:
                engine.attach(pilot, content, kind=kind, actor=actor, filename="doc")
            except PeakpilotError:
                assert counts(engine) == before

        @rule(days=st.integers(min_value=1, max_value=200))
        def time_passes_and_the_scheduler_ticks(self, days: int) -> None:
            clock.set(clock.now() + timedelta(days=days))
            engine.tick()

        @invariant()
        def the_chain_verifies_and_every_material_has_its_record(self) -> None:
            report = engine.verify_audit()
            assert report.ok, report.first_broken
            for nomination in engine.list():
                assert nomination.state in states
                attached = [
                    h.data["material"]  # type: ignore[index]
                    for h in engine.history(nomination.id)
                    if h.event == "attach"
                ]
                assert attached == [m.id for m in engine.materials(nomination.id)]

    return Construction


def test_random_events_and_materials_keep_the_invariants(db_url: str) -> None:
    clock = FrozenClock(BEFORE_DEADLINE)
    with Engine(db_url, clock=clock) as engine:
        engine.init()
        machine = make_machine(engine, clock)
        machine.TestCase.settings = settings(
            max_examples=20 if db_url.startswith("sqlite") else 8,
            stateful_step_count=30,
            derandomize=os.environ.get("PEAKPILOT_FULL_RUN") != "1",  # as test_stateful
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        machine.TestCase().runTest()


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
