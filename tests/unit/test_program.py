"""The programme file: the shipped one loads as DESIGN §1-2 describe it, and a broken one
is refused with a ConfigError naming the offending item and its line (``x.yaml:LINE:``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources

import pytest

from peakpilot.config.program import Program, load_program, parse_program
from peakpilot.errors import ConfigError, InvalidInput
from tests.design import DESIGN_QUOTAS, DESIGN_STATES

SHIPPED_TEXT = (
    resources.files("peakpilot.config.programs")
    .joinpath("carbon_peak_2023.yaml")
    .read_text(encoding="utf-8")
)

# DESIGN §1: the first batch's quotas, and §4: the province slugs, with GB/T 2260 codes.
GB_T_2260 = {
    "hebei": "130000",
    "shanxi": "140000",
    "inner_mongolia": "150000",
    "liaoning": "210000",
    "heilongjiang": "230000",
    "jiangsu": "320000",
    "zhejiang": "330000",
    "anhui": "340000",
    "shandong": "370000",
    "henan": "410000",
    "hubei": "420000",
    "hunan": "430000",
    "guangdong": "440000",
    "shaanxi": "610000",
    "xinjiang": "650000",
}
# DESIGN §2, row by row: (event, sources, destination, role, guards).
DESIGN_ROWS = [
    (
        "submit_for_approval",
        {"drafted"},
        "provincial_approval",
        "drc",
        {"batch_open", "before_deadline"},
    ),
    ("approve", {"provincial_approval"}, "approved", "gov", set()),
    ("send_back", {"provincial_approval", "approved"}, "drafted", "gov", {"reason_given"}),
    ("send_back", {"submitted"}, "drafted", "ndrc", {"reason_given", "batch_open"}),
    ("submit", {"approved"}, "submitted", "drc", {"before_deadline", "quota_available"}),
    ("confirm", {"submitted"}, "confirmed", "ndrc", set()),
    ("reject", {"submitted"}, "rejected", "ndrc", {"reason_given"}),
    ("defer", {"submitted"}, "follow_up_batch", "ndrc", {"reason_given"}),
    (
        "withdraw",
        {"drafted", "provincial_approval", "approved", "submitted", "follow_up_batch"},
        "withdrawn",
        "drc",
        set(),
    ),
    (
        "lapse",
        {"drafted", "provincial_approval", "approved"},
        "follow_up_batch",
        "system",
        {"deadline_reached"},
    ),
    (
        "carry_over",
        {"follow_up_batch"},
        "drafted",
        "drc",
        {"target_batch_open", "target_batch_gives_quota", "target_batch_name_free"},
    ),
    # DESIGN section 2b (None: the state unchanged); the materials a move needs are
    # compared in test_shipped_material_rules_match_design_2b
    ("submit_plan", {"confirmed"}, "plan_review", "drc", set()),
    ("return_plan", {"plan_review"}, "confirmed", "ndrc", {"reason_given"}),
    ("approve_plan", {"plan_review"}, "in_construction", "ndrc", set()),
    (
        "report_progress",
        {"in_construction", "rectification"},
        None,
        "drc",
        {"period_begun", "period_unreported"},
    ),
    ("pass_midterm", {"in_construction"}, None, "ndrc", {"first_time"}),
    ("fail_evaluation", {"in_construction"}, "rectification", "ndrc", {"reason_given"}),
    ("accept_rectification", {"rectification"}, "in_construction", "ndrc", set()),
    ("complete", {"in_construction"}, "completed", "ndrc", {"midterm_passed"}),
    (
        "revoke",
        {"confirmed", "plan_review", "in_construction", "rectification"},
        "revoked",
        "ndrc",
        {"reason_given"},
    ),
]
DESIGN_EVENTS = [
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


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program()


# --- the shipped programme -----------------------------------------------------------


def test_shipped_provinces_are_the_15_of_the_design_with_their_codes(program: Program) -> None:
    assert len(program.provinces) == 15
    assert {slug: p.code for slug, p in program.provinces.items()} == GB_T_2260
    for slug, province in program.provinces.items():
        assert province.slug == slug
        assert re.fullmatch(r"\d{6}", province.code)
        assert province.names.zh_cn and province.names.en


def test_shipped_quotas_are_those_of_design_section_1(program: Program) -> None:
    assert dict(program.first_batch.quotas) == DESIGN_QUOTAS
    assert sum(program.first_batch.quotas.values()) == 35


def test_shipped_deadline_is_an_aware_instant_in_beijing_time(program: Program) -> None:
    deadline = program.first_batch.deadline_at
    assert deadline.tzinfo is not None
    assert deadline.utcoffset() == timedelta(hours=8)
    assert deadline == datetime(2023, 11, 15, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    assert deadline == datetime(2023, 11, 14, 16, 0, tzinfo=UTC)
    assert program.first_batch.id == "2023-first"
    assert program.first_batch.reminder_days == (14, 7, 1)


def test_shipped_time_zone_is_shanghai(program: Program) -> None:
    assert program.timezone.key == "Asia/Shanghai"


def test_shipped_states(program: Program) -> None:
    assert program.states == DESIGN_STATES
    assert len(program.states) == 13
    assert program.initial_state == "drafted"
    assert program.final_states == {"rejected", "withdrawn", "completed", "revoked"}


def test_shipped_material_rules_match_design_2b(program: Program) -> None:
    rules = {
        t.event: (t.needs_material.kind, t.needs_material.since)
        for t in program.transitions
        if t.needs_material is not None
    }
    assert rules == {
        "submit_plan": ("implementation_plan", "entered_state"),
        "report_progress": ("progress_report", "last_event"),
        "accept_rectification": ("rectification_report", "entered_state"),
    }
    assert set(program.material_kinds) == {
        "application",
        "approval_document",
        "implementation_plan",
        "progress_report",
        "rectification_report",
        "evaluation_report",
        "other",
    }
    assert set(program.attach_roles) == {"drc", "gov", "ndrc"}


def test_shipped_event_data_matches_design_2b(program: Program) -> None:
    data = {
        (t.event, name): (spec.type, spec.choices, spec.future)
        for t in program.transitions
        for name, spec in t.data.items()
    }
    grades = ("excellent", "good", "pass")
    assert data == {
        ("report_progress", "period"): ("year", (), False),
        ("pass_midterm", "grade"): ("choice", grades, False),
        ("fail_evaluation", "due"): ("date", (), True),
        ("complete", "grade"): ("choice", grades, False),
    }


def test_shipped_pilot_timers_match_design_2b(program: Program) -> None:
    timers = program.pilot_timers
    assert timers.plan is not None and timers.plan.due_days == 120
    assert timers.plan.starts_on == "confirm" and timers.plan.applies_in == ("confirmed",)
    assert timers.report is not None
    assert (timers.report.due_month, timers.report.due_day, timers.report.last_year) == (
        1,
        31,
        2030,
    )
    assert timers.report.starts_on == "approve_plan"
    assert timers.rectification is not None and timers.rectification.due_field == "due"


def test_shipped_events_are_those_of_design_section_2(program: Program) -> None:
    assert list(program.events) == DESIGN_EVENTS


def test_shipped_transitions_match_the_design_table(program: Program) -> None:
    # compared cell by cell: a design row may be split in the file (withdraw is, to
    # notify the NDRC only of withdrawals from `submitted`)
    actual = {
        (t.event, source, t.dest, frozenset(t.roles), frozenset(t.guards))
        for t in program.transitions
        for source in t.sources
    }
    expected = {
        (e, source, d, frozenset({r}), frozenset(g))
        for e, s, d, r, g in DESIGN_ROWS
        for source in s
    }
    assert actual == expected


DESIGN_NOTICES = {  # DESIGN section 4: event (from state) -> kind, recipients
    ("submit_for_approval", "drafted"): ("sent_for_approval", {"gov"}),
    ("approve", "provincial_approval"): ("approved", {"drc"}),
    ("send_back", "provincial_approval"): ("sent_back", {"drc"}),
    ("send_back", "approved"): ("sent_back", {"drc"}),
    ("send_back", "submitted"): ("sent_back", {"drc"}),
    ("submit", "approved"): ("submitted", {"ndrc"}),
    ("confirm", "submitted"): ("confirmed", {"drc", "gov"}),
    ("reject", "submitted"): ("rejected", {"drc", "gov"}),
    ("defer", "submitted"): ("deferred", {"drc", "gov"}),
    **{
        ("withdraw", state): ("withdrawn", {"gov"})
        for state in ("drafted", "provincial_approval", "approved", "follow_up_batch")
    },
    ("withdraw", "submitted"): ("withdrawn", {"gov", "ndrc"}),
    ("carry_over", "follow_up_batch"): ("carried_over", {"gov"}),
    # DESIGN section 2b
    ("submit_plan", "confirmed"): ("plan_submitted", {"ndrc"}),
    ("return_plan", "plan_review"): ("plan_returned", {"drc", "gov"}),
    ("approve_plan", "plan_review"): ("plan_approved", {"drc", "gov"}),
    ("report_progress", "in_construction"): ("progress_reported", {"ndrc"}),
    ("report_progress", "rectification"): ("progress_reported", {"ndrc"}),
    ("pass_midterm", "in_construction"): ("evaluated", {"drc", "gov"}),
    ("fail_evaluation", "in_construction"): ("evaluated", {"drc", "gov"}),
    ("complete", "in_construction"): ("evaluated", {"drc", "gov"}),
    ("accept_rectification", "rectification"): ("rectification_accepted", {"drc", "gov"}),
    **{
        ("revoke", state): ("revoked", {"drc", "gov"})
        for state in ("confirmed", "plan_review", "in_construction", "rectification")
    },
}


def test_shipped_notices_match_the_design_table(program: Program) -> None:
    actual = {
        (t.event, source): (t.notice.kind, set(t.notice.to))
        for t in program.transitions
        if t.notice is not None
        for source in t.sources
    }
    assert actual == DESIGN_NOTICES
    assert all(t.notice is None for t in program.transitions if t.event == "lapse")


def test_shipped_nominate_rules_and_quota_counting(program: Program) -> None:
    assert program.nominate_roles == ("drc",)
    assert set(program.nominate_guards) == {"batch_open", "batch_gives_quota"}
    # submitted + confirmed, a confirmed pilot counted through its construction years
    assert set(program.quota_counts) == {
        "submitted",
        "confirmed",
        "plan_review",
        "in_construction",
        "rectification",
        "completed",
    }


def test_shipped_roles_and_scopes(program: Program) -> None:
    assert {slug: r.scope for slug, r in program.roles.items()} == {
        "ndrc": "national",
        "drc": "province",
        "gov": "province",
        "system": "system",
    }


def test_shipped_kinds_and_levels(program: Program) -> None:
    assert {slug: dict(k.levels) for slug, k in program.kinds.items()} == {
        "city": {"prefecture": True, "sub_provincial": True, "municipality": True, "county": False},
        "park": {"national": True, "provincial": True, "municipal": False, "county": False},
    }


def test_load_program_without_path_reads_the_shipped_file(program: Program) -> None:
    assert program.source == SHIPPED_TEXT
    assert program.digest == parse_program(SHIPPED_TEXT, "x.yaml").digest


def test_load_program_from_a_path(tmp_path, program: Program) -> None:
    path = tmp_path / "copy.yaml"
    path.write_text(SHIPPED_TEXT, encoding="utf-8")
    assert load_program(path).first_batch == program.first_batch


def test_load_program_missing_file_is_a_config_error(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_program(missing)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("130000", "hebei"),
        ("hebei", "hebei"),
        ("HEBEI", "hebei"),
        ("HeBei", "hebei"),
        (" hebei ", "hebei"),
        ("Inner_Mongolia", "inner_mongolia"),
        ("150000", "inner_mongolia"),
        ("650000", "xinjiang"),
        ("610000", "shaanxi"),
        ("140000", "shanxi"),
    ],
)
def test_province_by_slug_any_case_or_code(program: Program, text: str, slug: str) -> None:
    assert program.province(text).slug == slug


@pytest.mark.parametrize("text", ["", "atlantis", "130001", "110000", "he bei"])
def test_unknown_province_is_invalid_input(program: Program, text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        program.province(text)
    assert info.value.exit_code == 5
    assert "province" in str(info.value)


# --- broken programme files ----------------------------------------------------------


def _edit(old: str, new: str) -> str:
    """The shipped text with ``old`` (which must occur exactly once) replaced by ``new``."""
    assert SHIPPED_TEXT.count(old) == 1, f"{old!r} is not unique in the shipped file"
    return SHIPPED_TEXT.replace(old, new)


def _line_of(text: str, marker: str) -> int:
    """The 1-based line of the one line of ``text`` that contains ``marker``."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if marker in line]
    assert len(lines) == 1, f"{marker!r} is on lines {lines}"
    return lines[0]


