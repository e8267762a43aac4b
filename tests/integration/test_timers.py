"""Deadline work (DESIGN.md sections 2-4, issue 4): durable timers, ``Engine.tick`` across
every boundary, follow-up batches and carry-over. Runs on an SQLite file and on a fresh
PostgreSQL database through the ``engine`` fixture, on a frozen clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from peakpilot import (
    Engine,
    FrozenClock,
    InvalidInput,
    Nomination,
    NotPermitted,
    Refused,
)
from peakpilot.config.program import load_program
from peakpilot.config.quotas import parse_quotas
from peakpilot.errors import ConfigError
from tests.conftest import BEFORE_DEADLINE, BEIJING, DEADLINE
from tests.design import PROVINCES

SECOND = timedelta(seconds=1)
EIGHT_HOURS = timedelta(hours=8)
REMINDER_DAYS = (14, 7, 1)
UNSUBMITTED = ("drafted", "provincial_approval", "approved")
MILESTONES = (
    datetime(2025, 11, 5, tzinfo=BEIJING),  # 2025-12-31 minus 56 days
    datetime(2030, 11, 5, tzinfo=BEIJING),  # 2030-12-31 minus 56 days
)
TABLES = (
    "programs",
    "batches",
    "quota_allocations",
    "nominations",
    "audit_records",
    "idempotency_keys",
    "notices",
    "timers",
)


# -- helpers ---------------------------------------------------------------------------


def rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: 'nothing written' / 'nothing changed' means this is equal."""
    with engine.database.engine.connect() as connection:
        return {
            table: sorted(
                map(tuple, connection.execute(sa.text(f"SELECT * FROM {table}"))), key=repr
            )
            for table in TABLES
        }


def timer_statuses(engine: Engine) -> dict[str, str]:
    with engine.database.engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT unique_key, status FROM timers")).all())


def refused(
    engine: Engine, error: type[Exception], match: str, call: Any, *a: Any, **kw: Any
) -> Exception:
    before = rows(engine)
    with pytest.raises(error, match=match) as raised:
        call(*a, **kw)
    assert rows(engine) == before, "a refused call wrote something"
    assert raised.value.exit_code == error.exit_code  # type: ignore[attr-defined]
    return raised.value


def nominate(
    engine: Engine, name: str, province: str = "hebei", batch: str | None = None
) -> Nomination:
    return engine.nominate(
        f"drc:{province}",
        province=province,
        kind="city",
        name=name,
        level="prefecture",
        batch=batch,
    )


def in_state(engine: Engine, name: str, state: str, province: str = "hebei") -> Nomination:
    """A nomination of the first batch walked to ``state`` (by its rightful actors)."""
    n = nominate(engine, name, province)
    path = {
        "drafted": [],
        "provincial_approval": [("submit_for_approval", "drc")],
        "approved": [("submit_for_approval", "drc"), ("approve", "gov")],
        "submitted": [("submit_for_approval", "drc"), ("approve", "gov"), ("submit", "drc")],
        "confirmed": [
            ("submit_for_approval", "drc"),
            ("approve", "gov"),
            ("submit", "drc"),
            ("confirm", "ndrc"),
        ],
        "withdrawn": [("withdraw", "drc")],
    }[state]
    for event, role in path:
        actor = "ndrc" if role == "ndrc" else f"{role}:{province}"
        n = engine.fire(n.id, event, actor, reason=None)
    assert n.state == state
    return n


def notices_of(engine: Engine, kind: str) -> list[Any]:
    return [n for n in engine.notices() if n.kind == kind]


def reminder_due(days: int) -> datetime:
    return DEADLINE - timedelta(days=days)


# -- timers created by init ---------------------------------------------------------------


