"""The SQL of one transaction: what the engine reads and writes, nothing it decides.

A :class:`Store` wraps the session of one unit of work: the common statements of
:class:`~peakpilot.workflow.records.Records` on the session's own connection, plus the
ORM queries of the rarer units (timers, the outbox, bulk lapse, the audit chain). Reads
return rows or the small fact objects the pure rules take; every change of a nomination
is a compare-and-set on its version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import func, update
from sqlalchemy import select as sa_select
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

_Locked = sa.Row[str, str, int, str]  # a nomination a sweep moves: id, state, version, head


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
    ) -> int:
        """Move up to ``limit`` nominations of the batch that are in ``from_states`` to
        ``to_state``, one audit record each, and return how many moved (fewer than
        ``limit``: none was left).

        Set-based, so that a deadline's sweep costs a few statements per chunk rather than
        a few per nomination: one locking read, one bulk INSERT of the records, one UPDATE
        of the nominations.
        """
        rows = self._lock_in_states(batch_id, tuple(from_states), limit)
        if rows:
            self._append_sweep_records(rows, batch_id, to_state, event=event, actor=actor, at=at)
            self._advance_to_records(rows, batch_id, to_state, event=event, at=at)
        return len(rows)

    def _lock_in_states(
        self, batch_id: str, states: tuple[str, ...], limit: int
    ) -> Sequence[_Locked]:
        """Up to ``limit`` nominations of the batch in ``states``, locked (PostgreSQL;
        SQLite's write lock already serialises): id, state, version, audit head. In
        creation order per state (``ix_nominations_batch_state``), so that each chunk of a
        sweep takes the rows next to the last chunk's, and with no sort."""
        nominations = NominationRow.__table__  # type: ignore[attr-defined]
        query = (
            sa_select(
                nominations.c.id,
                nominations.c.state,
                nominations.c.version,
                nominations.c.audit_head,
            )
            .where(nominations.c.batch_id == batch_id, nominations.c.state.in_(states))
            .limit(limit)
            .with_for_update()
        )
        return self.session.execute(query).all()

    def _append_sweep_records(
        self,
        rows: Sequence[_Locked],
        batch_id: str,
        to_state: str,
        *,
        event: str,
        actor: str,
        at: datetime,
    ) -> None:
        """The next record of each nomination in ``rows``: its primary key (nomination,
        seq) refuses a second record of the same version, written by anyone."""
        record_hash = audit.sweep_hasher(
            event=event, to_state=to_state, actor=actor, at=at, reason=None, batch_id=batch_id
        )
        shared = (event, to_state, actor, self.dialect.time_in(at), None, batch_id)
        self.execute_many(
            "INSERT INTO audit_records (nomination_id, seq, from_state, prev_hash, hash, "
            "event, to_state, actor, at, reason, batch_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    nomination_id,
                    version + 1,
                    state,
                    head,
                    record_hash(nomination_id, version + 1, state, head),
                    *shared,
                )
                for nomination_id, state, version, head in rows
            ],
        )

    def _advance_to_records(
        self,
        rows: Sequence[_Locked],
        batch_id: str,
        to_state: str,
        *,
        event: str,
        at: datetime,
    ) -> None:
        """Move the nominations of ``rows`` on to the records just appended, in one UPDATE
        that is their compare-and-set: a nomination moves only if the record after its
        version exists and starts from its state (it is still as it was read), and takes
        its new head from that record. Conflict unless every one of them moved.

        The record is looked up by its primary key for each nomination (scalar
        subqueries): PostgreSQL would turn an EXISTS into a join that reads the whole
        audit table for every chunk."""
        nominations = NominationRow.__table__  # type: ignore[attr-defined]
        records = AuditRecordRow.__table__  # type: ignore[attr-defined]
        new_record = (records.c.nomination_id == nominations.c.id) & (
            records.c.seq == nominations.c.version + 1
        )
        result = self.session.execute(
            update(nominations)
            .where(
                nominations.c.id.in_([row[0] for row in rows]),
                sa.select(records.c.from_state).where(new_record).scalar_subquery()
                == nominations.c.state,
            )
            .values(
                state=to_state,
                version=nominations.c.version + 1,
                audit_head=sa.select(records.c.hash).where(new_record).scalar_subquery(),
                updated_at=at,
            )
        )
        moved: int = result.rowcount  # type: ignore[attr-defined]
        if moved != len(rows):
            raise Conflict(
                f"{len(rows) - moved} of {len(rows)} nominations of batch {batch_id} changed "
                f"while {event} moved them, and none of them was moved: try again"
            )

    def lapsed(self, batch_id: str, event: str) -> list[Lapsed]:
        """The nominations that ``event`` (a deadline's sweep) moved in the batch, in
        creation order, read back from their audit records: a sweep that ran in several
        transactions, or in several processes, is listed whole."""
        nominations = NominationRow.__table__  # type: ignore[attr-defined]
        records = AuditRecordRow.__table__  # type: ignore[attr-defined]
        query = (
            sa_select(
                nominations.c.id,
                nominations.c.province,
                nominations.c.kind,
                nominations.c.name,
                records.c.from_state,
            )
            .join_from(records, nominations, records.c.nomination_id == nominations.c.id)
            .where(records.c.batch_id == batch_id, records.c.event == event)
            .order_by(records.c.nomination_id)
        )
        return list(map(Lapsed._make, self.session.execute(query).all()))

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
