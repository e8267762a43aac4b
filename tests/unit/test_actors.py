"""Actors (DESIGN §4): ``ndrc``, ``system``, ``drc:PROVINCE`` or ``gov:PROVINCE``, where
PROVINCE is a slug or a GB/T 2260 code; anything else is invalid input (exit 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peakpilot.config.program import Program, load_program
from peakpilot.errors import InvalidInput
from peakpilot.states.actors import (
    SYSTEM_ACTOR,
    Actor,
    province_actors,
    read_scope,
    resolve_actor,
    sees_notice,
)
from tests.design import PROVINCES

_PROGRAM = load_program()


@pytest.fixture(scope="module")
def program() -> Program:
    return _PROGRAM


@pytest.mark.parametrize(
    ("text", "role", "province"),
    [
        ("ndrc", "ndrc", None),
        ("system", "system", None),
        ("drc:hebei", "drc", "hebei"),
        ("gov:hebei", "gov", "hebei"),
        ("gov:130000", "gov", "130000"),
        ("drc:inner_mongolia", "drc", "inner_mongolia"),
        ("  drc:hebei  ", "drc", "hebei"),
        ("\tndrc\n", "ndrc", None),
        (" gov:130000", "gov", "130000"),
        ("drc:HeBei", "drc", "hebei"),
        ("DRC:hebei", "drc", "hebei"),
        ("Ndrc", "ndrc", None),
    ],
)
def test_parse(text: str, role: str, province: str | None) -> None:
    assert Actor.parse(text) == Actor(role, province)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "drc:",
        ":hebei",
        ":",
        "drc:he bei",
        "drc :hebei",
        "drc: hebei",
        "drc:hebei:extra",
        "drc::hebei",
        "drc-hebei",
        "drc/hebei",
        "drc:hebei\nndrc",
        "drc:河北",
        "1drc:hebei",
        "drc:" + "a" * 33,
        "r" * 33,
    ],
)
def test_parse_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Actor.parse(text)
    assert info.value.exit_code == 5
    assert "drc:PROVINCE" in str(info.value)


@pytest.mark.parametrize("value", [None, 7, b"ndrc"])
def test_parse_refuses_non_text(value: object) -> None:
    with pytest.raises(InvalidInput):
        Actor.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("ndrc", "ndrc"),
        ("system", "system"),
        ("drc:hebei", "drc:hebei"),
        ("drc:130000", "drc:hebei"),
        ("gov:130000", "gov:hebei"),
        ("gov:HEBEI", "gov:hebei"),
        ("drc:150000", "drc:inner_mongolia"),
        ("gov:Inner_Mongolia", "gov:inner_mongolia"),
        ("drc:610000", "drc:shaanxi"),
        ("drc:140000", "drc:shanxi"),
        ("gov:650000", "gov:xinjiang"),
    ],
)
def test_resolve_maps_codes_and_case_to_slugs(program: Program, text: str, canonical: str) -> None:
    resolved = resolve_actor(Actor.parse(text), program)
    assert str(resolved) == canonical
    assert resolved == Actor.parse(canonical)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nrdc", ["unknown role", "nrdc"]),
        ("admin", ["unknown role", "admin"]),
        ("governor:hebei", ["unknown role", "governor"]),
        ("drc", ["needs a province"]),
        ("gov", ["needs a province"]),
        ("ndrc:hebei", ["takes no province"]),
        ("system:130000", ["takes no province"]),
        ("drc:atlantis", ["unknown province", "atlantis"]),
        ("gov:999999", ["unknown province", "999999"]),
        ("drc:beijing", ["unknown province", "beijing"]),
        ("drc:110000", ["unknown province", "110000"]),
    ],
)
def test_resolve_refuses(program: Program, text: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_actor(Actor.parse(text), program)
    assert info.value.exit_code == 5
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "actor",
    [
        Actor("ndrc"),
        SYSTEM_ACTOR,
        Actor("drc", "hebei"),
        Actor("gov", "130000"),
        Actor("gov", "inner_mongolia"),
    ],
)
def test_str_round_trips(actor: Actor) -> None:
    assert Actor.parse(str(actor)) == actor


def test_str_forms() -> None:
    assert str(Actor("ndrc")) == "ndrc"
    assert str(Actor("drc", "hebei")) == "drc:hebei"
    assert Actor("system") == SYSTEM_ACTOR


@given(
    role=st.sampled_from(["drc", "gov"]),
    province=st.sampled_from(PROVINCES),
)
def test_every_provincial_actor_resolves_to_itself_and_its_code(role: str, province: str) -> None:
    program = _PROGRAM
    actor = resolve_actor(Actor.parse(f"{role}:{province}"), program)
    assert actor == Actor(role, province)
    code = program.provinces[province].code
    assert resolve_actor(Actor.parse(f"{role}:{code}"), program) == actor
    assert Actor.parse(str(actor)) == actor


@pytest.mark.parametrize(
    ("reader", "scope"),
    [("drc:hebei", "hebei"), ("gov:130000", "hebei"), ("ndrc", None), ("system", None)],
)
def test_read_scope(program: Program, reader: str, scope: str | None) -> None:
    assert read_scope(resolve_actor(Actor.parse(reader), program), program) == scope


@pytest.mark.parametrize(
    ("reader", "addressee", "about", "sees"),
    [
        # about a nomination: its province's, whoever the notice went to
        ("drc:hebei", "drc:hebei", "hebei", True),
        ("drc:hebei", "gov:hebei", "hebei", True),
        ("gov:hebei", "ndrc", "hebei", True),
        ("drc:shanxi", "ndrc", "hebei", False),
        ("gov:shanxi", "gov:hebei", "hebei", False),
        # about no nomination: the province of the actor it went to
        ("gov:hebei", "drc:hebei", None, True),
        ("drc:shanxi", "drc:hebei", None, False),
        # about no nomination, to the NDRC: national readers only
        ("drc:hebei", "ndrc", None, False),
        ("ndrc", "ndrc", None, True),
        ("ndrc", "drc:shanxi", "shanxi", True),
        ("system", "gov:shanxi", None, True),
    ],
)
def test_sees_notice(
    program: Program, reader: str, addressee: str, about: str | None, sees: bool
) -> None:
    actor = resolve_actor(Actor.parse(reader), program)
    assert sees_notice(actor, addressee, about, program) is sees


def test_province_actors_are_the_provincial_roles(program: Program) -> None:
    assert set(province_actors("hebei", program)) == {"drc:hebei", "gov:hebei"}
