"""The notice templates (DESIGN §4, notices, and §2b for a pilot's construction): every
kind renders in zh-CN and en from the context the engine passes, names what a clerk needs
(programme, batch, province, nomination, actor, reason, deadline), escapes data in HTML
and nowhere else, keeps the subject on one line, refuses a missing variable, and lets an
operator override a template in a sandbox."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from peakpilot.config.program import load_program
from peakpilot.errors import ConfigError
from peakpilot.notifications.render import LOCALES, PARTS, RenderedNotice, Renderer
from peakpilot.workflow.timers import LapsedItem

NOMINATION_KINDS = (
    "sent_for_approval",
    "approved",
    "sent_back",
    "submitted",
    "referred_to_experts",  # the second version's expert review (carbon_peak_2023_expert_review)
    "confirmed",
    "rejected",
    "deferred",
    "withdrawn",
    "carried_over",
)
PROVINCE_KINDS = ("reminder", "shortfall", "deadline_summary", "batch_opened")
# a pilot's construction (DESIGN §2b): notices of its events, and of what it owes
PILOT_KINDS = (
    "plan_submitted",
    "plan_returned",
    "plan_approved",
    "progress_reported",
    "evaluated",
    "rectification_accepted",
    "revoked",
)
PILOT_DUE_KINDS = (
    "plan_reminder",
    "plan_overdue",
    "rectification_reminder",
    "rectification_overdue",
)
# a year's progress reports: one letter per province and reporting round, listing its pilots
# that have not yet reported the year
REPORT_KINDS = ("report_reminder", "report_overdue")
ALL_KINDS = (
    *NOMINATION_KINDS,
    *PROVINCE_KINDS,
    "milestone",
    *PILOT_KINDS,
    *PILOT_DUE_KINDS,
    *REPORT_KINDS,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "peakpilot" / "notifications" / "templates"

FIRST = {"id": "2023-first", "deadline": "2023-11-15 00:00 (UTC+08:00)"}
SECOND = {"id": "2024-second", "deadline": "2024-06-30 00:00 (UTC+08:00)"}

TEXT = {
    "zh-CN": {
        "title": "国家碳达峰试点建设",
        "ndrc": "国家发展改革委",
        "drc:hebei": "河北省发展改革委",
        "gov:hebei": "河北省人民政府",
        "city": "城市",
        "park": "园区",
        "reason": (
            "申报材料中碳排放核算边界不够清晰。\n"
            "请补充 2020—2022 年能源消费数据，并明确重点工程清单。"
        ),
        "objective": "取得积极进展",
    },
    "en": {
        "title": "National Carbon Peak Pilot Programme",
        "ndrc": "National Development and Reform Commission",
        "drc:hebei": "Development and Reform Commission of Hebei",
        "gov:hebei": "People's Government of Hebei",
        "city": "city",
        "park": "park",
        "reason": (
            "The carbon accounting boundary in the application is unclear.\n"
            "Please add energy consumption data for 2020-2022 and list the key projects."
        ),
        "objective": "positive progress",
    },
}
# the reasons of a pilot's construction, as the NDRC would write them
PILOT_REASONS = {
    "zh-CN": {
        "plan_returned": (
            "重点工程清单与年度目标衔接不够。\n请补充各年度能耗强度和碳排放强度下降目标。"
        ),
        "evaluated": "2024年度碳排放强度下降未达到实施方案目标。\n重点工程建设进度滞后。",
        "revoked": "整改期限届满后，整改情况仍未达到要求。",
    },
    "en": {
        "plan_returned": (
            "The key projects are not tied to the yearly targets.\n"
            "Please add the yearly targets for energy and carbon intensity."
        ),
        "evaluated": (
            "The fall in carbon intensity in 2024 missed the plan's target.\n"
            "The key projects are behind schedule."
        ),
        "revoked": "The rectification did not meet the requirements by its deadline.",
    },
}
PROVINCE_NAMES = {
    "hebei": {"zh-CN": "河北省", "en": "Hebei"},
    "shanxi": {"zh-CN": "山西省", "en": "Shanxi"},
    "inner_mongolia": {"zh-CN": "内蒙古自治区", "en": "Inner Mongolia"},
    "jiangsu": {"zh-CN": "江苏省", "en": "Jiangsu"},
    "xinjiang": {"zh-CN": "新疆维吾尔自治区", "en": "Xinjiang"},
}

# kind: (event, from_state, to_state, acting actor, recipient, reason given)
TRANSITIONS = {
    "sent_for_approval": (
        "submit_for_approval",
        "drafted",
        "provincial_approval",
        "drc:hebei",
        "gov:hebei",
        False,
    ),
    "approved": ("approve", "provincial_approval", "approved", "gov:hebei", "drc:hebei", False),
    "sent_back": ("send_back", "provincial_approval", "drafted", "gov:hebei", "drc:hebei", True),
    "submitted": ("submit", "approved", "submitted", "drc:hebei", "ndrc", False),
    "referred_to_experts": (
        "refer_to_experts",
        "submitted",
        "expert_review",
        "ndrc",
        "gov:hebei",
        False,
    ),
    "confirmed": ("confirm", "submitted", "confirmed", "ndrc", "drc:hebei", False),
    "rejected": ("reject", "submitted", "rejected", "ndrc", "gov:hebei", True),
    "deferred": ("defer", "submitted", "follow_up_batch", "ndrc", "drc:hebei", True),
    "withdrawn": ("withdraw", "submitted", "withdrawn", "drc:hebei", "ndrc", True),
    "carried_over": ("carry_over", "follow_up_batch", "drafted", "drc:hebei", "gov:hebei", False),
    "plan_submitted": ("submit_plan", "confirmed", "plan_review", "drc:hebei", "ndrc", False),
    "plan_returned": ("return_plan", "plan_review", "confirmed", "ndrc", "drc:hebei", True),
    "plan_approved": ("approve_plan", "plan_review", "in_construction", "ndrc", "gov:hebei", False),
    "progress_reported": (
        "report_progress",
        "in_construction",
        "in_construction",
        "drc:hebei",
        "ndrc",
        False,
    ),
    "evaluated": ("fail_evaluation", "in_construction", "rectification", "ndrc", "drc:hebei", True),
    "rectification_accepted": (
        "accept_rectification",
        "rectification",
        "in_construction",
        "ndrc",
        "gov:hebei",
        False,
    ),
    "revoked": ("revoke", "in_construction", "revoked", "ndrc", "gov:hebei", True),
}
# The event's data as the engine passes it (display-ready strings), for the kinds that read
# it; the engine passes `data` (None) with every transition, as it passes `from_batch`.
DATA = {
    "progress_reported": {"period": "2024"},
    "evaluated": {"due": "2025-06-30"},
}
# evaluated is sent for three events, each with its own data (DESIGN §2b)
EVALUATIONS = {
    "pass_midterm": {
        "event": "pass_midterm",
        "to_state": "in_construction",
        "reason": None,
        "data": {"grade": "excellent"},
    },
    "fail_evaluation": {},  # the kind's usual context
    "complete": {
        "event": "complete",
        "to_state": "completed",
        "reason": None,
        "data": {"grade": "good"},
    },
}
RECIPIENTS = {
    "reminder": "drc:hebei",
    "shortfall": "gov:hebei",
    "deadline_summary": "ndrc",
    "batch_opened": "drc:hebei",
    "milestone": "gov:hebei",
    "plan_reminder": "drc:hebei",
    "plan_overdue": "gov:hebei",
    "report_reminder": "drc:hebei",
    "report_overdue": "drc:hebei",
    "rectification_reminder": "drc:hebei",
    "rectification_overdue": "ndrc",
}
# kind: (the pilot's state, when it is due, days left or None)
DUES = {
    "plan_reminder": ("confirmed", "2024-03-13 00:00 (UTC+08:00)", 7),
    "plan_overdue": ("confirmed", "2024-03-13 00:00 (UTC+08:00)", None),
    "rectification_reminder": ("rectification", "2025-06-30 00:00 (UTC+08:00)", 14),
    "rectification_overdue": ("rectification", "2025-06-30 00:00 (UTC+08:00)", None),
}
# a province's pilots that have not yet reported the year, as (id, name, kind code); the
# engine passes the kind's name in the letter's language. The first takes context()'s name.
UNREPORTED = [
    ("nom-0003", "唐山市", "city"),
    ("nom-0004", "张家口市", "city"),
    ("nom-0009", "曹妃甸经济技术开发区", "park"),
]
LAPSED: list[LapsedItem] = [  # as the engine passes them: kind codes, named here in each language
    ("nom-0007", "保定市", "city", "approved"),
    ("nom-0009", "曹妃甸经济技术开发区", "park", "provincial_approval"),
]
SUMMARY = [
    ("hebei", 3, ["唐山市", "张家口市"]),
    ("shanxi", 2, ["太原市", "晋城经济技术开发区"]),
    ("inner_mongolia", 3, ["包头市"]),
    ("jiangsu", 3, ["南京市", "苏州工业园区", "常州市"]),
    ("xinjiang", 2, []),
]


def province(slug: str, locale: str) -> dict[str, str]:
    return {"slug": slug, "name": PROVINCE_NAMES[slug][locale]}


def context(kind: str, locale: str, name: str = "唐山市") -> dict[str, Any]:
    """The full context the engine passes for one notice (DESIGN §4)."""
    text = TEXT[locale]
    recipient = TRANSITIONS[kind][4] if kind in TRANSITIONS else RECIPIENTS[kind]
    ctx: dict[str, Any] = {
        "program_title": text["title"],
        "batch": dict(SECOND if kind in ("carried_over", "batch_opened") else FIRST),
        "recipient": {"actor": recipient, "name": text[recipient]},
        "sent_at": "2023-11-02 10:30 (UTC+08:00)",
    }
    nomination = {
        "id": "nom-0003",
        "name": name,
        "kind": text["city"],
        "level": "prefecture",
        "state": "confirmed",
        "province": province("hebei", locale),
    }
    if kind in TRANSITIONS:
        event, from_state, to_state, actor, _, with_reason = TRANSITIONS[kind]
        nomination["state"] = to_state
        ctx |= {
            "nomination": nomination,
            "actor": {"actor": actor, "name": text[actor]},
            "event": event,
            "from_state": from_state,
            "to_state": to_state,
            "reason": PILOT_REASONS[locale].get(kind, text["reason"]) if with_reason else None,
        }
        if kind == "carried_over":
            ctx["from_batch"] = FIRST["id"]
        if kind in DATA:
            ctx["data"] = dict(DATA[kind])
    elif kind == "reminder":
        ctx |= {
            "province": province("hebei", locale),
            "quota": 3,
            "used": 1,
            "left": 2,
            "days_left": 6,
            "hours_left": 15,
        }
    elif kind == "shortfall":
        lapsed = [(id_, name, text[kind], state) for id_, name, kind, state in LAPSED]
        ctx |= {"province": province("hebei", locale), "quota": 3, "used": 1, "lapsed": lapsed}
    elif kind == "deadline_summary":
        ctx["provinces"] = [
            {"province": province(slug, locale), "quota": quota, "used": len(names), "names": names}
            for slug, quota, names in SUMMARY
        ]
        ctx["total_quota"] = sum(quota for _, quota, _ in SUMMARY)
        ctx["total_used"] = sum(len(names) for _, _, names in SUMMARY)
    elif kind == "batch_opened":
        ctx |= {"province": province("hebei", locale), "quota": 2}
    elif kind == "milestone":
        ctx["nomination"] = nomination
        ctx["milestone"] = {
            "year": 2025,
            "objective": text["objective"],
            "due": "2025-12-31 00:00 (UTC+08:00)",
        }
    elif kind in DUES:
        state, due, days_left = DUES[kind]
        nomination["state"] = state
        ctx |= {"nomination": nomination, "due": due}
        if days_left is not None:
            ctx["days_left"] = days_left
    elif kind in REPORT_KINDS:
        first, *others = UNREPORTED
        pilots = [(first[0], name, text[first[2]])]
        pilots += [(id_, pilot, text[code]) for id_, pilot, code in others]
        ctx |= {"province": province("hebei", locale), "period": 2024, "due": "2025-01-31"}
        ctx["pilots"] = pilots
        if kind == "report_reminder":
            ctx["days_left"] = 7
    else:  # pragma: no cover - a kind this module does not know
        raise AssertionError(kind)
    return ctx


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _render(renderer: Renderer, kind: str, locale: str, **changes: Any) -> RenderedNotice:
    return renderer.render(kind, locale, context(kind, locale) | changes)


# --- what ships ----------------------------------------------------------------------


def test_every_kind_has_its_three_templates_in_each_locale_and_nothing_else() -> None:
    expected = {f"{kind}.{part}.j2" for kind in ALL_KINDS for part in PARTS}
    for locale in LOCALES:
        shipped = {p.name for p in (TEMPLATES / locale).iterdir() if not p.name.startswith("_")}
        assert shipped == expected, locale


def test_check_compiles_every_shipped_template(renderer: Renderer) -> None:
    renderer.check(ALL_KINDS)


def test_every_notice_kind_the_shipped_programme_declares_has_templates() -> None:
    assert set(load_program().notice_kinds) <= set(ALL_KINDS)


def test_no_template_marks_data_safe() -> None:
    for path in TEMPLATES.rglob("*.j2"):
        assert "|safe" not in path.read_text(encoding="utf-8").replace(" ", ""), path


# --- content ---------------------------------------------------------------------------


def _expected_in_body(kind: str, ctx: dict[str, Any]) -> list[str]:
    """What a reader must find in both the text and the HTML of a notice."""
    wanted = [ctx["program_title"], ctx["recipient"]["name"]]
    if kind not in REPORT_KINDS:  # a province's pilots may come from several batches
        wanted += [ctx["batch"]["id"], ctx["batch"]["deadline"]]
    if "nomination" in ctx:
        wanted += [ctx["nomination"]["name"], ctx["nomination"]["province"]["name"]]
    if "actor" in ctx:
        wanted.append(ctx["actor"]["name"])
    if ctx.get("reason"):
        wanted += ctx["reason"].splitlines()
    if "province" in ctx:
        wanted.append(ctx["province"]["name"])
    if kind == "carried_over":
        wanted.append(ctx["from_batch"])
    if kind == "shortfall":
        wanted += [name for _id, name, _kind, _state in ctx["lapsed"]]
    if kind == "deadline_summary":
        for row in ctx["provinces"]:
            wanted += [row["province"]["name"], *row["names"]]
    if kind == "milestone":
        wanted += [
            str(ctx["milestone"]["year"]),
            ctx["milestone"]["objective"],
            ctx["milestone"]["due"],
        ]
    if kind == "progress_reported":
        wanted.append(ctx["data"]["period"])
    if kind == "evaluated" and ctx["event"] == "fail_evaluation":
        wanted.append(ctx["data"]["due"])
    if kind in DUES:
        wanted.append(ctx["due"])
    if kind in REPORT_KINDS:
        wanted += [ctx["due"], str(ctx["period"]), *(name for _id, name, _kind in ctx["pilots"])]
        wanted += [id_ for id_, _name, _kind in ctx["pilots"]]
    return wanted


def _escaped(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_renders_what_a_reader_needs(renderer: Renderer, kind: str, locale: str) -> None:
    ctx = context(kind, locale)
    notice = renderer.render(kind, locale, ctx)

    assert notice.subject and notice.subject == notice.subject.strip()
    assert "\n" not in notice.subject and "\r" not in notice.subject
    assert ctx["program_title"] in notice.subject
    subject_names = ctx["nomination"]["name"] if "nomination" in ctx else None
    if kind in (*PROVINCE_KINDS, *REPORT_KINDS) and kind != "deadline_summary":
        subject_names = ctx["province"]["name"]
    if subject_names is not None:
        assert subject_names in notice.subject

    for value in _expected_in_body(kind, ctx):
        assert value in notice.text, (value, notice.text)
        assert _escaped(value) in notice.html, (value, notice.html)
    assert "{{" not in notice.text + notice.html and "{%" not in notice.text + notice.html
    assert "None" not in notice.text and "None" not in notice.html
    assert "&amp;lt;" not in notice.html  # nothing escaped twice


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_html_is_a_balanced_self_contained_document(
    renderer: Renderer, kind: str, locale: str
) -> None:
    html = renderer.render(kind, locale, context(kind, locale)).html
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{locale}">' in html
    assert '<meta charset="utf-8">' in html
    for external in ("http:", "https:", "src=", "<link", "<style", "<script", "url("):
        assert external not in html.lower(), external
    TagBalance.check(html)


class TagBalance(HTMLParser):
    """Every element the templates open is closed, in order."""

    VOID = frozenset({"br", "meta", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()

    @classmethod
    def check(cls, html: str) -> None:
        parser = cls()
        parser.feed(html)
        parser.close()
        assert parser.stack == []


@pytest.mark.parametrize("locale", LOCALES)
def test_a_multi_line_reason_keeps_its_lines_and_breaks_safely_in_html(
    renderer: Renderer, locale: str
) -> None:
    reason = "第一条：材料不全。\r\n第二条：<b>数据</b> & 核算\n\n第三条：请于月底前补充。"
    notice = _render(renderer, "rejected", locale, reason=reason)
    for line in reason.splitlines():
        assert line in notice.text
    assert (
        "第一条：材料不全。<br>第二条：&lt;b&gt;数据&lt;/b&gt; &amp; 核算<br><br>第三条"
        in notice.html
    )
    assert "<b>" not in notice.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", NOMINATION_KINDS)
@pytest.mark.parametrize("from_state", ["approved", "submitted"])
def test_plain_text_paragraphs_are_separated_by_one_blank_line(
    renderer: Renderer, kind: str, locale: str, from_state: str
) -> None:
    text = _render(renderer, kind, locale, from_state=from_state, reason="一\n二").text
    assert "\n\n\n" not in text and text.endswith("\n") and not text.endswith("\n\n")
    lines = text.splitlines()
    for index, line in enumerate(lines[1:], start=1):
        if line.endswith(("：", ":")) and not line[0].isspace():
            assert lines[index - 1] == "", (line, text)  # a section label starts a block
    # a paragraph ending in a conditional sentence still ends with its blank line
    for sentence in ("的试点名额。", "counts against the quota of Hebei."):
        for position in (m.end() for m in re.finditer(re.escape(sentence), text)):
            assert text[position : position + 2] == "\n\n", text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", ["approved", "sent_for_approval", "submitted", "confirmed"])
def test_no_reason_block_when_none_is_given(renderer: Renderer, kind: str, locale: str) -> None:
    plain = _render(renderer, kind, locale, reason=None)
    given = _render(renderer, kind, locale, reason="备注")
    assert "备注" not in plain.text and "备注" in given.text and "备注" in given.html
    assert len(given.text.splitlines()) > len(plain.text.splitlines())


@pytest.mark.parametrize("locale", LOCALES)
def test_a_withdrawal_from_submitted_says_the_place_is_free_again(
    renderer: Renderer, locale: str
) -> None:
    freed = {"zh-CN": "不再占用", "en": "no longer counts against the quota"}[locale]
    assert freed in _render(renderer, "withdrawn", locale).text
    early = _render(renderer, "withdrawn", locale, from_state="approved")
    assert freed not in early.text and freed not in early.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", ["withdrawn", "sent_back"])
def test_leaving_expert_review_says_the_place_is_free_again(
    renderer: Renderer, kind: str, locale: str
) -> None:
    """In the programme's second version a nomination under expert review holds its
    province's place as a submitted one does, and gives it back when it leaves."""
    freed = {"zh-CN": "不再占用", "en": "no longer counts against the quota"}[locale]
    notice = _render(renderer, kind, locale, from_state="expert_review")
    assert freed in notice.text and freed in notice.html
    shown = {"zh-CN": "专家评审中", "en": "under expert review"}[locale]
    assert shown in notice.text


