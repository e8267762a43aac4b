"""The daemon: APScheduler wakes the engine; the database remains the only truth.

APScheduler holds three jobs whatever the number of timers: a wake-up re-armed at the
earliest pending due time, a periodic sweep (which also sees timers other processes
created, and catches up after downtime), and the notice dispatcher. All three run on one
worker thread, so a tick and a dispatch never overlap in one process. Job store: memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from peakpilot.errors import PeakpilotError, Refused, Unavailable
from peakpilot.notifications.channels import Channel
from peakpilot.workflow.engine import Engine
from peakpilot.workflow.store.database import masked

log = logging.getLogger("peakpilot.daemon")
WAKE, SWEEP, DISPATCH = "wake", "sweep", "dispatch"
DISPATCH_BATCH = 20
MAX_RECONNECT_DELAY = 10.0


class Daemon:
    """Runs ticks and dispatches until :meth:`stop` (or SIGTERM / SIGINT)."""

    def __init__(
        self,
        engine: Engine,
        channel: Channel,
        *,
        sweep_seconds: float = 5.0,
        max_attempts: int = 8,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.sweep_seconds = sweep_seconds
        self.max_attempts = max_attempts
        self.stopping = threading.Event()
        self._busy = threading.Lock()  # held by the job in hand
        self._caught_up = False
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def run(self) -> None:
        """Block until stopped. The first sweep runs at once: it catches up on whatever
        fell due while no daemon was running.

        The scheduler runs in the background and this thread waits for the stop signal,
        so a signal that lands at any moment (even before the scheduler has started) is
        never missed."""
        with _single_daemon(self.engine):
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                if self._wait_for_database():
                    self._start()
                    while not self.stopping.wait(timeout=1.0):
                        pass
                self._shutdown()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        log.info("daemon stopped")

    def stop(self) -> None:
        """Ask :meth:`run` to finish the work in hand and return (safe from any thread)."""
        self.stopping.set()

    def _start(self) -> None:
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self._work, "interval", seconds=self.sweep_seconds, id=SWEEP, next_run_time=now
        )
        # the catch-up sweep goes first: due timers come before a notice backlog
        self.scheduler.add_job(
            self._dispatch,
            "interval",
            seconds=self.sweep_seconds,
            id=DISPATCH,
            next_run_time=now + timedelta(milliseconds=200),
        )
        log.info(
            "daemon started",
            extra={
                "fields": {
                    "database": masked(self.engine.database.engine.url),
                    "sweep_seconds": self.sweep_seconds,
                }
            },
        )
        self.scheduler.start()

    def _shutdown(self) -> None:
        """Await the job in hand, then stop the scheduler.

        The job is awaited before ``shutdown``: APScheduler holds its job lock while it
        waits for running jobs, and a job re-arming the wake-up needs that lock. Jobs that
        start after ``stopping`` is set return at once."""
        with self._busy:
            pass
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def _wait_for_database(self) -> bool:
        """Load the programme, its templates and contacts, retrying with backoff while the
        database cannot be reached (a daemon started before its database, or whose first
        connection is cut, keeps trying); False when stopped meanwhile.

        A broken programme, contacts file or template is no reason to wait: it raises."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.engine.notifier  # noqa: B018  (loads and checks them once)
                return True
            except Unavailable as error:
                log.error("database unavailable, retrying in %.1f s: %s", delay, error)
                self.stopping.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
        return False

    def job_count(self) -> int:
        return len(self.scheduler.get_jobs())

    # -- jobs ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        self.stopping.set()

    def _work(self) -> None:
        """Do every due timer, send what that produced, and re-arm the wake-up."""
        with self._busy:
            if not self.stopping.is_set():
                ticked = self._tick()
                if ticked:
                    self._send()

    def _tick(self) -> bool:
        """Do the due timers and re-arm the wake-up; whether any timer was done."""
        try:
            report = self.engine.tick(stop=self.stopping)
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
                            "next_due": None if due is None else due.isoformat(),
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
                report = self.engine.dispatch_notices(
                    self.channel,
                    max_attempts=self.max_attempts,
                    batch_size=DISPATCH_BATCH,
                    max_batches=1,
                    stop=self.stopping,
                )
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
                if due is not None and due <= datetime.now(UTC):
                    self._tick()
        except PeakpilotError as error:
            log.error("dispatch failed: %s", error)
        except Exception as error:
            log.exception("dispatch failed unexpectedly: %s", error)

    def _rearm(self) -> datetime | None:
        """Point the wake-up job at the earliest pending timer (or drop it: none left)."""
        due = self.engine.next_due_at()
        if due is None:
            if self.scheduler.get_job(WAKE) is not None:
                self.scheduler.remove_job(WAKE)
        else:
            self.scheduler.add_job(self._work, "date", run_date=due, id=WAKE, replace_existing=True)
        return due


@contextlib.contextmanager
def _single_daemon(engine: Engine) -> Iterator[None]:
    """On SQLite, hold an OS lock beside the database file for the daemon's lifetime.

    The kernel drops it when the process dies, so a restart right after a crash is never
    refused; PostgreSQL needs no such guard (daemons share work with SKIP LOCKED)."""
    url = engine.database.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    path = Path(f"{url.database}.daemon.lock")
    handle: IO[str] = open(path, "a+")  # noqa: SIM115  (held for the daemon's lifetime)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise Refused(
                f"a daemon is already running on {url.database} (pid {holder}); "
                "one daemon per SQLite database"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at, level, message and the action's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """``time level message key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={value}"
            for key, value in getattr(record, "fields", {}).items()
            if value is not None
        )
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        line = f"{at} {record.levelname.lower()} {record.getMessage()}"
        return f"{line} {fields}" if fields else line


def configure_logging(fmt: str) -> None:
    """Our lines at INFO; APScheduler's own only when they are errors (its warnings about
    a job still running at its next interval are expected with one worker thread)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    for name, level in (("peakpilot", logging.INFO), ("apscheduler", logging.ERROR)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
