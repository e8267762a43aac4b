"""The construction years (DESIGN 2b) on an SQLite file and on PostgreSQL: the whole life,
event data in the hashed trail, materials, the pilot timers, a place piloted once, and
every bad input refused with nothing written."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from peakpilot import Engine, FrozenClock, InvalidInput, NotFound, NotPermitted, Refused
from tests.conftest import BEFORE_DEADLINE
from tests.construction_helpers import DOCX, JPEG, OFD, PDF, PNG, XLSX, confirmed, in_construction

TABLES = (
    "nominations",
    "audit_records",
    "materials",
    "material_blobs",
    "timers",
    "notices",
    "idempotency_keys",
)


def rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.database.engine.connect() as connection:
        return {
            table: sorted(
                map(tuple, connection.execute(sa.text(f"SELECT * FROM {table}"))), key=repr
            )
            for table in TABLES
        }


def test_the_whole_life_from_confirmation_to_completion(engine: Engine) -> None:
    n = confirmed(engine)
    with pytest.raises(Refused, match="attach its implementation_plan first"):
        engine.fire(n.id, "submit_plan", "drc:hebei")
    plan = engine.attach(
        n.id,
        PDF,
        kind="implementation_plan",
        actor="drc:hebei",
        filename="plan.pdf",
        title="唐山市碳达峰试点实施方案",
        doc_number="冀发改环资〔2023〕1号",
    )
    assert (plan.kind, plan.size, plan.media_type) == (
        "implementation_plan",
        len(PDF),
        "application/pdf",
    )
    n = engine.fire(n.id, "submit_plan", "drc:hebei")
    n = engine.fire(n.id, "return_plan", "ndrc", reason="重点工程不明确")
    assert n.state == "confirmed"
    with pytest.raises(Refused, match="since it became confirmed"):  # the old plan no longer counts
        engine.fire(n.id, "submit_plan", "drc:hebei")
    engine.attach(n.id, DOCX, kind="implementation_plan", actor="drc:hebei", filename="v2.docx")
    for event, actor, data, state in (
        ("submit_plan", "drc:hebei", None, "plan_review"),
        ("approve_plan", "ndrc", None, "in_construction"),
        ("pass_midterm", "ndrc", {"grade": "good"}, "in_construction"),
        ("fail_evaluation", "ndrc", {"due": "2024-03-31"}, "rectification"),
    ):
        n = engine.fire(n.id, event, actor, data=data, reason="整改" if "fail" in event else None)
        assert n.state == state
    engine.attach(n.id, PDF, kind="progress_report", actor="drc:hebei", filename="r.pdf")
    n = engine.fire(n.id, "report_progress", "drc:hebei", data={"period": 2023})
    assert n.state == "rectification"  # a report leaves the state as it is
    engine.attach(n.id, XLSX, kind="rectification_report", actor="gov:hebei", filename="z.xlsx")
    n = engine.fire(n.id, "accept_rectification", "ndrc")
    n = engine.fire(n.id, "complete", "ndrc", data={"grade": "excellent"})
    assert n.state == "completed"

    history = engine.history(n.id)
    data = {h.event: h.data for h in history if h.event != "attach"}
    assert data["report_progress"] == {"period": 2023}
    assert data["pass_midterm"] == {"grade": "good"}
    assert data["fail_evaluation"] == {"due": "2024-03-31"}
    assert data["confirm"] is None
    attached = [h.data for h in history if h.event == "attach"]
    assert [d["kind"] for d in attached] == [  # type: ignore[index]
        "implementation_plan",
        "implementation_plan",
        "progress_report",
        "rectification_report",
    ]
    assert engine.verify_audit().ok
    assert [m.kind for m in engine.materials(n.id)] == [d["kind"] for d in attached]  # type: ignore[index]
    assert engine.timers() == [] or all(t.nomination != n.id for t in engine.timers())
    kinds = {x.kind for x in engine.notices()}
    assert {
        "plan_submitted",
        "plan_returned",
        "plan_approved",
        "progress_reported",
        "evaluated",
        "rectification_accepted",
    } <= kinds
    (pilot,) = engine.pilots()
    assert (pilot.state, pilot.last_period, pilot.next_due, pilot.overdue) == (
        "completed",
        2023,
        None,
        False,
    )


def test_event_data_is_covered_by_the_records_hash(engine: Engine) -> None:
    n = in_construction(engine)
    engine.fire(n.id, "pass_midterm", "ndrc", data={"grade": "pass"})
    assert engine.verify_audit().ok
    with engine.database.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE audit_records SET data = :d WHERE event = 'pass_midterm'"),
            {"d": '{"grade":"excellent"}'},
        )
    report = engine.verify_audit()
    assert not report.ok and report.first_broken is not None
    assert "edited" in report.first_broken.problem


def test_audit_verify_checks_every_materials_bytes(engine: Engine) -> None:
    n = confirmed(engine)
    material = engine.attach(n.id, PNG, kind="other", actor="gov:hebei", filename="photo.png")
    assert engine.verify_audit().ok
    with engine.database.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE material_blobs SET content = :c"), {"c": PNG + b"tampered"}
        )
    report = engine.verify_audit()
    assert not report.ok and report.first_broken is not None
    assert report.first_broken.nomination == n.id
    assert material.id in report.first_broken.problem
    history = engine.history(n.id)
    assert report.first_broken.seq == next(h.seq for h in history if h.event == "attach")


@pytest.mark.parametrize(
    ("content", "filename", "media_type"),
    [
        (PDF, "a.pdf", "application/pdf"),
        (OFD, "a.ofd", "application/ofd"),
        (DOCX, "a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (XLSX, "a.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (PNG, "a.png", "image/png"),
        (JPEG, "a.jpg", "image/jpeg"),
        (PDF, "no-suffix", "application/pdf"),
    ],
)
def test_materials_are_recognised_by_their_content_and_come_back_whole(
    engine: Engine, content: bytes, filename: str, media_type: str
) -> None:
    n = confirmed(engine)
    material = engine.attach(n.id, content, kind="application", actor="ndrc", filename=filename)
    assert material.media_type == media_type
    fetched, data = engine.material(material.id)
    assert (fetched, data) == (material, content)


def test_the_same_bytes_are_stored_once(engine: Engine) -> None:
    n = confirmed(engine)
    first = engine.attach(n.id, PDF, kind="other", actor="drc:hebei", filename="a.pdf")
    second = engine.attach(n.id, PDF, kind="application", actor="gov:hebei", filename="b.pdf")
    assert first.sha256 == second.sha256 and first.id != second.id
    stored = rows(engine)
    assert len(stored["material_blobs"]) == 1 and len(stored["materials"]) == 2


BAD_INPUT = [
    pytest.param("report_progress", {}, InvalidInput, "needs period=YYYY", id="missing-data"),
    pytest.param(
        "report_progress",
        {"period": 2023, "x": 1},
        InvalidInput,
        "does not take 'x'",
        id="unknown-data",
    ),
    pytest.param(
        "report_progress", {"period": "20x4"}, InvalidInput, "a year like 2024", id="malformed-year"
    ),
    pytest.param(
        "report_progress", {"period": 2024}, Refused, "has not begun", id="period-not-begun"
    ),
    pytest.param(
        "pass_midterm",
        {"grade": "superb"},
        InvalidInput,
        "excellent, good, pass",
        id="grade-not-allowed",
    ),
    pytest.param(
        "complete",
        {"grade": "good"},
        Refused,
        "mid-term evaluation must be passed",
        id="complete-before-midterm",
    ),
    pytest.param(
        "fail_evaluation",
        {"due": "2023-10-19"},
        InvalidInput,
        "must lie in the future",
        id="past-rectification-date",
    ),
    pytest.param(
        "fail_evaluation", {"due": "31/12/2024"}, InvalidInput, "a day like", id="malformed-date"
    ),
    pytest.param(
        "revoke",
        {"grade": "good"},
        InvalidInput,
        "takes no data",
        id="data-for-an-event-without",
    ),
]


@pytest.mark.parametrize(("event", "data", "error", "words"), BAD_INPUT)
def test_bad_event_data_is_refused_and_writes_nothing(
    engine: Engine, event: str, data: dict[str, object], error: type[Exception], words: str
) -> None:
    n = in_construction(engine)
    engine.attach(n.id, PDF, kind="progress_report", actor="drc:hebei", filename="r.pdf")
    actor = "drc:hebei" if event == "report_progress" else "ndrc"
    before = rows(engine)
    with pytest.raises(error, match=words) as info:
        engine.fire(n.id, event, actor, data=data, reason="理由")
    assert info.value.exit_code == 5  # type: ignore[attr-defined]
    assert rows(engine) == before


def test_a_period_is_reported_once_and_each_report_needs_a_new_document(
    engine: Engine, clock: FrozenClock
) -> None:
    n = in_construction(engine)
    engine.attach(n.id, PDF, kind="progress_report", actor="drc:hebei", filename="r.pdf")
    engine.fire(n.id, "report_progress", "drc:hebei", data={"period": 2023})
    clock.set(datetime(2024, 1, 10, 9, tzinfo=BEFORE_DEADLINE.tzinfo))
    before = rows(engine)
    with pytest.raises(Refused, match="attach its progress_report first"):
        engine.fire(n.id, "report_progress", "drc:hebei", data={"period": 2024 - 1 + 1})
    engine.attach(n.id, PNG, kind="progress_report", actor="drc:hebei", filename="r.png")
    with pytest.raises(Refused, match="2023 was already reported"):
        engine.fire(n.id, "report_progress", "drc:hebei", data={"period": 2023})
    assert rows(engine)["audit_records"] != before["audit_records"]  # only the attach
    engine.fire(n.id, "report_progress", "drc:hebei", data={"period": 2024})


@pytest.mark.parametrize(
    ("content", "filename", "words"),
    [
        (b"this is not a pdf", "plan.pdf", "not a PDF, OFD, DOCX"),
        (PNG, "plan.pdf", "named .pdf but its content is PNG"),
        (b"PK\x03\x04broken zip", "a.docx", "not a PDF"),
        (b"", "empty.pdf", "is empty"),
    ],
)
def test_a_document_that_is_not_what_it_claims_is_refused(
    engine: Engine, content: bytes, filename: str, words: str
) -> None:
    n = confirmed(engine)
    before = rows(engine)
    with pytest.raises(InvalidInput, match=words):
        engine.attach(n.id, content, kind="other", actor="drc:hebei", filename=filename)
    assert rows(engine) == before


def test_a_material_over_the_limit_is_refused(db_url: str, clock: FrozenClock) -> None:
    with Engine(db_url, clock=clock, max_material_bytes=100) as engine:
        engine.init()
        n = confirmed(engine)
        before = rows(engine)
        with pytest.raises(InvalidInput, match="more than the 100"):
            engine.attach(n.id, PDF + b"x" * 100, kind="other", actor="ndrc", filename="a.pdf")
        assert rows(engine) == before


def test_materials_are_scoped_by_province(engine: Engine) -> None:
    n = confirmed(engine)
    before = rows(engine)
    with pytest.raises(NotPermitted, match="drc:shanxi may not attach materials"):
        engine.attach(n.id, PDF, kind="other", actor="drc:shanxi", filename="a.pdf")
    with pytest.raises(InvalidInput, match="unknown material kind"):
        engine.attach(n.id, PDF, kind="poem", actor="drc:hebei", filename="a.pdf")
    assert rows(engine) == before
    material = engine.attach(n.id, PDF, kind="other", actor="drc:hebei", filename="a.pdf")
    with pytest.raises(NotPermitted):
        engine.materials(n.id, actor="gov:shanxi")
    with pytest.raises(NotPermitted):
        engine.material(material.id, actor="drc:shanxi")
    assert engine.materials(n.id, actor="gov:hebei") == [material]
    with pytest.raises(NotFound):
        engine.material("0123456789abcdef")
    with pytest.raises(NotFound):
        engine.material("../etc/passwd")


def test_a_place_is_piloted_once(engine: Engine, clock: FrozenClock) -> None:
    n = confirmed(engine)
    clock.set(BEFORE_DEADLINE + timedelta(days=60))
    engine.tick()
    engine.open_batch(
        "ndrc", "2024-second", deadline=BEFORE_DEADLINE + timedelta(days=200), quotas={"hebei": 2}
    )
    before = rows(engine)
    with pytest.raises(Refused, match="already a pilot, confirmed in batch 2023-first"):
        engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        )
    assert rows(engine) == before
    engine.fire(n.id, "revoke", "ndrc", reason="撤销")
    again = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
    )
    assert again.batch == "2024-second"


def test_plan_timers_remind_then_report_overdue_and_end_with_the_plan(
    engine: Engine, clock: FrozenClock
) -> None:
    n = confirmed(engine)
    kinds = [t.kind for t in engine.show(n.id).timers]
    assert kinds.count("plan_reminder") == 2 and kinds.count("plan_due") == 1
    clock.set(BEFORE_DEADLINE + timedelta(days=200))  # downtime past the plan's due day
    engine.tick()
    sent = [x.kind for x in engine.notices() if x.nomination == n.id]
    assert sent.count("plan_overdue") == 2  # drc and gov; the passed reminders said nothing
    assert "plan_reminder" not in sent
    (pilot,) = engine.pilots(overdue=True)
    assert pilot.next_due is not None and pilot.next_due.kind == "plan" and pilot.overdue
    engine.attach(n.id, PDF, kind="implementation_plan", actor="drc:hebei", filename="p.pdf")
    engine.fire(n.id, "submit_plan", "drc:hebei")
    assert engine.pilots(overdue=True) == []


def test_reports_are_yearly_rounds_each_province_told_of_the_pilots_that_owe(
    engine: Engine, clock: FrozenClock
) -> None:
    tangshan = in_construction(engine, "唐山市")
    baoding = in_construction(engine, "保定市")
    taiyuan = in_construction(engine, "太原市", "shanxi")  # all approved in 2023
    rounds = [t for t in engine.timers("2023-first") if t.kind == "report_due"]
    assert [(t.due_at.year, t.due_at.month, t.due_at.day, t.nomination) for t in rounds] == [
        (year, 2, 1, None)
        for year in range(2024, 2031)  # due by 31 January, 2024-2030
    ]
    engine.attach(tangshan.id, PDF, kind="progress_report", actor="drc:hebei", filename="r.pdf")
    engine.fire(tangshan.id, "report_progress", "drc:hebei", data={"period": 2023})
    engine.fire(taiyuan.id, "revoke", "ndrc", reason="撤销试点资格")

    clock.set(datetime(2024, 2, 1, 9, tzinfo=BEFORE_DEADLINE.tzinfo))  # after the due day
    report = engine.tick()
    outcome = next(o for o in report.outcomes if o.kind == "report_due")
    assert "for 1 pilots of 1 provinces" in outcome.action
    (letter,) = [x for x in engine.notices() if x.kind == "report_overdue"]
    assert letter.actor == "drc:hebei" and letter.nomination is None
    text = engine.notice(letter.id).text
    assert "保定市" in text and "唐山市" not in text and "太原市" not in text
    next_round = next(t for t in engine.timers("2023-first") if t.kind == "report_due")
    assert next_round.due_at.year == 2025
    (overdue,) = engine.pilots(overdue=True)
    assert overdue.id == baoding.id
    assert overdue.next_due is not None and overdue.next_due.period == 2023
    assert engine.tick().outcomes == ()  # a round is done once
    engine.fire(baoding.id, "revoke", "ndrc", reason="撤销")
    assert [p.id for p in engine.pilots(overdue=True)] == []


def test_a_year_of_downtime_is_caught_up_round_by_round(engine: Engine, clock: FrozenClock) -> None:
    in_construction(engine, "唐山市")
    in_construction(engine, "保定市")
    clock.set(datetime(2025, 3, 1, 9, tzinfo=BEFORE_DEADLINE.tzinfo))
    report = engine.tick()
    kinds = [o.kind for o in report.outcomes if o.kind.startswith("report")]
    assert kinds == ["report_reminder", "report_due", "report_reminder", "report_due"]
    letters = [x for x in engine.notices() if x.kind.startswith("report")]
    assert [x.kind for x in letters] == ["report_overdue", "report_overdue"]  # 2023, 2024
    assert engine.verify_audit().ok


def test_a_milestone_already_passed_is_not_announced(engine: Engine, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 1, 15, 9, tzinfo=BEFORE_DEADLINE.tzinfo))
    engine.open_batch(
        "ndrc", "2026-third", deadline=clock.now() + timedelta(days=30), quotas={"hebei": 1}
    )
    n = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="保定市", level="prefecture"
    )
    for event, actor in (
        ("submit_for_approval", "drc:hebei"),
        ("approve", "gov:hebei"),
        ("submit", "drc:hebei"),
        ("confirm", "ndrc"),
    ):
        engine.fire(n.id, event, actor)
    milestones = [t for t in engine.show(n.id).timers if t.kind == "milestone"]
    assert [t.due_at.year for t in milestones] == [2030]
