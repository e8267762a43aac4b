"""Idempotency keys: the first result of a ``fire`` made with a key, replayed on retries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peakpilot.workflow.store.driver import Statements


@dataclass(frozen=True, slots=True)
class RememberedCall:
    """The first result of a ``fire`` made with an idempotency key."""

    nomination_id: str
    event: str
    actor: str
    result: str  # the snapshot, as JSON


class RememberedCalls:
    """The ``idempotency_keys`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def get(self, key: str) -> RememberedCall | None:
        row = self.sql.one(
            "SELECT nomination_id, event, actor, result FROM idempotency_keys WHERE key = ?",
            (key,),
        )
        return None if row is None else RememberedCall(*row)

    def remember(self, key: str, call: RememberedCall, now: datetime) -> None:
        """Keep the call's result; a concurrent call with the same key that committed
        first makes this a UniqueViolation (a Conflict the caller resolves by replaying)."""
        self.sql.execute(
            "INSERT INTO idempotency_keys (key, nomination_id, event, actor, result, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                key,
                call.nomination_id,
                call.event,
                call.actor,
                call.result,
                self.sql.dialect.time_in(now),
            ),
        )


__all__ = ["RememberedCall", "RememberedCalls"]
