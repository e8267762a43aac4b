"""The SQL of one transaction: what the engine reads and writes, nothing it decides.

A :class:`Store` wraps the session of one unit of work: the common statements of
:class:`~peakpilot.workflow.records.Records` on the session's own connection, plus the
ORM queries of the rarer units (timers, the outbox, the audit chain) and the set-based
SQL of a deadline's lapse. Reads return rows or the small fact objects the pure rules
take; every change of a nomination is a compare-and-set on its version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func
from sqlmodel import Session, col, select

from peakpilot.config.program import Program
from peakpilot.errors import Conflict, NotFound
from peakpilot.workflow import audit
from peakpilot.workflow.records import ID, Records
from peakpilot.workflow.sql import SqlDialect
from peakpilot.workflow.tables import (
    AuditRecordRow,
    BatchRow,
    NominationRow,
    NoticeRow,
    QuotaRow,
    TimerRow,
)

# a nomination a sweep moves, as read: id, state, version, head, province, kind, name
_Locked = tuple[str, str, int, str, str, str, str]
# and as it moves: id, version read, state read, previous head, new head
_Move = tuple[str, int, str, str, str]
_SWEEP_RECORD_COLUMNS = (
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
)


@dataclass(frozen=True, slots=True)
class Usage:
    quota: int
    used: int
    names: tuple[str, ...]


class Lapsed(NamedTuple):
    """A nomination a deadline lapsed (a tuple: a deadline may read back 100,000)."""

    id: str
    province: str
    kind: str
    name: str
    from_state: str


class Store(Records):
    """Reads and writes of one transaction, for one programme."""

    def __init__(self, session: Session, program: Program, dialect: SqlDialect) -> None:
        super().__init__(session.connection().connection, dialect, program)
        self.session = session

    # -- nominations --------------------------------------------------------------------

    def history(self, nomination_id: str) -> list[AuditRecordRow]:
        query = (
            select(AuditRecordRow)
            .where(col(AuditRecordRow.nomination_id) == nomination_id)
            .order_by(col(AuditRecordRow.seq))
        )
        return list(self.session.exec(query))

    # -- batches and quotas ---------------------------------------------------------------

    def usage(self, batch_id: str) -> dict[str, Usage]:
        """Each province with a quota in the batch: its quota, and the nominations that use
        its places (names in creation order), in the programme's province order."""
        quotas = self.quotas(batch_id)
        names: dict[str, list[str]] = {province: [] for province in quotas}
        query = (
            select(NominationRow.province, NominationRow.name)
            .where(
                col(NominationRow.batch_id) == batch_id,
                col(NominationRow.state).in_(self.program.quota_counts),
            )
            .order_by(col(NominationRow.id))
        )
        for province, name in self.session.exec(query):
            names.setdefault(province, []).append(name)
        return {
            province: Usage(quotas[province], len(names[province]), tuple(names[province]))
            for province in self.program.provinces
            if province in quotas
        }

    def open_batch(self, row: BatchRow, quotas: dict[str, int]) -> None:
        row.position = (self.session.exec(select(func.max(col(BatchRow.position)))).one() or 0) + 1
        self.session.add(row)
        self.session.flush()
        self.session.add_all(
            QuotaRow(batch_id=row.id, province=province, quota=quota)
            for province, quota in quotas.items()
        )

    def lapse(
        self,
        batch_id: str,
        from_states: Iterable[str],
        to_state: str,
        *,
        event: str,
        actor: str,
        at: datetime,
        limit: int,
    ) -> list[Lapsed]:
        """Move up to ``limit`` nominations of the batch that are in ``from_states`` to
        ``to_state``, one audit record each, and return them (fewer than ``limit``: none
        was left), as a shortfall notice lists them.

        Set-based, so that a deadline's sweep costs a few statements per chunk rather than
        a few per nomination: one locking read, one INSERT of all the records, one UPDATE
        of all the nominations, each given the chunk's rows as one table of values (SQL
        text on the driver's cursor: 5,000 rows through the ORM or ``executemany`` cost
        more than the database's own work).
        """
        rows = self._lock_in_states(batch_id, tuple(from_states), limit)
        if not rows:
            return []
        record_hash = audit.sweep_hasher(
            event=event, to_state=to_state, actor=actor, at=at, reason=None, batch_id=batch_id
        )
        # (id, expected version, from state, previous head, new head): what the records
        # hold, and what the compare-and-set expects and writes
        moves = [
            (row[0], row[2], row[1], row[3], record_hash(row[0], row[2] + 1, row[1], row[3]))
            for row in rows
        ]
        self._append_sweep_records(moves, batch_id, to_state, event=event, actor=actor, at=at)
        self._advance(moves, batch_id, to_state, event=event, at=at)
        return [Lapsed(row[0], row[4], row[5], row[6], row[1]) for row in rows]

    def _lock_in_states(
        self, batch_id: str, states: tuple[str, ...], limit: int
    ) -> Sequence[_Locked]:
        """Up to ``limit`` nominations of the batch in ``states``, locked (PostgreSQL;
        SQLite's write lock already serialises): id, state, version, audit head, and what
        a shortfall notice shows (province, kind, name).

        Through ``ix_nominations_batch_state``, so that each chunk of a sweep takes the
        rows next to the last chunk's and never walks past those already moved. SQLite
        is told so (``INDEXED BY``): when every nomination of the batch is in one state,
        its statistics make a table scan look as cheap, and each chunk would then scan
        past every nomination the chunks before it moved (0.24 s of 20 chunks' reads)."""
        hint = " INDEXED BY ix_nominations_batch_state" if self.dialect.name == "sqlite" else ""
        return self.execute(
            f"SELECT id, state, version, audit_head, province, kind, name FROM nominations{hint} "
            f"WHERE batch_id = ? AND state IN ({', '.join('?' * len(states))}) "
            f"LIMIT ?{self.dialect.for_update}",
            (batch_id, *states, limit),
        ).fetchall()

    def _append_sweep_records(
        self,
        moves: Sequence[_Move],
        batch_id: str,
        to_state: str,
        *,
        event: str,
        actor: str,
        at: datetime,
    ) -> None:
        """The next record of each nomination in ``moves``, in one INSERT: its primary key
        (nomination, seq) refuses a second record of the same version, written by
        anyone."""
        shared = (event, to_state, actor, self.dialect.time_in(at), None, batch_id)
        for table, params in self.values_table(
            (
                ("nomination_id", "text"),
                ("seq", "integer"),
                ("from_state", "text"),
                ("prev_hash", "text"),
                ("hash", "text"),
            ),
            [(nid, version + 1, state, head, new) for nid, version, state, head, new in moves],
        ):
            self.execute(
                f"INSERT INTO audit_records ({', '.join(_SWEEP_RECORD_COLUMNS)}) "
                "SELECT v.nomination_id, v.seq, v.from_state, v.prev_hash, v.hash, "
                f"?, ?, ?, ?, ?, ? FROM {table} AS v",
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
    ) -> None:
        """Move the nominations of ``moves`` on to the records just appended, in one
        UPDATE that is their compare-and-set: a nomination moves only if it still has the
        version and state it was read with, and takes the new record's hash as its head.
        Conflict unless every one of them moved (the caller's transaction then keeps
        nothing of the chunk)."""
        moved = 0
        for table, params in self.values_table(
            (("id", "text"), ("version", "integer"), ("state", "text"), ("head", "text")),
            [(nid, version, state, new) for nid, version, state, _, new in moves],
        ):
            moved += self.execute(
                "UPDATE nominations SET state = ?, version = v.version + 1, audit_head = v.head, "
                f"updated_at = ? FROM {table} AS v WHERE nominations.id = v.id "
                "AND nominations.version = v.version AND nominations.state = v.state",
                (to_state, self.dialect.time_in(at), *params),
            ).rowcount
        if moved != len(moves):
            raise Conflict(
                f"{len(moves) - moved} of {len(moves)} nominations of batch {batch_id} changed "
                f"while {event} moved them, and none of them was moved: try again"
            )

    def lapsed_count(self, batch_id: str, event: str) -> int:
        """How many nominations ``event`` (a deadline's sweep) moved in the batch, in
        whichever transactions or processes (an index-only count)."""
        row = self.execute(
            "SELECT count(*) FROM audit_records WHERE batch_id = ? AND event = ?",
            (batch_id, event),
        ).fetchone()
        assert row is not None  # count(*) always answers
        return int(row[0])

    def lapsed(self, batch_id: str, event: str) -> list[Lapsed]:
        """The nominations that ``event`` (a deadline's sweep) moved in the batch, in
        creation (id) order, read back from their audit records: a sweep that ran in
        several transactions, or in several processes, is listed whole. Sorted here, as
        :class:`~peakpilot.workflow.timers.LapseMemory`'s list is: the same order
        whichever way the list was made, whatever the database's collation."""
        rows = self.execute(
            "SELECT n.id, n.province, n.kind, n.name, r.from_state "
            "FROM audit_records r JOIN nominations n ON n.id = r.nomination_id "
            "WHERE r.batch_id = ? AND r.event = ?",
            (batch_id, event),
        ).fetchall()
        return sorted(map(Lapsed._make, rows))

    # -- timers -----------------------------------------------------------------------------

    def next_due_timer(self, now: datetime) -> TimerRow | None:
        """The earliest due pending timer, locked; one another daemon holds is skipped."""
        query = (
            select(TimerRow)
            .where(col(TimerRow.status) == "pending", col(TimerRow.due_at) <= now)
            .order_by(col(TimerRow.due_at), col(TimerRow.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return self.session.exec(query).first()

    def finish_timer(self, timer: TimerRow, now: datetime) -> None:
        timer.status, timer.done_at = "done", now

    def later_due_reminder(self, batch_id: str, due_at: datetime, now: datetime) -> bool:
        query = select(TimerRow.id).where(
            col(TimerRow.batch_id) == batch_id,
            col(TimerRow.kind) == "reminder",
            col(TimerRow.status) == "pending",
            col(TimerRow.due_at) > due_at,
            col(TimerRow.due_at) <= now,
        )
        return self.session.exec(query).first() is not None

    def pending_timers(
        self, *, batch: str | None = None, nomination: str | None = None
    ) -> list[TimerRow]:
        query = select(TimerRow).where(col(TimerRow.status) == "pending")
        if batch is not None:
            query = query.where(col(TimerRow.batch_id) == batch)
        if nomination is not None:
            query = query.where(col(TimerRow.nomination_id) == nomination)
        return list(self.session.exec(query.order_by(col(TimerRow.due_at), col(TimerRow.id))))

    def next_due_at(self) -> datetime | None:
        query = select(func.min(col(TimerRow.due_at))).where(col(TimerRow.status) == "pending")
        return self.session.exec(query).one()

    # -- the outbox -----------------------------------------------------------------------

    def notices(self, status: str | None) -> list[NoticeRow]:
        query = select(NoticeRow)
        if status is not None:
            query = query.where(col(NoticeRow.status) == status)
        return list(self.session.exec(query.order_by(col(NoticeRow.id))))

    def notice(self, notice_id: str) -> NoticeRow:
        row = None
        if isinstance(notice_id, str) and ID.fullmatch(notice_id):
            row = self.session.get(NoticeRow, notice_id)
        if row is None:
            raise NotFound(f"no notice {notice_id!r}: check the id (see `peakpilot notices`)")
        return row

    # -- idempotency ----------------------------------------------------------------------

    # -- the audit chain ------------------------------------------------------------------

    def chain_heads(self) -> list[audit.ChainHead]:
        query = select(NominationRow.id, NominationRow.state, NominationRow.audit_head)
        return [
            audit.ChainHead(*row)
            for row in self.session.exec(query.order_by(col(NominationRow.id)))
        ]

    def chain_records(self) -> Iterator[audit.ChainRecord]:
        """Every audit record, in chain order, streamed (a server-side cursor on PostgreSQL)."""
        table = AuditRecordRow.__table__  # type: ignore[attr-defined]
        query = (
            select(*(table.c[name] for name in audit.ChainRecord.__slots__))
            .order_by(table.c.nomination_id, table.c.seq)
            .execution_options(yield_per=5000)
        )
        result = self.session.exec(query)
        try:
            for row in result:
                yield audit.ChainRecord(*row)
        finally:
            result.close()

    def audit_record_count(self) -> int:
        return self.session.exec(select(func.count()).select_from(AuditRecordRow)).one()
