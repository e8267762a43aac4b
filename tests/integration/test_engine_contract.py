"""The store/engine contract, run on an SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from peakpilot import (
    Conflict,
    Engine,
    FrozenClock,
    InvalidInput,
    Nomination,
    NotFound,
    NotPermitted,
    Refused,
)
from tests.conftest import BEFORE_DEADLINE, DEADLINE

TABLES = (
    "programs",
    "batches",
    "quota_allocations",
    "nominations",
    "audit_records",
    "idempotency_keys",
)


def rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: 'nothing written' means this does not change."""
    with engine.database.engine.connect() as connection:
        return {
            table: sorted(
                map(tuple, connection.execute(sa.text(f"SELECT * FROM {table}"))), key=repr
            )
            for table in TABLES
        }


def nominate(
    engine: Engine,
    name: str = "唐山市",
    province: str = "hebei",
    kind: str = "city",
    level: str = "prefecture",
) -> Nomination:
    return engine.nominate(f"drc:{province}", province=province, kind=kind, name=name, level=level)


def approved(engine: Engine, name: str, province: str = "hebei") -> Nomination:
    n = nominate(engine, name, province)
    engine.fire(n.id, "submit_for_approval", f"drc:{province}")
    return engine.fire(n.id, "approve", f"gov:{province}")


def submitted(engine: Engine, name: str, province: str = "hebei") -> Nomination:
    return engine.fire(approved(engine, name, province).id, "submit", f"drc:{province}")


# -- the happy path -------------------------------------------------------------------


def test_a_nomination_goes_from_draft_to_confirmation(engine: Engine) -> None:
    n = nominate(engine)
    assert (n.state, n.version, n.batch, n.province) == ("drafted", 1, "2023-first", "hebei")
    for event, actor, state in [
        ("submit_for_approval", "drc:hebei", "provincial_approval"),
        ("approve", "gov:130000", "approved"),
        ("submit", "drc:hebei", "submitted"),
        ("confirm", "ndrc", "confirmed"),
    ]:
        n = engine.fire(n.id, event, actor)
        assert n.state == state
    assert n.version == 5
    assert engine.get(n.id) == n
    history = engine.history(n.id)
    assert [h.event for h in history] == [
        "nominate",
        "submit_for_approval",
        "approve",
        "submit",
        "confirm",
    ]
    assert history[0].from_state is None and history[0].to_state == "drafted"
    assert [h.actor for h in history][2] == "gov:hebei"  # the code became the slug
    assert all(h.at == BEFORE_DEADLINE for h in history)
    assert engine.verify_audit().ok


def test_snapshots_are_frozen_and_show_times_in_the_programme_zone(engine: Engine) -> None:
    n = nominate(engine)
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.state = "confirmed"  # type: ignore[misc]
    assert n.created_at.utcoffset() == timedelta(hours=8)
    assert engine.board().deadline == DEADLINE


def test_history_records_the_engine_clock_and_the_reason(
    engine: Engine, clock: FrozenClock
) -> None:
    n = nominate(engine)
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    clock.advance(timedelta(days=2, seconds=1))
    engine.fire(n.id, "send_back", "gov:hebei", reason="补充材料\nline two")
    last = engine.history(n.id)[-1]
    assert last.at == BEFORE_DEADLINE + timedelta(days=2, seconds=1)
    assert last.reason == "补充材料\nline two"
    assert (last.event, last.from_state, last.to_state) == (
        "send_back",
        "provincial_approval",
        "drafted",
    )


# -- rules: each refused, with nothing written ------------------------------------------


def refused(engine: Engine, error: type[Exception], match: str, call, *args, **kwargs) -> None:
    before = rows(engine)
    with pytest.raises(error, match=match):
        call(*args, **kwargs)
    assert rows(engine) == before


def test_roles_and_provinces_are_enforced(engine: Engine) -> None:
    n = nominate(engine)
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    refused(engine, NotPermitted, "only gov:hebei", engine.fire, n.id, "approve", "drc:hebei")
    refused(engine, NotPermitted, "only gov:hebei", engine.fire, n.id, "approve", "gov:shanxi")
    refused(engine, NotPermitted, "only gov:hebei", engine.fire, n.id, "approve", "ndrc")
    refused(
        engine,
        NotPermitted,
        "drc:shanxi may not nominate",
        engine.nominate,
        "drc:shanxi",
        province="hebei",
        kind="city",
        name="保定市",
        level="prefecture",
    )
    refused(
        engine,
        NotPermitted,
        "gov:hebei may not nominate",
        engine.nominate,
        "gov:hebei",
        province="hebei",
        kind="city",
        name="保定市",
        level="prefecture",
    )


