"""The state machine against DESIGN §2 (the workflow table) and §4 (the order of checks).

The expected table is written here from the design, independently of the programme file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peakpilot.config.program import load_program
from peakpilot.errors import InvalidInput, NotPermitted, PeakpilotError, Refused
from peakpilot.states.actors import Actor, ActorResolver
from peakpilot.states.guards import (
    BatchFacts,
    DecisionContext,
    QuotaFacts,
    TargetFacts,
    TrailEntry,
    TrailFacts,
)
from peakpilot.states.machine import StateMachine

BEIJING = timezone(timedelta(hours=8))
DEADLINE = datetime(2023, 11, 15, 0, 0, tzinfo=BEIJING)
EARLY = datetime(2023, 10, 20, 9, 0, tzinfo=BEIJING)
LATE = DEADLINE + timedelta(hours=1)

STATES = [
    "drafted",
    "provincial_approval",
    "approved",
    "submitted",
    "confirmed",
    "rejected",
    "withdrawn",
    "follow_up_batch",
    "plan_review",
    "in_construction",
    "rectification",
    "completed",
    "revoked",
]
FINAL = {"rejected", "withdrawn", "completed", "revoked"}
EVENTS = [
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
    "submit_plan",
    "return_plan",
    "approve_plan",
    "report_progress",
    "pass_midterm",
    "fail_evaluation",
    "accept_rectification",
    "complete",
    "revoke",
]
ACTORS = {
    "ndrc": Actor("ndrc"),
    "system": Actor("system"),
    "drc:hebei": Actor("drc", "hebei"),
    "gov:hebei": Actor("gov", "hebei"),
    "drc:shanxi": Actor("drc", "shanxi"),
    "gov:shanxi": Actor("gov", "shanxi"),
}

# DESIGN §2 for a Hebei nomination: (event, from state) -> (to state, the one actor allowed).
P = "hebei"
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("submit_for_approval", "drafted"): ("provincial_approval", f"drc:{P}"),
    ("approve", "provincial_approval"): ("approved", f"gov:{P}"),
    ("send_back", "provincial_approval"): ("drafted", f"gov:{P}"),
    ("send_back", "approved"): ("drafted", f"gov:{P}"),
    ("send_back", "submitted"): ("drafted", "ndrc"),
    ("submit", "approved"): ("submitted", f"drc:{P}"),
    ("confirm", "submitted"): ("confirmed", "ndrc"),
    ("reject", "submitted"): ("rejected", "ndrc"),
    ("defer", "submitted"): ("follow_up_batch", "ndrc"),
    **{
        ("withdraw", s): ("withdrawn", f"drc:{P}")
        for s in ("drafted", "provincial_approval", "approved", "submitted", "follow_up_batch")
    },
    **{
        ("lapse", s): ("follow_up_batch", "system")
        for s in ("drafted", "provincial_approval", "approved")
    },
    ("carry_over", "follow_up_batch"): ("drafted", f"drc:{P}"),
    # DESIGN 2b: the construction years
    ("submit_plan", "confirmed"): ("plan_review", f"drc:{P}"),
    ("return_plan", "plan_review"): ("confirmed", "ndrc"),
    ("approve_plan", "plan_review"): ("in_construction", "ndrc"),
    ("report_progress", "in_construction"): ("in_construction", f"drc:{P}"),
    ("report_progress", "rectification"): ("rectification", f"drc:{P}"),
    ("pass_midterm", "in_construction"): ("in_construction", "ndrc"),
    ("fail_evaluation", "in_construction"): ("rectification", "ndrc"),
    ("accept_rectification", "rectification"): ("in_construction", "ndrc"),
    ("complete", "in_construction"): ("completed", "ndrc"),
    **{
        ("revoke", s): ("revoked", "ndrc")
        for s in ("confirmed", "plan_review", "in_construction", "rectification")
    },
}


@dataclass(frozen=True)
class Nom:
    id: str
    province: str
    kind: str
    name: str
    state: str


def nom(state: str, province: str = "hebei") -> Nom:
    return Nom("n-1", province, "city", "石家庄市", state)


FIRST = BatchFacts("2023-first", DEADLINE, True)
NEXT = BatchFacts("2024-second", DEADLINE + timedelta(days=365), True)


def context(**changes: object) -> DecisionContext:
    """A context in which every guard holds (for any event but ``lapse``)."""
    base = DecisionContext(
        now=EARLY,
        batch=FIRST,
        province_name="Hebei",
        reason="the figures need checking",
        quota=QuotaFacts(quota=3, used=0),
        target=TargetFacts(batch=NEXT, quota=2, name_taken=False),
        trail=TrailFacts(()),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# Every document a move of the construction years may need, attached before EARLY.
ATTACHED = TrailFacts(
    tuple(
        TrailEntry("attach", "x", "x", EARLY - timedelta(days=1), {"kind": kind})
        for kind in ("implementation_plan", "progress_report", "rectification_report")
    )
)
MIDTERM_PASSED = TrailFacts(
    (*ATTACHED.entries, TrailEntry("pass_midterm", "x", "x", EARLY, {"grade": "good"}))
)
# The data each event needs to pass its checks at EARLY (in 2023).
DATA: dict[str, dict[str, object]] = {
    "report_progress": {"period": 2023},
    "pass_midterm": {"grade": "good"},
    "complete": {"grade": "excellent"},
    "fail_evaluation": {"due": "2024-06-30"},
}


def passing_context(event: str) -> DecisionContext:
    """A context in which every rule of ``event`` holds."""
    return context(
        now=DEADLINE if event == "lapse" else EARLY,
        trail=MIDTERM_PASSED if event == "complete" else ATTACHED,
        data=DATA.get(event),
    )


@pytest.fixture(scope="module")
def workflow() -> StateMachine:
    return StateMachine(load_program())


# --- the full table ------------------------------------------------------------------


def _expected_outcome(state: str, event: str, actor: str) -> str | type[PeakpilotError]:
    row = EXPECTED.get((event, state))
    if row is None:
        return Refused
    dest, who = row
    return dest if actor == who else NotPermitted


CELLS = [
    pytest.param(state, event, actor, id=f"{state}-{event}-{actor}")
    for state in STATES
    for event in EVENTS
    for actor in ACTORS
]


def test_the_table_has_every_cell() -> None:
    assert len(CELLS) == 13 * 19 * 6


@pytest.mark.parametrize(("state", "event", "actor"), CELLS)
def test_every_cell_of_the_workflow_table(
    workflow: StateMachine, state: str, event: str, actor: str
) -> None:
    expected = _expected_outcome(state, event, actor)
    nomination = nom(state)
    if isinstance(expected, str):
        assert workflow.decide(nomination, event, ACTORS[actor], passing_context(event)) == expected
        return
    with pytest.raises(PeakpilotError) as info:
        workflow.decide(nomination, event, ACTORS[actor], passing_context(event))
    assert type(info.value) is expected, str(info.value)
    message = str(info.value)
    if expected is NotPermitted:
        assert actor in message  # names who tried
        assert EXPECTED[(event, state)][1] in message  # and who may
    else:
        assert event in message and state in message


# --- each guard failing --------------------------------------------------------------

GUARD_FAILURES = [
    # (id, state, event, actor, context, words the refusal must contain)
    pytest.param(
        "drafted",
        "submit_for_approval",
        "drc:hebei",
        context(batch=dataclasses.replace(FIRST, is_open=False)),
        ["closed"],
        id="batch-closed-submit-for-approval",
    ),
    pytest.param(
        "submitted",
        "send_back",
        "ndrc",
        context(batch=dataclasses.replace(FIRST, is_open=False), now=LATE),
        ["closed"],
        id="batch-closed-ndrc-send-back",
    ),
    pytest.param(
        "drafted",
        "submit_for_approval",
        "drc:hebei",
        context(now=DEADLINE),
        ["deadline", "passed"],
        id="at-deadline-submit-for-approval",
    ),
    pytest.param(
        "drafted",
        "submit_for_approval",
        "drc:hebei",
        context(now=LATE),
        ["deadline", "passed"],
        id="after-deadline-submit-for-approval",
    ),
    pytest.param(
        "approved",
        "submit",
        "drc:hebei",
        context(now=DEADLINE),
        ["deadline", "passed"],
        id="at-deadline-submit",
    ),
    pytest.param(
        "approved",
        "lapse",
        "system",
        context(now=DEADLINE - timedelta(seconds=1)),
        ["deadline", "ahead"],
        id="lapse-one-second-before-deadline",
    ),
    pytest.param(
        "drafted",
        "lapse",
        "system",
        context(now=EARLY),
        ["deadline", "ahead"],
        id="lapse-weeks-before-deadline",
    ),
    pytest.param(
        "approved",
        "submit",
        "drc:hebei",
        context(quota=QuotaFacts(3, 3)),
        ["3 of 3", "Hebei"],
        id="quota-full",
    ),
    pytest.param(
        "approved",
        "submit",
        "drc:hebei",
        context(quota=QuotaFacts(2, 5)),
        ["5 of 2"],
        id="quota-overfull",
    ),
    *[
        pytest.param(
            state,
            event,
            actor,
            context(reason=reason),
            ["reason"],
            id=f"reason-{label}-{event}-{state}",
        )
        for state, event, actor in [
            ("provincial_approval", "send_back", "gov:hebei"),
            ("approved", "send_back", "gov:hebei"),
            ("submitted", "send_back", "ndrc"),
            ("submitted", "reject", "ndrc"),
            ("submitted", "defer", "ndrc"),
        ]
        for label, reason in [("none", None), ("empty", ""), ("blank", " \t\r\n\u3000 ")]
    ],
    pytest.param(
        "follow_up_batch",
        "carry_over",
        "drc:hebei",
        context(target=None),
        ["no follow-up batch is open"],
        id="target-missing",
    ),
    pytest.param(
        "follow_up_batch",
        "carry_over",
        "drc:hebei",
        context(target=TargetFacts(batch=None, quota=None, name_taken=False)),
        ["no follow-up batch is open"],
        id="target-batch-none",
    ),
    pytest.param(
        "follow_up_batch",
        "carry_over",
        "drc:hebei",
        context(target=TargetFacts(dataclasses.replace(NEXT, is_open=False), 2, False)),
        ["no follow-up batch is open"],
        id="target-batch-closed",
    ),
    pytest.param(
        "follow_up_batch",
        "carry_over",
        "drc:hebei",
        context(target=TargetFacts(NEXT, 0, False)),
        ["2024-second", "no quota"],
        id="target-quota-zero",
    ),
    pytest.param(
        "follow_up_batch",
        "carry_over",
        "drc:hebei",
        context(target=TargetFacts(NEXT, None, False)),
        ["2024-second", "no quota"],
        id="target-quota-none",
    ),
    pytest.param(
        "follow_up_batch",
        "carry_over",
        "drc:hebei",
        context(target=TargetFacts(NEXT, 2, True)),
        ["2024-second", "already has", "石家庄市"],
        id="target-name-taken",
    ),
]


@pytest.mark.parametrize(("state", "event", "actor", "ctx", "words"), GUARD_FAILURES)
def test_each_failing_guard_is_refused_and_named(
    workflow: StateMachine,
    state: str,
    event: str,
    actor: str,
    ctx: DecisionContext,
    words: list[str],
) -> None:
    with pytest.raises(Refused) as info:
        workflow.decide(nom(state), event, ACTORS[actor], ctx)
    assert type(info.value) is Refused
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "n-1" in message


@pytest.mark.parametrize(
    ("state", "event", "actor", "ctx", "dest"),
    [
        pytest.param(
            "drafted",
            "submit_for_approval",
            "drc:hebei",
            context(now=DEADLINE - timedelta(seconds=1)),
            "provincial_approval",
            id="submit-for-approval-one-second-before",
        ),
        pytest.param(
            "approved",
            "submit",
            "drc:hebei",
            context(now=DEADLINE - timedelta(seconds=1)),
            "submitted",
            id="submit-one-second-before",
        ),
        pytest.param(
            "approved",
            "submit",
            "drc:hebei",
            context(quota=QuotaFacts(3, 2)),
            "submitted",
            id="submit-last-place",
        ),
        pytest.param(
            "drafted",
            "lapse",
            "system",
            context(now=DEADLINE),
            "follow_up_batch",
            id="lapse-at-deadline-exactly",
        ),
        pytest.param(
            "approved",
            "lapse",
            "system",
            context(now=DEADLINE + timedelta(days=400)),
            "follow_up_batch",
            id="lapse-long-after",
        ),
        # after the deadline, while the batch is still open, the NDRC may still send back
        pytest.param(
            "submitted",
            "send_back",
            "ndrc",
            context(now=LATE),
            "drafted",
            id="ndrc-send-back-after-deadline-batch-open",
        ),
        # confirm, reject and defer need no open batch nor an unpassed deadline
        pytest.param(
            "submitted",
            "confirm",
            "ndrc",
            context(now=LATE, batch=dataclasses.replace(FIRST, is_open=False)),
            "confirmed",
            id="confirm-after-close",
        ),
        pytest.param(
            "submitted",
            "defer",
            "ndrc",
            context(now=LATE, batch=dataclasses.replace(FIRST, is_open=False)),
            "follow_up_batch",
            id="defer-after-close",
        ),
        pytest.param(
            "follow_up_batch",
            "withdraw",
            "drc:hebei",
            context(now=LATE, batch=dataclasses.replace(FIRST, is_open=False)),
            "withdrawn",
            id="withdraw-after-close",
        ),
    ],
)
def test_guard_boundaries_that_pass(
    workflow: StateMachine, state: str, event: str, actor: str, ctx: DecisionContext, dest: str
) -> None:
    assert workflow.decide(nom(state), event, ACTORS[actor], ctx) == dest


def test_decide_does_not_change_the_nomination(workflow: StateMachine) -> None:
    nomination = nom("drafted")
    assert workflow.decide(nomination, "withdraw", ACTORS["drc:hebei"], context()) == "withdrawn"
    assert nomination.state == "drafted"


def test_a_province_code_actor_is_the_province_once_resolved(workflow: StateMachine) -> None:
    from peakpilot.states.actors import resolve_actor

    actor = resolve_actor(Actor.parse("drc:130000"), workflow.program)
    assert workflow.decide(nom("drafted"), "withdraw", actor, context()) == "withdrawn"


# --- the order of checks (DESIGN §4) -------------------------------------------------


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("actor", list(ACTORS))
@pytest.mark.parametrize("event", ["explode", "nominate", "Submit", ""])
def test_undeclared_event_is_refused_first(
    workflow: StateMachine, state: str, actor: str, event: str
) -> None:
    ctx = context(batch=dataclasses.replace(FIRST, is_open=False), reason=None)
    with pytest.raises(Refused) as info:
        workflow.decide(nom(state), event, ACTORS[actor], ctx)
    assert type(info.value) is Refused
    assert "unknown event" in str(info.value)
    assert repr(event) in str(info.value)


@pytest.mark.parametrize(
    ("state", "event", "actor"),
    [
        ("drafted", "confirm", "drc:shanxi"),
        ("drafted", "approve", "ndrc"),
        ("confirmed", "withdraw", "gov:shanxi"),
        ("withdrawn", "carry_over", "system"),
        ("rejected", "send_back", "drc:hebei"),
        ("submitted", "lapse", "drc:shanxi"),
        ("follow_up_batch", "submit", "gov:hebei"),
    ],
)
def test_no_transition_from_state_is_refused_before_the_actor(
    workflow: StateMachine, state: str, event: str, actor: str
) -> None:
    ctx = context(batch=dataclasses.replace(FIRST, is_open=False), reason=None)
    with pytest.raises(Refused) as info:
        workflow.decide(nom(state), event, ACTORS[actor], ctx)
    assert type(info.value) is Refused
    assert state in str(info.value)


@pytest.mark.parametrize(
    ("state", "event", "actor", "ctx"),
    [
        (
            "drafted",
            "submit_for_approval",
            "gov:hebei",
            context(batch=dataclasses.replace(FIRST, is_open=False), now=LATE),
        ),
        ("drafted", "submit_for_approval", "drc:shanxi", context(now=LATE)),
        ("approved", "submit", "drc:shanxi", context(quota=QuotaFacts(3, 3))),
        ("submitted", "reject", "drc:hebei", context(reason=None)),
        ("provincial_approval", "send_back", "gov:shanxi", context(reason="  ")),
        (
            "submitted",
            "send_back",
            "gov:hebei",
            context(reason=None, batch=dataclasses.replace(FIRST, is_open=False)),
        ),
        ("drafted", "lapse", "ndrc", context(now=EARLY)),
        ("drafted", "lapse", "drc:hebei", context(now=EARLY)),
        ("follow_up_batch", "carry_over", "drc:shanxi", context(target=None)),
        ("follow_up_batch", "carry_over", "ndrc", context(target=TargetFacts(NEXT, 0, True))),
    ],
)
def test_wrong_actor_is_not_permitted_even_when_a_guard_fails(
    workflow: StateMachine, state: str, event: str, actor: str, ctx: DecisionContext
) -> None:
    with pytest.raises(NotPermitted) as info:
        workflow.decide(nom(state), event, ACTORS[actor], ctx)
    assert actor in str(info.value)


# --- allowed_events ------------------------------------------------------------------

CLOSED = dataclasses.replace(FIRST, is_open=False)

ALLOWED = [
    # (state, actor or None, context, expected events)
    ("drafted", "drc:hebei", context(reason=None), {"submit_for_approval", "withdraw"}),
    ("drafted", None, context(reason=None), {"submit_for_approval", "withdraw"}),
    ("drafted", "gov:hebei", context(), set()),
    ("drafted", "drc:shanxi", context(), set()),
    ("drafted", "ndrc", context(), set()),
    ("drafted", "system", context(), set()),
    ("drafted", "system", context(now=DEADLINE), {"lapse"}),
    ("drafted", "drc:hebei", context(now=DEADLINE), {"withdraw"}),
    ("drafted", None, context(now=DEADLINE), {"withdraw", "lapse"}),
    ("provincial_approval", "gov:hebei", context(reason=None), {"approve", "send_back"}),
    ("provincial_approval", "gov:shanxi", context(), set()),
    ("provincial_approval", "drc:hebei", context(), {"withdraw"}),
    ("provincial_approval", None, context(reason=None), {"approve", "send_back", "withdraw"}),
    ("approved", "drc:hebei", context(), {"submit", "withdraw"}),
    ("approved", "drc:hebei", context(quota=QuotaFacts(3, 3)), {"withdraw"}),
    ("approved", "drc:hebei", context(now=DEADLINE), {"withdraw"}),
    ("approved", "gov:hebei", context(reason=None), {"send_back"}),
    ("approved", None, context(reason=None), {"submit", "send_back", "withdraw"}),
    ("submitted", "ndrc", context(reason=None), {"send_back", "confirm", "reject", "defer"}),
    (
        "submitted",
        "ndrc",
        context(reason=None, batch=CLOSED, now=LATE),
        {"confirm", "reject", "defer"},
    ),
    ("submitted", "drc:hebei", context(), {"withdraw"}),
    ("submitted", "gov:hebei", context(), set()),
    (
        "submitted",
        None,
        context(reason=None),
        {"send_back", "confirm", "reject", "defer", "withdraw"},
    ),
    ("follow_up_batch", "drc:hebei", context(), {"withdraw", "carry_over"}),
    ("follow_up_batch", "drc:hebei", context(target=TargetFacts(NEXT, 2, True)), {"withdraw"}),
    ("follow_up_batch", "drc:hebei", context(target=None), {"withdraw"}),
    ("follow_up_batch", "drc:shanxi", context(), set()),
    ("follow_up_batch", "ndrc", context(), set()),
    *[(state, None, context(now=DEADLINE), set()) for state in sorted(FINAL)],
    *[(state, "drc:hebei", context(), set()) for state in sorted(FINAL)],
    # a confirmed pilot with no plan attached: only the NDRC's revocation is open
    ("confirmed", None, context(), {"revoke"}),
    ("confirmed", "drc:hebei", context(), set()),
]


@pytest.mark.parametrize(("state", "actor", "ctx", "expected"), ALLOWED)
def test_allowed_events(
    workflow: StateMachine,
    state: str,
    actor: str | None,
    ctx: DecisionContext,
    expected: set[str],
) -> None:
    allowed = workflow.allowed_events(nom(state), None if actor is None else ACTORS[actor], ctx)
    assert len(allowed) == len(set(allowed))
    assert set(allowed) == expected


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("actor", [*ACTORS, None])
def test_allowed_events_agree_with_decide(
    workflow: StateMachine, state: str, actor: str | None
) -> None:
    """What an actor is offered is exactly what decide lets them do (reason given)."""
    for now, trail in ((EARLY, TrailFacts(())), (DEADLINE, ATTACHED), (EARLY, MIDTERM_PASSED)):
        ctx = context(now=now, trail=trail)
        who = None if actor is None else ACTORS[actor]
        offered = set(workflow.allowed_events(nom(state), who, ctx))
        actors = list(ACTORS.values()) if who is None else [who]
        possible = set()
        for event in EVENTS:
            for candidate in actors:
                try:  # with the data each event takes (checking input is decide's alone)
                    workflow.decide(nom(state), event, candidate, ctx_with(ctx, event))
                except PeakpilotError:
                    continue
                possible.add(event)
        assert offered == possible


def ctx_with(ctx: DecisionContext, event: str) -> DecisionContext:
    return dataclasses.replace(ctx, data=DATA.get(event))


# --- nominate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctx",
    [
        pytest.param(context(), id="open-with-quota"),
        # it may draft more candidates than its quota: only what it submits counts
        pytest.param(context(quota=QuotaFacts(3, 3)), id="quota-used-up"),
        pytest.param(context(now=LATE), id="after-deadline-batch-still-open"),
    ],
)
def test_check_nominate_allows_own_drc(workflow: StateMachine, ctx: DecisionContext) -> None:
    assert (
        workflow.check_nominate(
            ACTORS["drc:hebei"], "hebei", "city", "保定市", "prefecture", ctx, name_taken=False
        )
        is None
    )


@pytest.mark.parametrize("actor", ["gov:hebei", "drc:shanxi", "gov:shanxi", "ndrc", "system"])
def test_check_nominate_not_permitted(workflow: StateMachine, actor: str) -> None:
    with pytest.raises(NotPermitted) as info:
        workflow.check_nominate(
            ACTORS[actor], "hebei", "city", "保定市", "prefecture", context(), name_taken=False
        )
    assert actor in str(info.value)
    assert "drc:hebei" in str(info.value)


@pytest.mark.parametrize(
    ("ctx", "words"),
    [
        pytest.param(context(batch=CLOSED), ["closed"], id="batch-closed"),
        pytest.param(context(quota=None), ["no quota", "Hebei"], id="no-quota-row"),
        pytest.param(context(quota=QuotaFacts(0, 0)), ["no quota"], id="quota-zero"),
    ],
)
def test_check_nominate_refused(
    workflow: StateMachine, ctx: DecisionContext, words: list[str]
) -> None:
    with pytest.raises(Refused) as info:
        workflow.check_nominate(
            ACTORS["drc:hebei"], "hebei", "city", "保定市", "prefecture", ctx, name_taken=False
        )
    assert type(info.value) is Refused
    for word in words:
        assert word in str(info.value)


def test_check_nominate_wrong_actor_before_guards(workflow: StateMachine) -> None:
    with pytest.raises(NotPermitted):
        workflow.check_nominate(
            ACTORS["drc:shanxi"],
            "hebei",
            "city",
            "保定市",
            "county",
            context(batch=CLOSED, quota=None),
            name_taken=True,
        )


def test_check_nominate_refuses_an_ineligible_level_before_a_taken_name(
    workflow: StateMachine,
) -> None:
    with pytest.raises(Refused, match="a county-level city is not eligible"):
        workflow.check_nominate(
            ACTORS["drc:hebei"], "hebei", "city", "某县", "county", context(), name_taken=True
        )


def test_check_nominate_refuses_a_name_the_batch_has_for_the_province(
    workflow: StateMachine,
) -> None:
    with pytest.raises(Refused, match="hebei already has a city of that name in batch"):
        workflow.check_nominate(
            ACTORS["drc:hebei"], "hebei", "city", "保定市", "prefecture", context(), name_taken=True
        )


# --- diagrams ------------------------------------------------------------------------


def test_mermaid_diagram(workflow: StateMachine) -> None:
    text = workflow.diagram("mermaid")
    assert "stateDiagram-v2" in text
    for state in STATES:
        assert state in text
    for event in EVENTS:
        assert event in text


def test_mermaid_is_the_default(workflow: StateMachine) -> None:
    assert "stateDiagram-v2" in workflow.diagram()


def test_dot_diagram(workflow: StateMachine) -> None:
    text = workflow.diagram("dot")
    assert "digraph" in text
    for state in STATES:
        assert state in text


@pytest.mark.parametrize("fmt", ["png", "", "MERMAID", "svg"])
def test_unknown_diagram_format(workflow: StateMachine, fmt: str) -> None:
    with pytest.raises(InvalidInput) as info:
        workflow.diagram(fmt)
    assert "mermaid" in str(info.value) and "dot" in str(info.value)


# --- random walks --------------------------------------------------------------------

_NOW = st.one_of(
    st.sampled_from([DEADLINE, DEADLINE - timedelta(seconds=1), EARLY, LATE]),
    st.integers(-40 * 86400, 40 * 86400).map(lambda s: DEADLINE + timedelta(seconds=s)),
)
_TARGET = st.one_of(
    st.none(),
    st.builds(
        TargetFacts,
        batch=st.one_of(
            st.none(), st.sampled_from([NEXT, dataclasses.replace(NEXT, is_open=False)])
        ),
        quota=st.one_of(st.none(), st.integers(0, 3)),
        name_taken=st.booleans(),
    ),
)
_STEP = st.tuples(
    st.sampled_from([*EVENTS, "explode"]),
    st.sampled_from(list(ACTORS)),
    st.one_of(st.none(), st.sampled_from(["", "  ", "why", "行\n二"])),
    _NOW,
    st.booleans(),  # batch open
    st.integers(0, 4),  # places used of 3
    _TARGET,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, max_size=25))
def test_random_walks_stay_in_declared_states(workflow: StateMachine, steps: list[tuple]) -> None:
    nomination = nom("drafted")
    for event, actor, reason, now, is_open, used, target in steps:
        needs = workflow.needs(event, nomination.state) if event in EVENTS else frozenset()
        ctx = DecisionContext(
            now=now,
            batch=dataclasses.replace(FIRST, is_open=is_open),
            province_name="Hebei",
            reason=reason,
            # the engine fills quota and target when a guard of the move needs them
            quota=QuotaFacts(3, used) if "quota" in needs else None,
            target=target if "target" in needs else None,
        )
        before = nomination.state
        try:
            after = workflow.decide(nomination, event, ACTORS[actor], ctx)
        except PeakpilotError:
            continue
        assert before not in FINAL, f"{event} moved final state {before}"
        assert after in STATES
        assert EXPECTED[(event, before)] == (after, actor)
        nomination = dataclasses.replace(nomination, state=after)


def test_actor_texts_resolve_to_their_canonical_form_once() -> None:
    resolve = ActorResolver(load_program())
    first = resolve(" DRC:130000 ")
    assert first == Actor("drc", "hebei") == resolve("drc:hebei")
    assert resolve(" DRC:130000 ") is first  # kept, not parsed again
    assert resolve(Actor("gov", "440000")) == Actor("gov", "guangdong")
    for bad in ("drc", "ndrc:hebei", "drc:atlantis", "mayor:hebei"):
        with pytest.raises(InvalidInput):
            resolve(bad)
        with pytest.raises(InvalidInput):  # a refusal is not kept as an answer
            resolve(bad)
