"""Deadline work done long after the deadline (issue 13, point 6), on an SQLite file and on
PostgreSQL: the nominations still lapse and the batch closes, but the letters about a
deadline long gone are kept as ``suppressed``, never sent; on time, they go out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from peakpilot import Engine, FrozenClock
from peakpilot.notifications.channels import FileChannel
from tests.conftest import BEFORE_DEADLINE, DEADLINE


def nominate(engine: Engine) -> str:
    return engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
    ).id


@pytest.mark.parametrize(
    ("late", "status"),
    [(timedelta(days=7), "pending"), (timedelta(days=7, seconds=1), "suppressed")],
)
def test_letters_of_late_deadline_work_are_suppressed(
    engine: Engine, clock: FrozenClock, late: timedelta, status: str, tmp_path
) -> None:
    nomination = nominate(engine)
    clock.set(DEADLINE + late)
    [*_, closing] = engine.tick().outcomes
    assert closing.kind == "deadline" and closing.suppressed is (status == "suppressed")
    assert engine.get(nomination).state == "follow_up_batch"  # the state changes happen
    assert engine.board("2023-first").status == "closed"
    letters = [n for n in engine.notices() if n.kind in ("shortfall", "deadline_summary")]
    assert letters and {n.status for n in letters} == {status}
    assert [n.id for n in engine.notices("suppressed")] == (
        [n.id for n in letters] if status == "suppressed" else []
    )
    report = engine.dispatch_notices(FileChannel(tmp_path, "peakpilot <noreply@example.cn>"))
    sent = {n.id for n in engine.notices("sent")}
    if status == "suppressed":  # never sent, and still there to read
        assert report.sent == 0 and not sent & {n.id for n in letters}
        assert {n.status for n in engine.notices("suppressed")} == {"suppressed"}
    else:
        assert {n.id for n in letters} <= sent


def test_the_threshold_is_a_setting(db_url: str) -> None:
    clock = FrozenClock(BEFORE_DEADLINE)
    with Engine(db_url, clock=clock, stale_after=timedelta(days=30)) as engine:
        engine.init()
        nominate(engine)
        clock.set(DEADLINE + timedelta(days=20))
        engine.tick()
        assert {n.status for n in engine.notices()} == {"pending"}


def deadline_warnings(result: dict[str, Any]) -> list[str]:
    """init's warnings about deadlines (it also warns of actors without an address)."""
    return [w for w in result["warnings"] if "deadline" in w]


def test_init_warns_of_an_open_batch_whose_deadline_passed(db_url: str) -> None:
    with Engine(db_url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        assert deadline_warnings(engine.init()) == []
    with Engine(db_url, clock=FrozenClock(DEADLINE + timedelta(days=900))) as engine:
        [warning] = deadline_warnings(engine.init())
        assert "the deadline of open batch 2023-first (2023-11-15T00:00:00+08:00) has passed" in (
            warning
        )
        assert "suppressed" in warning and "7 days" in warning
        engine.tick()
        assert deadline_warnings(engine.init()) == []  # closed: nothing left to warn of


def test_the_command_line_warns_and_lists_suppressed_letters(tmp_path) -> None:
    import json

    from tests.acceptance.test_cli import run

    db = f"sqlite:///{tmp_path / 'late.db'}"
    later = "2026-12-03T09:00:00+08:00"
    done = run("--json", "init", db=db, now=later)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["warnings"]  # stdout: the one document
    assert done.stderr.startswith("peakpilot: warning: the deadline of open batch 2023-first")
    assert run("tick", db=db, now=later).returncode == 0
    suppressed = json.loads(run("--json", "notices", "--status", "suppressed", db=db).stdout)
    assert {n["kind"] for n in suppressed} == {"shortfall", "deadline_summary"}
    assert {n["status"] for n in suppressed} == {"suppressed"}
