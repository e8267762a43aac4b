"""The second version of the 2023 programme from the command line (a real subprocess, on
an SQLite file): `init --program FILE` loads it, `diagram` draws the expert review, a
decision before the review is refused (5) in one line, and the mappings of docs/examples
move a database's nominations to it and back with `--migrate`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from peakpilot import Engine, FrozenClock
from tests.acceptance.test_cli import BEFORE, doc, fails, ok
from tests.integration.test_expert_review import FIRST_VERSION
from tests.unit.test_program_expert_review import EXAMPLES, EXPERT_REVIEW


def submitted(db: str) -> str:
    """A Hebei city submitted to the NDRC, made through the API: the subprocesses are for
    the commands each test is about."""
    with Engine(db, clock=FrozenClock(datetime.fromisoformat(BEFORE))) as engine:
        n = engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        )
        engine.fire(n.id, "submit_for_approval", "drc:hebei")
        engine.fire(n.id, "approve", "gov:hebei")
        return engine.fire(n.id, "submit", "drc:hebei").id


def test_init_with_the_second_version_then_diagram_shows_the_expert_review(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'peakpilot.db'}"
    assert "initialised" in ok("init", "--program", str(EXPERT_REVIEW), db=db).stdout
    assert "up to date" in ok("init", "--program", str(EXPERT_REVIEW), db=db).stdout

    mermaid = ok("diagram", db=db).stdout
    for edge in (
        "submitted --> expert_review: refer_to_experts [by_ndrc]",
        "expert_review --> confirmed: confirm [by_ndrc]",
        "expert_review --> rejected: reject [by_ndrc & reason_given]",
        "expert_review --> follow_up_batch: defer [by_ndrc & reason_given]",
    ):
        assert edge in mermaid, mermaid
    assert "submitted --> confirmed" not in mermaid
    dot = ok("diagram", "--format", "dot", db=db).stdout
    assert 'submitted -> expert_review [label="refer_to_experts [by_ndrc]"]' in dot


def test_confirm_before_the_expert_review_is_refused_then_refer_and_confirm(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'peakpilot.db'}"
    ok("init", "--program", str(EXPERT_REVIEW), db=db)
    nid = submitted(db)
    refused = fails(5, "--json", "fire", nid, "confirm", "--as", "ndrc", db=db)
    assert "expert_review" in refused.stderr
    after = doc("fire", nid, "refer_to_experts", "--as", "ndrc", db=db)
    assert after["state"] == "expert_review"
    assert doc("fire", nid, "confirm", "--as", "ndrc", db=db)["state"] == "confirmed"
    kinds = [notice["kind"] for notice in doc("notices", db=db)]
    assert kinds.count("referred_to_experts") == 2  # drc:hebei and gov:hebei


def test_init_with_the_second_version_on_a_database_holding_the_first(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'peakpilot.db'}"
    ok("init", db=db)
    assert "expert_review" not in ok("diagram", db=db).stdout
    ok("init", "--program", str(EXPERT_REVIEW), db=db)
    assert "submitted --> expert_review" in ok("diagram", db=db).stdout
    ok("init", db=db)  # without --program, the programme in force stays
    assert "submitted --> expert_review" in ok("diagram", db=db).stdout


def test_the_example_mappings_with_migrate(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'peakpilot.db'}"
    ok("init", db=db)  # the first version
    nid = submitted(db)
    to_review = str(EXAMPLES / "migrate_to_expert_review.yaml")
    ok("init", "--program", str(EXPERT_REVIEW), "--migrate", to_review, db=db)
    assert doc("show", nid, db=db)["state"] == "expert_review"

    stranded = fails(5, "init", "--program", str(FIRST_VERSION), db=db)
    assert "expert_review" in stranded.stderr
    back = str(EXAMPLES / "migrate_back_to_2023.yaml")
    ok("init", "--program", str(FIRST_VERSION), "--migrate", back, db=db)
    assert doc("show", nid, db=db)["state"] == "submitted"