@pytest.mark.parametrize("locale", LOCALES)
def test_a_referral_to_the_experts_says_the_place_stays_taken_and_what_comes_next(
    renderer: Renderer, locale: str
) -> None:
    notice = _render(renderer, "referred_to_experts", locale)
    words = {
        "zh-CN": ["提交专家评审", "继续占用河北省本批次的试点名额", "现阶段无需另行办理"],
        "en": [
            "referred for expert review",
            "continues to count against the quota of Hebei",
            "No action is required of you",
        ],
    }[locale]
    for phrase in words:
        assert phrase in notice.text and phrase in notice.html, phrase
    status = {
        "zh-CN": "已报送国家发展改革委 → 专家评审中",
        "en": "submitted to the NDRC → under expert review",
    }[locale]
    assert status in notice.text and status in notice.html
    assert "expert_review" not in notice.text + notice.html  # a label, never the code


@pytest.mark.parametrize("locale", LOCALES)
def test_a_shortfall_without_lapsed_nominations_says_so(renderer: Renderer, locale: str) -> None:
    notice = _render(renderer, "shortfall", locale, lapsed=[])
    assert {"zh-CN": "没有截止时尚未报送的申报", "en": "had no unsubmitted nominations"}[
        locale
    ] in notice.text
    assert "<ol" not in notice.html


