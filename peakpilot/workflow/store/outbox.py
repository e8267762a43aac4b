"""The outbox: the ``notices`` table. Rendered notices are queued in the transaction of
their event; dispatchers lease due ones (``claimed_until``), then record each outcome.
On PostgreSQL several dispatchers claim disjoint rows (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from peakpilot.errors import NotFound
from peakpilot.vocabulary import ROW_ID, NoticeStatus
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.store.driver import Statements, placeholders

if TYPE_CHECKING:
    from peakpilot.notifications.compose import Outgoing

COLUMNS = (
    "id",
    "kind",
    "actor",
    "recipient",
    "locale",
    "subject",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "nomination_id",
    "batch_id",
    "created_at",
    "sent_at",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM notices"
_INSERTED = (
    "id",
    "dedupe_key",
    "kind",
    "actor",
    "recipient",
    "locale",
    "subject",
    "text",
    "html",
    "status",
    "attempts",
    "next_attempt_at",
    "nomination_id",
    "batch_id",
    "created_at",
)
_INSERT = f"INSERT INTO notices ({', '.join(_INSERTED)}) VALUES ({placeholders(len(_INSERTED))})"
_DUE = (NoticeStatus.PENDING.value, NoticeStatus.FAILED.value)


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    """A notice as stored, without its rendered bodies (see :meth:`Outbox.bodies`)."""

    id: str
    kind: str
    actor: str
    recipient: str
    locale: str
    subject: str
    status: NoticeStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    nomination_id: str | None
    batch_id: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    """A notice leased to one dispatcher: what sending it needs."""

    id: str
    actor: str
    subject: str
    text: str
    html: str
    created_at: datetime
    attempts: int  # this one included


class Outbox:
    """The ``notices`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def add(
        self,
        outgoing: Iterable[Outgoing],
        now: datetime,
        *,
        status: NoticeStatus = NoticeStatus.PENDING,
    ) -> None:
        """Queue rendered notices in this transaction: they commit or vanish with it
        (``suppressed`` ones are kept and never sent)."""
        at = self.sql.dialect.time_in(now)
        pending = status.value
        self.sql.execute_many(
            _INSERT,
            [
                (
                    new_id(),
                    n.dedupe_key,
                    n.kind,
                    n.actor,
                    n.recipient,
                    n.locale,
                    n.subject,
                    n.text,
                    n.html,
                    pending,
                    0,
                    at,
                    n.nomination_id,
                    n.batch_id,
                    at,
                )
                for n in outgoing
            ],
        )

    def list(
        self,
        status: NoticeStatus | None = None,
        *,
        province: str | None = None,
        addressees: Sequence[str] = (),
    ) -> builtins.list[NoticeRecord]:
        """The outbox in creation order, of one status or all.

        With ``province``, only the notices a reader of that province sees: those about
        its nominations, and those about no nomination addressed to one of
        ``addressees`` (its actors; the rule is
        :func:`~peakpilot.states.actors.notice_province`)."""
        conditions: builtins.list[str] = []
        params: builtins.list[Any] = []
        if status is not None:
            conditions.append("status = ?")
            params.append(status.value)
        if province is not None:
            mine = f"actor IN ({placeholders(len(addressees))})" if addressees else "1 = 0"
            conditions.append(
                f"((nomination_id IS NULL AND {mine}) OR nomination_id IN "
                "(SELECT id FROM nominations WHERE province = ?))"
            )
            params.extend((*addressees, province))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return [self._record(row) for row in self.sql.all(f"{_SELECT}{where} ORDER BY id", params)]

    def by_status(self) -> dict[str, int]:
        """How many notices are in each status."""
        rows = self.sql.all("SELECT status, count(*) FROM notices GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    def oldest_pending_at(self) -> datetime | None:
        """When the oldest notice still waiting for its first delivery was written."""
        row = self.sql.one(
            "SELECT min(created_at) FROM notices WHERE status = ?", (NoticeStatus.PENDING.value,)
        )
        return None if row is None else self.sql.dialect.maybe_time_out(row[0])

    def get(self, notice_id: str) -> NoticeRecord:
        """The notice, or NotFound (a malformed id is simply not found)."""
        row = None
        if isinstance(notice_id, str) and ROW_ID.fullmatch(notice_id):
            row = self.sql.one(f"{_SELECT} WHERE id = ?", (notice_id,))
        if row is None:
            raise NotFound(f"no notice {notice_id!r}: check the id (see `peakpilot notices`)")
        return self._record(row)

    def bodies(self, notice_id: str) -> tuple[str, str]:
        """The notice's rendered plain text and HTML."""
        row = self.sql.one("SELECT text, html FROM notices WHERE id = ?", (notice_id,))
        if row is None:
            raise NotFound(f"no notice {notice_id!r}: check the id (see `peakpilot notices`)")
        return row[0], row[1]

    def claim_due(
        self, now: datetime, limit: int, lease: timedelta
    ) -> builtins.list[ClaimedNotice]:
        """Lease up to ``limit`` due notices to this dispatcher and count the attempt."""
        time_in, time_out = self.sql.dialect.time_in, self.sql.dialect.time_out
        lock = " FOR UPDATE SKIP LOCKED" if self.sql.dialect.name == "postgresql" else ""
        rows = self.sql.all(
            "SELECT id, actor, subject, text, html, created_at, attempts FROM notices "
            "WHERE status IN (?, ?) AND next_attempt_at <= ? "
            "AND (claimed_until IS NULL OR claimed_until <= ?) "
            f"ORDER BY next_attempt_at, id LIMIT ?{lock}",
            (*_DUE, time_in(now), time_in(now), limit),
        )
        if not rows:
            return []
        ids = [row[0] for row in rows]
        self.sql.execute(
            "UPDATE notices SET claimed_until = ?, attempts = attempts + 1 "
            f"WHERE id IN ({placeholders(len(ids))})",
            (time_in(now + lease), *ids),
        )
        return [
            ClaimedNotice(id_, actor, subject, text, html, time_out(created), attempts + 1)
            for id_, actor, subject, text, html, created, attempts in rows
        ]

    def record_sent(self, notice_id: str, now: datetime) -> None:
        self.sql.execute(
            "UPDATE notices SET status = ?, sent_at = ?, claimed_until = NULL, last_error = NULL "
            "WHERE id = ?",
            (NoticeStatus.SENT.value, self.sql.dialect.time_in(now), notice_id),
        )

    def record_failure(self, notice_id: str, error: str, *, retry_at: datetime | None) -> None:
        """A failed attempt: ``failed`` and due again at ``retry_at``, or ``dead`` (None)."""
        status = NoticeStatus.DEAD if retry_at is None else NoticeStatus.FAILED
        retry = "" if retry_at is None else ", next_attempt_at = ?"
        self.sql.execute(
            f"UPDATE notices SET status = ?, last_error = ?, claimed_until = NULL{retry} "
            "WHERE id = ?",
            (
                status.value,
                error[:2000],
                *(() if retry_at is None else (self.sql.dialect.time_in(retry_at),)),
                notice_id,
            ),
        )

    def requeue(self, notice_id: str, now: datetime) -> None:
        """Due now again, with fresh attempts."""
        self.sql.execute(
            "UPDATE notices SET status = ?, attempts = 0, next_attempt_at = ?, "
            "claimed_until = NULL WHERE id = ?",
            (NoticeStatus.PENDING.value, self.sql.dialect.time_in(now), notice_id),
        )

    def _record(self, row: Sequence[Any]) -> NoticeRecord:
        dialect = self.sql.dialect
        (id_, kind, actor, recipient, locale, subject, status, attempts, next_attempt_at) = row[:9]
        last_error, nomination_id, batch_id, created_at, sent_at = row[9:]
        return NoticeRecord(
            id_,
            kind,
            actor,
            recipient,
            locale,
            subject,
            NoticeStatus(status),
            attempts,
            dialect.time_out(next_attempt_at),
            last_error,
            nomination_id,
            batch_id,
            dialect.time_out(created_at),
            dialect.maybe_time_out(sent_at),
        )


__all__ = ["ClaimedNotice", "NoticeRecord", "Outbox"]