def test_init_creates_the_first_batch_timers_once(engine: Engine) -> None:
    timers = engine.timers()
    assert [(t.kind, t.due_at) for t in timers] == [
        ("reminder", datetime(2023, 11, 1, tzinfo=BEIJING)),
        ("reminder", datetime(2023, 11, 8, tzinfo=BEIJING)),
        ("reminder", datetime(2023, 11, 14, tzinfo=BEIJING)),
        ("deadline", DEADLINE),
    ]
    assert all(t.due_at.utcoffset() == EIGHT_HOURS for t in timers)
    assert all(t.batch == "2023-first" and t.province is None for t in timers)
    assert all(t.nomination is None for t in timers)
    assert engine.timers("2023-first") == timers
    assert engine.next_due_at() == reminder_due(14)
    assert engine.notices() == []  # init sends nothing

    before = rows(engine)
    assert engine.init()["changed"] is False
    assert rows(engine) == before
    assert engine.timers() == timers


# -- tick across every boundary ---------------------------------------------------------


def test_tick_across_every_boundary(engine: Engine, clock: FrozenClock) -> None:
    for i, name in enumerate(("唐山市", "张家口市", "邯郸市")):  # Hebei fills its 3 places
        in_state(engine, name, "confirmed" if i == 0 else "submitted")
    drafted = in_state(engine, "太原市", "drafted", "shanxi")
    submitted = in_state(engine, "大同市", "submitted", "shanxi")
    unfilled = [f"drc:{p}" for p in PROVINCES if p != "hebei"]

    assert engine.tick(reminder_due(14) - SECOND).outcomes == ()
    assert notices_of(engine, "reminder") == []

    seen = 0
    for days in REMINDER_DAYS:
        before = rows(engine)
        assert engine.tick(reminder_due(days) - SECOND).outcomes == (), days
        assert rows(engine) == before, f"a tick one second before the {days}-day reminder"

        report = engine.tick(reminder_due(days))
        assert [(o.kind, o.notices) for o in report.outcomes] == [("reminder", len(unfilled))]
        reminders = notices_of(engine, "reminder")
        new = reminders[seen:]
        seen = len(reminders)
        assert sorted(n.actor for n in new) == sorted(unfilled), days
        assert "drc:hebei" not in {n.actor for n in new}  # Hebei filled its quota
        assert {n.batch for n in new} == {"2023-first"}
        shanxi = engine.notice(next(n.id for n in new if n.actor == "drc:shanxi")).text
        assert f"距截止还有 {days} 天。" in shanxi  # the time left
        assert "已报送（含已确认）1 个，尚余 1 个" in shanxi  # how many of how many

        after = rows(engine)
        assert engine.tick(reminder_due(days)).outcomes == ()
        assert rows(engine) == after, "a second tick at the same instant changed something"

    assert engine.tick(DEADLINE - SECOND).outcomes == ()
    assert engine.get(drafted.id).state == "drafted"
    assert engine.board().status == "open"

    report = engine.tick(DEADLINE)
    assert [(o.kind, o.lapsed) for o in report.outcomes] == [("deadline", 1)]
    lapse = engine.history(drafted.id)[-1]
    assert (lapse.event, lapse.actor, lapse.at) == ("lapse", "system", DEADLINE)
    assert engine.get(submitted.id).state == "submitted"
    assert engine.board().status == "closed"
    # only the confirmed nomination's milestones are left pending in the batch
    assert [t.kind for t in selection(engine.timers("2023-first"))] == ["milestone", "milestone"]

    after = rows(engine)
    assert engine.tick(DEADLINE).outcomes == ()
    assert engine.tick(DEADLINE + timedelta(days=30)).outcomes == ()
    assert rows(engine) == after
    assert len(notices_of(engine, "reminder")) == 3 * len(unfilled)
    assert engine.verify_audit().ok


