"""The outbox: claiming due notices, recording what delivery did, and retrying.

Delivery is at-least-once. A dispatcher claims due notices with a lease (``claimed_until``)
in one short transaction, sends them with no transaction open (an SMTP server that hangs
must not hold the database's write lock), then records each outcome. A dispatcher that
dies after sending and before recording leaves the lease to expire: the notice is sent
again, under the same Message-ID. On PostgreSQL several dispatchers claim disjoint rows
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from peakpilot.notifications.channels import Envelope
from peakpilot.workflow.tables import NoticeRow

PENDING, SENT, FAILED, DEAD = "pending", "sent", "failed", "dead"
STATUSES = (PENDING, SENT, FAILED, DEAD)
LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(minutes=5)
LONGEST_WAIT = timedelta(hours=12)
_JITTER = random.Random()


@dataclass(frozen=True, slots=True)
class Claimed:
    envelope: Envelope
    attempts: int


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter in its upper half: the first retry falls due
    within FIRST_RETRY, each later one waits up to twice as long, at most LONGEST_WAIT."""
    ceiling: timedelta = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)
    jitter: float = (rng or _JITTER).uniform(0.5, 1.0)
    return ceiling * jitter


def claim_due(session: Session, now: datetime, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due notices to this dispatcher and count the attempt."""
    query = (
        select(NoticeRow)
        .where(
            col(NoticeRow.status).in_((PENDING, FAILED)),
            col(NoticeRow.next_attempt_at) <= now,
            or_(col(NoticeRow.claimed_until).is_(None), col(NoticeRow.claimed_until) <= now),
        )
        .order_by(col(NoticeRow.next_attempt_at), col(NoticeRow.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for row in session.exec(query):
        row.claimed_until = now + LEASE
        row.attempts += 1
        claimed.append(
            Claimed(
                Envelope(row.id, row.recipient, row.subject, row.text, row.html, row.created_at),
                row.attempts,
            )
        )
    return claimed


def record_sent(session: Session, notice_id: str, now: datetime) -> None:
    row = session.get(NoticeRow, notice_id)
    if row is not None:
        row.status, row.sent_at, row.claimed_until, row.last_error = SENT, now, None, None


def record_failure(
    session: Session,
    notice_id: str,
    now: datetime,
    error: str,
    *,
    permanent: bool,
    max_attempts: int,
) -> str:
    """Mark a failed attempt: ``failed`` with a backoff, or ``dead``; return the status."""
    row = session.get(NoticeRow, notice_id)
    if row is None:
        return DEAD
    row.last_error = error[:2000]
    row.claimed_until = None
    if permanent or row.attempts >= max_attempts:
        row.status = DEAD
    else:
        row.status = FAILED
        row.next_attempt_at = now + retry_delay(row.attempts)
    return row.status
