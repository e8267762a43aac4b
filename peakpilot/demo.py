"""The 2023 first batch, replayed on a simulated clock through the public Engine API, and
its pilots' construction years to 2030 (:mod:`peakpilot.demo_construction`), with a
programme change in 2024 (:mod:`peakpilot.demo_versions`).

It is both a tour for a new reader (``peakpilot demo``: the narration's Rich markup is
the command line's) and a smoke test: every event of the programme is played at least
once, and so are refusals of each kind, with the message a clerk would see. It grows as
the engine does. It lives outside the engine's package and uses only what an embedding
backend may: the Engine's methods, a clock passed to the Engine, and the public errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from peakpilot.demo_construction import Construction
from peakpilot.demo_versions import ExpertReview
from peakpilot.errors import NotFound, PeakpilotError, Refused

if TYPE_CHECKING:
    from peakpilot.clock import FrozenClock
    from peakpilot.notifications.channels import Channel
    from peakpilot.workflow.engine import Engine

FOLLOW_UP = "2024-second"
DEMO_CONTACTS = Path(__file__).with_name("demo_contacts.yaml")
BEIJING = ZoneInfo("Asia/Shanghai")
START = datetime(2023, 10, 20, 9, 0, tzinfo=BEIJING)  # where the replay's clock starts

Narrate = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    key: str
    province: str
    kind: str
    name: str
    level: str


CANDIDATES = (
    Candidate("tangshan", "hebei", "city", "唐山市", "prefecture"),
    Candidate("zhangjiakou", "hebei", "city", "张家口市", "prefecture"),
    Candidate("handan", "hebei", "city", "邯郸市", "prefecture"),
    Candidate("cangzhou", "hebei", "city", "沧州市", "prefecture"),
    Candidate("shenzhen", "guangdong", "city", "深圳市", "sub_provincial"),
    Candidate("guangzhou", "guangdong", "city", "广州市", "sub_provincial"),
    Candidate("nansha", "guangdong", "park", "广州南沙经济技术开发区", "national"),
    Candidate("suzhou", "jiangsu", "city", "苏州市", "prefecture"),
    Candidate("yancheng", "jiangsu", "city", "盐城市", "prefecture"),
    Candidate("suzhou_park", "jiangsu", "park", "苏州工业园区", "national"),
    Candidate("ordos", "inner_mongolia", "city", "鄂尔多斯市", "prefecture"),
    Candidate("huzhou", "zhejiang", "city", "湖州市", "prefecture"),  # never reported in time
)
# nominated in the follow-up batch, under the programme's second version
LATER_CANDIDATES = (Candidate("foshan", "guangdong", "city", "佛山市", "prefecture"),)


def run_demo(
    engine: Engine, clock: FrozenClock, channel: Channel, narrate: Narrate | None = None
) -> dict[str, Any]:
    """Replay the first batch into ``engine``'s database, which must hold no nominations,
    and deliver its notices through ``channel``.

    ``engine`` must have been built on ``clock`` (``Engine(..., clock=clock)``), a
    :class:`~peakpilot.clock.FrozenClock` not past :data:`START`: the replay moves it
    from one moment of the story to the next. The caller closes the engine."""
    say: Narrate = narrate or (lambda _text: None)
    started = time.perf_counter()
    _require_empty(engine)
    clock.set(START)
    engine.init()
    say(
        f"[bold]{engine.program.title.en}[/]: batch {engine.program.first_batch.id}, "
        f"deadline {engine.program.first_batch.deadline_at.isoformat()}"
    )
    story = _Story(engine, clock, say)
    story.play()
    delivery = engine.dispatch_notices(channel)
    say(
        f"\nNotices: {delivery.sent} delivered, {delivery.failed} failed, {delivery.dead} dead "
        "(see `peakpilot notices`)"
    )
    return {
        "events": story.events,
        "refusals": story.refusals,
        "nominations": len(story.ids),
        "materials": story.materials,
        "pilots": story.pilots,
        "batches": [engine.program.first_batch.id, FOLLOW_UP],
        "notices": {"sent": delivery.sent, "failed": delivery.failed, "dead": delivery.dead},
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def _require_empty(engine: Engine) -> None:
    try:
        count = len(engine.list())
    except NotFound:
        return  # no programme yet: a new database
    if count:
        raise Refused(
            f"the demo needs a new or empty database, and this one holds {count} nominations: "
            "pass another --db"
        )


class _Story:
    def __init__(self, engine: Engine, clock: FrozenClock, say: Narrate) -> None:
        self.engine, self.clock, self.say = engine, clock, say
        self.ids: dict[str, str] = {}
        self.events = 0
        self.refusals = 0
        self.materials = 0
        self.pilots = 0

    def at(self, month: int, day: int, hour: int = 9, year: int = 2023) -> None:
        self.clock.set(datetime(year, month, day, hour, tzinfo=BEIJING))
        self.say(f"\n[dim]{self.clock.now().astimezone(BEIJING):%Y-%m-%d %H:%M} Beijing[/]")

    def nominate(self, candidate: Candidate) -> None:
        created = self.engine.nominate(
            f"drc:{candidate.province}",
            province=candidate.province,
            kind=candidate.kind,
            name=candidate.name,
            level=candidate.level,
        )
        self.ids[candidate.key] = created.id
        self.events += 1
        self.say(
            f"  drc:{candidate.province} nominates {candidate.name} "
            f"({candidate.level} {candidate.kind}) -> {created.id}"
        )

    def fire(
        self,
        key: str,
        event: str,
        actor: str,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        after = self.engine.fire(self.ids[key], event, actor, reason=reason, data=data)
        self.events += 1
        carries = " (" + ", ".join(f"{k}={v}" for k, v in data.items()) + ")" if data else ""
        because = f" because {reason!r}" if reason else ""
        self.say(f"  {actor} {event}{carries}{because}: {after.name} is now [bold]{after.state}[/]")

    def tick(self) -> None:
        """What the daemon would do at this moment."""
        for outcome in self.engine.tick().outcomes:
            self.events += outcome.lapsed
            where = f" for batch {outcome.batch}"
            if outcome.nomination:
                key = next(k for k, v in self.ids.items() if v == outcome.nomination)
                where += f", {self.name(key)} ({outcome.nomination})"
            self.say(
                f"  [cyan]scheduler[/] {outcome.kind}{where}: {outcome.action} "
                f"({outcome.notices} notices, {outcome.lapsed} lapsed)"
            )

    def refused(self, what: str, attempt: Callable[[], object]) -> None:
        try:
            attempt()
        except PeakpilotError as error:
            self.refusals += 1
            self.say(f"  [red]refused[/] ({what}, exit {error.exit_code}): {error}")
        else:  # the demo is also a smoke test: a rule that let this through is broken
            raise AssertionError(f"the demo expected a refusal: {what}")

    def play(self) -> None:
        engine = self.engine
        self.at(10, 20)
        self.say("Provincial DRCs draft their candidates.")
        for candidate in CANDIDATES:
            self.nominate(candidate)
        self.refused(
            "ineligible level",
            lambda: engine.nominate(
                "drc:hebei", province="hebei", kind="city", name="迁安市", level="county"
            ),
        )
        self.refused(
            "duplicate name",
            lambda: engine.nominate(
                "drc:hebei", province="130000", kind="city", name="唐山市", level="prefecture"
            ),
        )
        self.refused(
            "another province's DRC",
            lambda: engine.nominate(
                "drc:shanxi", province="hebei", kind="city", name="保定市", level="prefecture"
            ),
        )

        self.at(10, 23)
        self.say("The drafts go to the provincial governments.")
        for key in self.ids:
            self.fire(key, "submit_for_approval", f"drc:{self.province(key)}")
        self.refused(
            "wrong role", lambda: engine.fire(self.ids["tangshan"], "approve", "drc:hebei")
        )
        self.refused(
            "another province",
            lambda: engine.fire(self.ids["tangshan"], "approve", "gov:guangdong"),
        )

        self.at(10, 26)
        self.say("The governments approve, or send back with a reason.")
        for key in self.ids:
            if key == "guangzhou":
                self.fire(
                    key,
                    "send_back",
                    "gov:guangdong",
                    "补充近三年碳排放核算数据 (add three years of emissions accounting)",
                )
            else:
                self.fire(key, "approve", f"gov:{self.province(key)}")
        self.refused(
            "reason missing", lambda: engine.fire(self.ids["suzhou"], "send_back", "gov:jiangsu")
        )
        self.fire("guangzhou", "submit_for_approval", "drc:guangdong")
        self.fire("guangzhou", "approve", "gov:guangdong")
        self.fire("yancheng", "withdraw", "drc:jiangsu")

        self.at(10, 30)
        self.say("The DRCs report to the NDRC, within their quotas.")
        for key in (
            "tangshan",
            "zhangjiakou",
            "handan",
            "shenzhen",
            "guangzhou",
            "nansha",
            "suzhou",
            "suzhou_park",
            "ordos",
        ):
            self.fire(key, "submit", f"drc:{self.province(key)}")
        self.refused("quota full", lambda: engine.fire(self.ids["cangzhou"], "submit", "drc:hebei"))
        self.refused(
            "wrong state", lambda: engine.fire(self.ids["yancheng"], "submit", "drc:jiangsu")
        )

        self.at(11, 1, hour=0)
        self.say("Two weeks before the deadline, the scheduler reminds the provinces.")
        self.tick()

        self.at(11, 4)
        self.say("The NDRC reviews what was reported.")
        self.fire("ordos", "send_back", "ndrc", "请明确试点园区范围 (state the pilot's boundary)")
        self.fire("handan", "withdraw", "drc:hebei")
        self.fire("cangzhou", "submit", "drc:hebei")  # Handan's withdrawal freed a place
        self.fire("ordos", "submit_for_approval", "drc:inner_mongolia")
        self.fire("ordos", "approve", "gov:inner_mongolia")
        self.fire("ordos", "submit", "drc:inner_mongolia")

        self.at(11, 8, hour=0)
        self.say("One week left.")
        self.tick()
        self.at(11, 14, hour=0)
        self.say("One day left.")
        self.tick()

        self.at(11, 15, hour=0)
        self.say("The deadline: Zhejiang never reported Huzhou.")
        self.refused(
            "deadline passed", lambda: engine.fire(self.ids["huzhou"], "submit", "drc:zhejiang")
        )
        self.tick()

        self.at(11, 15, hour=10)
        self.say("The NDRC decides on what was reported.")
        for key in ("tangshan", "zhangjiakou", "cangzhou", "shenzhen", "suzhou", "ordos"):
            self.fire(key, "confirm", "ndrc")
        self.fire(
            "nansha",
            "reject",
            "ndrc",
            "园区尚未达到省级以上认定条件的材料不全 "
            "(the park's recognition documents are incomplete)",
        )
        self.fire(
            "guangzhou", "defer", "ndrc", "纳入后续批次统筹考虑 (considered in a follow-up batch)"
        )
        self.fire(
            "suzhou_park", "defer", "ndrc", "与苏州市试点统筹 (coordinate with Suzhou's pilot)"
        )
        self.fire("guangzhou", "withdraw", "drc:guangdong")
        construction = Construction(self)
        construction.plans()

        self.at(3, 1, year=2024)
        self.say("The NDRC opens a follow-up batch, after the first batch's progress.")
        board = engine.open_batch(
            "ndrc",
            FOLLOW_UP,
            deadline=datetime(2024, 6, 30, tzinfo=BEIJING),
            quotas={"zhejiang": 1, "jiangsu": 1, "guangdong": 2},
        )
        self.events += 1
        self.say(
            f"  ndrc opens batch {board.batch}: "
            + ", ".join(f"{p.province} {p.quota}" for p in board.provinces)
        )
        self.refused(
            "no quota in the follow-up batch",
            lambda: engine.nominate(
                "drc:hebei", province="hebei", kind="city", name="保定市", level="prefecture"
            ),
        )

        self.at(3, 5, year=2024)
        self.say("Deferred and lapsed nominations are carried over.")
        self.fire("huzhou", "carry_over", "drc:zhejiang")
        self.fire("suzhou_park", "carry_over", "drc:jiangsu")
        self.fire("huzhou", "submit_for_approval", "drc:zhejiang")
        self.fire("huzhou", "approve", "gov:zhejiang")
        self.fire("huzhou", "submit", "drc:zhejiang")
        construction.revocation()

        self.at(4, 15, year=2024)
        expert_review = ExpertReview(self)
        expert_review.load()
        self.at(4, 22, year=2024)
        expert_review.refer()

        self.at(6, 16, hour=0, year=2024)
        self.say("Two weeks before the follow-up batch's deadline.")
        self.tick()
        self.at(6, 30, hour=0, year=2024)
        self.say("The follow-up batch's deadline: Suzhou Industrial Park was not reported.")
        self.tick()
        expert_review.decide()
        construction.building()

        self.at(11, 5, hour=0, year=2025)
        self.say("Eight weeks before the 2025 objective, the confirmed pilots are reminded.")
        self.tick()
        construction.to_2030()
        self.pilots = construction.pilots()

        report = engine.verify_audit()
        self.say(f"\nAudit trail: {report.records} records, {'intact' if report.ok else 'BROKEN'}")

    def candidate(self, key: str) -> Candidate:
        return next(c for c in (*CANDIDATES, *LATER_CANDIDATES) if c.key == key)

    def province(self, key: str) -> str:
        return self.candidate(key).province

    def name(self, key: str) -> str:
        return self.candidate(key).name
