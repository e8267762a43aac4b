"""The construction years from the command line, as a clerk would type them (a real
subprocess, on an SQLite file and on PostgreSQL): fire --data, attach, materials,
materials get, pilots, history's data, and each bad input's one line and exit code."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from peakpilot import Engine, FrozenClock
from tests.acceptance.test_cli import BEFORE, doc, fails, ok
from tests.construction_helpers import PDF, PNG, confirmed

LATER = "2024-01-20T09:00:00+08:00"


@pytest.fixture
def pilot(db_url: str) -> tuple[str, str]:
    """(database URL, id) of a Hebei city confirmed in 2023, on SQLite and PostgreSQL:
    made through the API (the selection's commands have their own CLI tests), so that
    each test spends its subprocesses on the commands it is about."""
    with Engine(db_url, clock=FrozenClock(datetime.fromisoformat(BEFORE))) as engine:
        engine.init()
        return db_url, confirmed(engine).id


def test_a_pilots_construction_years_from_the_command_line(
    pilot: tuple[str, str], tmp_path: Path
) -> None:
    db, nid = pilot
    plan = tmp_path / "实施方案.pdf"
    plan.write_bytes(PDF)
    fails(5, "fire", nid, "submit_plan", "--as", "drc:hebei", db=db)
    material = doc(
        "attach",
        nid,
        str(plan),
        "--kind",
        "implementation_plan",
        "--title",
        "实施方案",
        "--doc-number",
        "冀发改〔2023〕1号",
        "--as",
        "drc:hebei",
        db=db,
    )
    assert {
        "id",
        "nomination",
        "kind",
        "sha256",
        "size",
        "media_type",
        "title",
        "doc_number",
        "actor",
        "attached_at",
    } <= set(material)
    assert (material["media_type"], material["size"]) == ("application/pdf", len(PDF))
    ok("fire", nid, "submit_plan", "--as", "drc:hebei", db=db)
    ok("fire", nid, "approve_plan", "--as", "ndrc", db=db)
    report = tmp_path / "report.png"
    report.write_bytes(PNG)
    ok("attach", nid, str(report), "--kind", "progress_report", "--as", "drc:hebei", db=db)
    after = doc(
        "fire",
        nid,
        "report_progress",
        "--data",
        "period=2023",
        "--as",
        "drc:hebei",
        db=db,
        now=LATER,
    )
    assert after["state"] == "in_construction"
    history = doc("history", nid, db=db, now=LATER)
    assert history[-1]["data"] == {"period": 2023}
    assert history[0]["data"] is None
    human = ok("history", nid, db=db, now=LATER).stdout
    assert "period=2023" in human
    listed = doc("materials", nid, db=db)
    assert [m["kind"] for m in listed] == ["implementation_plan", "progress_report"]
    out = tmp_path / "copy.pdf"
    ok("materials", "get", material["id"], "-o", str(out), db=db)
    assert out.read_bytes() == PDF
    pilots = doc("pilots", db=db, now=LATER)
    assert [(p["id"], p["state"], p["last_period"], p["overdue"]) for p in pilots] == [
        (nid, "in_construction", 2023, False)
    ]
    assert pilots[0]["next_due"]["kind"] == "progress_report"
    assert doc("audit", "verify", db=db)["ok"] is True
    assert "construction: plan_review 0, in_construction 1" in ok("board", db=db).stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--data", "period"), 5, "--data takes KEY=VALUE"),
        (("--data", "grade=good"), 5, "does not take 'grade'"),
        (("--data", "period=2023", "--data", "period=2024"), 5, "given twice"),
    ],
)
def test_bad_data_on_the_command_line(
    pilot: tuple[str, str], args: tuple[str, ...], code: int, words: str
) -> None:
    db, nid = pilot
    proc = fails(code, "fire", nid, "revoke", "--reason", "x", "--as", "ndrc", *args, db=db)
    assert words in proc.stderr


def test_bad_materials_on_the_command_line(pilot: tuple[str, str], tmp_path: Path) -> None:
    db, nid = pilot
    fake = tmp_path / "plan.pdf"
    fake.write_text("not a pdf")
    proc = fails(5, "attach", nid, str(fake), "--kind", "other", "--as", "drc:hebei", db=db)
    assert "not a PDF" in proc.stderr
    real = tmp_path / "real.pdf"
    real.write_bytes(PDF)
    proc = fails(4, "attach", nid, str(real), "--kind", "other", "--as", "gov:shanxi", db=db)
    assert "gov:shanxi may not attach" in proc.stderr
    fails(3, "materials", "get", "0123456789abcdef", db=db)
    fails(3, "materials", "ffffffffffffffff", db=db)
    fails(2, "materials", "get", db=db)
    assert doc("materials", nid, db=db) == []


def test_the_material_size_limit_comes_from_the_settings(
    pilot: tuple[str, str], tmp_path: Path
) -> None:
    from tests.acceptance.test_cli import run

    db, nid = pilot
    big = tmp_path / "big.pdf"
    big.write_bytes(PDF + b"0" * 2000)
    proc = run(
        "attach",
        nid,
        str(big),
        "--kind",
        "other",
        "--as",
        "ndrc",
        db=db,
        now=BEFORE,
        env={"PEAKPILOT_MAX_MATERIAL_BYTES": "1000"},
    )
    assert proc.returncode == 5 and "more than the 1,000" in proc.stderr, proc.stderr