def test_a_tick_that_finds_several_reminders_due_sends_the_latest_only(engine: Engine) -> None:
    by_due = {t.due_at: t.id for t in engine.timers()}
    now = datetime(2023, 11, 14, 12, tzinfo=BEIJING)
    report = engine.tick(now)
    assert [o.timer for o in report.outcomes] == [
        by_due[reminder_due(14)],
        by_due[reminder_due(7)],
        by_due[reminder_due(1)],
    ]
    assert [o.notices for o in report.outcomes] == [0, 0, len(PROVINCES)]
    reminders = notices_of(engine, "reminder")
    assert sorted(n.actor for n in reminders) == sorted(f"drc:{p}" for p in PROVINCES)
    assert [t.kind for t in engine.timers()] == ["deadline"]
    assert "距截止还有 12 小时。" in engine.notice(reminders[0].id).text
    assert report.now == now


@pytest.mark.parametrize("late", [timedelta(0), timedelta(hours=3, minutes=7)])
def test_the_deadline_lapses_the_unsubmitted_and_closes_the_batch(
    engine: Engine, clock: FrozenClock, late: timedelta
) -> None:
    hebei = [in_state(engine, n, "submitted") for n in ("唐山市", "张家口市", "邯郸市")]
    hebei_extra = in_state(engine, "沧州市", "approved")  # lapses, but Hebei is not short
    shanxi_lapsing = [
        in_state(engine, "太原市", "drafted", "shanxi"),
        in_state(engine, "大同市", "provincial_approval", "shanxi"),
        in_state(engine, "长治市", "approved", "shanxi"),
    ]
    shanxi_kept = in_state(engine, "晋城市", "submitted", "shanxi")
    guangdong_kept = [
        in_state(engine, "广州市", "confirmed", "guangdong"),
        in_state(engine, "深圳市", "withdrawn", "guangdong"),
    ]
    guangdong_lapsing = in_state(engine, "珠海市", "drafted", "guangdong")
    lapsing = [hebei_extra, *shanxi_lapsing, guangdong_lapsing]
    kept = [*hebei, shanxi_kept, *guangdong_kept]
    histories = {n.id: engine.history(n.id) for n in lapsing + kept}

    engine.tick(reminder_due(1))  # the reminders are behind us
    before = rows(engine)
    assert engine.tick(DEADLINE - SECOND).outcomes == ()
    assert rows(engine) == before

    now = DEADLINE + late
    report = engine.tick(now)
    assert [(o.kind, o.lapsed) for o in report.outcomes] == [("deadline", len(lapsing))]

    for n in lapsing:
        after = engine.get(n.id)
        assert (after.state, after.batch, after.version) == (
            "follow_up_batch",
            n.batch,
            1 + n.version,
        )
        history = engine.history(n.id)
        assert history[:-1] == histories[n.id]
        record = history[-1]
        assert (record.event, record.from_state, record.to_state) == (
            "lapse",
            n.state,
            "follow_up_batch",
        )
        assert (record.actor, record.reason, record.seq) == ("system", None, n.version + 1)
        assert record.at == now  # when the work was done, not when it was due
        assert record.at.utcoffset() == EIGHT_HOURS
    for n in kept:
        assert engine.get(n.id) == n
        assert engine.history(n.id) == histories[n.id]

    # shortfall: drc and gov of every province with used < quota (all but Hebei)
    shortfall = notices_of(engine, "shortfall")
    short = [p for p in PROVINCES if p != "hebei"]
    assert sorted(n.actor for n in shortfall) == sorted(
        f"{role}:{p}" for p in short for role in ("drc", "gov")
    )
    texts = {n.actor: engine.notice(n.id).text for n in shortfall}
    for role in ("drc", "gov"):
        for n in shanxi_lapsing:
            assert n.name in texts[f"{role}:shanxi"]
            assert n.id in texts[f"{role}:shanxi"]
        assert guangdong_lapsing.name in texts[f"{role}:guangdong"]
        assert shanxi_kept.name not in texts[f"{role}:shanxi"]
        for n in guangdong_kept:
            assert n.name not in texts[f"{role}:guangdong"]
        assert guangdong_lapsing.name not in texts[f"{role}:shanxi"]
    summary = notices_of(engine, "deadline_summary")
    assert [(n.actor, n.batch) for n in summary] == [("ndrc", "2023-first")]
    assert all(n.created_at == now for n in shortfall + summary)

    board = engine.board("2023-first")
    assert board.status == "closed"
    hebei_board = next(p for p in board.provinces if p.province == "hebei")
    assert (hebei_board.used, hebei_board.states["follow_up_batch"]) == (3, 1)
    assert [t.kind for t in selection(engine.timers("2023-first"))] == ["milestone", "milestone"]
    statuses = timer_statuses(engine)
    assert {k: v for k, v in statuses.items() if k.startswith("2023-first/")} == {
        "2023-first/reminder/14": "done",
        "2023-first/reminder/7": "done",
        "2023-first/reminder/1": "done",
        "2023-first/deadline": "done",
    }

    # the batch is closed: nothing new goes in, nothing more is submitted
    clock.set(now + SECOND)
    refused(engine, Refused, "no batch is open", nominate, engine, "保定市")
    refused(
        engine, Refused, "it is follow_up_batch", engine.fire, hebei_extra.id, "submit", "drc:hebei"
    )
    refused(
        engine, Refused, "is closed", engine.fire, shanxi_kept.id, "send_back", "ndrc", reason="x"
    )
    # and no reminder goes out any more
    after = rows(engine)
    assert engine.tick(now + timedelta(days=1)).outcomes == ()
    assert rows(engine) == after
    assert engine.verify_audit().ok


