"""Time-driven work: ``tick`` does every timer due at a given instant, in due order.

Each timer and its effects commit together, so a tick interrupted at any point leaves
each timer done once or not at all; a second tick for the same instant finds nothing due
and changes nothing. The daemon only decides when to call it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from peakpilot.clock import require_instant
from peakpilot.errors import InvalidInput
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import TickReport, TimerOutcome
from peakpilot.workflow.store.lapses import LAPSE_CHUNK
from peakpilot.workflow.store.transaction import Transaction
from peakpilot.workflow.timers import LapseMemory, TimerWork


class Deadlines:
    """The timers' side of the Engine."""

    def __init__(self, runtime: Runtime, stale_after: timedelta) -> None:
        self.rt = runtime
        self.stale_after = stale_after  # deadline work this late stores its notices suppressed

    def tick(
        self,
        now: datetime | None,
        *,
        stop: threading.Event | None,
        lapse_chunk: int,
        progress: Callable[[], None] | None = None,
    ) -> TickReport:
        now = require_instant(now, "tick time") if now is not None else self.rt.now()
        if not 1 <= lapse_chunk <= LAPSE_CHUNK:
            raise InvalidInput(f"a lapse chunk is 1 to {LAPSE_CHUNK} nominations")
        notifier = self.rt.notifier
        outcomes: list[TimerOutcome] = []
        lapses = LapseMemory()  # what each committed chunk lapsed, for the closing one

        def next_step(tx: Transaction) -> tuple[bool, TimerOutcome | None]:
            """Do the earliest due timer (or its next chunk); whether there was one."""
            timer = tx.timers.next_due(now)
            if timer is None:
                return False, None
            work = TimerWork(
                tx,
                notifier,
                now,
                lapse_chunk=lapse_chunk,
                memory=lapses,
                program_version=self.rt.program_version,
                stale_after=self.stale_after,
            )
            outcome = work.run(timer)
            if outcome is not None:
                tx.timers.finish(timer.id, now)
            return True, outcome

        while stop is None or not stop.is_set():
            found, outcome = self.rt.write(next_step)
            if not found:
                break
            lapses.committed()
            if outcome is not None:
                outcomes.append(outcome)
            if progress is not None:
                progress()
        return TickReport(self.rt.local(now), tuple(outcomes))

    def next_due_at(self) -> datetime | None:
        due = self.rt.db.run(lambda tx: tx.timers.next_due_at(), write=False)
        return None if due is None else self.rt.local(due)


__all__ = ["Deadlines"]