@pytest.mark.parametrize(
    ("locale", "days", "hours", "shown"),
    [
        ("zh-CN", 6, 15, "6 天 15 小时"),
        ("zh-CN", 7, 0, "还有 7 天。"),
        ("zh-CN", 0, 5, "还有 5 小时。"),
        ("zh-CN", 0, 0, "不足 1 小时"),
        ("en", 6, 15, "in 6 days and 15 hours."),
        ("en", 1, 1, "in 1 day and 1 hour."),
        ("en", 14, 0, "in 14 days."),
        ("en", 0, 0, "in less than one hour."),
    ],
)
def test_a_reminder_shows_the_time_left(
    renderer: Renderer, locale: str, days: int, hours: int, shown: str
) -> None:
    notice = _render(renderer, "reminder", locale, days_left=days, hours_left=hours)
    assert shown in notice.text


def test_english_counts_agree_in_number(renderer: Renderer) -> None:
    one = _render(renderer, "batch_opened", "en", quota=1)
    assert "a quota of 1 place." in one.text and "1 place for" in one.subject
    two = _render(renderer, "reminder", "en", quota=2, used=1, left=1)
    assert "a quota of 2 places, of which 1 is used" in two.text and "1 remains" in two.text


# --- a pilot's construction (DESIGN §2b) ---------------------------------------------------


