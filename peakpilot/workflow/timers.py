"""Durable timers and the work they do when due.

Timers are rows: opening a batch writes its reminders and its deadline, confirming a
nomination writes its milestones. ``Engine.tick`` takes due timers one at a time, each in
its own transaction with the work it triggers, so a crash loses or repeats nothing: a
timer is done exactly when its effects are committed.

A deadline's lapse is the exception: it moves at most ``LAPSE_CHUNK`` nominations per
transaction, so that 100,000 of them never make one huge transaction. Each chunk commits
its own state changes and audit records; the timer stays pending until the last one,
which also writes the notices (listing everything every chunk lapsed) and closes the
batch. A crash between chunks leaves a state the next tick simply carries on from. The
list comes from what this tick's own chunks lapsed (:class:`LapseMemory`) when that is
all of it, and is read back from the audit records otherwise.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from peakpilot.config.program import Milestone, Program
from peakpilot.notifications.compose import BatchInfo, Notifier, Outgoing
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.reads import BatchRecord
from peakpilot.workflow.records import NominationRecord
from peakpilot.workflow.snapshots import TimerOutcome
from peakpilot.workflow.store import Lapsed, Store, Usage
from peakpilot.workflow.tables import TimerRow

REMINDER, DEADLINE, MILESTONE = "reminder", "deadline", "milestone"
PENDING, DONE, CANCELLED = "pending", "done", "cancelled"
LAPSE_EVENT, SYSTEM = "lapse", "system"
LAPSE_CHUNK = 5_000  # the most nominations one transaction of a deadline's lapse moves


class LapsedItem(NamedTuple):
    """One line of a shortfall notice's list. A tuple with named fields: templates read
    ``item.name`` without the failed attribute lookup a dict costs Jinja, for each of
    thousands of lines."""

    id: str
    name: str
    kind: str  # the kind's name in the notice's language
    from_state: str


class LapseMemory:
    """What the chunks of deadlines' lapses moved, remembered across the transactions of
    one ``Engine.tick``, so that the closing transaction need not read 100,000 nominations
    back to list them in the shortfall notices.

    Only what committed counts: a chunk's nominations are held as pending until the
    caller reports its transaction committed (:meth:`committed`), and dropped when the
    next transaction begins instead (:meth:`begin`). Memory is only a shortcut: the
    closing transaction uses it when it holds exactly as many nominations as the
    database's lapse records of the batch (what this tick committed is among them, so
    equal counts mean the same nominations), and otherwise reads them all back (chunks
    lapsed before a crash, or by another process)."""

    def __init__(self) -> None:
        self._kept: dict[str, list[Lapsed]] = {}
        self._pending: dict[str, list[Lapsed]] = {}

    def begin(self) -> None:
        """A transaction starts: what an earlier one left pending never committed."""
        self._pending = {}

    def add(self, batch_id: str, lapsed: list[Lapsed]) -> None:
        self._pending.setdefault(batch_id, []).extend(lapsed)

    def committed(self) -> None:
        """The transaction since :meth:`begin` committed: keep what it lapsed."""
        for batch_id, lapsed in self._pending.items():
            self._kept.setdefault(batch_id, []).extend(lapsed)
        self._pending = {}

    def lapsed(self, batch_id: str) -> list[Lapsed]:
        """Everything remembered for the batch, committed or in this transaction."""
        return [*self._kept.get(batch_id, ()), *self._pending.get(batch_id, ())]


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one step of a deadline's work.

    A step allocates hundreds of thousands of short-lived rows, tuples and strings, hardly
    any in a cycle: reference counting frees them, while the collector, run every few
    hundred allocations, walks those still alive (up to the 100,000 nominations read
    back) again and again; that cost 15% of a lapse of 100,000. The few cycles wait for
    its next run. Left as it was found: a caller that had paused it keeps it paused.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _timer(
    key: str, kind: str, due_at: datetime, batch_id: str, now: datetime, **fields: Any
) -> TimerRow:
    payload = fields.pop("payload", {})
    return TimerRow(
        id=new_id(),
        unique_key=key,
        kind=kind,
        due_at=due_at,
        batch_id=batch_id,
        payload=json.dumps(payload),
        status=PENDING,
        created_at=now,
        **fields,
    )


def batch_timers(
    program: Program, batch_id: str, deadline_at: datetime, now: datetime, *, skip_past: bool
) -> list[TimerRow]:
    """The reminders (``reminder_days`` before) and the deadline of a batch.

    ``skip_past`` leaves out reminders already due: a batch opened late sends no
    reminder for a moment that has gone.
    """
    timers = [
        _timer(
            f"{batch_id}/reminder/{days}",
            REMINDER,
            deadline_at - timedelta(days=days),
            batch_id,
            now,
            payload={"days_before": days},
        )
        for days in program.first_batch.reminder_days
        if not (skip_past and deadline_at - timedelta(days=days) <= now)
    ]
    timers.append(_timer(f"{batch_id}/deadline", DEADLINE, deadline_at, batch_id, now))
    return timers


def batch_due_at(timer: TimerRow, deadline_at: datetime) -> datetime:
    """Where a batch timer falls for ``deadline_at`` (used when a deadline moves)."""
    if timer.kind == REMINDER:
        return deadline_at - timedelta(days=json.loads(timer.payload)["days_before"])
    return deadline_at


def milestone_timers(
    program: Program, nomination_id: str, batch_id: str, province: str, now: datetime
) -> list[TimerRow]:
    return [
        _timer(
            f"{nomination_id}/milestone/{m.year}",
            MILESTONE,
            m.at - m.notice_before,
            batch_id,
            now,
            province=province,
            nomination_id=nomination_id,
            payload={"year": m.year},
        )
        for m in program.milestones
    ]


class TimerWork:
    """Does what one due timer asks, or the next chunk of it, inside the caller's
    transaction."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        now: datetime,
        *,
        lapse_chunk: int = LAPSE_CHUNK,
        memory: LapseMemory | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.program = notifier.program
        self.now = now
        self.lapse_chunk = lapse_chunk
        self.memory = LapseMemory() if memory is None else memory
        self.memory.begin()

    def run(self, timer: TimerRow) -> TimerOutcome | None:
        """The timer's outcome once its work is all done (the caller then finishes the
        timer in the same transaction), or None when this transaction did one chunk of it
        and the caller should commit and run the timer again."""
        batch = self.store.batch(timer.batch_id)
        if timer.kind == REMINDER:
            return self._reminder(timer, batch)
        if timer.kind == DEADLINE:
            return self._deadline(timer, batch)
        return self._milestone(timer, batch)

    def _outcome(self, timer: TimerRow, action: str, **counts: int) -> TimerOutcome:
        return TimerOutcome(
            timer.id,
            timer.kind,
            timer.batch_id,
            timer.province,
            timer.nomination_id,
            action,
            **counts,
        )

    def _reminder(self, timer: TimerRow, batch: BatchRecord) -> TimerOutcome:
        if not self.store.batch_facts(batch).is_open or self.now >= batch.deadline_at:
            return self._outcome(timer, "skipped: the deadline has passed")
        if self.store.later_due_reminder(batch.id, timer.due_at, self.now):
            return self._outcome(timer, "skipped: a later reminder is due")
        time_left = batch.deadline_at - self.now
        outgoing: list[Outgoing] = []
        for province, usage in self.store.usage(batch.id).items():
            if usage.used < usage.quota:  # a province that filled its places gets none
                context = partial(self._reminder_context, province, usage, time_left)
                outgoing += self._compose(
                    "reminder", province, context, batch, (timer.id, province)
                )
        self.store.add_notices(outgoing, self.now)
        return self._outcome(
            timer, "reminded the provinces with places left", notices=len(outgoing)
        )

    def _deadline(self, timer: TimerRow, batch: BatchRecord) -> TimerOutcome | None:
        lapse = next(t for t in self.program.transitions if t.event == LAPSE_EVENT)
        with _cycle_collector_paused():
            moved = self.store.lapse(
                batch.id,
                lapse.sources,
                lapse.dest,
                event=LAPSE_EVENT,
                actor=SYSTEM,
                at=self.now,
                limit=self.lapse_chunk,
            )
            self.memory.add(batch.id, moved)
            if len(moved) == self.lapse_chunk:
                return None  # a full chunk: more may be left for the next transaction
            return self._close(timer, batch)

    def _close(self, timer: TimerRow, batch: BatchRecord) -> TimerOutcome:
        """The deadline's last transaction: the shortfall notices, listing what every chunk
        lapsed (read back, whichever transaction or process lapsed it), the summary, and
        the batch closed."""
        lapsed = self._lapsed(batch)
        by_province: dict[str, list[Lapsed]] = {}
        for nomination in lapsed:
            by_province.setdefault(nomination.province, []).append(nomination)
        usage = self.store.usage(batch.id)
        outgoing: list[Outgoing] = []
        for province, counts in usage.items():
            if counts.used < counts.quota:
                mine = by_province.get(province, [])
                context = partial(self._shortfall_context, province, counts, mine)
                outgoing += self._compose(
                    "shortfall", province, context, batch, (timer.id, province), jointly=True
                )
        summary = partial(self._summary_context, usage)
        outgoing += self._compose("deadline_summary", None, summary, batch, (timer.id,))
        self.store.add_notices(outgoing, self.now)
        self.store.close_batch(batch.id, self.now)
        return self._outcome(timer, "closed the batch", notices=len(outgoing), lapsed=len(lapsed))

    def _lapsed(self, batch: BatchRecord) -> list[Lapsed]:
        """Every nomination the batch's deadline lapsed, in creation (id) order: what this
        tick's chunks remembered when that is all of them, else read back."""
        remembered = self.memory.lapsed(batch.id)
        if len(remembered) == self.store.lapsed_count(batch.id, LAPSE_EVENT):
            return sorted(remembered)
        return self.store.lapsed(batch.id, LAPSE_EVENT)

    def _milestone(self, timer: TimerRow, batch: BatchRecord) -> TimerOutcome:
        assert timer.nomination_id is not None
        nomination = self.store.nomination(timer.nomination_id)
        year = json.loads(timer.payload)["year"]
        milestone = next(m for m in self.program.milestones if m.year == year)
        context = partial(self._milestone_context, nomination, milestone)
        outgoing = self._compose(
            "milestone",
            nomination.province,
            context,
            batch,
            (timer.id,),
            nomination_id=nomination.id,
        )
        self.store.add_notices(outgoing, self.now)
        return self._outcome(timer, f"announced the {year} milestone", notices=len(outgoing))

    # -- the variables of each kind's templates (see notifications/templates) ----------------

    def _province(self, slug: str, locale: str) -> dict[str, str]:
        return {"slug": slug, "name": self.program.provinces[slug].names.get(locale)}

    def _reminder_context(
        self, province: str, usage: Usage, time_left: timedelta, locale: str
    ) -> dict[str, Any]:
        return {
            "province": self._province(province, locale),
            "quota": usage.quota,
            "used": usage.used,
            "left": usage.quota - usage.used,
            "days_left": time_left.days,
            "hours_left": time_left.seconds // 3600,
        }

    def _shortfall_context(
        self, province: str, usage: Usage, lapsed: list[Lapsed], locale: str
    ) -> dict[str, Any]:
        kinds = {code: spec.names.get(locale) for code, spec in self.program.kinds.items()}
        return {
            "province": self._province(province, locale),
            "quota": usage.quota,
            "used": usage.used,
            "lapsed": [LapsedItem(n.id, n.name, kinds[n.kind], n.from_state) for n in lapsed],
        }

    def _summary_context(self, usage: dict[str, Usage], locale: str) -> dict[str, Any]:
        return {
            "provinces": [
                {
                    "province": self._province(province, locale),
                    "quota": counts.quota,
                    "used": counts.used,
                    "names": list(counts.names),
                }
                for province, counts in usage.items()
            ],
            "total_quota": sum(c.quota for c in usage.values()),
            "total_used": sum(c.used for c in usage.values()),
        }

    def _milestone_context(
        self, nomination: NominationRecord, milestone: Milestone, locale: str
    ) -> dict[str, Any]:
        return {
            "nomination": self.notifier.nomination_context(nomination, nomination.state, locale),
            "milestone": {
                "year": milestone.year,
                "objective": milestone.objective.get(locale),
                "due": self.notifier.format(milestone.at),
            },
        }

    # -- helpers ---------------------------------------------------------------------------

    def _compose(
        self,
        kind: str,
        province: str | None,
        context: Any,
        batch: BatchRecord,
        occasion: Iterable[str],
        nomination_id: str | None = None,
        *,
        jointly: bool = False,
    ) -> list[Outgoing]:
        actors = self.notifier.timer_recipients(kind, province)
        return self.notifier.compose(
            kind,
            actors,
            context,
            at=self.now,
            batch=BatchInfo(batch.id, batch.deadline_at),
            dedupe=tuple(occasion),
            nomination_id=nomination_id,
            jointly=jointly,
        )
