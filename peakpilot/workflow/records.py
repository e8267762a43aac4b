"""The statements of a transition, as SQL text on the driver's own cursor.

A transition is a handful of small statements and one durable commit. Building ORM
objects and SQL expression trees for each statement cost more than the database's own
work (docs/BENCHMARKS.md has the profile), so the statements every command makes (a
nomination, its batch, the province's quota, the compare-and-set, the audit record, the
outbox rows) are written here once as SQL text, run through the DBAPI cursor of the
transaction's connection, and return frozen records. :class:`~peakpilot.workflow.store.Store`
extends :class:`Records` with the ORM work of the rarer units, on the same connection.

Values cross the boundary through SQLAlchemy's own type processors for the columns' types,
so a row written here reads back through the ORM unchanged, and the other way round.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.pool import PoolProxiedConnection

from peakpilot.config.program import Program
from peakpilot.errors import Conflict, NotFound, Refused
from peakpilot.notifications.compose import Outgoing
from peakpilot.states.guards import BatchFacts, QuotaFacts, TargetFacts
from peakpilot.workflow import audit
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.reads import BATCH_COLUMNS, CLOSED, OPEN, BatchRecord, Reads
from peakpilot.workflow.sql import SqlDialect

ID = re.compile(r"[0-9a-f]{16}")  # new_id() ids, matched whole

if TYPE_CHECKING:
    from peakpilot.workflow.tables import TimerRow

_NOMINATION_COLUMNS = (
    "id, batch_id, province, kind, name, level, state, version, audit_head, created_at, updated_at"
)
_NOMINATION_COLUMN_COUNT = len(_NOMINATION_COLUMNS.split(", "))
_NOMINATION = f"SELECT {_NOMINATION_COLUMNS} FROM nominations WHERE id = ?"
_NOMINATION_AND_BATCH = (
    f"SELECT {', '.join('n.' + c for c in _NOMINATION_COLUMNS.split(', '))}, "
    f"{', '.join('b.' + c for c in BATCH_COLUMNS.split(', '))} "
    "FROM nominations n JOIN batches b ON b.id = n.batch_id WHERE n.id = ?"
)
_AUDIT_COLUMNS = (
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
)
_NOTICE_COLUMNS = (
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
_TIMER_COLUMNS = (
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


@dataclass(frozen=True, slots=True)
class NominationRecord:
    id: str
    batch_id: str
    province: str
    kind: str
    name: str
    level: str
    state: str
    version: int
    audit_head: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RememberedCall:
    """The first result of a ``fire`` made with an idempotency key."""

    nomination_id: str
    event: str
    actor: str
    result: str  # the snapshot, as JSON


class Records(Reads):
    """The common statements of one transaction, on the connection that holds it."""

    def __init__(
        self, connection: PoolProxiedConnection, dialect: SqlDialect, program: Program
    ) -> None:
        super().__init__(connection, dialect)
        self.program = program

    def values_table(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, list[Any]]]:
        """:meth:`SqlDialect.values_table` within this connection's parameter limit."""
        return self.dialect.values_table(columns, rows, most_params=self._most_params)

    @cached_property
    def _most_params(self) -> int:
        """The most parameters one statement may bind: SQLite's limit (32,766 unless
        built otherwise; what the driver reports), PostgreSQL's 65,535."""
        driver = self.connection.driver_connection
        getlimit = getattr(driver, "getlimit", None)
        if self.dialect.name == "sqlite" and getlimit is not None:
            return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return 32_766 if self.dialect.name == "sqlite" else 65_535

    # -- nominations --------------------------------------------------------------------

    def nomination(self, nomination_id: str) -> NominationRecord:
        """The nomination, or NotFound (a malformed id is simply not found)."""
        return self._nomination(self._by_id(_NOMINATION, nomination_id))

    def nomination_and_batch(self, nomination_id: str) -> tuple[NominationRecord, BatchRecord]:
        """The nomination and its batch, in one statement: every transition reads both
        (on PostgreSQL a statement is a round trip), or NotFound as :meth:`nomination`."""
        row = self._by_id(_NOMINATION_AND_BATCH, nomination_id)
        split = _NOMINATION_COLUMN_COUNT
        return self._nomination(row[:split]), self._batch(row[split:])

    def _by_id(self, statement: str, nomination_id: str) -> Sequence[Any]:
        row = None
        if isinstance(nomination_id, str) and ID.fullmatch(nomination_id):
            row = self.execute(statement, (nomination_id,)).fetchone()
        if row is None:
            raise NotFound(f"no nomination {nomination_id!r}: check the id (see `peakpilot list`)")
        return row  # type: ignore[no-any-return]

    def nominations(
        self, *, state: str | None, province: str | None, batch: str | None
    ) -> list[NominationRecord]:
        """Nominations in creation order, filtered by whichever of the three are given."""
        conditions, params = [], []
        for column, value in (("state", state), ("province", province), ("batch_id", batch)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self.execute(
            f"SELECT {_NOMINATION_COLUMNS} FROM nominations{where} ORDER BY id", params
        ).fetchall()
        return [self._nomination(row) for row in rows]

    def _nomination(self, row: Sequence[Any]) -> NominationRecord:
        time_out = self.dialect.time_out
        (id_, batch_id, province, kind, name, level, state, version, head, created, updated) = row
        return NominationRecord(
            id_,
            batch_id,
            province,
            kind,
            name,
            level,
            state,
            version,
            head,
            time_out(created),
            time_out(updated),
        )

    def name_taken(self, batch_id: str, province: str, kind: str, name: str) -> bool:
        return (
            self.execute(
                "SELECT 1 FROM nominations "
                "WHERE batch_id = ? AND province = ? AND kind = ? AND name = ?",
                (batch_id, province, kind, name),
            ).fetchone()
            is not None
        )

    def create(self, row: NominationRecord, actor: str) -> None:
        """Insert a new nomination with the ``nominate`` record that starts its trail."""
        record = audit_values(
            nomination_id=row.id,
            seq=1,
            event="nominate",
            from_state=None,
            to_state=row.state,
            actor=actor,
            at=row.created_at,
            reason=None,
            batch_id=row.batch_id,
            prev_hash=audit.GENESIS,
        )
        time_in = self.dialect.time_in
        self.execute(
            f"INSERT INTO nominations ({_NOMINATION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.batch_id,
                row.province,
                row.kind,
                row.name,
                row.level,
                row.state,
                row.version,
                record["hash"],
                time_in(row.created_at),
                time_in(row.updated_at),
            ),
        )
        self._insert_audit([record])

    def move(
        self,
        row: NominationRecord,
        *,
        event: str,
        actor: str,
        at: datetime,
        reason: str | None,
        to_state: str,
        batch_id: str,
    ) -> None:
        """Record ``event`` and move the nomination, if nobody moved it since it was read."""
        version = row.version + 1
        record = audit_values(
            nomination_id=row.id,
            seq=version,
            event=event,
            from_state=row.state,
            to_state=to_state,
            actor=actor,
            at=at,
            reason=reason,
            batch_id=batch_id,
            prev_hash=row.audit_head,
        )
        moved = self.execute(
            "UPDATE nominations SET state = ?, version = ?, audit_head = ?, batch_id = ?, "
            "updated_at = ? WHERE id = ? AND version = ?",
            (
                to_state,
                version,
                record["hash"],
                batch_id,
                self.dialect.time_in(at),
                row.id,
                row.version,
            ),
        )
        if moved.rowcount != 1:
            raise Conflict(
                f"nomination {row.id} was changed by someone else while you fired {event}: "
                "reload it and try again"
            )
        self._insert_audit([record])

    def _insert_audit(self, records: Sequence[dict[str, Any]]) -> None:
        time_in = self.dialect.time_in
        self.execute_many(
            f"INSERT INTO audit_records ({', '.join(_AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_AUDIT_COLUMNS))})",
            [tuple(time_in(r[c]) if c == "at" else r[c] for c in _AUDIT_COLUMNS) for r in records],
        )

    # -- batches and quotas ---------------------------------------------------------------

    def batch_for_nomination(self, batch_id: str | None, province: str) -> BatchRecord:
        """The named batch, or the newest open batch giving ``province`` a quota."""
        if batch_id is not None:
            return self.batch(batch_id)
        row = self.execute(
            f"SELECT {', '.join('b.' + c for c in BATCH_COLUMNS.split(', '))} FROM batches b "
            "JOIN quota_allocations q ON q.batch_id = b.id "
            "WHERE b.status = ? AND q.province = ? ORDER BY b.position DESC LIMIT 1",
            (OPEN, province),
        ).fetchone()
        newest = self._batch(row) if row is not None else self.newest_batch(open_only=True)
        if newest is None:
            raise Refused("cannot nominate: no batch is open")
        return newest

    def batch_facts(self, row: BatchRecord) -> BatchFacts:
        return BatchFacts(
            id=row.id,
            deadline_at=row.deadline_at.astimezone(self.program.timezone),
            is_open=row.status == OPEN,
        )

    def close_batch(self, batch_id: str, now: datetime) -> None:
        """The deadline work ran: refuse what needs an open batch, drop pending reminders."""
        at = self.dialect.time_in(now)
        self.execute(
            "UPDATE batches SET status = ?, closed_at = ? WHERE id = ?", (CLOSED, at, batch_id)
        )
        self.execute(
            "UPDATE timers SET status = 'cancelled', done_at = ? "
            "WHERE batch_id = ? AND kind = 'reminder' AND status = 'pending'",
            (at, batch_id),
        )

    def quota(self, batch_id: str, province: str, *, lock: bool) -> QuotaFacts | None:
        """The province's quota and its use. With ``lock``, submissions of one province
        queue on its quota row (PostgreSQL; SQLite's write lock already serialises)."""
        row = self.execute(
            "SELECT quota FROM quota_allocations WHERE batch_id = ? AND province = ?"
            + (self.dialect.for_update if lock else ""),
            (batch_id, province),
        ).fetchone()
        if row is None:
            return None
        counted = self.execute(self._count_used, (batch_id, province, *self._counted)).fetchone()
        assert counted is not None  # count(*) always answers
        return QuotaFacts(quota=row[0], used=counted[0])

    @cached_property
    def _counted(self) -> tuple[str, ...]:
        return tuple(self.program.quota_counts)

    @cached_property
    def _count_used(self) -> str:
        return (
            "SELECT count(*) FROM nominations WHERE batch_id = ? AND province = ? "
            f"AND state IN ({', '.join('?' * len(self._counted))})"
        )

    def carry_over_target(self, row: NominationRecord) -> TargetFacts:
        """The newest open batch other than the nomination's own, as the rules see it."""
        found = self.execute(
            f"SELECT {BATCH_COLUMNS} FROM batches WHERE status = ? AND id <> ? "
            "ORDER BY position DESC LIMIT 1",
            (OPEN, row.batch_id),
        ).fetchone()
        if found is None:
            return TargetFacts(batch=None, quota=None, name_taken=False)
        newest = self._batch(found)
        quota = self.execute(
            "SELECT quota FROM quota_allocations WHERE batch_id = ? AND province = ?",
            (newest.id, row.province),
        ).fetchone()
        return TargetFacts(
            batch=self.batch_facts(newest),
            quota=None if quota is None else quota[0],
            name_taken=self.name_taken(newest.id, row.province, row.kind, row.name),
        )

    # -- timers and the outbox --------------------------------------------------------------

    def add_timers(self, timers: Iterable[TimerRow]) -> None:
        time_in = self.dialect.time_in
        self.execute_many(
            f"INSERT INTO timers ({', '.join(_TIMER_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_TIMER_COLUMNS))})",
            [
                (
                    t.id,
                    t.unique_key,
                    t.kind,
                    time_in(t.due_at),
                    t.batch_id,
                    t.province,
                    t.nomination_id,
                    t.payload,
                    t.status,
                    time_in(t.created_at),
                )
                for t in timers
            ],
        )

    def add_notices(self, outgoing: Iterable[Outgoing], now: datetime) -> None:
        """Queue rendered notices in this transaction: they commit or vanish with it."""
        at = self.dialect.time_in(now)
        self.execute_many(
            f"INSERT INTO notices ({', '.join(_NOTICE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_NOTICE_COLUMNS))})",
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
                    "pending",
                    0,
                    at,
                    n.nomination_id,
                    n.batch_id,
                    at,
                )
                for n in outgoing
            ],
        )

    # -- idempotency ----------------------------------------------------------------------

    def remembered(self, key: str) -> RememberedCall | None:
        row = self.execute(
            "SELECT nomination_id, event, actor, result FROM idempotency_keys WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else RememberedCall(*row)

    def remember(self, key: str, call: RememberedCall, now: datetime) -> None:
        self.execute(
            "INSERT INTO idempotency_keys (key, nomination_id, event, actor, result, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                key,
                call.nomination_id,
                call.event,
                call.actor,
                call.result,
                self.dialect.time_in(now),
            ),
        )


def audit_values(
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
) -> dict[str, Any]:
    """The columns of one audit record, its hash included."""
    values: dict[str, Any] = {
        "nomination_id": nomination_id,
        "seq": seq,
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "actor": actor,
        "at": at,
        "reason": reason,
        "batch_id": batch_id,
        "prev_hash": prev_hash,
    }
    values["hash"] = audit.record_hash(**values)
    return values