def _pilot_cases() -> list[tuple[str, dict[str, Any]]]:
    """Every construction letter, and each evaluation, as (kind, changes to its context)."""
    cases: list[tuple[str, dict[str, Any]]] = [
        (kind, {}) for kind in (*PILOT_DUE_KINDS, *REPORT_KINDS)
    ]
    cases += [(kind, {"pilots": [("nom-0003", "唐山市", "城市")]}) for kind in REPORT_KINDS]
    cases += [(kind, {"reason": "一\n二"}) for kind in PILOT_KINDS if kind != "evaluated"]
    cases += [("evaluated", changes | {"reason": "一\n二"}) for changes in EVALUATIONS.values()]
    during = {"from_state": "rectification", "to_state": "rectification"}
    cases.append(("progress_reported", during))
    return cases


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("kind", "changes"), _pilot_cases())
def test_a_pilots_letters_keep_one_blank_line_between_paragraphs(
    renderer: Renderer, kind: str, changes: dict[str, Any], locale: str
) -> None:
    text = _render(renderer, kind, locale, **changes).text
    assert "\n\n\n" not in text and text.endswith("\n") and not text.endswith("\n\n")
    lines = text.splitlines()
    for index, line in enumerate(lines[1:], start=1):
        if line.endswith(("：", ":")) and not line[0].isspace():
            assert lines[index - 1] == "", (line, text)
    for sentence in ("该试点目前正在整改。", "The pilot is currently under rectification."):
        for position in (m.end() for m in re.finditer(re.escape(sentence), text)):
            assert text[position : position + 2] == "\n\n", text


