"""Programme versions (DESIGN 2c) on an SQLite file and on PostgreSQL: every text kept and
numbered, ``init`` never reverting, the change report, unsafe changes refused with
nothing written, a migration applied in one transaction with its audit records and
timers, and an engine that still holds the old version deciding by the new one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from peakpilot import Engine, FrozenClock, NotFound, NotPermitted, Refused
from peakpilot.config.program import load_program
from peakpilot.errors import ProgramChanged
from peakpilot.workflow.versions import ChangeRefused
from tests.conftest import BEFORE_DEADLINE

SHIPPED = load_program().source
TABLES = (
    "programs",
    "program_versions",
    "batches",
    "quota_allocations",
    "nominations",
    "audit_records",
    "timers",
    "notices",
)


def rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.database.engine.connect() as connection:
        return {
            table: sorted(
                map(tuple, connection.execute(sa.text(f"SELECT * FROM {table}"))), key=repr
            )
            for table in TABLES
        }


def edited(change: Any) -> str:
    """The shipped programme's text after ``change`` edited its parsed form."""
    document = yaml.safe_load(SHIPPED)
    change(document)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def without_approved(document: dict[str, Any]) -> None:
    """The provincial government's approval submits at once: no ``approved`` state."""
    del document["states"]["approved"]
    kept = []
    for row in document["transitions"]:
        row["from"] = [s for s in row["from"] if s != "approved"]
        if row.get("to") == "approved":
            row["to"] = "submitted"
        if row["from"]:
            kept.append(row)
    document["transitions"] = kept


def quota(province: str, places: int) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["first_batch"]["quotas"][province] = places

    return change


def nominations(engine: Engine, province: str, names: list[str], events: list[str]) -> list[str]:
    """Nominations of ``province`` taken through ``events`` (each by its usual actor)."""
    actor = {"approve": f"gov:{province}", "confirm": "ndrc"}
    made = []
    for name in names:
        n = engine.nominate(
            f"drc:{province}", province=province, kind="city", name=name, level="prefecture"
        )
        for event in events:
            engine.fire(n.id, event, actor.get(event, f"drc:{province}"))
        made.append(n.id)
    return made


TO_SUBMITTED = ["submit_for_approval", "approve", "submit"]
TO_APPROVED = ["submit_for_approval", "approve"]


def test_init_without_a_programme_keeps_the_stored_one(engine: Engine) -> None:
    custom = edited(quota("hebei", 5))
    assert engine.change_program(custom).outcome == "applied"
    result = engine.init()
    assert (result["version"], result["changed"]) == (2, False)
    assert engine.program_text() == custom
    assert engine.program.first_batch.quotas["hebei"] == 5
    with Engine(engine.database.engine) as other:  # another process's plain init
        other.init()
        assert other.program_version == 2
        assert other.board().provinces[0].quota == 5


def test_the_same_text_again_is_unchanged_and_writes_nothing(engine: Engine) -> None:
    before = rows(engine)
    change = engine.change_program(SHIPPED)
    assert (change.outcome, change.from_version, change.to_version) == ("unchanged", 1, 1)
    assert rows(engine) == before
    assert [v.version for v in engine.program_versions()] == [1]


def test_a_quota_below_what_is_used_is_refused_and_nothing_written(engine: Engine) -> None:
    nominations(engine, "hebei", ["唐山市", "保定市", "邯郸市"], TO_SUBMITTED)
    before = rows(engine)
    with pytest.raises(Refused, match="quota of hebei in batch 2023-first falls to 1 but 3 places"):
        engine.change_program(edited(quota("hebei", 1)))
    assert rows(engine) == before
    assert engine.board().provinces[0].quota == 3


def test_a_dry_run_reports_the_change_and_writes_nothing(engine: Engine) -> None:
    nominations(engine, "hebei", ["唐山市"], TO_APPROVED)
    before = rows(engine)
    change = engine.change_program(edited(without_approved), dry_run=True)
    assert change.outcome == "dry_run"
    assert (change.from_version, change.to_version) == (1, 2)
    found = {(d.section, d.item, d.change) for d in change.differences}
    assert ("states", "approved", "removed") in found
    assert ("transitions", "submit from approved", "removed") in found
    assert ("transitions", "approve from provincial_approval", "changed") in found
    assert change.problems == (
        "state approved is removed but holds 1 nomination: map it to a state of the new "
        "programme in a --migrate file (states: {approved: ...})",
    )
    assert change.timers is None
    assert rows(engine) == before


def test_a_removed_state_that_holds_nominations_is_refused_without_a_mapping(
    engine: Engine,
) -> None:
    nominations(engine, "hebei", ["唐山市", "保定市"], TO_APPROVED)
    nominations(engine, "jiangsu", ["苏州市", "无锡市"], TO_APPROVED)
    before = rows(engine)
    with pytest.raises(ChangeRefused, match="state approved is removed but holds 4 nominations"):
        engine.change_program(edited(without_approved))
    assert rows(engine) == before