def test_events_must_fit_the_state(engine: Engine) -> None:
    n = nominate(engine)
    refused(engine, Refused, "it is drafted", engine.fire, n.id, "confirm", "ndrc")
    refused(engine, Refused, "unknown event 'approved'", engine.fire, n.id, "approved", "gov:hebei")


def test_submission_is_refused_at_the_deadline(engine: Engine, clock: FrozenClock) -> None:
    early = approved(engine, "唐山市")
    late = approved(engine, "张家口市")
    clock.set(DEADLINE - timedelta(seconds=1))
    assert engine.fire(early.id, "submit", "drc:hebei").state == "submitted"
    clock.set(DEADLINE)
    refused(
        engine,
        Refused,
        "deadline of batch 2023-first .* has passed",
        engine.fire,
        late.id,
        "submit",
        "drc:hebei",
    )
    drafted = nominate(engine, "邯郸市")
    refused(
        engine, Refused, "has passed", engine.fire, drafted.id, "submit_for_approval", "drc:hebei"
    )


def test_the_quota_counts_submitted_and_confirmed(engine: Engine) -> None:
    first = submitted(engine, "唐山市")
    submitted(engine, "张家口市")
    engine.fire(first.id, "confirm", "ndrc")
    submitted(engine, "邯郸市")
    fourth = approved(engine, "沧州市")
    refused(
        engine,
        Refused,
        "Hebei has used 3 of 3 places in batch 2023-first",
        engine.fire,
        fourth.id,
        "submit",
        "drc:hebei",
    )
    board = {p.province: p for p in engine.board().provinces}
    assert (board["hebei"].quota, board["hebei"].used, board["hebei"].left) == (3, 3, 0)
    assert board["hebei"].states["confirmed"] == 1 and board["hebei"].states["approved"] == 1
    assert board["shanxi"].used == 0 and len(board) == 15


def test_a_withdrawal_frees_a_place(engine: Engine) -> None:
    places = [submitted(engine, name) for name in ("唐山市", "张家口市", "邯郸市")]
    waiting = approved(engine, "沧州市")
    engine.fire(places[0].id, "withdraw", "drc:hebei")
    assert engine.fire(waiting.id, "submit", "drc:hebei").state == "submitted"


def test_eligibility_and_uniqueness(engine: Engine) -> None:
    nominate(engine)
    refused(
        engine,
        Refused,
        "county-level city is not eligible",
        nominate,
        engine,
        "迁安市",
        level="county",
    )
    refused(
        engine,
        Refused,
        "municipal-level park is not eligible",
        nominate,
        engine,
        "某园区",
        kind="park",
        level="municipal",
    )
    refused(engine, Refused, "already has a city of that name", nominate, engine, "唐山市")
    # the same name is fine as a park, or in another province
    nominate(engine, "唐山市", kind="park", level="national")
    nominate(engine, "唐山市", province="shanxi")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("name", "", "the name is empty"),
        ("name", "   ", "the name is empty"),
        ("name", "x" * 201, "at most 200"),
        ("name", "唐山\x07市", "control character U\\+0007"),
        ("name", " 唐山市", "starts or ends with spaces"),
        ("province", "atlantis", "unknown province 'atlantis'"),
        ("kind", "village", "unknown kind 'village'"),
        ("level", "galactic", "unknown level 'galactic'"),
    ],
)
def test_invalid_input_is_refused(engine: Engine, field: str, value: str, match: str) -> None:
    arguments = {
        "province": "hebei",
        "kind": "city",
        "name": "唐山市",
        "level": "prefecture",
        field: value,
    }
    refused(engine, InvalidInput, match, engine.nominate, "drc:hebei", **arguments)


def test_a_name_of_200_characters_round_trips(engine: Engine) -> None:
    name = "碳" * 200
    assert engine.get(nominate(engine, name).id).name == name


def test_reasons_are_required_where_declared(engine: Engine) -> None:
    n = submitted(engine, "唐山市")
    for event in ("send_back", "reject", "defer"):
        refused(engine, Refused, "a reason is required", engine.fire, n.id, event, "ndrc")
        refused(
            engine,
            Refused,
            "a reason is required",
            engine.fire,
            n.id,
            event,
            "ndrc",
            reason="  \n ",
        )
    refused(
        engine,
        InvalidInput,
        "control character",
        engine.fire,
        n.id,
        "reject",
        "ndrc",
        reason="bad\x1b[31m",
    )