@pytest.mark.parametrize(
    ("locale", "event", "shown", "value"),
    [
        ("zh-CN", "pass_midterm", ["通过中期评估，评估等级为“优秀”。", "评估等级：优秀"], "优秀"),
        ("zh-CN", "complete", ["通过终期评估，评估等级为“良好”，试点建设完成。"], "良好"),
        ("zh-CN", "fail_evaluation", ["评估未通过", "整改期限为2025-06-30。"], "2025-06-30"),
        ("en", "pass_midterm", ['mid-term evaluation, with the grade "excellent".'], "excellent"),
        ("en", "complete", ['with the grade "good"; the pilot is completed.'], "good"),
        ("en", "fail_evaluation", ["not passed its evaluation", "is 2025-06-30."], "2025-06-30"),
    ],
)
def test_an_evaluation_says_what_was_decided(
    renderer: Renderer, locale: str, event: str, shown: list[str], value: str
) -> None:
    notice = _render(renderer, "evaluated", locale, **EVALUATIONS[event])
    for words in shown:
        assert words in notice.text, notice.text
    assert f"{value}</td>" in notice.html  # a row of the particulars
    words = {"pass_midterm": "中期评估", "complete": "终期评估", "fail_evaluation": "整改"}
    if locale == "zh-CN":
        for other, word in words.items():
            assert (word in notice.subject) == (other == event), notice.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_an_unknown_grade_or_evaluation_event_is_shown_as_its_code(
    renderer: Renderer, locale: str
) -> None:
    graded = EVALUATIONS["pass_midterm"] | {"data": {"grade": "<i>distinction</i>"}}
    notice = _render(renderer, "evaluated", locale, **graded)
    assert "<i>distinction</i>" in notice.text
    assert "&lt;i&gt;distinction&lt;/i&gt;" in notice.html and "<i>" not in notice.html
    unknown = _render(renderer, "evaluated", locale, event="re_evaluate", data={})
    assert "re_evaluate" in unknown.text and "re_evaluate" in unknown.html
    assert {"zh-CN": "试点评估结果的通知", "en": "Evaluation of the pilot 唐山市"}[locale] in (
        unknown.subject
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_an_event_that_keeps_the_state_shows_it_once(renderer: Renderer, locale: str) -> None:
    notice = _render(renderer, "progress_reported", locale)
    state = {"zh-CN": "建设中", "en": "under construction"}[locale]
    assert f"{state} → {state}" not in notice.text + notice.html
    assert state in notice.text
    assert {"zh-CN": "正在整改", "en": "under rectification"}[locale] not in notice.text
    during = _render(
        renderer, "progress_reported", locale, from_state="rectification", to_state="rectification"
    )
    assert {"zh-CN": "该试点目前正在整改。", "en": "currently under rectification."}[locale] in (
        during.text
    )


@pytest.mark.parametrize(
    ("locale", "days", "shown"),
    [
        ("zh-CN", 7, "剩余7天。"),
        ("zh-CN", 1, "剩余1天。"),
        ("zh-CN", 0, "剩余不足1天。"),
        ("en", 7, ", 7 days from now."),
        ("en", 1, ", 1 day from now."),
        ("en", 0, ", less than a day from now."),
    ],
)
@pytest.mark.parametrize("kind", ["plan_reminder", "report_reminder", "rectification_reminder"])
def test_a_pilots_reminder_shows_the_days_left(
    renderer: Renderer, kind: str, locale: str, days: int, shown: str
) -> None:
    notice = _render(renderer, kind, locale, days_left=days)
    assert shown in notice.text and shown in notice.html


@pytest.mark.parametrize(("kind", "changes"), _pilot_cases())
def test_a_pilots_chinese_letters_set_numbers_without_spaces(
    renderer: Renderer, kind: str, changes: dict[str, Any]
) -> None:
    """Issue 15: "3个", "2024年度", "剩余7天", not "3 个"."""
    notice = _render(renderer, kind, "zh-CN", **changes)
    spaced = re.compile(r"[\u3400-\u9fff，。：（）] ?[0-9]+ [\u3400-\u9fff]|[\u3400-\u9fff] [0-9]")
    for part in (notice.subject, notice.text):
        assert not spaced.search(part), spaced.search(part)


@pytest.mark.parametrize("kind", ["plan_approved", "report_reminder"])
def test_the_construction_contents_are_named_as_the_plan_names_them(
    renderer: Renderer, kind: str
) -> None:
    assert "政策机制、全民行动" in _render(renderer, kind, "zh-CN").text
    english = _render(renderer, kind, "en").text
    assert "policy mechanisms and nationwide public action" in english
    assert "national actions" not in english


# --- a year's progress reports: a province's letter (DESIGN §2b) ---------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_a_progress_report_letter_lists_and_counts_the_provinces_unreported_pilots(
    renderer: Renderer, kind: str, locale: str
) -> None:
    ctx = context(kind, locale)
    notice = renderer.render(kind, locale, ctx)
    lines = notice.text.splitlines()
    for number, (id_, name, kind_name) in enumerate(ctx["pilots"], 1):
        item = {
            "zh-CN": f"　　{number}. {name}（{kind_name}），申报编号：{id_}",
            "en": f"  {number}. {name} ({kind_name}); reference {id_}",
        }[locale]
        assert item in lines, notice.text
    assert notice.html.count("<li ") == len(ctx["pilots"])
    count = {"zh-CN": "3个试点", "en": "3 pilots in Hebei"}[locale]
    assert count in notice.subject
    assert count in notice.text and count in notice.html
    table = {"zh-CN": "尚未报送的试点：3个", "en": "Pilots not yet reported: 3"}[locale]
    assert table in notice.text


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_a_progress_report_letter_in_english_agrees_in_number(
    renderer: Renderer, kind: str
) -> None:
    one = _render(renderer, kind, "en", pilots=[("nom-0003", "唐山市", "city")])
    assert "1 pilot in Hebei has not yet reported:" in one.text
    assert "progress report " in one.subject and "1 pilot in Hebei" in one.subject
    assert "this pilot" in one.text and "reports" not in one.text.split("Progress reports:")[0]
    three = _render(renderer, kind, "en")
    assert "3 pilots in Hebei have not yet reported:" in three.text
    assert "progress reports " in three.subject and "these pilots" in three.text
    assert "3 pilot " not in three.text + three.subject and "1 pilots" not in one.text


