"""The SQL of one transaction: what the engine reads and writes, nothing it decides.

A :class:`Store` wraps the session of one unit of work: the common statements of
:class:`~peakpilot.workflow.records.Records` on the session's own connection, plus the
ORM queries of the rarer units (timers, the outbox, bulk lapse, the audit chain). Reads
return rows or the small fact objects the pure rules take; every change of a nomination
is a compare-and-set on its version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from peakpilot.config.program import Program
from peakpilot.errors import NotFound
from peakpilot.workflow import audit
from peakpilot.workflow.records import ID, Records, SqlDialect, audit_values
from peakpilot.workflow.tables import (
    AuditRecordRow,
    BatchRow,
    NominationRow,
    NoticeRow,
    QuotaRow,
    TimerRow,
)


@dataclass(frozen=True, slots=True)
class Usage:
    quota: int
    used: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Lapsed:
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

    def quotas(self, batch_id: str) -> dict[str, int]:
        query = select(QuotaRow.province, QuotaRow.quota).where(col(QuotaRow.batch_id) == batch_id)
        return {province: quota for province, quota in self.session.exec(query)}

    def state_counts(self, batch_id: str) -> dict[str, dict[str, int]]:
        """Nominations of the batch per province and state."""
        query = (
            select(NominationRow.province, NominationRow.state, func.count())
            .where(col(NominationRow.batch_id) == batch_id)
            .group_by(col(NominationRow.province), col(NominationRow.state))
        )
        counts: dict[str, dict[str, int]] = {}
        for province, state, count in self.session.exec(query):
            counts.setdefault(province, {})[state] = count
        return counts

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
    ) -> list[Lapsed]:
        """Move every nomination of the batch in ``from_states`` to ``to_state`` with one
        audit record each: one locking read, one bulk UPDATE, one bulk INSERT."""
        table = NominationRow.__table__  # type: ignore[attr-defined]
        rows = self.session.execute(
            sa_select(
                table.c.id,
                table.c.province,
                table.c.kind,
                table.c.name,
                table.c.state,
                table.c.version,
                table.c.audit_head,
            )
            .where(table.c.batch_id == batch_id, table.c.state.in_(tuple(from_states)))
            .order_by(table.c.id)
            .with_for_update()
        ).all()
        if not rows:
            return []
        records = [
            audit_values(
                nomination_id=r.id,
                seq=r.version + 1,
                event=event,
                from_state=r.state,
                to_state=to_state,
                actor=actor,
                at=at,
                reason=None,
                batch_id=batch_id,
                prev_hash=r.audit_head,
            )
            for r in rows
        ]
        self.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                state=to_state,
                version=bindparam("b_version"),
                audit_head=bindparam("b_head"),
                updated_at=at,
            ),
            [
                {"b_id": r.id, "b_version": r.version + 1, "b_head": record["hash"]}
                for r, record in zip(rows, records, strict=True)
            ],
        )
        self.session.execute(insert(AuditRecordRow.__table__), records)  # type: ignore[attr-defined]
        return [Lapsed(r.id, r.province, r.kind, r.name, r.state) for r in rows]

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