def test_a_tick_long_after_does_all_due_work_once_in_due_order(
    engine: Engine, clock: FrozenClock
) -> None:
    confirmed = in_state(engine, "唐山市", "confirmed")
    drafted = in_state(engine, "太原市", "drafted", "shanxi")
    timers = engine.timers()
    assert [t.due_at for t in timers] == sorted(t.due_at for t in timers)

    now = datetime(2026, 3, 1, 10, tzinfo=BEIJING)
    report = engine.tick(now)
    assert [o.timer for o in report.outcomes] == [t.id for t in timers if t.due_at <= now]
    assert [(o.kind, o.notices > 0) for o in report.outcomes] == [
        ("reminder", False),  # skipped: the deadline has passed
        ("reminder", False),
        ("reminder", False),
        ("deadline", True),
        ("plan_reminder", False),  # skipped: the plan's due day has passed
        ("plan_reminder", False),
        ("plan_due", True),  # the plan is overdue
        ("milestone", True),  # 2025; the 2030 one is still ahead
    ]
    assert notices_of(engine, "reminder") == []
    assert [(h.event, h.at) for h in engine.history(drafted.id)][-1] == ("lapse", now)
    assert [t.due_at for t in engine.timers()] == [MILESTONES[1]]
    assert engine.show(confirmed.id).timers == tuple(engine.timers())

    after = rows(engine)
    assert engine.tick(now).outcomes == ()
    assert engine.tick(now + timedelta(days=100)).outcomes == ()
    assert rows(engine) == after
    assert engine.verify_audit().ok


def test_a_tick_needs_an_aware_time(engine: Engine) -> None:
    refused(engine, InvalidInput, "no UTC offset", engine.tick, datetime(2023, 11, 15))


def selection(timers: Sequence[Any]) -> list[Any]:
    """Timers (or outcomes) of the selection phase and the milestones: those of the
    construction years (the plan due after confirmation) are tested in
    test_construction.py."""
    return [t for t in timers if t.kind in {"reminder", "deadline", "milestone"}]


# -- milestones --------------------------------------------------------------------------


