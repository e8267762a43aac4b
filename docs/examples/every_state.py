"""Fill a new database with one nomination in every state of the shipped programme, for
the walkthrough of docs/PROGRAMME.md ("Changing the programme safely").

    .venv/bin/python docs/examples/every_state.py sqlite:///walkthrough.db

Each nomination is a city of its own province (so no quota is in the way), taken through
the events that lead to its state on 20 October 2023, through the public API.
"""

from __future__ import annotations

import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from peakpilot import Engine, FrozenClock
from peakpilot.demo_documents import pdf_document

DAY = datetime(2023, 10, 20, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
REPORTED = [("submit_for_approval", "drc"), ("approve", "gov"), ("submit", "drc")]
CONFIRMED = [*REPORTED, ("confirm", "ndrc")]
PLAN = [*CONFIRMED, ("attach_plan", "drc"), ("submit_plan", "drc")]
BUILDING = [*PLAN, ("approve_plan", "ndrc")]
# state -> (province, city, the events that lead there; "attach_plan" attaches a plan)
JOURNEYS = {
    "drafted": ("hebei", "唐山市", []),
    "provincial_approval": ("shanxi", "大同市", REPORTED[:1]),
    "approved": ("inner_mongolia", "包头市", REPORTED[:2]),
    "submitted": ("liaoning", "大连市", REPORTED),
    "confirmed": ("heilongjiang", "哈尔滨市", CONFIRMED),
    "rejected": ("jiangsu", "盐城市", [*REPORTED, ("reject", "ndrc")]),
    "withdrawn": ("zhejiang", "湖州市", [("withdraw", "drc")]),
    "follow_up_batch": ("anhui", "合肥市", [*REPORTED, ("defer", "ndrc")]),
    "plan_review": ("shandong", "济南市", PLAN),
    "in_construction": ("henan", "郑州市", BUILDING),
    "rectification": ("hubei", "武汉市", [*BUILDING, ("fail_evaluation", "ndrc")]),
    "completed": (
        "hunan",
        "长沙市",
        [*BUILDING, ("pass_midterm", "ndrc"), ("complete", "ndrc")],
    ),
    "revoked": ("guangdong", "深圳市", [*CONFIRMED, ("revoke", "ndrc")]),
}
REASONS = {"reject", "defer", "fail_evaluation", "revoke"}
DATA = {
    "pass_midterm": {"grade": "good"},
    "complete": {"grade": "pass"},
    "fail_evaluation": {"due": "2024-06-30"},
}


def fill(url: str) -> dict[str, str]:
    """The nominations made, state -> id."""
    made = {}
    with Engine(url, clock=FrozenClock(DAY)) as engine:
        engine.init()
        for state, (province, city, events) in JOURNEYS.items():
            n = engine.nominate(
                f"drc:{province}", province=province, kind="city", name=city, level="prefecture"
            )
            for event, role in events:
                actor = "ndrc" if role == "ndrc" else f"{role}:{province}"
                if event == "attach_plan":
                    document = pdf_document(f"{province} implementation plan")
                    engine.attach(n.id, document, kind="implementation_plan", actor=actor)
                    continue
                reason = "as the walkthrough needs" if event in REASONS else None
                n = engine.fire(n.id, event, actor, reason=reason, data=DATA.get(event))
            assert n.state == state, (state, n.state)
            made[state] = n.id
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: every_state.py DATABASE_URL (a new database)")
    for state, nomination in fill(sys.argv[1]).items():
        print(f"{nomination}  {state}")
