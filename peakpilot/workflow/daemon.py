"""The daemon: something wakes the engine; the database remains the only truth.

Three jobs, whatever the number of timers: a wake-up re-armed at the earliest pending due
time, a periodic sweep (which also sees timers other processes created, and catches up
after downtime), and the notice dispatcher. In production APScheduler runs them on the
wall clock, all three on one worker thread, so a tick and a dispatch never overlap in one
process (job store: memory).

The daemon reads the time from a :class:`~peakpilot.clock.Clock` and lets time pass only
through a :class:`Waker`, so that its tests replace both with a simulation and never wait
on the wall clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Protocol

from peakpilot.clock import Clock, SystemClock
from peakpilot.errors import PeakpilotError, Refused, Unavailable
from peakpilot.workflow.daemon_log import log
from peakpilot.workflow.store.database import masked, sqlite_file
from peakpilot.workflow.waker import SchedulerWaker, Waker

if TYPE_CHECKING:
    import sqlalchemy as sa

    from peakpilot.notifications.channels import Channel
    from peakpilot.workflow.monitoring import Metrics
    from peakpilot.workflow.snapshots import DispatchReport, TickReport
    from peakpilot.workflow.store.daemons import DaemonRecord

WAKE, SWEEP, DISPATCH = "wake", "sweep", "dispatch"
DISPATCH_BATCH = 20
DISPATCH_LAG = timedelta(milliseconds=200)  # the catch-up sweep goes before the dispatcher
FIRST_RECONNECT_DELAY = 0.5
MAX_RECONNECT_DELAY = 10.0


# -- what the daemon needs from outside ----------------------------------------------------


class _Database(Protocol):
    @property
    def engine(self) -> sa.Engine: ...

    @property
    def dialect(self) -> str: ...

    def require(self) -> None:
        """Raises NotFound for a database that is not there (an SQLite file)."""


class Wakeable(Protocol):
    """All the daemon uses of :class:`~peakpilot.workflow.engine.Engine`.

    Kept this narrow on purpose: the engine's inside can change freely, and a test may
    pass a stand-in that fails on cue."""

    @property
    def database(self) -> _Database: ...

    def check_templates(self) -> None:
        """Loads the programme and the contacts and compiles every template it needs."""

    def address_warnings(self) -> list[str]:
        """The actors that notices go to with no address in the contacts, as sentences."""

    def tick(
        self,
        now: datetime | None = None,
        *,
        stop: threading.Event | None = None,
        progress: Callable[[], None] | None = None,
    ) -> TickReport: ...

    def next_due_at(self) -> datetime | None: ...

    def heartbeat(
        self, daemon: DaemonRecord, *, starting: bool = False, stopped: bool = False
    ) -> None:
        """Register the daemon or refresh its ``last_seen``; ``stopped``: it leaves."""

    def dispatch_notices(
        self,
        channel: Channel,
        *,
        max_attempts: int = ...,
        batch_size: int = ...,
        max_batches: int | None = ...,
        stop: threading.Event | None = ...,
    ) -> DispatchReport: ...


# -- the daemon ------------------------------------------------------------------------------


class Daemon:
    """Runs ticks and dispatches until :meth:`stop` (or SIGTERM / SIGINT).

    ``clock`` tells the daemon what time it is (the system clock by default) and
    ``waker`` calls its jobs (APScheduler on the wall clock by default): give both or
    neither, and give the engine the same clock, since ``tick`` asks the engine's."""

    def __init__(
        self,
        engine: Wakeable,
        channel: Channel,
        *,
        sweep_seconds: float = 5.0,
        max_attempts: int = 8,
        clock: Clock | None = None,
        waker: Waker | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics  # the durations /metrics shows, when the daemon serves it
        self.channel = channel
        self.sweep_seconds = sweep_seconds
        self.max_attempts = max_attempts
        self.clock: Clock = clock or SystemClock()
        self.waker: Waker = waker or SchedulerWaker()
        self.stopping = threading.Event()
        self._busy = threading.Lock()  # held by the job in hand
        self._caught_up = False
        self._identity: DaemonRecord | None = None  # registered for `status` once started
        self._last_beat = 0.0  # time.monotonic() of the last heartbeat

    def run(self) -> None:
        """Block until stopped: :meth:`start`, wait for the stop signal, :meth:`shutdown`.

        The jobs run in the background and this thread waits for the stop signal, so a
        signal that lands at any moment (even before the jobs have started) is never
        missed. On SQLite, an OS lock beside the database keeps a second daemon out."""
        with _single_daemon(self.engine):
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                if self.start():
                    while not self.stopping.wait(timeout=1.0):
                        pass
                self.shutdown()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        log.info("daemon stopped")

    def start(self) -> bool:
        """Wait for the database, then start the jobs; False when stopped meanwhile.

        The first sweep runs at once: it catches up on whatever fell due while no daemon
        was running."""
        if not self._wait_for_database():
            return False
        now = self.clock.now()
        from peakpilot.workflow.ids import new_id
        from peakpilot.workflow.store.daemons import DaemonRecord

        self._identity = DaemonRecord(
            new_id(), socket.gethostname(), os.getpid(), now, now, self.sweep_seconds
        )
        self._beat(starting=True)
        self.waker.every(SWEEP, self._work, self.sweep_seconds, now)
        self.waker.every(DISPATCH, self._dispatch, self.sweep_seconds, now + DISPATCH_LAG)
        log.info(
            "daemon started",
            extra={
                "fields": {
                    "database": masked(self.engine.database.engine.url),
                    "sweep_seconds": self.sweep_seconds,
                }
            },
        )
        for warning in self.engine.address_warnings():
            log.warning(warning)
        self.waker.start()
        return True

    def stop(self) -> None:
        """Ask the daemon to finish the work in hand and call no more (safe from any
        thread). :meth:`run` then returns."""
        self.stopping.set()

    def shutdown(self) -> None:
        """Await the job in hand, then stop the waker.

        The job is awaited before the waker's shutdown: APScheduler holds its job lock
        while it waits for running jobs, and a job re-arming the wake-up needs that lock.
        Jobs that start after ``stopping`` is set return at once."""
        with self._busy:
            pass
        self.waker.shutdown()
        self._beat(stopped=True)  # a daemon that stopped cleanly is not "silent"

    def job_count(self) -> int:
        return self.waker.job_count()

    def _wait_for_database(self) -> bool:
        """Load the programme, its templates and contacts, retrying with backoff while the
        database cannot be reached (a daemon started before its database, or whose first
        connection is cut, keeps trying); False when stopped meanwhile.

        A broken programme, contacts file or template is no reason to wait: it raises."""
        delay = FIRST_RECONNECT_DELAY
        while not self.stopping.is_set():
            try:
                self.engine.check_templates()
                return True
            except Unavailable as error:
                log.error("database unavailable, retrying in %.1f s: %s", delay, error)
                self.waker.pause(self.stopping, delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
        return False

    # -- jobs ------------------------------------------------------------------------------

    def _beat_if_due(self) -> None:
        """Beat during a long tick or dispatch too, once a sweep period: busy is not
        silent."""
        if time.monotonic() - self._last_beat >= self.sweep_seconds:
            self._beat()

    def _beat(self, *, starting: bool = False, stopped: bool = False) -> None:
        """Tell the database this daemon is alive (or, ``stopped``, gone); a failure is
        logged and the next sweep tries again: a heartbeat never stops the work."""
        if self._identity is None:
            return
        self._last_beat = time.monotonic()
        try:
            self.engine.heartbeat(self._identity, starting=starting, stopped=stopped)
        except PeakpilotError as error:
            log.error("heartbeat failed: %s", error)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        self.stopping.set()

    def _work(self) -> None:
        """Do every due timer, send what that produced, and re-arm the wake-up."""
        with self._busy:
            if not self.stopping.is_set():
                self._beat()
                ticked = self._tick()
                if ticked:
                    self._send()

    def _tick(self) -> bool:
        """Do the due timers and re-arm the wake-up; whether any timer was done."""
        try:
            started = time.perf_counter()
            report = self.engine.tick(stop=self.stopping, progress=self._beat_if_due)
            if self.metrics is not None:
                self.metrics.tick_seconds.observe(time.perf_counter() - started)
            for outcome in report.outcomes:
                log.info(
                    outcome.action,
                    extra={
                        "fields": {
                            "timer": outcome.kind,
                            "batch": outcome.batch,
                            "province": outcome.province,
                            "nomination": outcome.nomination,
                            "notices": outcome.notices,
                            "lapsed": outcome.lapsed,
                        }
                    },
                )
            due = self._rearm()
            if not self._caught_up:
                self._caught_up = True
                log.info(
                    "caught up",
                    extra={
                        "fields": {
                            "jobs": self.job_count(),
                            "next_due": due,
                        }
                    },
                )
            return bool(report.outcomes)
        except PeakpilotError as error:  # e.g. the database is unreachable: next sweep retries
            log.error("tick failed: %s", error)
        except Exception as error:  # keep the daemon alive; the sweep retries
            log.exception("tick failed unexpectedly: %s", error)
        return False

    def _dispatch(self) -> None:
        with self._busy:
            if not self.stopping.is_set():
                self._send()

    def _send(self) -> None:
        """Send due notices a small batch at a time, doing any timer that fell due in
        between first: a long backlog (or a slow SMTP server) never holds a deadline."""
        try:
            while not self.stopping.is_set():
                started = time.perf_counter()
                report = self.engine.dispatch_notices(
                    self.channel,
                    max_attempts=self.max_attempts,
                    batch_size=DISPATCH_BATCH,
                    max_batches=1,
                    stop=self.stopping,
                )
                if self.metrics is not None:
                    self.metrics.dispatch_seconds.observe(time.perf_counter() - started)
                self._beat_if_due()
                if not (report.sent or report.failed or report.dead):
                    return
                log.info(
                    "notices dispatched",
                    extra={
                        "fields": {
                            "sent": report.sent,
                            "failed": report.failed,
                            "dead": report.dead,
                        }
                    },
                )
                due = self.engine.next_due_at()
                if due is not None and due <= self.clock.now():
                    self._tick()
        except PeakpilotError as error:
            log.error("dispatch failed: %s", error)
        except Exception as error:
            log.exception("dispatch failed unexpectedly: %s", error)

    def _rearm(self) -> datetime | None:
        """Point the wake-up job at the earliest pending timer (or drop it: none left)."""
        due = self.engine.next_due_at()
        if due is None:
            self.waker.cancel(WAKE)
        else:
            self.waker.once(WAKE, self._work, due)
        return due


@contextlib.contextmanager
def _single_daemon(engine: Wakeable) -> Iterator[None]:
    """On SQLite, hold an OS lock beside the database file for the daemon's lifetime.

    The kernel drops it when the process dies, so a restart right after a crash is never
    refused; PostgreSQL needs no such guard (daemons share work with SKIP LOCKED). A
    daemon leaves no lock file behind unless it died: it removes the file while it still
    holds the lock, and a daemon that opened the file just before checks that what it
    locked is still the file by that name. A database that is not there is refused before
    any file is made beside it."""
    database = engine.database
    path = sqlite_file(database.engine.url)
    if database.dialect != "sqlite" or path is None:
        yield
        return
    database.require()
    lock = Path(f"{path}.daemon.lock")
    handle = _lock(lock, path)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def _lock(lock: Path, database: Path) -> IO[str]:
    """The lock file ``lock``, open and locked, holding this process's id.

    Raises:
        Refused: another daemon holds the lock.
    """
    while True:
        handle: IO[str] = open(lock, "a+")  # noqa: SIM115  (held for the daemon's lifetime)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise Refused(
                f"a daemon is already running on {database} (pid {holder}); "
                "one daemon per SQLite database"
            ) from None
        except BaseException:
            handle.close()
            raise
        if _same_file(handle, lock):
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            return handle
        handle.close()  # a daemon that stopped removed it meanwhile: lock the new one


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether the open ``handle`` is still the file named ``path``."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