@pytest.mark.parametrize(
    ("kind", "words"),
    [("report_reminder", "【待办】"), ("report_overdue", "【逾期】")],
)
def test_a_progress_report_letters_chinese_subject_says_what_it_asks(
    renderer: Renderer, kind: str, words: str
) -> None:
    subject = _render(renderer, kind, "zh-CN").subject
    assert words in subject and "2024年度" in subject and "河北省" in subject
    assert ("逾期" in subject) == (kind == "report_overdue")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_a_progress_report_letter_says_the_day_is_included(
    renderer: Renderer, kind: str, locale: str
) -> None:
    """``due`` is a day: the report is due by its end (Beijing time), not before it."""
    notice = _render(renderer, kind, locale)
    shown = {"zh-CN": "于2025-01-31（含当日）前", "en": "by the end of 2025-01-31 (Beijing time)"}
    assert shown[locale] in notice.text and _escaped(shown[locale]) in notice.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_a_progress_report_letter_renders_thousands_of_pilots_and_even_none(
    renderer: Renderer, kind: str, locale: str
) -> None:
    many = [(f"nom-{n:05d}", f"试点{n}", "城市") for n in range(1, 3001)]
    notice = _render(renderer, kind, locale, pilots=many)
    assert "3000. 试点3000" in notice.text and notice.html.count("<li ") == 3000
    empty = _render(renderer, kind, locale, pilots=[])  # the engine sends none, but no crash
    assert "<li " not in empty.html and "{{" not in empty.text