def test_confirming_creates_milestone_timers_that_notify_the_province(
    engine: Engine,
) -> None:
    n = in_state(engine, "唐山市", "submitted")
    assert engine.show(n.id).timers == ()
    n = engine.fire(n.id, "confirm", "ndrc")
    timers = selection(engine.show(n.id).timers)
    assert [(t.kind, t.due_at, t.nomination, t.province) for t in timers] == [
        ("milestone", due, n.id, "hebei") for due in MILESTONES
    ]
    assert all(t.due_at.utcoffset() == EIGHT_HOURS for t in timers)

    engine.tick(DEADLINE)  # the batch's own deadline work, out of the way
    assert notices_of(engine, "milestone") == []
    assert selection(engine.tick(MILESTONES[0] - SECOND).outcomes) == []
    report = engine.tick(MILESTONES[0])
    assert [
        (o.kind, o.nomination, o.notices) for o in report.outcomes if o.kind == "milestone"
    ] == [("milestone", n.id, 2)]
    milestone = notices_of(engine, "milestone")
    assert sorted(m.actor for m in milestone) == ["drc:hebei", "gov:hebei"]
    assert {m.nomination for m in milestone} == {n.id}
    assert all(n.name in engine.notice(m.id).text for m in milestone)
    assert "2025" in engine.notice(milestone[0].id).text
    assert [t.due_at for t in selection(engine.show(n.id).timers)] == [MILESTONES[1]]

    assert engine.tick(MILESTONES[0]).outcomes == ()
    engine.tick(MILESTONES[1])
    assert len(notices_of(engine, "milestone")) == 4
    assert engine.show(n.id).timers == ()


# -- follow-up batches -------------------------------------------------------------------


def test_open_batch_creates_the_batch_its_timers_and_notices(
    engine: Engine, clock: FrozenClock
) -> None:
    deadline = BEFORE_DEADLINE + timedelta(days=3)
    board = engine.open_batch(
        "ndrc", "2024-second", deadline=deadline, quotas={"hebei": 2, "440000": 1}
    )
    assert (board.batch, board.status, board.deadline) == ("2024-second", "open", deadline)
    assert board.deadline.utcoffset() == EIGHT_HOURS
    assert [(p.province, p.quota, p.used, p.left) for p in board.provinces] == [
        ("hebei", 2, 0, 2),
        ("guangdong", 1, 0, 1),
    ]
    assert engine.board() == board  # the newest batch
    assert engine.board("2024-second") == board
    # opened 3 days before its deadline: the 14- and 7-day reminders are already gone
    assert [(t.kind, t.due_at) for t in engine.timers("2024-second")] == [
        ("reminder", deadline - timedelta(days=1)),
        ("deadline", deadline),
    ]
    opened = notices_of(engine, "batch_opened")
    assert sorted((n.actor, n.batch) for n in opened) == [
        ("drc:guangdong", "2024-second"),
        ("drc:hebei", "2024-second"),
    ]
    assert len(engine.timers("2023-first")) == 4  # the first batch is untouched

    # nominations go into the batch that gives the province a quota
    n = nominate(engine, "保定市", batch="2024-second")
    assert n.batch == "2024-second"

    # its reminder and deadline work like the first batch's
    report = engine.tick(deadline - timedelta(days=1))
    assert [(o.kind, o.batch, o.notices) for o in report.outcomes] == [
        ("reminder", "2024-second", 2)
    ]
    report = engine.tick(deadline)
    assert [(o.kind, o.batch, o.lapsed) for o in report.outcomes] == [
        ("deadline", "2024-second", 1)
    ]
    assert engine.board("2024-second").status == "closed"
    assert engine.board("2023-first").status == "open"
    assert engine.get(n.id).state == "follow_up_batch"


