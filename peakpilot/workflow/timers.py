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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from peakpilot.config.program import Milestone, Program
from peakpilot.notifications.compose import BatchInfo, Notifier, Outgoing
from peakpilot.vocabulary import LAPSE_EVENT, SYSTEM, NoticeStatus, TimerKind
from peakpilot.workflow import pilot_timers
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.snapshots import TimerOutcome
from peakpilot.workflow.store.batches import BatchRecord
from peakpilot.workflow.store.lapses import LAPSE_CHUNK, Lapsed
from peakpilot.workflow.store.nominations import NominationRecord
from peakpilot.workflow.store.timers import TimerRecord
from peakpilot.workflow.store.transaction import Transaction


@dataclass(frozen=True, slots=True)
class Usage:
    """A province's places in a batch and the nominations using them (in creation order)."""

    quota: int
    used: int
    names: tuple[str, ...]


# One line of a shortfall notice's list: (id, name, the kind's name in the notice's
# language, from_state), which the templates unpack. A plain tuple, for the reason
# given at store.lapses.Lapsed: a deadline's notices list 100,000 of them per language.
LapsedItem = tuple[str, str, str, str]


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


def _timer(
    key: str,
    kind: TimerKind,
    due_at: datetime,
    batch_id: str,
    now: datetime,
    *,
    province: str | None = None,
    nomination_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> TimerRecord:
    return TimerRecord(
        id=new_id(),
        unique_key=key,
        kind=kind,
        due_at=due_at,
        batch_id=batch_id,
        province=province,
        nomination_id=nomination_id,
        payload=payload or {},
        created_at=now,
    )


def batch_timers(
    program: Program, batch_id: str, deadline_at: datetime, now: datetime, *, skip_past: bool
) -> list[TimerRecord]:
    """The reminders (``reminder_days`` before) and the deadline of a batch.

    ``skip_past`` leaves out reminders already due: a batch opened late sends no
    reminder for a moment that has gone.
    """
    timers = [
        _timer(
            f"{batch_id}/reminder/{days}",
            TimerKind.REMINDER,
            deadline_at - timedelta(days=days),
            batch_id,
            now,
            payload={"days_before": days},
        )
        for days in program.first_batch.reminder_days
        if not (skip_past and deadline_at - timedelta(days=days) <= now)
    ]
    timers.append(_timer(f"{batch_id}/deadline", TimerKind.DEADLINE, deadline_at, batch_id, now))
    return timers


def batch_due_at(timer: TimerRecord, deadline_at: datetime) -> datetime:
    """Where a batch timer falls for ``deadline_at`` (used when a deadline moves)."""
    if timer.kind == TimerKind.REMINDER:
        return deadline_at - timedelta(days=timer.payload["days_before"])
    return deadline_at


def milestone_timers(
    program: Program, nomination_id: str, batch_id: str, province: str, now: datetime
) -> list[TimerRecord]:
    """A pilot's progress milestones still ahead (one passed already is not announced as
    approaching; one whose notice time has passed is announced at once)."""
    return [
        _timer(
            f"{nomination_id}/milestone/{m.year}",
            TimerKind.MILESTONE,
            m.at - m.notice_before,
            batch_id,
            now,
            province=province,
            nomination_id=nomination_id,
            payload={"year": m.year},
        )
        for m in program.milestones
        if m.at > now
    ]


class TimerWork:
    """Does what one due timer asks, or the next chunk of it, inside the caller's
    transaction."""

    def __init__(
        self,
        tx: Transaction,
        notifier: Notifier,
        now: datetime,
        *,
        lapse_chunk: int = LAPSE_CHUNK,
        memory: LapseMemory | None = None,
        program_version: int,
        stale_after: timedelta,
    ) -> None:
        self.tx = tx
        self.notifier = notifier
        self.program = notifier.program
        self.now = now
        self.lapse_chunk = lapse_chunk
        self.program_version = program_version
        self.stale_after = stale_after
        self.memory = LapseMemory() if memory is None else memory
        self.memory.begin()

    def run(self, timer: TimerRecord) -> TimerOutcome | None:
        """The timer's outcome once its work is all done (the caller then finishes the
        timer in the same transaction), or None when this transaction did one chunk of it
        and the caller should commit and run the timer again."""
        if timer.kind in pilot_timers.NOTICES:
            return pilot_timers.run(self.tx, self.notifier, self.now, timer)
        batch = self.tx.batches.get(timer.batch_id)
        if timer.kind == TimerKind.REMINDER:
            return self._reminder(timer, batch)
        if timer.kind == TimerKind.DEADLINE:
            return self._deadline(timer, batch)
        return self._milestone(timer, batch)

    def _outcome(
        self, timer: TimerRecord, action: str, *, suppressed: bool = False, **counts: int
    ) -> TimerOutcome:
        return TimerOutcome(
            timer.id,
            timer.kind.value,
            timer.batch_id,
            timer.province,
            timer.nomination_id,
            action,
            suppressed=suppressed,
            **counts,
        )

    def _reminder(self, timer: TimerRecord, batch: BatchRecord) -> TimerOutcome:
        if not batch.is_open or self.now >= batch.deadline_at:
            return self._outcome(timer, "skipped: the deadline has passed")
        if self.tx.timers.later_due_reminder(batch.id, timer.due_at, self.now):
            return self._outcome(timer, "skipped: a later reminder is due")
        time_left = batch.deadline_at - self.now
        outgoing: list[Outgoing] = []
        for province, usage in self._usage(batch.id).items():
            if usage.used < usage.quota:  # a province that filled its places gets none
                context = partial(self._reminder_context, province, usage, time_left)
                outgoing += self._compose(
                    "reminder", province, context, batch, (timer.id, province)
                )
        self.tx.outbox.add(outgoing, self.now)
        return self._outcome(
            timer, "reminded the provinces with places left", notices=len(outgoing)
        )

    def _deadline(self, timer: TimerRecord, batch: BatchRecord) -> TimerOutcome | None:
        lapse = next(t for t in self.program.transitions if t.event == LAPSE_EVENT)
        assert lapse.dest is not None, "a lapse moves nominations out of the batch"
        moved = self.tx.lapses.lapse(
            batch.id,
            lapse.sources,
            lapse.dest,
            event=LAPSE_EVENT,
            actor=SYSTEM,
            at=self.now,
            limit=self.lapse_chunk,
            program_version=self.program_version,
        )
        self.memory.add(batch.id, moved)
        if len(moved) == self.lapse_chunk:
            return None  # a full chunk: more may be left for the next transaction
        return self._close(timer, batch)

    def _close(self, timer: TimerRecord, batch: BatchRecord) -> TimerOutcome:
        """The deadline's last transaction: the shortfall notices, listing what every chunk
        lapsed (read back, whichever transaction or process lapsed it), the summary, and
        the batch closed."""
        lapsed = self._lapsed(batch)
        by_province: dict[str, list[Lapsed]] = {}
        for nomination in lapsed:
            by_province.setdefault(nomination[1], []).append(nomination)  # its province
        usage = self._usage(batch.id)
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
        # Deadline work done long after the deadline (a 2023 batch first ticked in 2026)
        # still moves the nominations, but its letters would announce old news as new.
        late = self.now - timer.due_at
        stale = late > self.stale_after
        status = NoticeStatus.SUPPRESSED if stale else NoticeStatus.PENDING
        self.tx.outbox.add(outgoing, self.now, status=status)
        self.tx.batches.close(batch.id, self.now)
        self.tx.timers.cancel_reminders(batch.id, self.now)
        action = "closed the batch"
        if stale:
            action += f" (its notices suppressed: {late.days} days after the deadline)"
        return self._outcome(
            timer, action, notices=len(outgoing), lapsed=len(lapsed), suppressed=stale
        )

    def _lapsed(self, batch: BatchRecord) -> list[Lapsed]:
        """Every nomination the batch's deadline lapsed, in creation (id) order: what this
        tick's chunks remembered when that is all of them, else read back."""
        remembered = self.memory.lapsed(batch.id)
        if len(remembered) == self.tx.lapses.count(batch.id, LAPSE_EVENT):
            return sorted(remembered)
        return self.tx.lapses.read_back(batch.id, LAPSE_EVENT)

    def _usage(self, batch_id: str) -> dict[str, Usage]:
        """Each province with a quota in the batch: its quota, and the nominations that
        use its places, in the programme's province order."""
        quotas = self.tx.batches.quotas(batch_id)
        names: dict[str, list[str]] = {province: [] for province in quotas}
        for province, name in self.tx.nominations.names_in_states(
            batch_id, self.program.quota_counts
        ):
            names.setdefault(province, []).append(name)
        return {
            province: Usage(quotas[province], len(names[province]), tuple(names[province]))
            for province in self.program.provinces
            if province in quotas
        }

    def _milestone(self, timer: TimerRecord, batch: BatchRecord) -> TimerOutcome:
        assert timer.nomination_id is not None
        nomination = self.tx.nominations.get(timer.nomination_id)
        year = timer.payload["year"]
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
        self.tx.outbox.add(outgoing, self.now)
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
            "lapsed": [
                (id_, name, kinds[kind], from_state)
                for id_, _province, kind, name, from_state in lapsed
            ],
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