# --- escaping and header safety ----------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(
    "kind", ["approved", "milestone", "submitted", "plan_returned", "evaluated", "plan_reminder"]
)
def test_a_hostile_name_is_escaped_in_html_and_intact_in_text(
    renderer: Renderer, kind: str, locale: str
) -> None:
    name = "<script>alert(1)</script>"
    notice = renderer.render(kind, locale, context(kind, locale, name=name))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in notice.html
    assert "<script>" not in notice.html
    assert name in notice.text
    assert name in notice.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_hostile_data_in_lists_is_escaped(renderer: Renderer, locale: str) -> None:
    ctx = context("deadline_summary", locale)
    ctx["provinces"][0]["names"] = ['<img src=x onerror="alert(1)">']
    html = renderer.render("deadline_summary", locale, ctx).html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html and "<img" not in html
    lapsed = [("n1", "<b>x</b>", "city", "drafted")]
    html = _render(renderer, "shortfall", locale, lapsed=lapsed).html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html
    for kind in REPORT_KINDS:
        notice = _render(renderer, kind, locale, pilots=[("n1", "<b>x</b>", "<i>city</i>")])
        assert "&lt;b&gt;x&lt;/b&gt;" in notice.html and "&lt;i&gt;city" in notice.html
        assert "<b>" not in notice.html and "<i>" not in notice.html
        assert "<b>x</b>" in notice.text and "<i>city</i>" in notice.text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(
    "kind", ["approved", "carried_over", "milestone", "progress_reported", "plan_overdue"]
)
def test_a_name_with_a_line_break_cannot_add_a_mail_header(
    renderer: Renderer, kind: str, locale: str
) -> None:
    name = "唐山市\r\nBcc: x@y"
    subject = renderer.render(kind, locale, context(kind, locale, name=name)).subject
    assert "\r" not in subject and "\n" not in subject
    assert "唐山市 Bcc: x@y" in subject


# --- missing variables ---------------------------------------------------------------------


def _top_level_cases() -> list[tuple[str, str, str]]:
    return [
        (kind, locale, variable)
        for kind in ALL_KINDS
        for locale in LOCALES
        for variable in context(kind, locale)
        # a province's progress-report letter lists pilots of any batch: it names none
        if not (kind in REPORT_KINDS and variable == "batch")
    ]


@pytest.mark.parametrize(("kind", "locale", "variable"), _top_level_cases())
def test_removing_any_variable_is_a_config_error_naming_the_template(
    renderer: Renderer, kind: str, locale: str, variable: str
) -> None:
    ctx = context(kind, locale)
    del ctx[variable]
    with pytest.raises(ConfigError) as caught:
        renderer.render(kind, locale, ctx)
    message = str(caught.value)
    assert re.search(rf"template {re.escape(locale)}/{kind}\.(subject|txt|html)\.j2", message)
    assert f"'{variable}' is undefined" in message


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("approved", ("nomination", "name")),
        ("sent_back", ("actor", "name")),
        ("submitted", ("batch", "deadline")),
        ("withdrawn", ("recipient", "actor")),
        ("reminder", ("province", "name")),
        ("milestone", ("milestone", "objective")),
        ("milestone", ("nomination", "level")),
        ("progress_reported", ("data", "period")),
        ("evaluated", ("data", "due")),
        ("plan_submitted", ("nomination", "province")),
        ("report_reminder", ("province", "name")),
        ("report_overdue", ("province", "name")),
    ],
)
@pytest.mark.parametrize("locale", LOCALES)
def test_removing_a_nested_value_is_a_config_error_too(
    renderer: Renderer, kind: str, path: tuple[str, str], locale: str
) -> None:
    ctx = copy.deepcopy(context(kind, locale))
    del ctx[path[0]][path[1]]
    with pytest.raises(ConfigError, match=rf"template {re.escape(locale)}/{kind}\."):
        renderer.render(kind, locale, ctx)


# --- operator overrides ------------------------------------------------------------------


def test_an_override_replaces_one_template_and_the_rest_still_ships(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.subject.j2").write_text(
        "Approved: {{ nomination.name }} ({{ batch.id }})\n", encoding="utf-8"
    )
    overridden = Renderer(tmp_path)
    notice = overridden.render("approved", "en", context("approved", "en"))
    shipped = Renderer().render("approved", "en", context("approved", "en"))
    assert notice.subject == "Approved: 唐山市 (2023-first)"
    assert notice.text == shipped.text and notice.html == shipped.html
    zh = overridden.render("approved", "zh-CN", context("approved", "zh-CN"))
    assert zh == Renderer().render("approved", "zh-CN", context("approved", "zh-CN"))
    overridden.check(ALL_KINDS)


def test_the_shipped_templates_render_the_same_in_the_sandbox(
    renderer: Renderer, tmp_path: Path
) -> None:
    sandboxed = Renderer(tmp_path)  # an empty override folder: everything ships
    for kind in ALL_KINDS:
        for locale in LOCALES:
            ctx = context(kind, locale)
            assert sandboxed.render(kind, locale, ctx) == renderer.render(kind, locale, ctx)


def test_an_override_may_replace_a_shared_layout(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "_layout.txt.j2").write_text(
        "AGENCY LETTERHEAD\n{{ heading }}\n{% block message %}{% endblock %}"
        "{% block details %}{% endblock %}",
        encoding="utf-8",
    )
    notice = Renderer(tmp_path).render("confirmed", "en", context("confirmed", "en"))
    assert notice.text.startswith("AGENCY LETTERHEAD\nNomination of 唐山市 confirmed\n")
    assert "2023-first" in notice.text


