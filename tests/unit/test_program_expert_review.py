"""The second version of the 2023 programme (carbon_peak_2023_expert_review.yaml): it loads
and validates, and it differs from the shipped first version by the expert review step
and nothing else; the example migration mappings between the two name real states."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from peakpilot.config.program import Program, Transition, load_program
from peakpilot.notifications.render import Renderer

ROOT = Path(__file__).resolve().parents[2]
EXPERT_REVIEW = ROOT / "peakpilot" / "config" / "programs" / "carbon_peak_2023_expert_review.yaml"
EXAMPLES = ROOT / "docs" / "examples"

# What a row of a programme says about one (event, source state): where it goes, who may
# fire it, its guards and materials, its notice.
Cell = tuple[Any, ...]


def cells(program: Program) -> dict[tuple[str, str], Cell]:
    """Every (event, source) of the programme and what its row says; a row split or
    joined in the file reads the same."""

    def cell(row: Transition, source: str) -> Cell:
        notice = None if row.notice is None else (row.notice.kind, frozenset(row.notice.to))
        return (
            row.dest_from(source),
            frozenset(row.roles),
            frozenset(row.guards),
            notice,
            tuple(sorted(row.data)),
            row.needs_material,
        )

    return {
        (row.event, source): cell(row, source)
        for row in program.transitions
        for source in row.sources
    }


@pytest.fixture(scope="module")
def first() -> Program:
    return load_program()


@pytest.fixture(scope="module")
def second() -> Program:
    return load_program(EXPERT_REVIEW)


def test_it_is_the_same_programme_with_the_same_first_batch(
    first: Program, second: Program
) -> None:
    assert second.id == first.id
    assert second.first_batch == first.first_batch
    assert second.digest != first.digest


def test_only_the_expert_review_step_differs(first: Program, second: Program) -> None:
    changed = {"states", "transitions", "quota_counts", "source"}
    for field in dataclasses.fields(Program):
        if field.name not in changed:
            assert getattr(second, field.name) == getattr(first, field.name), field.name

    after_submitted = first.states.index("submitted") + 1
    states = list(first.states)
    states.insert(after_submitted, "expert_review")
    assert second.states == tuple(states)

    counted = list(first.quota_counts)
    counted.insert(counted.index("submitted") + 1, "expert_review")
    assert second.quota_counts == tuple(counted)

    old, new = cells(first), cells(second)
    decisions = ("confirm", "reject", "defer")
    # a decision now follows the experts' review: it leaves expert_review, not submitted
    assert {key for key in old if key not in new} == {(e, "submitted") for e in decisions}
    moved = {(e, "expert_review"): old[(e, "submitted")] for e in decisions}
    # the NDRC may still send back, and the province withdraw, under review as before it
    same_as_submitted = {
        (e, "expert_review"): old[(e, "submitted")] for e in ("send_back", "withdraw")
    }
    referral = {
        ("refer_to_experts", "submitted"): (
            "expert_review",
            frozenset({"ndrc"}),
            frozenset(),  # no batch_open: the NDRC reviews after the deadline too
            ("referred_to_experts", frozenset({"drc", "gov"})),
            (),
            None,
        )
    }
    assert {key: new[key] for key in new if key not in old} == (
        moved | same_as_submitted | referral
    )
    assert {key: new[key] for key in old if key in new} == {
        key: cell for key, cell in old.items() if key in new
    }


def test_the_new_event_and_notice_kind(first: Program, second: Program) -> None:
    assert set(second.events) - set(first.events) == {"refer_to_experts"}
    assert set(second.notice_kinds) - set(first.notice_kinds) == {"referred_to_experts"}
    assert set(first.events) <= set(second.events)
    assert set(first.notice_kinds) <= set(second.notice_kinds)


def test_its_notices_have_their_templates(second: Program) -> None:
    Renderer().check(second.notice_kinds)


def test_it_comes_back_equal_from_its_compiled_form(second: Program) -> None:
    assert Program.from_compiled(second.to_compiled()) == second


def _mapping(name: str) -> dict[str, str]:
    document = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict) and list(document) == ["states"], document
    states = document["states"]
    assert isinstance(states, dict), states
    return states


def test_the_migration_to_expert_review_refers_everything_submitted(
    first: Program, second: Program
) -> None:
    mapping = _mapping("migrate_to_expert_review.yaml")
    assert mapping == {"submitted": "expert_review"}
    assert set(mapping) <= set(first.states) and set(mapping.values()) <= set(second.states)


def test_the_migration_back_maps_every_state_the_first_version_lacks(
    first: Program, second: Program
) -> None:
    mapping = _mapping("migrate_back_to_2023.yaml")
    assert mapping == {"expert_review": "submitted"}
    assert set(mapping) == set(second.states) - set(first.states)
    assert set(mapping.values()) <= set(first.states)
