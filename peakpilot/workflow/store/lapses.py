"""Moves of many nominations by one system event as set-based SQL: a deadline's lapse
(the nominations of a batch still in the states a deadline ends) and a programme
change's migration (those in a state the new version maps elsewhere), moved a chunk at a
time, each with its audit record.

A chunk is three statements, whatever its size: one locking read, one INSERT of all the
records, one UPDATE of all the nominations, each given the chunk's rows as one table of
values. 5,000 rows through the ORM or ``executemany`` cost more than the database's own
work (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from peakpilot.errors import Conflict
from peakpilot.workflow import audit
from peakpilot.workflow.store.driver import Statements, placeholders

LAPSE_CHUNK = 5_000  # the most nominations one transaction of a deadline's lapse moves
# a nomination a chunk moves, as read: id, state, version, head, province, kind, name
_Locked = tuple[str, str, int, str, str, str, str]
# and as it moves: id, version read, state read, previous head, new head
_Move = tuple[str, int, str, str, str]
_RECORD_COLUMNS = (
    "nomination_id",
    "seq",
    "from_state",
    "prev_hash",
    "hash",
    "event",
    "to_state",
    "actor",
    "at",
    "reason",
    "batch_id",
    "data",
)


# A nomination a deadline lapsed: (id, province, kind, name, from_state). A plain tuple
# rather than a NamedTuple: a deadline keeps 100,000 of them until its closing
# transaction, and the garbage collector stops tracking a tuple of strings, never a tuple
# subclass; the NamedTuples' survivors set off full collections that took ~10% of a tick.
Lapsed = tuple[str, str, str, str, str]


class Lapses:
    """Moves of many nominations by one system event, and what such a move did."""

    def __init__(
        self, statements: Statements, after_read: Callable[[Sequence[str]], None] | None = None
    ) -> None:
        self.sql = statements
        self._after_read = after_read

    def lapse(
        self,
        batch_id: str,
        from_states: Sequence[str],
        to_state: str,
        *,
        event: str,
        actor: str,
        at: datetime,
        limit: int,
        program_version: int,
        data: Mapping[str, Any] | None = None,
    ) -> list[Lapsed]:
        """Move up to ``limit`` nominations of the batch that are in ``from_states`` to
        ``to_state``, one audit record each (carrying ``data``), and return them (fewer
        than ``limit``: none was left). Conflict, and nothing of the chunk kept, unless
        every one moved."""
        rows = self._lock_in_states(batch_id, tuple(from_states), limit)
        if not rows:
            return []
        if self._after_read is not None:
            self._after_read([row[0] for row in rows])
        record_hash = audit.sweep_hasher(
            event=event,
            to_state=to_state,
            actor=actor,
            at=at,
            reason=None,
            batch_id=batch_id,
            data=data,
        )
        moves = [
            (row[0], row[2], row[1], row[3], record_hash(row[0], row[2] + 1, row[1], row[3]))
            for row in rows
        ]
        self._append_records(
            moves, batch_id, to_state, event=event, actor=actor, at=at, data=audit.data_text(data)
        )
        self._advance(moves, batch_id, to_state, event=event, at=at, version=program_version)
        return [(row[0], row[4], row[5], row[6], row[1]) for row in rows]

    def _lock_in_states(
        self, batch_id: str, states: tuple[str, ...], limit: int
    ) -> Sequence[_Locked]:
        """Up to ``limit`` nominations of the batch in ``states``, locked (PostgreSQL;
        SQLite's write lock already serialises), with what a shortfall notice shows.

        Through ``ix_nominations_batch_state``, so that each chunk takes the rows next to
        the last chunk's and never walks past those already moved. SQLite is told so
        (``INDEXED BY``): when every nomination of the batch is in one state, its
        statistics make a table scan look as cheap, and each chunk would then scan past
        every nomination the chunks before it moved (0.24 s of 20 chunks' reads)."""
        dialect = self.sql.dialect
        hint = " INDEXED BY ix_nominations_batch_state" if dialect.name == "sqlite" else ""
        return self.sql.all(  # type: ignore[return-value]
            f"SELECT id, state, version, audit_head, province, kind, name FROM nominations{hint} "
            f"WHERE batch_id = ? AND state IN ({placeholders(len(states))}) "
            f"LIMIT ?{dialect.for_update}",
            (batch_id, *states, limit),
        )

    def _append_records(
        self,
        moves: Sequence[_Move],
        batch_id: str,
        to_state: str,
        *,
        event: str,
        actor: str,
        at: datetime,
        data: str | None,
    ) -> None:
        """The next record of each nomination in ``moves``, in one INSERT: its primary key
        (nomination, seq) refuses a second record of the same version, written by
        anyone."""
        shared = (event, to_state, actor, self.sql.dialect.time_in(at), None, batch_id, data)
        for table, params in self.sql.values_table(
            (
                ("nomination_id", "text"),
                ("seq", "integer"),
                ("from_state", "text"),
                ("prev_hash", "text"),
                ("hash", "text"),
            ),
            [(nid, version + 1, state, head, new) for nid, version, state, head, new in moves],
        ):
            self.sql.execute(
                f"INSERT INTO audit_records ({', '.join(_RECORD_COLUMNS)}) "
                "SELECT v.nomination_id, v.seq, v.from_state, v.prev_hash, v.hash, "
                f"?, ?, ?, ?, ?, ?, ? FROM {table} AS v",
                (*shared, *params),
            )

    def _advance(
        self,
        moves: Sequence[_Move],
        batch_id: str,
        to_state: str,
        *,
        event: str,
        at: datetime,
        version: int,
    ) -> None:
        """Move the nominations of ``moves`` on to the records just appended, in one
        UPDATE that is their compare-and-set: a nomination moves only if it still has the
        version and state it was read with, and takes the new record's hash as its head."""
        moved = 0
        for table, params in self.sql.values_table(
            (("id", "text"), ("version", "integer"), ("state", "text"), ("head", "text")),
            [(nid, version, state, new) for nid, version, state, _, new in moves],
        ):
            moved += self.sql.execute(
                "UPDATE nominations SET state = ?, version = v.version + 1, audit_head = v.head, "
                f"updated_at = ?, program_version = ? FROM {table} AS v "
                "WHERE nominations.id = v.id "
                "AND nominations.version = v.version AND nominations.state = v.state",
                (to_state, self.sql.dialect.time_in(at), version, *params),
            ).rowcount
        if moved != len(moves):
            raise Conflict(
                f"{len(moves) - moved} of {len(moves)} nominations of batch {batch_id} changed "
                f"while {event} moved them, and none of them was moved: try again"
            )

    def count(self, batch_id: str, event: str) -> int:
        """How many nominations ``event`` moved in the batch, in whichever transactions
        or processes (an index-only count)."""
        return self.sql.count(
            "SELECT count(*) FROM audit_records WHERE batch_id = ? AND event = ?",
            (batch_id, event),
        )

    def read_back(self, batch_id: str, event: str) -> list[Lapsed]:
        """The nominations ``event`` moved in the batch, in creation (id) order, from
        their audit records: a sweep that ran in several transactions or processes is
        listed whole. Sorted here, whatever the database's collation."""
        rows = self.sql.all(
            "SELECT n.id, n.province, n.kind, n.name, r.from_state "
            "FROM audit_records r JOIN nominations n ON n.id = r.nomination_id "
            "WHERE r.batch_id = ? AND r.event = ?",
            (batch_id, event),
        )
        return sorted(
            (id_, province, kind, name, state) for id_, province, kind, name, state in rows
        )


__all__ = ["LAPSE_CHUNK", "Lapsed", "Lapses"]