def test_a_migration_moves_the_stranded_nominations_in_one_transaction(
    engine: Engine, tmp_path: Path
) -> None:
    approved = nominations(engine, "hebei", ["唐山市", "保定市"], TO_APPROVED)
    [drafted] = nominations(engine, "hebei", ["邯郸市"], [])
    mapping = tmp_path / "migrate.yaml"
    mapping.write_text("states:\n  approved: provincial_approval\n", encoding="utf-8")
    change = engine.change_program(edited(without_approved), migrate=mapping)
    assert (change.outcome, change.to_version) == ("applied", 2)
    assert [(m.from_state, m.to_state, m.nominations) for m in change.moves] == [
        ("approved", "provincial_approval", 2)
    ]
    for nomination_id in approved:
        moved = engine.get(nomination_id)
        assert (moved.state, moved.program_version, moved.version) == ("provincial_approval", 2, 4)
        last = engine.history(nomination_id)[-1]
        assert (last.event, last.actor, last.from_state, last.to_state) == (
            "migrate",
            "system",
            "approved",
            "provincial_approval",
        )
        assert last.data == {"from_version": 1, "to_version": 2}
    assert engine.get(drafted).program_version == 1  # not moved: still as it last moved
    assert engine.verify_audit().ok
    # the new rules apply at once: approving now submits
    after = engine.fire(approved[0], "approve", "gov:hebei")
    assert (after.state, after.program_version) == ("submitted", 2)


def test_a_mapping_must_name_states_of_both_versions(engine: Engine) -> None:
    nominations(engine, "hebei", ["唐山市"], TO_APPROVED)
    with pytest.raises(Refused) as refused:
        engine.change_program(
            edited(without_approved), migrate={"approved": "nowhere", "ghost": "drafted"}
        )
    message = str(refused.value)
    assert "maps approved to nowhere, which the new programme does not declare" in message
    assert "maps state ghost, which the programme in force does not declare" in message


def test_a_removed_province_with_nominations_is_refused(engine: Engine) -> None:
    nominations(engine, "xinjiang", ["乌鲁木齐市"], [])

    def without_xinjiang(document: dict[str, Any]) -> None:
        del document["provinces"]["xinjiang"]
        del document["first_batch"]["quotas"]["xinjiang"]

    with pytest.raises(Refused, match="province xinjiang is removed but has 1 nomination"):
        engine.change_program(edited(without_xinjiang))


def test_reminders_follow_new_offsets_none_doubled_none_sent_twice(
    engine: Engine, clock: FrozenClock
) -> None:
    clock.set(BEFORE_DEADLINE + timedelta(days=13))  # 2 Nov: the 14-day reminder is due
    engine.tick()
    sent = [n for n in engine.notices() if n.kind == "reminder"]
    assert sent

    def offsets(document: dict[str, Any]) -> None:
        document["first_batch"]["reminder_days"] = [14, 10, 3]

    change = engine.change_program(edited(offsets))
    assert change.timers is not None
    assert (change.timers.added, change.timers.cancelled) == (2, 2)  # 10, 3 in; 7, 1 out
    pending = sorted(
        (t.due_at for t in engine.timers("2023-first") if t.kind == "reminder"),
    )
    deadline = engine.program.first_batch.deadline_at
    assert pending == [deadline - timedelta(days=10), deadline - timedelta(days=3)]
    engine.tick()  # the 14-day reminder, already sent, is not sent again
    assert [n for n in engine.notices() if n.kind == "reminder"] == sent
    again = engine.change_program(edited(offsets))
    assert again.outcome == "unchanged"


def test_open_batches_take_the_new_quotas_and_closed_ones_keep_theirs(
    engine: Engine, clock: FrozenClock
) -> None:
    change = engine.change_program(edited(quota("hebei", 4)))
    assert [(q.batch, q.province, q.before, q.after) for q in change.quotas] == [
        ("2023-first", "hebei", 3, 4)
    ]
    assert engine.board("2023-first").provinces[0].quota == 4
    clock.set(BEFORE_DEADLINE + timedelta(days=40))
    engine.tick()  # the deadline: the batch closes
    change = engine.change_program(edited(quota("hebei", 6)))
    assert change.quotas == ()
    assert engine.board("2023-first").provinces[0].quota == 4


def test_versions_are_listed_shown_and_compared(engine: Engine) -> None:
    engine.change_program(edited(quota("hebei", 4)), actor="ndrc")
    versions = engine.program_versions()
    assert [(v.version, v.actor) for v in versions] == [(1, "system"), (2, "ndrc")]
    assert versions[0].sha256 == load_program().digest
    assert engine.program_text(1) == SHIPPED
    diff = engine.program_diff(1, 2)
    assert [(d.section, d.item, d.before, d.after) for d in diff.differences] == [
        ("quotas", "hebei", 3, 4)
    ]
    with pytest.raises(NotFound, match="no programme version 9"):
        engine.program_text(9)


