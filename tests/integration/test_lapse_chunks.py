"""A deadline's lapse in chunks (issue 6): at most ``LAPSE_CHUNK`` nominations per
transaction, each lapsed exactly once with one audit record, the timer pending until the
last chunk, and the shortfall notices listing every nomination of every chunk. A crash
between chunks, or a second engine ticking at the same time, loses and repeats nothing.
Runs on an SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from peakpilot import Conflict, Engine, FrozenClock, InvalidInput, Nomination
from peakpilot.workflow import audit
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.snapshots import TickReport
from peakpilot.workflow.store.database import StoreHooks
from peakpilot.workflow.store.lapses import LAPSE_CHUNK
from peakpilot.workflow.store.transaction import Transaction
from peakpilot.workflow.tables import AuditRecordRow, NominationRow
from tests.conftest import BEFORE_DEADLINE, DEADLINE

SEEDED = ("hebei", "shanxi", "jiangsu")
CONTACTS = """
drc:hebei:
  email: [drc@hebei.example.cn, deputy@hebei.example.cn]
gov:hebei:
  email: [office@hebei.example.cn]
  locale: en
"""


class Crash(Exception):
    """The process 'dies' here: nothing after this point is committed."""


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.yaml"
    path.write_text(CONTACTS, encoding="utf-8")
    return path


@pytest.fixture
def engine(db_url: str, clock: FrozenClock, contacts: Path) -> Iterator[Engine]:
    with Engine(db_url, clock=clock, contacts=contacts) as engine:
        engine.init()
        yield engine


def hooked(engine: Engine, contacts: Path, hooks: StoreHooks) -> Engine:
    """A second Engine on ``engine``'s database (and clock) whose store calls ``hooks``."""
    return Engine(engine.database.engine, clock=engine.clock, contacts=contacts, hooks=hooks)


def changing(statement: str, nomination_id: str) -> StoreHooks:
    """Hooks that run ``statement`` on ``nomination_id`` in each lapse chunk right after
    its locking read, as a writer the lock did not stop would."""

    def change(tx: Transaction, _ids: Sequence[str]) -> None:
        tx.statements.execute(statement, (nomination_id,))

    return StoreHooks(after_lapse_read=change)


def seed(engine: Engine, count: int) -> dict[str, tuple[str, str]]:
    """``count`` drafted nominations of the first batch, spread over ``SEEDED``, each with
    its ``nominate`` record, written directly (the engine would take minutes); returns
    id -> (province, name)."""
    seeded, nominations, records = {}, [], []
    for index in range(count):
        nomination_id, province = new_id(), SEEDED[index % len(SEEDED)]
        name = f"候选{index:05d}"
        record = {
            "nomination_id": nomination_id,
            "seq": 1,
            "event": "nominate",
            "from_state": None,
            "to_state": "drafted",
            "actor": f"drc:{province}",
            "at": BEFORE_DEADLINE,
            "reason": None,
            "batch_id": "2023-first",
            "prev_hash": audit.GENESIS,
        }
        record["hash"] = audit.record_hash(**record)  # type: ignore[arg-type]
        records.append(record)
        nominations.append(
            {
                "id": nomination_id,
                "batch_id": "2023-first",
                "province": province,
                "kind": "city",
                "name": name,
                "level": "prefecture",
                "state": "drafted",
                "version": 1,
                "audit_head": record["hash"],
                "created_at": BEFORE_DEADLINE,
                "updated_at": BEFORE_DEADLINE,
            }
        )
        seeded[nomination_id] = (province, name)
    with engine.database.engine.begin() as connection:
        connection.execute(NominationRow.__table__.insert(), nominations)  # type: ignore[attr-defined]
        connection.execute(AuditRecordRow.__table__.insert(), records)  # type: ignore[attr-defined]
    return seeded


def walked(engine: Engine, name: str, events: list[tuple[str, str]]) -> Nomination:
    n = engine.nominate("drc:hebei", province="hebei", kind="city", name=name, level="prefecture")
    for event, actor in events:
        n = engine.fire(n.id, event, actor)
    return n


def lapse_records(engine: Engine) -> list[tuple[str, datetime]]:
    """(nomination, at) of every lapse record."""
    records = AuditRecordRow.__table__  # type: ignore[attr-defined]
    query = sa.select(records.c.nomination_id, records.c.at).where(records.c.event == "lapse")
    with engine.database.engine.connect() as connection:
        return [(nomination_id, at) for nomination_id, at in connection.execute(query)]