WITHDRAW_FROM = "    from: [drafted, provincial_approval, approved, follow_up_batch]"
DEADLINE_LINE = '  deadline: "2023-11-15T00:00:00+08:00"'

# (id, old, new, marker of the expected line, words the message must contain)
BROKEN = [
    pytest.param(
        "timezone: Asia/Shanghai",
        "timezone: Asia: Shanghai",
        "timezone: Asia: Shanghai",
        ["invalid YAML"],
        id="yaml-syntax-error",
    ),
    pytest.param(
        "    from: [provincial_approval]\n    to: approved",
        "    from: [provincial_approval]\n    to: approvd",
        "to: approvd",
        ["approvd", "unknown state"],
        id="unknown-state-in-to",
    ),
    pytest.param(
        "    from: [provincial_approval]\n    to: approved",
        "    from: [provincial_approvl]\n    to: approved",
        "from: [provincial_approvl]",
        ["provincial_approvl", "unknown state"],
        id="unknown-state-in-from",
    ),
    pytest.param(
        "  follow_up_batch: {}\n",
        "  follow_up_batch: {}\n  limbo: {}\n",
        "limbo: {}",
        ["limbo", "reached"],
        id="unreachable-state",
    ),
    pytest.param(
        "  withdrawn: {final: true}",
        "  withdrawn: {}",
        "  withdrawn: {}",
        ["withdrawn", "no event leaves"],
        id="non-final-dead-end",
    ),
    pytest.param(
        "    hebei: 3\n",
        "    hubay: 3\n",
        "    hubay: 3",
        ["hubay", "unknown province"],
        id="quota-for-unknown-province",
    ),
    pytest.param(
        "    hebei: 3\n",
        "    hebei: -1\n",
        "    hebei: -1",
        ["hebei", "-1"],
        id="negative-quota",
    ),
    pytest.param(
        "    hebei: 3\n",
        "    hebei: 0\n",
        "    hebei: 0",
        ["hebei", "quota 0"],
        id="zero-quota",
    ),
    pytest.param(
        DEADLINE_LINE,
        '  deadline: "2023-11-15T00:00:00"',
        '"2023-11-15T00:00:00"',
        ["deadline", "offset"],
        id="deadline-without-offset-quoted",
    ),
    pytest.param(
        DEADLINE_LINE,
        "  deadline: 2023-11-15T00:00:00",
        "deadline: 2023-11-15T00:00:00",
        ["deadline", "offset"],
        id="deadline-without-offset-unquoted",
    ),
    pytest.param(
        DEADLINE_LINE,
        "  deadline: 2023-11-15 00:00:00",
        "deadline: 2023-11-15 00:00:00",
        ["deadline", "offset"],
        id="deadline-without-offset-unquoted-space",
    ),
    # A YAML date is a timestamp too: a bare day is not an instant with an explicit offset.
    pytest.param(
        DEADLINE_LINE,
        "  deadline: 2023-11-15",
        "deadline: 2023-11-15",
        ["deadline"],
        id="deadline-without-offset-unquoted-date",
    ),
    pytest.param(
        DEADLINE_LINE,
        '  deadline: "15 November 2023"',
        '"15 November 2023"',
        ["deadline"],
        id="deadline-not-iso",
    ),
    pytest.param(
        "    guards: [reason_given]\n    notice: {kind: rejected",
        "    guards: [reason_givn]\n    notice: {kind: rejected",
        "guards: [reason_givn]",
        ["reason_givn", "unknown guard"],
        id="unknown-guard",
    ),
    pytest.param(
        "    to: approved\n    roles: [gov]",
        "    to: approved\n    roles: [governor]",
        "roles: [governor]",
        ["governor", "unknown role"],
        id="unknown-role",
    ),
    pytest.param(
        "  roles: [drc]\n  guards: [batch_open, batch_gives_quota]",
        "  roles: [drcc]\n  guards: [batch_open, batch_gives_quota]",
        "roles: [drcc]",
        ["drcc", "unknown role"],
        id="unknown-role-in-nominate",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\n",
        "timezone: Asia/Shanghai\ntimezone: Europe/Paris\n",
        "timezone: Europe/Paris",
        ["timezone", "twice"],
        id="duplicate-top-level-key",
    ),
    pytest.param(
        "    hebei: 3\n",
        "    hebei: 3\n    hebei: 2\n",
        "    hebei: 2",
        ["hebei", "twice"],
        id="duplicate-nested-key",
    ),
    pytest.param(
        "timezone: Asia/Shanghai",
        "timezone: Asia/Shangai",
        "timezone: Asia/Shangai",
        ["Asia/Shangai", "time zone"],
        id="unknown-time-zone",
    ),
    pytest.param(
        WITHDRAW_FROM,
        WITHDRAW_FROM.replace("]", ", completed]"),
        "follow_up_batch, completed]",
        ["completed", "final"],
        id="transition-leaving-a-final-state",
    ),
]