@pytest.mark.parametrize("bad_id", ["0123456789abcdef", "nope", "", "x" * 10_000, "a\x00b"])
def test_unknown_ids_are_not_found(engine: Engine, bad_id: str) -> None:
    for call in (
        lambda: engine.get(bad_id),
        lambda: engine.history(bad_id),
        lambda: engine.fire(bad_id, "approve", "gov:hebei"),
        lambda: engine.show(bad_id),
    ):
        with pytest.raises(NotFound, match="no nomination"):
            call()


def test_unknown_batch_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="no batch 'later'"):
        engine.board("later")
    with pytest.raises(NotFound, match="no batch 'later'"):
        engine.list(batch="later")
    with pytest.raises(NotFound, match="no batch 'later'"):
        engine.nominate(
            "drc:hebei",
            province="hebei",
            kind="city",
            name="唐山市",
            level="prefecture",
            batch="later",
        )


# -- queries ------------------------------------------------------------------------


def test_list_filters_and_show(engine: Engine) -> None:
    a = submitted(engine, "唐山市")
    b = nominate(engine, "太原市", province="shanxi")
    assert [n.id for n in engine.list()] == [a.id, b.id]
    assert [n.id for n in engine.list(state="submitted")] == [a.id]
    assert [n.id for n in engine.list(province="140000")] == [b.id]
    assert [n.id for n in engine.list(batch="2023-first", province="hebei")] == [a.id]
    with pytest.raises(InvalidInput, match="unknown state"):
        engine.list(state="lost")
    detail = engine.show(a.id, "ndrc")
    assert detail.nomination == engine.get(a.id)
    assert set(detail.allowed_events) == {"confirm", "reject", "defer", "send_back"}
    assert engine.show(a.id, "drc:hebei").allowed_events == ("withdraw",)
    assert engine.show(a.id, "gov:hebei").allowed_events == ()
    assert set(engine.show(a.id).allowed_events) == {
        "confirm",
        "reject",
        "defer",
        "send_back",
        "withdraw",
    }
    assert [h.seq for h in detail.history] == [1, 2, 3, 4]


# -- idempotency and compare-and-set ----------------------------------------------------


def test_an_idempotency_key_makes_a_retry_harmless(engine: Engine) -> None:
    n = nominate(engine)
    first = engine.fire(n.id, "submit_for_approval", "drc:hebei", idempotency_key="req-1")
    before = rows(engine)
    again = engine.fire(n.id, "submit_for_approval", "drc:hebei", idempotency_key="req-1")
    assert again == first
    assert rows(engine) == before
    with pytest.raises(Refused, match="idempotency key 'req-1' was used for"):
        engine.fire(n.id, "approve", "gov:hebei", idempotency_key="req-1")
    # the first result is returned even after the nomination moved on
    engine.fire(n.id, "approve", "gov:hebei")
    assert (
        engine.fire(n.id, "submit_for_approval", "drc:hebei", idempotency_key="req-1").state
        == "provincial_approval"
    )


def test_expected_version_is_a_compare_and_set(engine: Engine) -> None:
    n = nominate(engine)
    moved = engine.fire(n.id, "submit_for_approval", "drc:hebei", expected_version=1)
    refused(
        engine,
        Conflict,
        "at version 2, not 1",
        engine.fire,
        n.id,
        "approve",
        "gov:hebei",
        expected_version=1,
    )
    assert engine.fire(n.id, "approve", "gov:hebei", expected_version=moved.version).version == 3