def test_an_override_of_the_labels_relabels_every_notice(tmp_path: Path) -> None:
    """The renderer gives every template its locale's ``labels`` and ``m``, loaded through
    the same folders as the templates: an operator's ``_labels.j2`` is the one used."""
    (tmp_path / "en").mkdir()
    shipped = (TEMPLATES / "en" / "_labels.j2").read_text(encoding="utf-8")
    relabelled = shipped.replace('"approved by the provincial government"', '"APPROVED"')
    (tmp_path / "en" / "_labels.j2").write_text(relabelled, encoding="utf-8")
    notice = Renderer(tmp_path).render("approved", "en", context("approved", "en"))
    assert "awaiting approval by the provincial government → APPROVED" in notice.text
    assert "→ APPROVED</td>" in notice.html


def test_an_override_may_still_import_the_shared_modules(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.txt.j2").write_text(
        '{% import "en/_labels.j2" as own_labels %}{% import "en/_macros.txt.j2" as own %}'
        '{{ own.rows([("State", to_state|label(own_labels.states)), ("By", actor.name)]) }}',
        encoding="utf-8",
    )
    text = Renderer(tmp_path).render("approved", "en", context("approved", "en")).text
    assert text == (
        "  State: approved by the provincial government\n  By:    People's Government of Hebei\n"
    )


def test_a_shared_module_that_fails_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "zh-CN").mkdir()
    (tmp_path / "zh-CN" / "_labels.j2").write_text("{% set states = 1 // 0 %}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"template zh-CN/_labels\.j2: "):
        Renderer(tmp_path).render("approved", "zh-CN", context("approved", "zh-CN"))


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ nomination.__class__.__init__.__globals__ }}",
        "{{ ''.format.__globals__ }}",
    ],
)
def test_a_sandbox_escape_in_an_override_is_a_config_error(tmp_path: Path, source: str) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.txt.j2").write_text(source, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"en/approved\.txt\.j2"):
        Renderer(tmp_path).render("approved", "en", context("approved", "en"))


def test_a_syntax_error_in_an_override_fails_check_with_template_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "zh-CN").mkdir()
    (tmp_path / "zh-CN" / "shortfall.html.j2").write_text(
        "<p>{{ province.name }}</p>\n<ul>\n"
        "{% for item in lapsed %}<li>{{ item.name }}</li>\n</ul>\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"template zh-CN/shortfall\.html\.j2:\d+: "):
        Renderer(tmp_path).check(ALL_KINDS)
    (tmp_path / "zh-CN" / "shortfall.html.j2").write_text(
        "<p>line one</p>\n<p>{{ province.name }</p>\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"template zh-CN/shortfall\.html\.j2:2: "):
        Renderer(tmp_path).check(ALL_KINDS)


def test_an_override_folder_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        Renderer(tmp_path / "missing")


def test_check_finds_a_syntax_error_in_an_overridden_layout(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "_layout.txt.j2").write_text("{% block message %}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"en/_layout\.txt\.j2"):
        Renderer(tmp_path).check(ALL_KINDS)


def test_the_line_in_an_error_is_a_line_of_the_template_it_names(renderer: Renderer) -> None:
    ctx = context("approved", "en")
    del ctx["sent_at"]  # used only by the shared layout
    with pytest.raises(ConfigError) as caught:
        renderer.render("approved", "en", ctx)
    found = re.search(r"\(at (\S+?):(\d+)\)", str(caught.value))
    assert found is not None
    lines = (TEMPLATES / found[1]).read_text(encoding="utf-8").splitlines()
    line = int(found[2])
    assert line <= len(lines) and "sent_at" in lines[line - 1], (str(caught.value), len(lines))


@pytest.mark.parametrize("source", ["{{ 1 // 0 }}", "{{ nomination.name + 1 }}"])
def test_an_override_failing_with_a_python_error_is_a_config_error(
    tmp_path: Path, source: str
) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.subject.j2").write_text(source, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"en/approved\.subject\.j2"):
        Renderer(tmp_path).render("approved", "en", context("approved", "en"))


def test_an_override_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "zh-CN").mkdir()
    (tmp_path / "zh-CN" / "approved.subject.j2").write_bytes(
        "【{{ program_title }}】批准".encode("gbk")
    )
    with pytest.raises(ConfigError, match=r"zh-CN/approved\.subject\.j2"):
        Renderer(tmp_path).check(ALL_KINDS)


# --- the shipped letters' cheaper forms (peakpilot/notifications/templates) --------------


def test_an_operators_template_may_still_call_para_and_use_get(tmp_path: Path) -> None:
    """The shipped letters write their paragraphs and look labels up more cheaply; an
    override written the earlier way renders as it did, escaped."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.html.j2").write_text(
        '{% extends "en/_nomination.html.j2" %}\n'
        '{% set heading = "Approved" %}\n{% set reason_label = "Remarks" %}\n'
        "{% block message %}\n"
        "{% call m.para() %}{{ nominee }}: {{ labels.states.get(to_state, to_state) }}"
        "{% endcall %}\n"
        "{% endblock %}\n",
        encoding="utf-8",
    )
    ctx = context("approved", "en", name="<b>A & B</b>")
    html = Renderer(tmp_path).render("approved", "en", ctx).html
    assert (
        '<p style="margin:0 0 12px 0;">&lt;b&gt;A &amp; B&lt;/b&gt; (city, prefecture-level): '
        "approved by the provincial government</p>\n"
    ) in html


def test_the_label_filter_takes_only_a_dict_of_labels(tmp_path: Path) -> None:
    """A filter runs outside the sandbox's checks: it calls ``get`` on nothing else."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.subject.j2").write_text(
        "{{ event|label(nomination.name) }}", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"en/approved\.subject\.j2.*label needs a dict"):
        Renderer(tmp_path).render("approved", "en", context("approved", "en"))
