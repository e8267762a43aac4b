"""The second version of the 2023 programme (carbon_peak_2023_expert_review.yaml) on a
fresh database initialised with it: a nomination is reviewed by experts before the NDRC
decides, the referral is notified in both languages, and a nomination under review keeps
its province's place, at submission and at the deadline. And the example mappings of
docs/examples move a database's nominations from the first version to it and back.

Runs on an SQLite file and on PostgreSQL (where one is available)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from peakpilot import Engine, FrozenClock, NotPermitted, Refused
from peakpilot.errors import InvalidInput
from tests.conftest import DEADLINE
from tests.unit.test_program_expert_review import EXAMPLES, EXPERT_REVIEW, ROOT

FIRST_VERSION = ROOT / "peakpilot" / "config" / "programs" / "carbon_peak_2023.yaml"

# The province's DRC reads English, its government Chinese (the default), the NDRC English.
CONTACTS = """
ndrc:
  email: [climate@ndrc.example.cn]
  locale: en
drc:hebei:
  email: [drc@hebei.example.cn]
  locale: en
gov:hebei:
  email: [office@hebei.example.cn]
"""


@pytest.fixture
def engine(db_url: str, clock: FrozenClock, tmp_path: Path) -> Iterator[Engine]:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(CONTACTS, encoding="utf-8")
    with Engine(db_url, clock=clock, contacts=contacts) as engine:
        engine.init(EXPERT_REVIEW)
        yield engine


def submitted(engine: Engine, name: str, province: str = "hebei") -> str:
    drc, gov = f"drc:{province}", f"gov:{province}"
    n = engine.nominate(drc, province=province, kind="city", name=name, level="prefecture")
    engine.fire(n.id, "submit_for_approval", drc)
    engine.fire(n.id, "approve", gov)
    return engine.fire(n.id, "submit", drc).id


def test_init_stores_the_second_version(engine: Engine) -> None:
    assert "expert_review" in engine.program.states
    assert engine.program.source == EXPERT_REVIEW.read_text(encoding="utf-8")
    assert engine.init(EXPERT_REVIEW)["changed"] is False  # repeating it changes nothing


def test_a_nomination_is_reviewed_by_experts_before_it_is_confirmed(engine: Engine) -> None:
    nid = submitted(engine, "唐山市")

    with pytest.raises(Refused) as refused:
        engine.fire(nid, "confirm", "ndrc")
    assert refused.value.exit_code == 5 and not isinstance(refused.value, InvalidInput)
    assert "it is submitted, and confirm applies only to expert_review" in str(refused.value)
    for event in ("reject", "defer"):
        with pytest.raises(Refused):
            engine.fire(nid, event, "ndrc", reason="材料不全")
    with pytest.raises(NotPermitted):
        engine.fire(nid, "refer_to_experts", "drc:hebei")  # the NDRC refers, no one else
    assert engine.get(nid).state == "submitted"

    before = len(engine.notices())
    assert engine.fire(nid, "refer_to_experts", "ndrc").state == "expert_review"
    assert engine.fire(nid, "confirm", "ndrc").state == "confirmed"

    trail = [(r.event, r.from_state, r.to_state, r.actor) for r in engine.history(nid)]
    assert trail == [
        ("nominate", None, "drafted", "drc:hebei"),
        ("submit_for_approval", "drafted", "provincial_approval", "drc:hebei"),
        ("approve", "provincial_approval", "approved", "gov:hebei"),
        ("submit", "approved", "submitted", "drc:hebei"),
        ("refer_to_experts", "submitted", "expert_review", "ndrc"),
        ("confirm", "expert_review", "confirmed", "ndrc"),
    ]
    assert engine.verify_audit().ok

    sent = [(n.kind, n.actor, n.locale) for n in engine.notices()[before:]]
    assert sent == [
        ("referred_to_experts", "drc:hebei", "en"),
        ("referred_to_experts", "gov:hebei", "zh-CN"),
        ("confirmed", "drc:hebei", "en"),
        ("confirmed", "gov:hebei", "zh-CN"),
    ]


def test_the_referral_notice_reads_in_each_language(engine: Engine) -> None:
    nid = submitted(engine, "唐山市")
    engine.fire(nid, "refer_to_experts", "ndrc")
    letters = {
        n.locale: (n.subject, engine.notice(n.id))
        for n in engine.notices()
        if n.kind == "referred_to_experts"
    }
    assert set(letters) == {"en", "zh-CN"}

    subject, letter = letters["en"]
    assert subject == (
        "[National Carbon Peak Pilot Programme] Nomination of 唐山市 referred for expert review"
    )
    for words in (
        "To: Development and Reform Commission of Hebei",
        "The National Development and Reform Commission has referred the nomination of 唐山市",
        "continues to count against the quota of Hebei.",
        "Status:              submitted to the NDRC → under expert review",
        f"Reference:           {nid}",
    ):
        assert words in letter.text, (words, letter.text)
    assert "submitted to the NDRC → under expert review</td>" in letter.html
    assert '<html lang="en">' in letter.html

    subject, letter = letters["zh-CN"]
    assert subject == "【国家碳达峰试点建设】关于唐山市试点申报提交专家评审的通知"
    for words in (
        "河北省人民政府：",
        "国家发展改革委已将唐山市（城市，地级）参加国家碳达峰试点建设 2023-first 批次的"
        "试点申报提交专家评审。",
        "该申报继续占用河北省本批次的试点名额。",
        "状态变更：已报送国家发展改革委 → 专家评审中",
        f"申报编号：{nid}",
    ):
        assert words in letter.text, (words, letter.text)
    assert "已报送国家发展改革委 → 专家评审中</td>" in letter.html
    assert '<html lang="zh-CN">' in letter.html


def test_a_nomination_under_expert_review_keeps_its_provinces_place(engine: Engine) -> None:
    """Shanxi has 2 places: two nominations under review fill them."""
    first, second = submitted(engine, "太原市", "shanxi"), submitted(engine, "大同市", "shanxi")
    engine.fire(first, "refer_to_experts", "ndrc")
    engine.fire(second, "refer_to_experts", "ndrc")
    third = engine.nominate(
        "drc:shanxi", province="shanxi", kind="city", name="晋城市", level="prefecture"
    )
    engine.fire(third.id, "submit_for_approval", "drc:shanxi")
    engine.fire(third.id, "approve", "gov:shanxi")

    with pytest.raises(Refused, match="2 of 2"):
        engine.fire(third.id, "submit", "drc:shanxi")
    (row,) = [p for p in engine.board().provinces if p.province == "shanxi"]
    assert (row.quota, row.used, row.left, row.states["expert_review"]) == (2, 2, 0, 2)

    # leaving the review gives the place back, and the NDRC, which had it, is told
    before = len(engine.notices())
    engine.fire(first, "withdraw", "drc:shanxi")
    assert {n.actor for n in engine.notices()[before:]} == {"gov:shanxi", "ndrc"}
    assert engine.fire(third.id, "submit", "drc:shanxi").state == "submitted"


def test_the_ndrc_sends_back_from_review_only_while_the_batch_is_open(
    engine: Engine, clock: FrozenClock
) -> None:
    sent_back, kept = submitted(engine, "唐山市"), submitted(engine, "张家口市")
    engine.fire(sent_back, "refer_to_experts", "ndrc")
    engine.fire(kept, "refer_to_experts", "ndrc")
    with pytest.raises(Refused):
        engine.fire(sent_back, "send_back", "ndrc")  # a reason is needed
    assert engine.fire(sent_back, "send_back", "ndrc", reason="请补充数据").state == "drafted"

    clock.set(DEADLINE)
    engine.tick()
    with pytest.raises(Refused):
        engine.fire(kept, "send_back", "ndrc", reason="请补充数据")
    assert engine.fire(kept, "defer", "ndrc", reason="纳入后续批次").state == "follow_up_batch"


def test_after_the_deadline_the_ndrc_still_refers_and_decides_and_no_one_under_review_is_short(
    engine: Engine, clock: FrozenClock
) -> None:
    """The review goes on after the deadline; at the deadline, a province whose places
    are all under review did not fall short."""
    reviewed = [submitted(engine, name, "shanxi") for name in ("太原市", "大同市")]
    engine.fire(reviewed[0], "refer_to_experts", "ndrc")
    waiting = submitted(engine, "唐山市")

    clock.set(DEADLINE)
    engine.tick()
    assert engine.board().status == "closed"
    engine.fire(reviewed[1], "refer_to_experts", "ndrc")
    assert engine.get(reviewed[1]).state == "expert_review"
    shortfalls = {n.actor for n in engine.notices() if n.kind == "shortfall"}
    assert "drc:shanxi" not in shortfalls and "drc:hebei" in shortfalls

    assert engine.fire(waiting, "refer_to_experts", "ndrc").state == "expert_review"
    assert engine.fire(waiting, "reject", "ndrc", reason="不符合条件").state == "rejected"
    assert engine.fire(reviewed[0], "confirm", "ndrc").state == "confirmed"


def test_the_example_mappings_move_submitted_nominations_to_the_experts_and_back(
    db_url: str, clock: FrozenClock
) -> None:
    with Engine(db_url, clock=clock) as engine:
        engine.init()  # the first version
        nid = submitted(engine, "唐山市")

        change = engine.change_program(
            EXPERT_REVIEW, migrate=EXAMPLES / "migrate_to_expert_review.yaml"
        )
        assert (change.outcome, change.problems) == ("applied", ())
        assert engine.get(nid).state == "expert_review"
        assert engine.history(nid)[-1].event == "migrate"

        with pytest.raises(Refused, match="expert_review"):
            engine.change_program(FIRST_VERSION)  # the first version has no such state
        engine.change_program(FIRST_VERSION, migrate=EXAMPLES / "migrate_back_to_2023.yaml")
        assert engine.get(nid).state == "submitted"
        assert engine.fire(nid, "confirm", "ndrc").state == "confirmed"  # as version 1 allows
        assert engine.verify_audit().ok