def deadline_status(engine: Engine) -> str:
    with engine.database.engine.connect() as connection:
        return str(
            connection.execute(
                sa.text("SELECT status FROM timers WHERE unique_key = '2023-first/deadline'")
            ).scalar_one()
        )


def listed(text: str) -> list[str]:
    """The names listed in a shortfall notice, zh-CN or en, in order."""
    return re.findall(r"^(?:  |\u3000\u3000)\d+\. (\S+?)(?:（| \()", text, re.MULTILINE)


def listed_html(html: str) -> list[str]:
    return re.findall(r"<li [^>]*>(\S+?)(?:（| \()", html)


def deadline_outcomes(*reports: TickReport) -> list[int]:
    return [o.lapsed for report in reports for o in report.outcomes if o.kind == "deadline"]


def check_lapsed_once_and_listed(
    engine: Engine, seeded: dict[str, tuple[str, str]], extra: list[Nomination]
) -> None:
    """Every seeded and every ``extra`` nomination lapsed exactly once, the trail verifies,
    and each shortfall notice lists all of its province's, once each."""
    assert Counter(nid for nid, _ in lapse_records(engine)) == Counter(
        [*seeded, *(n.id for n in extra)]
    )
    states = Counter(n.state for n in engine.list(batch="2023-first") if n.id in seeded)
    assert states == {"follow_up_batch": len(seeded)}
    report = engine.verify_audit()
    assert report.ok, report
    expected = {p: [name for province, name in seeded.values() if province == p] for p in SEEDED}
    expected["hebei"] += [n.name for n in extra]
    shortfall = [n for n in engine.notices() if n.kind == "shortfall"]
    # one letter to each actor (its addresses are looked up when it is dispatched)
    assert Counter((n.actor, n.recipient) for n in shortfall if n.actor.endswith(":hebei")) == {
        ("drc:hebei", "drc:hebei"): 1,
        ("gov:hebei", "gov:hebei"): 1,
    }
    for notice in shortfall:
        province = notice.actor.split(":")[1]
        if province not in expected:
            continue
        detail = engine.notice(notice.id)
        assert sorted(listed(detail.text)) == sorted(expected[province]), notice
        assert sorted(listed_html(detail.html)) == sorted(expected[province]), notice
    assert deadline_status(engine) == "done"
    assert engine.board("2023-first").status == "closed"


# -- chunks ------------------------------------------------------------------------------


def test_twelve_thousand_lapse_in_chunks_of_five_thousand_each_once(
    engine: Engine, contacts: Path
) -> None:
    kept = walked(
        engine,
        "唐山市",
        [("submit_for_approval", "drc:hebei"), ("approve", "gov:hebei"), ("submit", "drc:hebei")],
    )
    approved = walked(
        engine, "保定市", [("submit_for_approval", "drc:hebei"), ("approve", "gov:hebei")]
    )
    seeded = seed(engine, 12_000)
    assert LAPSE_CHUNK == 5_000

    statements: list[int] = []

    def count_updates(text: str, rowcount: int) -> None:
        if text.startswith("UPDATE nominations"):
            statements.append(rowcount)

    with hooked(engine, contacts, StoreHooks(statement=count_updates)) as watched:
        report = watched.tick(DEADLINE)

    assert deadline_outcomes(report) == [12_001]  # the total, from all three chunks
    assert statements == [5_000, 5_000, 2_001]  # one set-based UPDATE per chunk
    check_lapsed_once_and_listed(engine, seeded, [approved])
    assert engine.get(kept.id).state == "submitted"
    assert {at for _, at in lapse_records(engine)} == {DEADLINE}
    # one letter to both (drc:hebei reads Chinese, gov:hebei English)
    hebei = {
        n.actor: engine.notice(n.id)
        for n in engine.notices()
        if n.kind == "shortfall" and n.actor.endswith(":hebei")
    }
    assert "河北省发展改革委、河北省人民政府：" in hebei["drc:hebei"].text
    assert "To: Development and Reform Commission of Hebei, People's Government of Hebei" in (
        hebei["gov:hebei"].text
    )
    assert "下列 4001 项申报" in hebei["drc:hebei"].text
    assert engine.tick(DEADLINE).outcomes == ()


