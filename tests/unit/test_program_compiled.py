"""The compiled programme that ``init`` stores: every programme comes back equal, without
pydantic or PyYAML, and a text this version cannot read is refused, not half-read."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peakpilot.config.compiled import COMPILED_FORMAT
from peakpilot.config.program import Program, load_program, parse_program
from peakpilot.errors import ConfigError

SHIPPED_TEXT = (
    resources.files("peakpilot.config.programs")
    .joinpath("carbon_peak_2023.yaml")
    .read_text(encoding="utf-8")
)
DEADLINE_LINE = '  deadline: "2023-11-15T00:00:00+08:00"'
VALIDATORS = ("pydantic", "pydantic_core", "pydantic_settings", "yaml")


def round_trip(program: Program) -> Program:
    """Compile and rebuild ``program``, checking on the way that compiling is
    deterministic and that the rebuilt programme compiles to the same text."""
    text = program.to_compiled()
    assert program.to_compiled() == text
    rebuilt = Program.from_compiled(text)
    assert rebuilt.to_compiled() == text
    return rebuilt


def _edit(*pairs: tuple[str, str]) -> str:
    text = SHIPPED_TEXT
    for old, new in pairs:
        assert text.count(old) == 1, f"{old!r} is not unique in the shipped file"
        text = text.replace(old, new)
    return text


# Valid variations of the shipped text, each touching what the compiled form must carry.
VARIANTS = {
    "an unquoted aware deadline": _edit((DEADLINE_LINE, "  deadline: 2023-11-15T00:00:00+08:00")),
    "a deadline west of UTC, to the microsecond": _edit(
        (DEADLINE_LINE, '  deadline: "2023-11-14T11:30:00.000123-04:30"')
    ),
    "a deadline in UTC": _edit((DEADLINE_LINE, '  deadline: "2023-11-14T16:00:00Z"')),
    "other reminders, unsorted and repeated": _edit(
        ("reminder_days: [14, 7, 1]", "reminder_days: [3, 30, 3, 1]")
    ),
    "no reminders": _edit(("reminder_days: [14, 7, 1]", "reminder_days: []")),
    "another time zone": _edit(("timezone: Asia/Shanghai", "timezone: America/St_Johns")),
    "no milestones and no timer notices": _edit(
        ("milestone_event: confirm\n", ""),
        (
            SHIPPED_TEXT[
                SHIPPED_TEXT.index("milestones:\n") : SHIPPED_TEXT.index("# A province's places")
            ],
            "",
        ),
        (
            SHIPPED_TEXT[
                SHIPPED_TEXT.index("timer_notices:\n") : SHIPPED_TEXT.index("# The plan's")
            ],
            "",
        ),
    ),
    "milestones with odd offsets and spans": _edit(
        ('at: "2025-12-31T00:00:00+08:00"', 'at: "2025-12-31T23:59:59.5+05:45"'),
        ('at: "2030-12-31T00:00:00+08:00"', 'at: "2030-06-30T00:00:00-09:30"'),
        ("notice_days: 56\n    zh-CN: 取得积极进展", "notice_days: 0\n    zh-CN: 取得积极进展"),
    ),
    "fewer timer notices and recipients": _edit(
        ("  shortfall: [drc, gov]\n", ""), ("  milestone: [drc, gov]", "  milestone: [gov]")
    ),
    "names that need escaping": _edit(
        ("  en: National Carbon Peak Pilot Programme", '  en: "Quotes \\" and \\\\ and \\t 🏭"'),
    ),
    "comments and blank lines kept in the source": "# a comment: 注释, \t and 🏭\n\n"
    + SHIPPED_TEXT
    + "\n# trailing\n",
}


def test_the_shipped_programme_comes_back_equal() -> None:
    program = load_program()
    rebuilt = round_trip(program)
    assert rebuilt == program
    assert rebuilt.source == program.source == SHIPPED_TEXT
    assert rebuilt.digest == program.digest
    # what equality alone would not show: the types and the written offsets
    deadline = rebuilt.first_batch.deadline_at
    assert deadline.utcoffset() == timedelta(hours=8)
    assert deadline.isoformat() == program.first_batch.deadline_at.isoformat()
    assert rebuilt.timezone is ZoneInfo("Asia/Shanghai")
    assert isinstance(rebuilt.final_states, frozenset)
    assert isinstance(rebuilt.transitions, tuple)
    assert all(isinstance(t.sources, tuple) for t in rebuilt.transitions)
    assert [m.notice_before for m in rebuilt.milestones] == [timedelta(days=56)] * 2
    assert list(rebuilt.provinces) == list(program.provinces)
    assert list(rebuilt.states) == list(program.states)
    assert rebuilt.events == program.events
    assert rebuilt.province("130000") == program.province("hebei")


@pytest.mark.parametrize("source", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_variant_comes_back_equal(source: str) -> None:
    program = parse_program(source, "x.yaml")
    rebuilt = round_trip(program)
    assert rebuilt == program
    assert rebuilt.source == source
    assert [m.at.isoformat() for m in rebuilt.milestones] == [
        m.at.isoformat() for m in program.milestones
    ]
    assert rebuilt.first_batch.deadline_at.isoformat() == (
        program.first_batch.deadline_at.isoformat()
    )


def test_the_compiled_text_is_json_with_its_format_and_digest() -> None:
    program = load_program()
    document = json.loads(program.to_compiled())
    assert document["format"] == COMPILED_FORMAT == 2
    assert document["sha256"] == program.digest
    assert document["source"] == program.source
    assert "河北省" in program.to_compiled()  # ensure_ascii=False: readable in the database


# --- any valid programme --------------------------------------------------------------

SHIPPED_DOCUMENT: dict[str, Any] = yaml.safe_load(SHIPPED_TEXT)
ZONES = ["Asia/Shanghai", "UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"]
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
instants = st.builds(
    lambda at, zone: at.replace(tzinfo=zone).isoformat(),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(8999, 12, 30)),
    offsets,
)
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@st.composite
def programme_texts(draw: st.DrawFn) -> str:
    """The shipped document with its batch, zone, titles, timer notices and milestones
    drawn anew: always a valid programme, written out by PyYAML."""
    document = copy.deepcopy(SHIPPED_DOCUMENT)
    document["timezone"] = draw(st.sampled_from(ZONES))
    document["title"] = {"zh-CN": draw(names), "en": draw(names)}
    provinces = list(document["provinces"])
    chosen = draw(st.lists(st.sampled_from(provinces), min_size=1, unique=True))
    document["first_batch"] = {
        "id": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)),
        "deadline": draw(instants),
        "reminder_days": draw(st.lists(st.integers(1, 400), max_size=5)),
        "quotas": {slug: draw(st.integers(1, 50)) for slug in chosen},
    }
    kinds = ["reminder", "shortfall", "deadline_summary", "batch_opened", "milestone"]
    document["timer_notices"] = {
        kind: draw(st.lists(st.sampled_from(["ndrc", "drc", "gov"]), unique=True))
        for kind in draw(st.lists(st.sampled_from(kinds), unique=True))
    }
    years = draw(st.lists(st.integers(2000, 2100), unique=True, max_size=3))
    document["milestones"] = [
        {
            "year": year,
            "at": draw(instants),
            "notice_days": draw(st.integers(0, 4000)),
            "zh-CN": draw(names),
            "en": draw(names),
        }
        for year in years
    ]
    if not years and draw(st.booleans()):
        del document["milestone_event"]
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False) + draw(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(
            lambda comment: f"# {comment}\n"
        )
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=programme_texts())
def test_any_valid_programme_comes_back_equal(source: str) -> None:
    program = parse_program(source, "drawn.yaml")
    assert round_trip(program) == program


# --- what cannot be read --------------------------------------------------------------


def _compiled(**changes: Any) -> str:
    document = json.loads(load_program().to_compiled())
    document.update(changes)
    return json.dumps(document, ensure_ascii=False)


@pytest.mark.parametrize("found", [1, 0, None, "2", True, 2.5])
def test_an_unknown_format_is_refused(found: object) -> None:
    with pytest.raises(ConfigError, match=r"compiled format .* reads format 2: run init") as info:
        Program.from_compiled(_compiled(format=found))
    assert repr(found) in str(info.value)
    assert info.value.exit_code == 5


def test_a_text_without_a_format_is_refused() -> None:
    document = json.loads(load_program().to_compiled())
    del document["format"]
    with pytest.raises(ConfigError, match=r"compiled format None"):
        Program.from_compiled(json.dumps(document))


DAMAGED = {
    "not JSON": "carbon_peak_2023",
    "cut short": load_program().to_compiled()[:500],
    "a JSON list": "[1]",
    "a missing field": _compiled(first_batch={"id": "2023-first"}),
    "an unknown zone": _compiled(timezone="Mars/Olympus"),
    "a malformed instant": _compiled(
        milestones=[
            {
                "year": 2025,
                "at": "soon",
                "notice_before": {"days": 1, "seconds": 0, "microseconds": 0},
                "objective": {"zh_cn": "x", "en": "x"},
            }
        ]
    ),
    "a source edited after compiling": _compiled(source=SHIPPED_TEXT + "\n"),
    "no digest": _compiled(sha256=None),
}


@pytest.mark.parametrize("text", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_text_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"stored programme .*: run init again$") as info:
        Program.from_compiled(text)
    assert "\n" not in str(info.value)


# --- what it costs --------------------------------------------------------------------


def test_rebuilding_imports_neither_pydantic_nor_yaml(tmp_path: Path) -> None:
    """The point of the compiled form: a process that reads a stored programme does not
    pay for the validator. Checked in a fresh interpreter, where nothing was imported."""
    compiled = tmp_path / "program.json"
    compiled.write_text(load_program().to_compiled(), encoding="utf-8")
    script = (
        "import pathlib, sys\n"
        "import peakpilot.config.program as p\n"
        f"program = p.Program.from_compiled(pathlib.Path({str(compiled)!r}).read_text('utf-8'))\n"
        "assert program.id == 'carbon_peak_2023'\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {VALIDATORS!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
