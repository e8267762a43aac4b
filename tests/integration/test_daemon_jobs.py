"""The daemon's logic on simulated time (DESIGN.md section 3; the daemon as a process is
``tests/acceptance/test_daemon.py``).

Each test gives the daemon the Engine's frozen clock and a :class:`SimulatedWaker` in
place of APScheduler: the test moves time on, and the waker calls every job that falls
due, in time order, with the clock set to the job's time. Nothing waits on the wall
clock, so what these tests check (the wake-up re-armed at the next due time, the catch-up
after downtime, dispatch, a stop honoured, the backoff while the database is unreachable)
does not depend on the machine's load. They run on an SQLite file only: the jobs call the
Engine, whose stores have their own contract suite on both databases, and two daemons
sharing PostgreSQL are an acceptance test.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from peakpilot import Engine, FrozenClock, Nomination, NotFound, Unavailable
from peakpilot.notifications.channels import Envelope
from peakpilot.workflow.daemon import (
    DISPATCH,
    DISPATCH_BATCH,
    SWEEP,
    WAKE,
    Daemon,
    Wakeable,
)
from peakpilot.workflow.daemon_log import PlainFormatter
from tests.conftest import DEADLINE
from tests.design import PROVINCES

MINUTE = timedelta(minutes=1)


# -- the simulation ----------------------------------------------------------------------


@dataclasses.dataclass
class Scheduled:
    run: Callable[[], None]
    at: datetime
    every: timedelta | None  # None: a one-off job


class SimulatedWaker:
    """The daemon's jobs on simulated time, one at a time, as APScheduler runs them on
    the wall clock: a one-off job is dropped when it runs (a job may re-arm it), missed
    runs of an interval job coalesce into one. ``pause`` moves the clock on instead of
    waiting, then calls ``on_pause`` (a test's chance to change the world meanwhile)."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.jobs: dict[str, Scheduled] = {}
        self.ran: list[tuple[str, datetime]] = []
        self.pauses: list[float] = []
        self.on_pause: Callable[[], None] = lambda: None
        self.started = threading.Event()
        self.shut_down = False

    def every(self, name: str, job: Callable[[], None], seconds: float, first_at: datetime) -> None:
        self.jobs[name] = Scheduled(job, first_at, timedelta(seconds=seconds))

    def once(self, name: str, job: Callable[[], None], at: datetime) -> None:
        self.jobs[name] = Scheduled(job, at, None)

    def cancel(self, name: str) -> None:
        self.jobs.pop(name, None)

    def job_count(self) -> int:
        return len(self.jobs)

    def start(self) -> None:
        self.started.set()

    def shutdown(self) -> None:
        self.shut_down = True

    def pause(self, stop: threading.Event, seconds: float) -> bool:
        self.pauses.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        self.on_pause()
        return stop.is_set()

    def wake_at(self) -> datetime | None:
        job = self.jobs.get(WAKE)
        return None if job is None else job.at

    def run_until(self, until: datetime) -> None:
        """Run every job due by ``until`` (earliest first); leave the clock at ``until``."""
        while self.jobs:
            name, job = min(self.jobs.items(), key=lambda item: item[1].at)
            if job.at > until:
                break
            self.clock.set(max(job.at, self.clock.now()))
            if job.every is None:
                del self.jobs[name]
            else:
                while job.at <= self.clock.now():
                    job.at += job.every
            self.ran.append((name, self.clock.now()))
            job.run()
        self.clock.set(max(until, self.clock.now()))


class Recorder:
    """A channel that keeps what it is given; ``on_send`` runs before each is kept."""

    def __init__(self, on_send: Callable[[Envelope], None] = lambda _: None) -> None:
        self.sent: list[Envelope] = []
        self.on_send = on_send

    def send(self, envelope: Envelope) -> None:
        self.on_send(envelope)
        self.sent.append(envelope)


class Log(logging.Handler):
    """The daemon's log records, as (message, fields)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.warnings: list[str] = []  # kept apart: what the work logs is in lines

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.warnings.append(record.getMessage())
            return
        self.lines.append((record.getMessage(), dict(getattr(record, "fields", {}))))

    def messages(self) -> list[str]:
        return [message for message, _ in self.lines]

    def fields(self, message: str) -> list[dict[str, Any]]:
        return [fields for m, fields in self.lines if m == message]


@pytest.fixture
def log() -> Iterator[Log]:
    logger = logging.getLogger("peakpilot.daemon")
    handler, level = Log(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def engine(sqlite_url: str, clock: FrozenClock) -> Iterator[Engine]:
    """An Engine on an initialised SQLite file, on the frozen clock."""
    with Engine(sqlite_url, clock=clock) as engine:
        engine.init()
        yield engine


def simulated(
    engine: Wakeable,
    clock: FrozenClock,
    channel: Recorder | None = None,
    sweep_seconds: float = 5.0,
) -> tuple[Daemon, SimulatedWaker]:
    waker = SimulatedWaker(clock)
    daemon = Daemon(
        engine,
        channel or Recorder(),
        sweep_seconds=sweep_seconds,
        max_attempts=3,
        clock=clock,
        waker=waker,
    )
    return daemon, waker


class Watched:
    """The engine as the daemon sees it, counting the daemon's calls; its first
    ``failing_ticks`` ticks find the database gone."""

    def __init__(self, engine: Engine, failing_ticks: int = 0) -> None:
        self.engine, self.failing_ticks = engine, failing_ticks
        self.database = engine.database
        self.calls: Counter[str] = Counter()

    def check_templates(self) -> None:
        self.engine.check_templates()

    def tick(
        self,
        now: datetime | None = None,
        *,
        stop: threading.Event | None = None,
        progress: Callable[[], None] | None = None,
    ) -> Any:
        self.calls["tick"] += 1
        if self.failing_ticks:
            self.failing_ticks -= 1
            raise Unavailable("cannot reach database sqlite:///x.db: connection lost")
        return self.engine.tick(now, stop=stop, progress=progress)

    def next_due_at(self) -> datetime | None:
        self.calls["next_due_at"] += 1
        return self.engine.next_due_at()

    def address_warnings(self) -> list[str]:
        return self.engine.address_warnings()

    def heartbeat(self, daemon: Any, *, starting: bool = False, stopped: bool = False) -> None:
        self.calls["heartbeat"] += 1
        self.engine.heartbeat(daemon, starting=starting, stopped=stopped)

    def dispatch_notices(self, channel: Any, **options: Any) -> Any:
        self.calls["dispatch_notices"] += 1
        return self.engine.dispatch_notices(channel, **options)


def draft(engine: Engine, name: str = "唐山市", province: str = "hebei") -> Nomination:
    """A nomination left drafted: the 2023 deadline lapses it."""
    return engine.nominate(
        f"drc:{province}", province=province, kind="city", name=name, level="prefecture"
    )


def open_batches(engine: Engine, count: int) -> int:
    """Follow-up batches with a place for every province; the notices that queues."""
    before = len(engine.notices("pending"))
    for i in range(count):
        engine.open_batch(
            "ndrc",
            f"2024-later{i}",
            deadline=DEADLINE + timedelta(days=200),
            quotas=dict.fromkeys(PROVINCES, 1),
        )
    return len(engine.notices("pending")) - before


# -- the jobs ------------------------------------------------------------------------------


def test_the_first_sweep_runs_at_once_and_arms_the_wake_up_at_the_earliest_due_time(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    daemon, waker = simulated(engine, clock)
    started = clock.now()
    assert daemon.start()
    assert waker.started.is_set()
    assert {name: job.at for name, job in waker.jobs.items()} == {
        SWEEP: started,
        DISPATCH: started + timedelta(milliseconds=200),
    }

    waker.run_until(started)
    assert waker.ran == [(SWEEP, started)]
    first = engine.timers()[0]
    assert (first.kind, first.due_at) == ("reminder", DEADLINE - timedelta(days=14))
    assert waker.wake_at() == first.due_at == engine.next_due_at()
    assert log.messages() == ["daemon started", "caught up"]
    assert log.fields("daemon started")[0]["sweep_seconds"] == 5.0
    assert log.fields("caught up") == [{"jobs": 3, "next_due": first.due_at}]


def test_the_wake_up_does_each_timer_at_its_due_time_between_sweeps(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    """Sweeps a week apart: every timer is still done at its due time, by the wake-up,
    which is re-armed at the next one each time (and dropped when none is left)."""
    lapsing = draft(engine)
    due = [t.due_at for t in engine.timers()]
    daemon, waker = simulated(engine, clock, sweep_seconds=7 * 24 * 3600)
    assert daemon.start()

    waker.run_until(DEADLINE + MINUTE)
    assert [at for name, at in waker.ran if name == WAKE] == due
    assert waker.wake_at() is None  # nothing left pending
    timers = [fields["timer"] for _, fields in log.lines if "timer" in fields]
    assert timers == ["reminder", "reminder", "reminder", "deadline"]
    record = engine.history(lapsing.id)[-1]
    assert (record.event, record.actor, record.at) == ("lapse", "system", DEADLINE)
    assert [f["lapsed"] for f in log.fields("closed the batch")] == [1]


def test_a_daemon_started_after_downtime_catches_up_once_before_it_dispatches(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    lapsing = draft(engine)
    first, first_waker = simulated(engine, clock)
    assert first.start()
    first_waker.run_until(clock.now() + MINUTE)
    # the first daemon dies here (nothing of it runs again), and time passes
    clock.set(DEADLINE + timedelta(hours=3))
    assert engine.get(lapsing.id).state == "drafted"

    second, waker = simulated(engine, clock)
    restarted = clock.now()
    assert second.start()
    waker.run_until(restarted + MINUTE)

    assert waker.ran[:2] == [(SWEEP, restarted), (DISPATCH, restarted + timedelta(seconds=0.2))]
    record = engine.history(lapsing.id)[-1]
    assert (record.event, record.at) == ("lapse", restarted)  # when done, not when due
    assert [f["lapsed"] for f in log.fields("closed the batch")] == [1]  # and never again
    assert [h.event for h in engine.history(lapsing.id)].count("lapse") == 1
    skipped = [m for m in log.messages() if m.startswith("skipped")]
    assert skipped == ["skipped: the deadline has passed"] * 3  # the three reminders
    assert engine.timers() == []
    assert {n.status for n in engine.notices()} == {"sent"}


def test_dispatch_sends_in_small_batches_and_does_a_timer_that_fell_due_in_between_first(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    """A backlog and a slow channel (2 s a message): the reminder that falls due while the
    first batch is being sent is done before the next batch, not after the backlog."""
    backlog = open_batches(engine, 2)
    assert backlog > DISPATCH_BATCH
    reminder = DEADLINE - timedelta(days=14)
    clock.set(reminder - timedelta(seconds=1))
    channel = Recorder(lambda _: clock.advance(timedelta(seconds=2)))
    daemon, waker = simulated(engine, clock, channel)
    assert daemon.start()

    waker.run_until(clock.now() + timedelta(milliseconds=200))  # the sweep, then a dispatch
    assert [name for name, _ in waker.ran] == [SWEEP, DISPATCH]
    reminded = "reminded the provinces with places left"
    order = [m for m in log.messages() if m in ("notices dispatched", reminded)]
    assert order[:3] == ["notices dispatched", reminded, "notices dispatched"]
    assert log.fields("notices dispatched")[0]["sent"] == DISPATCH_BATCH
    reminders = [n for n in engine.notices() if n.kind == "reminder"]
    assert reminders and all(n.status == "sent" for n in reminders)
    assert {n.status for n in engine.notices()} == {"sent"}
    assert len(channel.sent) == len(engine.notices())


def test_stop_lets_the_job_in_hand_finish_and_no_job_does_anything_after_it(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    backlog = open_batches(engine, 2)
    watched, channel = Watched(engine), Recorder()
    daemon, waker = simulated(watched, clock, channel)
    at_stop: Counter[str] = Counter()

    def stop(_: Envelope) -> None:  # a signal while the first message is being sent
        if not daemon.stopping.is_set():
            daemon.stop()
            at_stop.update(watched.calls)

    channel.on_send = stop
    assert daemon.start()
    waker.run_until(clock.now() + timedelta(minutes=5))

    # the batch in hand was sent in full, and nothing was claimed or ticked after the stop
    assert len(channel.sent) == DISPATCH_BATCH
    assert len(engine.notices("pending")) == backlog - DISPATCH_BATCH
    assert (watched.calls["tick"], watched.calls["dispatch_notices"]) == (
        at_stop["tick"],
        at_stop["dispatch_notices"],
    )
    assert len(waker.ran) > 10  # though the jobs were called again
    daemon.shutdown()
    assert waker.shut_down


def test_run_stops_on_sigterm_and_gives_the_signal_handlers_back(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    daemon, waker = simulated(engine, clock)
    previous = signal.getsignal(signal.SIGTERM)

    def terminate_once_started() -> None:
        if waker.started.wait(timeout=60):  # the handlers are in place by then
            signal.pthread_kill(main, signal.SIGTERM)

    main = threading.main_thread().ident
    assert main == threading.get_ident()

    sender = threading.Thread(target=terminate_once_started)
    sender.start()
    daemon.run()  # returns once the signal is handled
    sender.join()

    assert log.messages() == ["daemon started", "stopping", "daemon stopped"]
    assert log.fields("stopping") == [{"signal": "SIGTERM"}]
    assert waker.shut_down
    assert signal.getsignal(signal.SIGTERM) == previous


# -- the database out of reach ------------------------------------------------------------


def test_an_unreachable_database_is_retried_with_backoff_until_it_answers(
    tmp_path: Path, clock: FrozenClock, log: Log
) -> None:
    path = unopenable(tmp_path)
    url = f"sqlite:///{path}"

    def appears_at_the_seventh_pause() -> None:
        if len(waker.pauses) == 7:
            path.rmdir()
            with Engine(url, clock=clock) as other:
                other.init()

    with Engine(url, clock=clock) as engine:
        daemon, waker = simulated(engine, clock)
        waker.on_pause = appears_at_the_seventh_pause
        assert daemon.start()
    assert waker.pauses == [0.5, 1, 2, 4, 8, 10, 10]
    retries = [m for m in log.messages() if m.startswith("database unavailable")]
    assert [m.split(":")[0] for m in retries] == [
        f"database unavailable, retrying in {delay:.1f} s" for delay in waker.pauses
    ]
    assert "cannot reach database" in retries[0]
    assert log.messages()[-1] == "daemon started"


def test_stopped_while_waiting_for_the_database_it_never_starts(
    tmp_path: Path, clock: FrozenClock, log: Log
) -> None:
    with Engine(f"sqlite:///{unopenable(tmp_path)}", clock=clock) as engine:
        daemon, waker = simulated(engine, clock)
        waker.on_pause = lambda: daemon.stop() if len(waker.pauses) == 2 else None
        assert not daemon.start()
    assert waker.pauses == [0.5, 1]
    assert not waker.started.is_set() and waker.jobs == {}
    assert "daemon started" not in log.messages()


def test_an_sqlite_file_that_is_not_there_is_not_waited_for(
    tmp_path: Path, clock: FrozenClock, log: Log
) -> None:
    """It is not initialised (3), unlike a server that does not answer yet: the daemon
    stops at once and creates nothing, neither the database nor a lock beside it."""
    with Engine(f"sqlite:///{tmp_path / 'peakpilot.db'}", clock=clock) as engine:
        daemon, waker = simulated(engine, clock)
        with pytest.raises(NotFound, match="not initialised"):
            daemon.run()
    assert waker.pauses == [] and not waker.started.is_set()
    assert list(tmp_path.iterdir()) == []


def unopenable(folder: Path) -> Path:
    """An SQLite database that is there but cannot be opened (a folder by its name), as a
    database that does not answer yet: a file that is not there is not initialised."""
    path = folder / "peakpilot.db"
    path.mkdir()
    return path


def test_a_tick_that_fails_is_logged_and_the_next_sweep_does_the_work(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    lapsing = draft(engine)
    clock.set(DEADLINE + MINUTE)
    daemon, waker = simulated(Watched(engine, failing_ticks=2), clock)
    assert daemon.start()
    begun = clock.now()
    waker.run_until(begun + timedelta(seconds=10))

    assert [m for m in log.messages() if "failed" in m] == [
        "tick failed: cannot reach database sqlite:///x.db: connection lost"
    ] * 2
    record = engine.history(lapsing.id)[-1]
    assert (record.event, record.at) == ("lapse", begun + timedelta(seconds=10))
    assert log.messages().count("caught up") == 1


# -- log lines -----------------------------------------------------------------------------


def test_a_plain_log_line_is_time_level_message_and_the_fields_that_are_set() -> None:
    record = logging.LogRecord(
        "peakpilot.daemon", logging.INFO, "", 0, "closed the batch", (), None
    )
    record.created = datetime(2023, 11, 14, 16, 0, 1).timestamp()
    record.fields = {"timer": "deadline", "batch": "soon", "province": None, "lapsed": 3}
    line = PlainFormatter().format(record)
    assert line.split(" ", 1)[1] == "info closed the batch timer=deadline batch=soon lapsed=3"


def test_the_daemon_warns_at_start_of_actors_without_an_address(
    engine: Engine, clock: FrozenClock, log: Log
) -> None:
    daemon, _ = simulated(Watched(engine), clock)
    assert daemon.start()
    [warning] = log.warnings
    assert warning.startswith("no address for 31 of the 31 actors that notices go to (gov:")
    assert "PEAKPILOT_CONTACTS" in warning
    daemon.stop()
    daemon.shutdown()