def test_a_chunk_size_is_one_to_five_thousand(engine: Engine) -> None:
    for chunk in (0, -1, LAPSE_CHUNK + 1):
        with pytest.raises(InvalidInput, match="lapse chunk"):
            engine.tick(DEADLINE, lapse_chunk=chunk)
    assert deadline_status(engine) == "pending"


def test_an_exact_multiple_of_the_chunk_finishes_in_one_more_transaction(
    engine: Engine,
) -> None:
    seeded = seed(engine, 1_000)
    report = engine.tick(DEADLINE, lapse_chunk=500)
    assert deadline_outcomes(report) == [1_000]
    check_lapsed_once_and_listed(engine, seeded, [])


def test_a_chunk_moves_nothing_unless_every_nomination_is_as_it_was_read(
    engine: Engine, contacts: Path
) -> None:
    """The chunk's UPDATE is a compare-and-set on each nomination's version: one changed
    after the locking read (by a writer the lock did not stop) makes the whole chunk a
    Conflict, and nothing of it is kept."""
    seeded = seed(engine, 30)
    changed = next(iter(seeded))
    hooks = changing("UPDATE nominations SET version = version + 1 WHERE id = ?", changed)
    before = lapse_records(engine)
    with (
        hooked(engine, contacts, hooks) as interfered,
        pytest.raises(Conflict, match="1 of 30 nominations of batch 2023-first changed"),
    ):
        interfered.tick(DEADLINE)
    assert lapse_records(engine) == before == []
    assert deadline_status(engine) == "pending"


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE nominations SET state = 'provincial_approval' WHERE id = ?",
        "UPDATE nominations SET version = version + 1 WHERE id = ?",
    ],
    ids=["state", "version"],
)
def test_a_chunk_split_over_several_statements_is_still_one_compare_and_set(
    engine: Engine, contacts: Path, change: str
) -> None:
    """SQLite binds a chunk's rows as VALUES lists of at most its parameter limit each
    (here lowered to 2 rows a statement; PostgreSQL binds arrays and needs no split).
    A nomination changed after the locking read, in state or in version, found by a later
    statement of the chunk than the first, still makes the whole chunk a Conflict: no
    record and no move of any statement is kept."""
    seeded = seed(engine, 30)
    changed = sorted(seeded)[-1]
    hooks = changing(change, changed)
    hooks = StoreHooks(after_lapse_read=hooks.after_lapse_read, most_params=8)  # 2 rows each
    with (
        hooked(engine, contacts, hooks) as interfered,
        pytest.raises(Conflict, match="1 of 30 nominations of batch 2023-first changed"),
    ):
        interfered.tick(DEADLINE)
    assert lapse_records(engine) == []
    assert {n.state for n in engine.list(batch="2023-first")} == {"drafted"}
    assert deadline_status(engine) == "pending"

    with hooked(engine, contacts, StoreHooks(most_params=8)) as split:  # nobody interferes
        report = split.tick(DEADLINE, lapse_chunk=7)
    assert deadline_outcomes(report) == [30]
    check_lapsed_once_and_listed(engine, seeded, [])


def test_the_closing_transaction_lists_what_the_chunks_remembered_as_read_back(
    engine: Engine,
) -> None:
    """A tick that lapsed every chunk itself lists them from memory rather than reading
    100,000 back: the same nominations in the same order as the audit records say, so
    the same notice text."""
    seeded = seed(engine, 1_200)
    approved = walked(
        engine, "保定市", [("submit_for_approval", "drc:hebei"), ("approve", "gov:hebei")]
    )
    report = engine.tick(DEADLINE, lapse_chunk=500)
    assert deadline_outcomes(report) == [1_201]
    with engine.database.transaction(write=False) as tx:
        read_back = tx.lapses.read_back("2023-first", "lapse")
    for province in SEEDED:
        notice = next(
            n for n in engine.notices() if n.kind == "shortfall" and n.actor == f"drc:{province}"
        )
        names = [name for _id, where, _kind, name, _state in read_back if where == province]
        assert listed(engine.notice(notice.id).text) == names
    check_lapsed_once_and_listed(engine, seeded, [approved])


# -- a crash between chunks ----------------------------------------------------------------


