"""Every notice, byte for byte: each kind in each locale, and the variations its templates
branch on (a reason or none, singular and plural counts, an empty list, an unknown code,
hostile data), rendered and compared with the files under ``tests/data/notices``.

The other template tests check what a reader must find; these pin everything else, so
that a change made for speed (a template restructured, a macro inlined, the environment
tuned) is seen to change nothing that is sent. A deliberate change of wording regenerates
the files: ``PEAKPILOT_REGENERATE_NOTICES=1 pytest tests/unit/test_notice_golden.py``,
then review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from peakpilot.notifications.render import LOCALES, RenderedNotice, Renderer
from tests.unit.test_templates import (
    ALL_KINDS,
    EVALUATIONS,
    NOMINATION_KINDS,
    PILOT_KINDS,
    TRANSITIONS,
    context,
)

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "notices"
REGENERATE = os.environ.get("PEAKPILOT_REGENERATE_NOTICES") == "1"

HOSTILE_NAME = "<script>alert(\"x\")</script> & 'B'"
HOSTILE_REASON = "第一条：<b>数据</b> & 核算\r\n\n  indented 'line' \"quoted\"\n"

Changes = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


def _first_pilot_only(ctx: dict[str, Any]) -> dict[str, Any]:
    """A province's progress-report letter with one pilot (its usual context lists three)."""
    return {"pilots": ctx["pilots"][:1]}


def _variations() -> dict[str, tuple[str, Changes]]:
    """Case name -> (kind, changes to the kind's usual context)."""
    cases: dict[str, tuple[str, Changes]] = {kind: (kind, {}) for kind in ALL_KINDS}
    for kind in NOMINATION_KINDS:
        given = TRANSITIONS[kind][5]
        cases[f"{kind}-{'no-reason' if given else 'with-reason'}"] = (
            kind,
            {"reason": None if given else "备注：材料齐全。\nRemarks: complete."},
        )
        cases[f"{kind}-from-submitted"] = (kind, {"from_state": "submitted"})
        cases[f"{kind}-hostile"] = (kind, {"reason": HOSTILE_REASON})
    for kind in PILOT_KINDS:
        given = TRANSITIONS[kind][5]
        cases[f"{kind}-{'no-reason' if given else 'with-reason'}"] = (
            kind,
            {"reason": None if given else "说明：材料齐全。\nRemarks: complete."},
        )
    midterm = EVALUATIONS["pass_midterm"]
    cases |= {  # a pilot's construction (DESIGN §2b)
        "plan_returned-hostile": ("plan_returned", {"reason": HOSTILE_REASON}),
        "revoked-from-plan_review": (
            "revoked",
            {"from_state": "plan_review", "reason": "实施方案经两次退回修改，仍不符合要求。"},
        ),
        "progress_reported-in-rectification": (
            "progress_reported",
            {"from_state": "rectification", "to_state": "rectification"},
        ),
        "evaluated-pass_midterm": ("evaluated", midterm),
        "evaluated-complete": ("evaluated", EVALUATIONS["complete"]),
        "evaluated-unknown-grade": ("evaluated", midterm | {"data": {"grade": "distinction"}}),
        "evaluated-unknown-event": ("evaluated", {"event": "re_evaluate", "data": {}}),
        "evaluated-hostile": ("evaluated", {"data": {"due": HOSTILE_NAME}}),
        "plan_reminder-1-day": ("plan_reminder", {"days_left": 1}),
        "report_reminder-1-day": ("report_reminder", {"days_left": 1}),
        "report_reminder-one-pilot": ("report_reminder", _first_pilot_only),
        "report_reminder-hostile": ("report_reminder", {}),
        "report_overdue-one-pilot": ("report_overdue", _first_pilot_only),
        "report_overdue-hostile": ("report_overdue", {}),
        "rectification_reminder-under-a-day": ("rectification_reminder", {"days_left": 0}),
        "plan_overdue-hostile": ("plan_overdue", {}),
    }
    cases |= {
        "approved-empty-reason": ("approved", {"reason": ""}),
        "withdrawn-from-approved": ("withdrawn", {"from_state": "approved"}),
        # the programme's second version (carbon_peak_2023_expert_review)
        "withdrawn-from-expert_review": ("withdrawn", {"from_state": "expert_review"}),
        "sent_back-from-expert_review": ("sent_back", {"from_state": "expert_review"}),
        "approved-unknown-codes": (
            "approved",
            {"event": "mystery_event", "from_state": "limbo", "to_state": "nowhere"},
        ),
        "reminder-1-day-1-hour": ("reminder", {"days_left": 1, "hours_left": 1}),
        "reminder-days-only": ("reminder", {"days_left": 14, "hours_left": 0}),
        "reminder-hours-only": ("reminder", {"days_left": 0, "hours_left": 5}),
        "reminder-1-hour": ("reminder", {"days_left": 0, "hours_left": 1}),
        "reminder-under-an-hour": ("reminder", {"days_left": 0, "hours_left": 0}),
        "reminder-singular": ("reminder", {"quota": 1, "used": 1, "left": 1}),
        "shortfall-none-lapsed": ("shortfall", {"lapsed": []}),
        "shortfall-singular": (
            "shortfall",
            {
                "quota": 2,
                "used": 1,
                "lapsed": [("nom-0011", HOSTILE_NAME, "park", "unknown_state")],
            },
        ),
        "batch_opened-singular": ("batch_opened", {"quota": 1}),
        "milestone-hostile": ("milestone", {}),
        "deadline_summary-all-used": (
            "deadline_summary",
            {
                "provinces": [
                    {
                        "province": {"slug": "hebei", "name": HOSTILE_NAME},
                        "quota": 1,
                        "used": 1,
                        "names": [HOSTILE_NAME],
                    }
                ],
                "total_quota": 1,
                "total_used": 1,
            },
        ),
    }
    return cases


