"""Durable timers: the ``timers`` table. The database, not the scheduler, remembers what
is due; ``unique_key`` keeps one timer from existing twice."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from peakpilot.vocabulary import TimerKind, TimerStatus
from peakpilot.workflow.store.driver import Statements, placeholders

COLUMNS = (
    "id",
    "unique_key",
    "kind",
    "due_at",
    "batch_id",
    "province",
    "nomination_id",
    "payload",
    "status",
    "created_at",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM timers"
_INSERT = f"INSERT INTO timers ({', '.join(COLUMNS)}) VALUES ({placeholders(len(COLUMNS))})"
_PENDING = TimerStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class TimerRecord:
    id: str
    unique_key: str
    kind: TimerKind
    due_at: datetime
    batch_id: str
    province: str | None
    nomination_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    status: TimerStatus = TimerStatus.PENDING
    created_at: datetime | None = None


class Timers:
    """The ``timers`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def add(self, timers: Iterable[TimerRecord], *, if_missing: bool = False) -> None:
        """Insert ``timers``; ``if_missing`` skips any whose key exists (a timer that
        several pilots share, made by whichever of them comes first)."""
        time_in = self.sql.dialect.time_in
        self.sql.execute_many(
            f"{_INSERT} ON CONFLICT (unique_key) DO NOTHING" if if_missing else _INSERT,
            [
                (
                    t.id,
                    t.unique_key,
                    t.kind.value,
                    time_in(t.due_at),
                    t.batch_id,
                    t.province,
                    t.nomination_id,
                    json.dumps(t.payload),
                    t.status.value,
                    time_in(t.created_at or t.due_at),
                )
                for t in timers
            ],
        )

    def add_missing(self, timers: Sequence[TimerRecord]) -> int:
        """Insert those of ``timers`` whose key no timer has, and put back in force those
        whose timer was cancelled (as ``timers`` gives them); a pending or done timer
        of the key stays as it is. Returns how many were added or put back."""
        if not timers:
            return 0
        keys = [t.unique_key for t in timers]
        status: dict[str, str] = dict(
            self.sql.all(  # type: ignore[arg-type]
                f"SELECT unique_key, status FROM timers "
                f"WHERE unique_key IN ({placeholders(len(keys))})",
                keys,
            )
        )
        self.add([t for t in timers if t.unique_key not in status])
        time_in = self.sql.dialect.time_in
        revived = [t for t in timers if status.get(t.unique_key) == TimerStatus.CANCELLED.value]
        self.sql.execute_many(
            "UPDATE timers SET status = ?, done_at = NULL, due_at = ?, payload = ? "
            "WHERE unique_key = ?",
            [(_PENDING, time_in(t.due_at), json.dumps(t.payload), t.unique_key) for t in revived],
        )
        return len(timers) - len(status) + len(revived)

    def cancel(self, timer_id: str, now: datetime) -> None:
        self._end(timer_id, TimerStatus.CANCELLED, now)

    def next_due(self, now: datetime) -> TimerRecord | None:
        """The earliest due pending timer, locked; one another process holds is skipped
        (PostgreSQL; SQLite's write lock already serialises)."""
        lock = " FOR UPDATE SKIP LOCKED" if self.sql.dialect.name == "postgresql" else ""
        row = self.sql.one(
            f"{_SELECT} WHERE status = ? AND due_at <= ? ORDER BY due_at, id LIMIT 1{lock}",
            (_PENDING, self.sql.dialect.time_in(now)),
        )
        return None if row is None else self._record(row)

    def finish(self, timer_id: str, now: datetime) -> None:
        self._end(timer_id, TimerStatus.DONE, now)

    def _end(self, timer_id: str, status: TimerStatus, now: datetime) -> None:
        self.sql.execute(
            "UPDATE timers SET status = ?, done_at = ? WHERE id = ?",
            (status.value, self.sql.dialect.time_in(now), timer_id),
        )

    def cancel_reminders(self, batch_id: str, now: datetime) -> None:
        """A batch's pending reminders, which nothing should send any more."""
        self.sql.execute(
            "UPDATE timers SET status = ?, done_at = ? WHERE batch_id = ? AND kind = ? "
            "AND status = ?",
            (
                TimerStatus.CANCELLED.value,
                self.sql.dialect.time_in(now),
                batch_id,
                TimerKind.REMINDER.value,
                _PENDING,
            ),
        )

    def cancel_of_nomination(
        self, nomination_id: str, kinds: Sequence[TimerKind], now: datetime
    ) -> None:
        """A nomination's pending timers of ``kinds``, whose work is moot."""
        self.sql.execute(
            "UPDATE timers SET status = ?, done_at = ? WHERE nomination_id = ? AND status = ? "
            f"AND kind IN ({placeholders(len(kinds))})",
            (
                TimerStatus.CANCELLED.value,
                self.sql.dialect.time_in(now),
                nomination_id,
                _PENDING,
                *(kind.value for kind in kinds),
            ),
        )

    def later_due_reminder(self, batch_id: str, due_at: datetime, now: datetime) -> bool:
        """Whether another reminder of the batch, due after ``due_at``, is due too."""
        time_in = self.sql.dialect.time_in
        row = self.sql.one(
            "SELECT 1 FROM timers WHERE batch_id = ? AND kind = ? AND status = ? "
            "AND due_at > ? AND due_at <= ? LIMIT 1",
            (batch_id, TimerKind.REMINDER.value, _PENDING, time_in(due_at), time_in(now)),
        )
        return row is not None

    def pending(
        self,
        *,
        batch: str | None = None,
        nomination: str | None = None,
        kinds: Sequence[TimerKind] = (),
        seen_from: str | None = None,
    ) -> list[TimerRecord]:
        """Pending timers in due order, of one batch, one nomination or all; with
        ``seen_from``, only those a reader of that province sees: its own and the
        batch-wide ones (of no province)."""
        conditions, params = ["status = ?"], [_PENDING]
        for column, value in (("batch_id", batch), ("nomination_id", nomination)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if seen_from is not None:
            conditions.append("(province IS NULL OR province = ?)")
            params.append(seen_from)
        if kinds:
            conditions.append(f"kind IN ({placeholders(len(kinds))})")
            params.extend(kind.value for kind in kinds)
        rows = self.sql.all(
            f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY due_at, id", params
        )
        return [self._record(row) for row in rows]

    def of_kinds(
        self, kinds: Sequence[TimerKind], statuses: Sequence[TimerStatus]
    ) -> list[TimerRecord]:
        """Timers of ``kinds`` in ``statuses`` (a pilot's due days, fired or pending)."""
        rows = self.sql.all(
            f"{_SELECT} WHERE kind IN ({placeholders(len(kinds))}) "
            f"AND status IN ({placeholders(len(statuses))}) ORDER BY due_at, id",
            (*(k.value for k in kinds), *(s.value for s in statuses)),
        )
        return [self._record(row) for row in rows]

    def backlog(self, overdue_before: datetime) -> tuple[int, int, datetime | None]:
        """How many timers are pending, how many of them were due before
        ``overdue_before``, and the oldest due time among those."""
        row = self.sql.one(
            "SELECT count(*), "
            "sum(CASE WHEN due_at < ? THEN 1 ELSE 0 END), "
            "min(CASE WHEN due_at < ? THEN due_at END) FROM timers WHERE status = ?",
            (*(self.sql.dialect.time_in(overdue_before),) * 2, _PENDING),
        )
        assert row is not None
        return int(row[0]), int(row[1] or 0), self.sql.dialect.maybe_time_out(row[2])

    def next_due_at(self) -> datetime | None:
        row = self.sql.one("SELECT min(due_at) FROM timers WHERE status = ?", (_PENDING,))
        return None if row is None else self.sql.dialect.maybe_time_out(row[0])

    def reschedule(
        self, timer_id: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> None:
        """Move a timer to ``due_at`` (and replace its payload, when given: a reminder's
        carries the day it reminds of)."""
        if payload is None:
            self.sql.execute(
                "UPDATE timers SET due_at = ? WHERE id = ?",
                (self.sql.dialect.time_in(due_at), timer_id),
            )
        else:
            self.sql.execute(
                "UPDATE timers SET due_at = ?, payload = ? WHERE id = ?",
                (self.sql.dialect.time_in(due_at), json.dumps(payload), timer_id),
            )

    def _record(self, row: Sequence[Any]) -> TimerRecord:
        time_out = self.sql.dialect.time_out
        id_, key, kind, due_at, batch_id, province, nomination_id, payload, status, created = row
        return TimerRecord(
            id_,
            key,
            TimerKind(kind),
            time_out(due_at),
            batch_id,
            province,
            nomination_id,
            json.loads(payload),
            TimerStatus(status),
            time_out(created),
        )


__all__ = ["COLUMNS", "TimerRecord", "Timers"]