def test_open_batch_refuses_and_writes_nothing(engine: Engine) -> None:
    deadline = BEFORE_DEADLINE + timedelta(days=30)
    ok = {"hebei": 2}

    def open_(actor: str = "ndrc", batch: str = "2024-second", **kw: Any) -> Any:
        kw.setdefault("deadline", deadline)
        kw.setdefault("quotas", ok)
        return engine.open_batch(actor, batch, **kw)

    for actor in ("drc:hebei", "gov:hebei"):
        refused(engine, NotPermitted, "only ndrc", open_, actor)
    refused(engine, Refused, "not in the future", open_, deadline=BEFORE_DEADLINE - SECOND)
    refused(engine, Refused, "not in the future", open_, deadline=BEFORE_DEADLINE)
    refused(engine, InvalidInput, "no UTC offset", open_, deadline=datetime(2024, 6, 1))
    refused(engine, Refused, "exists", open_, batch="2023-first")
    refused(engine, InvalidInput, "unknown province 'tibet'", open_, quotas={"tibet": 1})
    refused(engine, InvalidInput, "unknown province", open_, quotas={"hebei": 1, "999999": 1})
    for quota in (0, -1, True, False, 1.5, "2", None):
        refused(engine, InvalidInput, "quota of hebei", open_, quotas={"hebei": quota})
    refused(engine, InvalidInput, "at least one province", open_, quotas={})
    refused(engine, InvalidInput, "batch id", open_, batch="")
    refused(engine, InvalidInput, "batch id", open_, batch="../x")

    open_()
    refused(engine, Refused, "exists", open_)
    assert len(notices_of(engine, "batch_opened")) == 1


def test_open_batch_refuses_a_province_given_twice(engine: Engine) -> None:
    """A slug and its GB/T 2260 code name one province: two quotas for it are ambiguous,
    as the quotas file says (`parse_quotas`: 'hebei is given twice'). The API must not
    silently keep the last one."""
    refused(
        engine,
        InvalidInput,
        "hebei",
        engine.open_batch,
        "ndrc",
        "2024-second",
        deadline=BEFORE_DEADLINE + timedelta(days=30),
        quotas={"hebei": 1, "130000": 2},
    )


def test_carry_over_moves_a_deferred_or_lapsed_nomination_into_the_newest_open_batch(
    engine: Engine, clock: FrozenClock
) -> None:
    deferred = in_state(engine, "保定市", "submitted")
    deferred = engine.fire(deferred.id, "defer", "ndrc", reason="下一批次")
    lapsed = in_state(engine, "邯郸市", "approved")
    taken = in_state(engine, "唐山市", "drafted")
    no_quota = in_state(engine, "太原市", "drafted", "shanxi")
    engine.tick(DEADLINE)
    for n in (lapsed, taken, no_quota):
        assert engine.get(n.id).state == "follow_up_batch"

    clock.set(DEADLINE + timedelta(days=10))
    engine.open_batch(
        "ndrc",
        "2024-second",
        deadline=datetime(2024, 6, 1, tzinfo=BEIJING),
        quotas={"hebei": 2, "440000": 1},
    )
    clock.advance(timedelta(days=1))
    engine.open_batch(
        "ndrc",
        "2024-third",
        deadline=datetime(2024, 9, 1, tzinfo=BEIJING),
        quotas={"hebei": 1, "guangdong": 1},
    )
    clock.advance(timedelta(days=1))
    nominate(engine, "唐山市", batch="2024-third")

    refused(engine, Refused, "already has a city", engine.fire, taken.id, "carry_over", "drc:hebei")
    refused(engine, Refused, "no quota", engine.fire, no_quota.id, "carry_over", "drc:shanxi")
    refused(
        engine, NotPermitted, "only drc:hebei", engine.fire, lapsed.id, "carry_over", "drc:shanxi"
    )
    refused(
        engine, NotPermitted, "only drc:hebei", engine.fire, lapsed.id, "carry_over", "gov:hebei"
    )

    for n in (deferred, lapsed):
        before = engine.history(n.id)
        moved = engine.fire(n.id, "carry_over", "drc:hebei")
        assert (moved.state, moved.batch, moved.name) == ("drafted", "2024-third", n.name)
        history = engine.history(n.id)
        assert history[:-1] == before and len(history) == len(before) + 1
        record = history[-1]
        assert (record.event, record.from_state, record.to_state, record.actor) == (
            "carry_over",
            "follow_up_batch",
            "drafted",
            "drc:hebei",
        )
        assert record.at == clock.now()
        assert moved.version == len(history)
    carried = notices_of(engine, "carried_over")
    assert sorted((c.actor, c.nomination, c.batch) for c in carried) == sorted(
        ("gov:hebei", n.id, "2024-third") for n in (deferred, lapsed)
    )
    assert engine.verify_audit().ok


