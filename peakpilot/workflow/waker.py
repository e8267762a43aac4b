"""What wakes the daemon: APScheduler on the wall clock, behind a narrow interface that
tests replace with a simulation moving a frozen clock (:class:`Waker`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

Job = Callable[[], None]


class Waker(Protocol):
    """Calls the daemon's jobs at their times, and lets time pass between reconnection
    attempts. Production: :class:`SchedulerWaker` (APScheduler on the wall clock); tests:
    a simulation that moves a frozen clock instead of waiting."""

    def every(self, name: str, job: Job, seconds: float, first_at: datetime) -> None:
        """Run ``job`` every ``seconds`` from ``first_at``; missed runs coalesce into one."""
        ...

    def once(self, name: str, job: Job, at: datetime) -> None:
        """Run ``job`` once at ``at``, replacing the job of that name if there is one."""
        ...

    def cancel(self, name: str) -> None:
        """Drop the job of that name, if there is one."""
        ...

    def job_count(self) -> int: ...

    def start(self) -> None:
        """Begin calling jobs (one at a time, never two at once)."""
        ...

    def shutdown(self) -> None:
        """Call no more jobs; return once none is running."""
        ...

    def pause(self, stop: threading.Event, seconds: float) -> bool:
        """Let ``seconds`` pass, or less if ``stop`` is set meanwhile; whether it is."""
        ...


class SchedulerWaker:
    """APScheduler's background scheduler with one worker thread, on the wall clock."""

    def __init__(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def every(self, name: str, job: Job, seconds: float, first_at: datetime) -> None:
        self.scheduler.add_job(job, "interval", seconds=seconds, id=name, next_run_time=first_at)

    def once(self, name: str, job: Job, at: datetime) -> None:
        self.scheduler.add_job(job, "date", run_date=at, id=name, replace_existing=True)

    def cancel(self, name: str) -> None:
        if self.scheduler.get_job(name) is not None:
            self.scheduler.remove_job(name)

    def job_count(self) -> int:
        return len(self.scheduler.get_jobs())

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def pause(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


__all__ = ["Job", "SchedulerWaker", "Waker"]