@pytest.mark.parametrize(("old", "new", "marker", "words"), BROKEN)
def test_broken_programme_names_item_and_line(
    old: str, new: str, marker: str, words: list[str]
) -> None:
    text = _edit(old, new)
    expected_line = _line_of(text, marker)
    with pytest.raises(ConfigError) as info:
        parse_program(text, "x.yaml")
    message = str(info.value)
    assert message.startswith(f"x.yaml:{expected_line}: "), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert info.value.exit_code == 5
    assert "\n" not in message


def test_a_malformed_explicit_timestamp_is_a_config_error() -> None:
    """PyYAML itself fails with AttributeError on it (found by the bad-input fuzzing)."""
    text = _edit(DEADLINE_LINE, "  deadline: !!timestamp 2023-11-15x")
    with pytest.raises(ConfigError, match=r"x\.yaml: invalid value in .* malformed timestamp"):
        parse_program(text, "x.yaml")


def test_the_shipped_text_itself_parses() -> None:
    """The broken cases above differ from a valid file only by their edit."""
    assert parse_program(SHIPPED_TEXT, "x.yaml").id == "carbon_peak_2023"


def test_an_aware_unquoted_deadline_is_accepted() -> None:
    text = _edit(DEADLINE_LINE, "  deadline: 2023-11-15T00:00:00+08:00")
    deadline = parse_program(text, "x.yaml").first_batch.deadline_at
    assert deadline == datetime(2023, 11, 14, 16, 0, tzinfo=UTC)
    assert deadline.utcoffset() is not None


def test_an_empty_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^x\.yaml"):
        parse_program("", "x.yaml")