CASES = _variations()


def _context(kind: str, locale: str, changes: Changes, case: str) -> dict[str, Any]:
    hostile = case.endswith("-hostile")
    ctx = context(kind, locale, name=HOSTILE_NAME if hostile else "唐山市")
    ctx |= changes(ctx) if callable(changes) else changes
    if hostile and "nomination" in ctx:
        ctx["nomination"]["level"] = "a level with no label"
    return ctx


def _files(case: str, locale: str) -> dict[str, Path]:
    folder = GOLDEN / locale
    return {
        "subject": folder / f"{case}.subject.txt",
        "text": folder / f"{case}.txt",
        "html": folder / f"{case}.html",
    }


@pytest.fixture(scope="module", params=["shipped", "sandboxed"])
def renderer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    if request.param == "shipped":
        return Renderer()
    return Renderer(tmp_path_factory.mktemp("no-overrides"))  # everything ships, sandboxed


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_notice_renders_exactly_as_recorded(
    renderer: Renderer, case: str, locale: str
) -> None:
    kind, changes = CASES[case]
    notice = renderer.render(kind, locale, _context(kind, locale, changes, case))
    files = _files(case, locale)
    if REGENERATE:
        files["subject"].parent.mkdir(parents=True, exist_ok=True)
        for part, path in files.items():
            path.write_bytes(getattr(notice, part).encode("utf-8"))
    expected = RenderedNotice(
        **{part: path.read_bytes().decode("utf-8") for part, path in files.items()}
    )
    assert notice.subject == expected.subject
    assert notice.text == expected.text
    assert notice.html == expected.html


def test_no_recorded_notice_is_left_over() -> None:
    """A file without its case would silently stop being checked."""
    expected = {
        path.relative_to(GOLDEN)
        for case in CASES
        for locale in LOCALES
        for path in _files(case, locale).values()
    }
    found = {path.relative_to(GOLDEN) for path in GOLDEN.rglob("*") if path.is_file()}
    assert found == expected