def test_only_the_system_or_the_ndrc_loads_a_programme(engine: Engine) -> None:
    with pytest.raises(NotPermitted, match="only the system or the NDRC"):
        engine.change_program(edited(quota("hebei", 4)), actor="drc:hebei")


def test_an_engine_holding_the_old_version_decides_by_the_new_one(engine: Engine) -> None:
    [nomination] = nominations(engine, "hebei", ["唐山市"], ["submit_for_approval"])
    with Engine(engine.database.engine, clock=engine.clock) as stale:
        assert stale.program_version == 1  # loaded before the change
        engine.change_program(edited(without_approved))
        after = stale.fire(nomination, "approve", "gov:hebei")
        assert (after.state, after.program_version) == ("submitted", 2)
        assert stale.program_version == 2


def test_a_writer_with_the_old_version_is_stopped_before_it_writes(engine: Engine) -> None:
    [nomination] = nominations(engine, "hebei", ["唐山市"], ["submit_for_approval"])
    stale = Engine(engine.database.engine, clock=engine.clock)
    stale.program  # noqa: B018 - loads version 1
    engine.change_program(edited(without_approved))
    before = rows(engine)
    runtime = stale._runtime
    with pytest.raises(ProgramChanged, match="from version 1 to 2"):
        runtime.write(lambda tx: tx.nominations.get(nomination))
    assert rows(engine) == before


def pilot_timer(**settings: Any) -> Any:
    """Change settings of a construction-years family: ``plan={...}`` and the like."""

    def change(document: dict[str, Any]) -> None:
        for family, values in settings.items():
            document["pilot_timers"][family].update(values)

    return change


def due_times(engine: Engine, nomination: str | None, *kinds: str) -> list[tuple[str, Any]]:
    return sorted(
        (t.kind, t.due_at)
        for t in engine.timers()
        if t.kind in kinds and (nomination is None or t.nomination == nomination)
    )


def test_a_pilots_plan_timers_follow_new_offsets(engine: Engine, clock: FrozenClock) -> None:
    from tests.construction_helpers import confirmed

    pilot = confirmed(engine).id
    [due_before] = [t.due_at for t in engine.timers() if t.kind == "plan_due"]
    clock.set(due_before - timedelta(days=29))
    engine.tick()  # the 30-day reminder is sent
    sent = [n.id for n in engine.notices() if n.kind == "plan_reminder"]
    assert sent
    change = engine.change_program(
        edited(pilot_timer(plan={"plan_due_days": 110, "reminder_days": [30, 14]}))
    )
    due_after = due_before - timedelta(days=10)
    assert due_times(engine, pilot, "plan_due", "plan_reminder") == [
        ("plan_due", due_after),
        ("plan_reminder", due_after - timedelta(days=14)),
    ]
    assert change.timers is not None
    # the 7-day reminder cancelled, the 14-day one added, the due day moved; the 30-day
    # reminder was sent already and is not made again
    assert (change.timers.cancelled, change.timers.added) == (1, 1)
    assert change.timers.rescheduled >= 1
    clock.set(due_after - timedelta(days=14))
    engine.tick()
    clock.set(due_after)
    engine.tick()
    kinds = [n.kind for n in engine.notices() if n.nomination == pilot]
    assert kinds.count("plan_reminder") == len(sent) * 2  # 30-day (before), 14-day (after)
    assert "plan_overdue" in kinds


def test_report_rounds_follow_a_new_due_day_and_last_year(
    engine: Engine, clock: FrozenClock
) -> None:
    from tests.construction_helpers import in_construction

    in_construction(engine)
    rounds = due_times(engine, None, "report_due")
    assert rounds and rounds[-1][1].year == 2030
    change = engine.change_program(
        edited(pilot_timer(progress_report={"progress_report_due": "03-31", "last_year": 2028}))
    )
    after = due_times(engine, None, "report_due")
    assert [(due.year, due.month, due.day) for _, due in after] == [
        (year, 4, 1)
        for year in range(2024, 2029)  # the end of 31 March, for 2023..2027
    ]
    assert change.timers is not None and change.timers.cancelled >= 2
    longer = engine.change_program(
        edited(pilot_timer(progress_report={"progress_report_due": "03-31", "last_year": 2030}))
    )
    assert [d.year for _, d in due_times(engine, None, "report_due")] == list(range(2024, 2031))
    assert longer.timers is not None and longer.timers.added >= 2


def test_milestones_follow_a_new_date(engine: Engine) -> None:
    from tests.construction_helpers import confirmed

    pilot = confirmed(engine).id

    def later(document: dict[str, Any]) -> None:
        document["milestones"][0]["at"] = "2026-06-30T00:00:00+08:00"

    engine.change_program(edited(later))
    [first, _] = due_times(engine, pilot, "milestone")
    assert first[1].date().isoformat() == "2026-05-05"  # 56 days before 30 June 2026
