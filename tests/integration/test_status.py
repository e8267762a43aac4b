"""``status`` (issue 13, point 1) on an SQLite file and on PostgreSQL: healthy when
nothing is late or lost; each problem named; the daemons' registry and heartbeats."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from peakpilot import Engine, FrozenClock
from peakpilot.errors import DeliveryError
from peakpilot.notifications.channels import Envelope
from peakpilot.workflow.store.daemons import DaemonRecord
from tests.conftest import BEFORE_DEADLINE, DEADLINE


class Refusing:
    def send(self, envelope: Envelope) -> None:
        raise DeliveryError("550 no such mailbox", permanent=True)


def test_a_new_database_is_healthy(engine: Engine) -> None:
    status = engine.status()
    assert (status.healthy, status.problems, status.program_version) == (True, (), 1)
    assert status.timers.pending == 4 and status.timers.overdue == 0
    assert status.daemons == ()


def test_an_overdue_timer_is_a_problem_after_three_sweeps(
    engine: Engine, clock: FrozenClock
) -> None:
    first_reminder = DEADLINE - timedelta(days=14)
    clock.set(first_reminder + timedelta(seconds=15))
    assert engine.status(sweep_seconds=5).healthy  # just due: a daemon has 3 sweeps
    clock.set(first_reminder + timedelta(seconds=16))
    status = engine.status(sweep_seconds=5)
    assert not status.healthy and status.timers.overdue == 1
    assert status.problems[0].startswith("1 timer is overdue, the oldest due 2023-11-01T00:00")
    engine.tick()
    assert engine.status(sweep_seconds=5).timers.overdue == 0


def test_dead_and_long_pending_notices_are_problems(engine: Engine, clock: FrozenClock) -> None:
    n = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
    )
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    assert engine.status().notices.pending == 1
    clock.set(BEFORE_DEADLINE + timedelta(hours=1, seconds=1))
    [problem] = engine.status().problems
    assert problem.startswith("a notice has waited since")
    engine.dispatch_notices(Refusing())
    status = engine.status()
    assert status.notices.dead == 1 and status.notices.pending == 0
    assert [p for p in status.problems if "1 notice is dead" in p]


def test_daemons_register_beat_and_leave(engine: Engine, clock: FrozenClock) -> None:
    now = clock.now()
    first = DaemonRecord("d1", "host-a", 101, now, now, 5.0)
    second = DaemonRecord("d2", "host-b", 202, now, now, 5.0)
    engine.heartbeat(first)
    engine.heartbeat(second)
    assert [(d.host, d.pid) for d in engine.status().daemons] == [("host-a", 101), ("host-b", 202)]
    clock.set(now + timedelta(seconds=16))
    engine.heartbeat(second)  # second still beats; first has been silent for 16 s
    status = engine.status(sweep_seconds=5)
    assert not status.healthy
    assert [p for p in status.problems if p.startswith("daemon host-a:101 has been silent")]
    assert status.daemons[1].last_seen == clock.now()
    engine.heartbeat(first, stopped=True)  # a clean stop leaves the registry
    assert [d.pid for d in engine.status(sweep_seconds=5).daemons] == [202]
    assert engine.status(sweep_seconds=5).healthy


def test_a_schema_behind_this_peakpilot_is_a_problem(engine: Engine) -> None:
    with engine.database.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0008'"))
    [problem] = engine.status().problems
    assert "the schema is at revision 0008" in problem and "peakpilot init" in problem


def test_a_daemon_started_on_the_host_of_a_dead_one_replaces_its_entry(
    engine: Engine, clock: FrozenClock
) -> None:
    now = clock.now()
    engine.heartbeat(DaemonRecord("dead", "host-a", 101, now, now, 5.0))
    engine.heartbeat(DaemonRecord("elsewhere", "host-b", 303, now, now, 5.0))
    clock.set(now + timedelta(minutes=5))
    engine.heartbeat(
        DaemonRecord("restarted", "host-a", 102, clock.now(), clock.now(), 5.0), starting=True
    )
    status = engine.status(sweep_seconds=5)
    assert [(d.host, d.pid) for d in status.daemons] == [("host-b", 303), ("host-a", 102)]
    assert [p for p in status.problems if "host-b:303" in p]  # another host: still reported