# -- the quotas file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hebei: 2\ntibet: 1\n", "q.yaml:2: unknown province 'tibet'"),
        ("hebei: 2\nshanxi: 0\n", "q.yaml:2: shanxi: the quota must be"),
        ("hebei: 2\nshanxi: -3\n", "q.yaml:2: shanxi: the quota must be"),
        ("hebei: 2\nshanxi: true\n", "q.yaml:2: shanxi: the quota must be"),
        ("hebei: 2\nguangdong: 1\n'130000': 1\n", "q.yaml:3: hebei is given twice"),
        ("hebei: 2\nguangdong: 1\n130000: 1\n", "q.yaml:3: hebei is given twice"),
        ("- hebei\n- shanxi\n", "q.yaml: write one line per province"),
        ("hebei\n", "q.yaml: write one line per province"),
        ("", "q.yaml: write one line per province"),
    ],
)
def test_parse_quotas_names_the_line(source: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_quotas(source, load_program(None), "q.yaml")
    assert str(raised.value).startswith(message), str(raised.value)
    assert raised.value.exit_code == 5
    assert "\n" not in str(raised.value)


def test_parse_quotas_reads_slugs_and_codes() -> None:
    assert parse_quotas("hebei: 2\n'440000': 1\n", load_program(None)) == {
        "hebei": 2,
        "guangdong": 1,
    }


# -- lapse at scale --------------------------------------------------------------------


def test_two_thousand_unsubmitted_nominations_lapse_in_one_tick(
    sqlite_url: str, clock: FrozenClock
) -> None:
    count = 2000
    with Engine(sqlite_url, clock=clock) as engine:
        engine.init()
        kept = in_state(engine, "唐山市", "submitted")
        names = {}
        for i in range(count):
            province = PROVINCES[i % len(PROVINCES)]
            n = nominate(engine, f"城市{i:05d}", province)
            names[n.id] = (province, n.name)
        for n in engine.list(state="drafted")[:20]:  # a few further along
            engine.fire(n.id, "submit_for_approval", f"drc:{n.province}")

        report = engine.tick(DEADLINE)
        assert [(o.kind, o.lapsed) for o in report.outcomes][-1] == ("deadline", count)
        lapsed = engine.list(state="follow_up_batch")
        assert {n.id for n in lapsed} == set(names)
        assert engine.get(kept.id).state == "submitted"
        with engine.database.engine.connect() as connection:
            per_nomination = Counter(
                connection.execute(
                    sa.text(
                        "SELECT nomination_id FROM audit_records WHERE event = 'lapse' "
                        "AND actor = 'system' AND to_state = 'follow_up_batch'"
                    )
                ).scalars()
            )
        assert per_nomination == Counter(set(names))
        sample = lapsed[::97]
        for n in sample:
            record = engine.history(n.id)[-1]
            assert (record.event, record.at) == ("lapse", DEADLINE)
        hebei_text = next(
            engine.notice(n.id).text
            for n in notices_of(engine, "shortfall")
            if n.actor == "drc:hebei"
        )
        assert all(name in hebei_text for p, name in names.values() if p == "hebei")
        audit = engine.verify_audit()
        assert audit.ok
        assert audit.records == 2 * count + 20 + 4  # nominate + lapse, 20 moves, kept's 4
        assert engine.tick(DEADLINE).outcomes == ()
