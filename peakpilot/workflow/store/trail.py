"""The audit trail's table: appending records, reading one nomination's history, and
streaming every chain for verification. Append-only: nothing here updates a record."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from peakpilot.workflow import audit
from peakpilot.workflow.store.driver import Statements, placeholders

COLUMNS = (
    "nomination_id",
    "seq",
    "event",
    "from_state",
    "to_state",
    "actor",
    "at",
    "reason",
    "batch_id",
    "prev_hash",
    "hash",
    "data",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_records"
_INSERT = f"INSERT INTO audit_records ({', '.join(COLUMNS)}) VALUES ({placeholders(len(COLUMNS))})"
_STREAMED = 5_000  # records fetched at a time while verifying


def new_record(
    *,
    nomination_id: str,
    seq: int,
    event: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    reason: str | None,
    batch_id: str,
    prev_hash: str,
    data: Mapping[str, Any] | None = None,
) -> audit.ChainRecord:
    """The next record of a nomination's chain, its hash computed."""
    digest = audit.record_hash(
        nomination_id=nomination_id,
        seq=seq,
        event=event,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        at=at,
        reason=reason,
        batch_id=batch_id,
        prev_hash=prev_hash,
        data=data,
    )
    return audit.ChainRecord(
        nomination_id,
        seq,
        event,
        from_state,
        to_state,
        actor,
        at,
        reason,
        batch_id,
        prev_hash,
        digest,
        None if data is None else audit.canonical_data(data),
    )


class AuditTrail:
    """The ``audit_records`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def append(self, records: Sequence[audit.ChainRecord]) -> None:
        time_in = self.sql.dialect.time_in
        self.sql.execute_many(
            _INSERT,
            [
                (
                    r.nomination_id,
                    r.seq,
                    r.event,
                    r.from_state,
                    r.to_state,
                    r.actor,
                    time_in(r.at),
                    r.reason,
                    r.batch_id,
                    r.prev_hash,
                    r.hash,
                    audit.data_text(r.data),
                )
                for r in records
            ],
        )

    def history(self, nomination_id: str) -> list[audit.ChainRecord]:
        """One nomination's records, oldest first."""
        rows = self.sql.all(f"{_SELECT} WHERE nomination_id = ? ORDER BY seq", (nomination_id,))
        return [self._record(row) for row in rows]

    def chain_heads(self) -> list[audit.ChainHead]:
        rows = self.sql.all("SELECT id, state, audit_head FROM nominations ORDER BY id")
        return [audit.ChainHead(*row) for row in rows]

    def chain_records(self) -> Iterator[audit.ChainRecord]:
        """Every record in chain order (nomination, seq), fetched a few thousand at a time
        (on PostgreSQL through a server-side cursor, so memory stays flat)."""
        rows = self.sql.stream(f"{_SELECT} ORDER BY nomination_id, seq", size=_STREAMED)
        for row in rows:
            yield self._record(row)

    def event_data(self, event: str, states: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """(nomination, data) of every ``event`` record of the nominations now in
        ``states`` (the progress reports of the pilots, say), oldest first."""
        rows = self.sql.all(
            "SELECT a.nomination_id, a.data FROM audit_records a "
            "JOIN nominations n ON n.id = a.nomination_id "
            f"WHERE a.event = ? AND n.state IN ({', '.join('?' * len(states))}) "
            "AND a.data IS NOT NULL ORDER BY a.nomination_id, a.seq",
            (event, *states),
        )
        return [(str(nomination), json.loads(str(data))) for nomination, data in rows]

    def last_times(self, event: str, states: Sequence[str]) -> dict[str, datetime]:
        """When ``event`` last happened to each nomination now in ``states``."""
        rows = self.sql.all(
            "SELECT a.nomination_id, max(a.at) FROM audit_records a "
            "JOIN nominations n ON n.id = a.nomination_id "
            f"WHERE a.event = ? AND n.state IN ({', '.join('?' * len(states))}) "
            "GROUP BY a.nomination_id",
            (event, *states),
        )
        time_out = self.sql.dialect.time_out
        return {str(nomination): time_out(at) for nomination, at in rows}

    def counts_by_event(self) -> dict[str, int]:
        """How many records each event wrote, ever (the trail is append-only)."""
        rows = self.sql.all("SELECT event, count(*) FROM audit_records GROUP BY event")
        return {str(event): int(count) for event, count in rows}

    def count(self) -> int:
        return self.sql.count("SELECT count(*) FROM audit_records")

    def _record(self, row: Sequence[Any]) -> audit.ChainRecord:
        (
            nomination_id,
            seq,
            event,
            from_state,
            to_state,
            actor,
            at,
            reason,
            batch_id,
            prev,
            hash_,
            data,
        ) = row
        return audit.ChainRecord(
            nomination_id,
            seq,
            event,
            from_state,
            to_state,
            actor,
            self.sql.dialect.time_out(at),
            reason,
            batch_id,
            prev,
            hash_,
            None if data is None else json.loads(str(data)),
        )


__all__ = ["COLUMNS", "AuditTrail", "new_record"]