@pytest.mark.parametrize("crash_at_commit", [1, 3])
def test_a_crash_between_chunks_is_finished_by_the_next_tick_exactly_once(
    engine: Engine, db_url: str, contacts: Path, crash_at_commit: int
) -> None:
    """The process dies in chunk ``crash_at_commit``, before its commit; the chunks
    before it stay committed, the timer stays pending, nothing is sent; a later tick by a
    new engine (with no memory of the first one's chunks: it reads them back) lapses the
    rest, each once, and sends one set of notices listing all of them."""
    approved = walked(
        engine, "保定市", [("submit_for_approval", "drc:hebei"), ("approve", "gov:hebei")]
    )
    seeded = seed(engine, 3_500)
    engine.tick(DEADLINE - timedelta(hours=1))  # the three reminders, out of the way
    chunks = 0

    def crash(text: str, _rowcount: int) -> None:
        nonlocal chunks
        if text.startswith("UPDATE nominations SET state"):  # a chunk's last statement
            chunks += 1
            if chunks == crash_at_commit:
                raise Crash

    with (
        hooked(engine, contacts, StoreHooks(statement=crash)) as dying,
        pytest.raises(Crash),
    ):
        dying.tick(DEADLINE, lapse_chunk=1_000)

    done = lapse_records(engine)
    assert len(done) == 1_000 * (crash_at_commit - 1)
    assert deadline_status(engine) == "pending"
    assert engine.board("2023-first").status == "open"
    assert [n for n in engine.notices() if n.kind in ("shortfall", "deadline_summary")] == []
    assert engine.verify_audit().ok

    later = DEADLINE + timedelta(hours=1)
    with Engine(db_url, contacts=contacts) as restarted:
        report = restarted.tick(later, lapse_chunk=1_000)
        assert deadline_outcomes(report) == [3_501]  # the deadline's total, both ticks'
        check_lapsed_once_and_listed(restarted, seeded, [approved])
        ats = Counter(at for _, at in lapse_records(restarted))
        assert ats == Counter({DEADLINE: len(done), later: 3_501 - len(done)})  # when done
        assert len([n for n in restarted.notices() if n.kind == "deadline_summary"]) == 1
        assert restarted.tick(later).outcomes == ()


# -- two engines at once ---------------------------------------------------------------------


def test_a_second_engine_ticking_between_two_chunks_finishes_the_lapse_once(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """While the first engine is between its second and third chunk (committed, not yet
    started again), a second engine ticks: it takes the pending timer, lapses the rest and
    closes the batch, reporting the whole lapse; the first then finds nothing due."""
    seeded = seed(engine, 3_000)
    engine.tick(DEADLINE - timedelta(hours=1))  # the three reminders, out of the way
    second: list[TickReport] = []
    checkouts = 0

    def between_chunks(dbapi_connection, record, proxy):  # type: ignore[no-untyped-def]
        nonlocal checkouts
        checkouts += 1
        if checkouts == 3:  # chunks 1 and 2 are committed; the first engine holds no lock
            with Engine(db_url, contacts=tmp_path / "contacts.yaml") as other:
                thread = threading.Thread(
                    target=lambda: second.append(other.tick(DEADLINE, lapse_chunk=1_000))
                )
                thread.start()
                thread.join(timeout=120)

    # a checkout from the pool starts each of the first engine's transactions
    sa.event.listen(engine.database.engine, "checkout", between_chunks)
    try:
        first = engine.tick(DEADLINE, lapse_chunk=1_000)
    finally:
        sa.event.remove(engine.database.engine, "checkout", between_chunks)

    assert checkouts >= 3
    assert deadline_outcomes(first) == []
    assert deadline_outcomes(*second) == [3_000]
    check_lapsed_once_and_listed(engine, seeded, [])


def test_two_engines_ticking_at_once_lapse_each_nomination_once(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Two processes' engines tick the same deadline at once, in chunks of 100: on
    PostgreSQL each chunk holds the timer's row lock, so the other skips it or carries on
    between chunks; on SQLite the write lock serialises them. Either way one of them closes
    the batch and reports the whole lapse."""
    seeded = seed(engine, 3_000)
    reports: list[TickReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            with Engine(db_url, contacts=tmp_path / "contacts.yaml") as other:
                assert other.next_due_at() == DEADLINE - timedelta(days=14)  # loaded: ready
                start.wait()
                reports.append(other.tick(DEADLINE, lapse_chunk=100))
                reports.append(other.tick(DEADLINE, lapse_chunk=100))  # whatever is left
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert errors == []
    assert deadline_outcomes(*reports) == [3_000]
    check_lapsed_once_and_listed(engine, seeded, [])