# -- the audit trail ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "seq", "problem"),
    [
        (
            "UPDATE audit_records SET reason = 'forged' WHERE nomination_id = :id AND seq = 2",
            2,
            "edited",
        ),
        (
            "UPDATE audit_records SET actor = 'ndrc' WHERE nomination_id = :id AND seq = 1",
            1,
            "edited",
        ),
        (
            "DELETE FROM audit_records WHERE nomination_id = :id AND seq = 2",
            3,
            "removed or inserted",
        ),
        (
            "DELETE FROM audit_records WHERE nomination_id = :id AND seq = 3",
            3,
            "newest record is missing",
        ),
        ("UPDATE nominations SET state = 'confirmed' WHERE id = :id", 3, "is confirmed"),
        (  # two records swapped
            "UPDATE audit_records SET seq = 100 WHERE nomination_id = :id AND seq = 2;"
            "UPDATE audit_records SET seq = 2 WHERE nomination_id = :id AND seq = 3;"
            "UPDATE audit_records SET seq = 3 WHERE nomination_id = :id AND seq = 100",
            2,
            "does not link",
        ),
        (  # a forged record inserted in the middle, the rest renumbered
            "UPDATE audit_records SET seq = 4 WHERE nomination_id = :id AND seq = 3;"
            "INSERT INTO audit_records (nomination_id, seq, event, from_state, to_state, actor,"
            " at, reason, batch_id, prev_hash, hash) SELECT nomination_id, 3, 'send_back',"
            " to_state, 'drafted', 'gov:hebei', at, 'forged', batch_id, hash, hash"
            " FROM audit_records WHERE nomination_id = :id AND seq = 2",
            3,
            "edited",
        ),
    ],
)
def test_verify_audit_names_the_first_broken_record(
    engine: Engine, tamper: str, seq: int, problem: str
) -> None:
    intact = nominate(engine, "张家口市")
    n = nominate(engine)
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    engine.fire(n.id, "approve", "gov:hebei")
    assert engine.verify_audit().ok and engine.verify_audit().records == 4
    with engine.database.engine.begin() as connection:
        for statement in tamper.split(";"):
            connection.execute(sa.text(statement), {"id": n.id})
    report = engine.verify_audit()
    assert not report.ok
    assert report.first_broken is not None
    assert (report.first_broken.nomination, report.first_broken.seq) == (n.id, seq)
    assert problem in report.first_broken.problem
    assert intact.id != n.id


# -- follow-up batches (opened directly, below the engine's `open_batch`) ----


def open_follow_up(engine: Engine, quotas: dict[str, int]) -> None:
    with engine.database.transaction(write=True) as tx:
        tx.batches.open(
            "2024-second",
            program_id="carbon_peak_2023",
            deadline_at=datetime(2024, 6, 1, tzinfo=DEADLINE.tzinfo),
            quotas=quotas,
            now=DEADLINE,
        )


def test_carry_over_moves_a_deferred_nomination_into_the_newest_open_batch(
    engine: Engine, clock: FrozenClock
) -> None:
    n = submitted(engine, "唐山市")
    engine.fire(n.id, "defer", "ndrc", reason="下一批次")
    refused(
        engine, Refused, "no follow-up batch is open", engine.fire, n.id, "carry_over", "drc:hebei"
    )
    open_follow_up(engine, {"shanxi": 1})
    refused(engine, Refused, "gives Hebei no quota", engine.fire, n.id, "carry_over", "drc:hebei")


def test_carry_over_keeps_the_history_and_refuses_a_taken_name(engine: Engine) -> None:
    n = submitted(engine, "唐山市")
    engine.fire(n.id, "defer", "ndrc", reason="下一批次")
    open_follow_up(engine, {"hebei": 2})
    taken = engine.nominate(
        "drc:hebei",
        province="hebei",
        kind="city",
        name="唐山市",
        level="prefecture",
        batch="2024-second",
    )
    refused(
        engine,
        Refused,
        "already has a city named '唐山市'",
        engine.fire,
        n.id,
        "carry_over",
        "drc:hebei",
    )
    engine.fire(taken.id, "withdraw", "drc:hebei")
    with engine.database.engine.begin() as connection:  # free the name for this test
        connection.execute(
            sa.text("UPDATE nominations SET name = 'x' WHERE id = :id"), {"id": taken.id}
        )
    moved = engine.fire(n.id, "carry_over", "drc:hebei")
    assert (moved.state, moved.batch) == ("drafted", "2024-second")
    assert [h.event for h in engine.history(n.id)][-2:] == ["defer", "carry_over"]
    assert len(engine.history(n.id)) == moved.version


# -- lifecycle and configuration --------------------------------------------------------


def test_init_is_safe_to_repeat(engine: Engine) -> None:
    nominate(engine)
    before = rows(engine)
    assert engine.init()["changed"] is False
    assert rows(engine) == before


def test_an_uninitialised_database_says_what_to_do(db_url: str, clock: FrozenClock) -> None:
    with Engine(db_url, clock=clock) as engine, pytest.raises(NotFound, match="peakpilot init"):
        engine.list()


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(InvalidInput, match="has no UTC offset"):
        FrozenClock(datetime(2023, 10, 20, 9))


def test_an_engine_passed_in_is_never_disposed(db_url: str, clock: FrozenClock) -> None:
    sa_engine = sa.create_engine(db_url)
    disposed: list[object] = []
    sa.event.listen(sa_engine, "engine_disposed", disposed.append)
    with Engine(sa_engine, clock=clock) as engine:
        engine.init()
        nominate(engine)
    assert disposed == []
    with sa_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM nominations")).scalar() == 1
    sa_engine.dispose()
