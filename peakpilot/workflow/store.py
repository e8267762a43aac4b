"""The SQL of one transaction: what the engine reads and writes, nothing it decides.

A :class:`Store` wraps the session of one unit of work. Reads return rows or the small
fact objects the pure rules take; writes are the only statements that change a
nomination, and every change is a compare-and-set on its version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from peakpilot.config.program import Program
from peakpilot.errors import Conflict, NotFound, Refused
from peakpilot.notifications.compose import Outgoing
from peakpilot.states.guards import BatchFacts, QuotaFacts, TargetFacts
from peakpilot.workflow import audit
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.tables import (
    AuditRecordRow,
    BatchRow,
    IdempotencyRow,
    NominationRow,
    NoticeRow,
    QuotaRow,
    TimerRow,
)

OPEN, CLOSED = "open", "closed"
_Locked = sa.Row[str, str, int, str]  # a nomination a sweep moves: id, state, version, head
_ID = re.compile(r"[0-9a-f]{16}")  # new_id() ids, matched whole
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # what a batch id may be


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


class Store:
    """Reads and writes of one transaction, for one programme."""

    def __init__(self, session: Session, program: Program) -> None:
        self.session = session
        self.program = program

    # -- nominations --------------------------------------------------------------------

    def nomination(self, nomination_id: str) -> NominationRow:
        """The nomination, or NotFound (a malformed id is simply not found)."""
        row = None
        if isinstance(nomination_id, str) and _ID.fullmatch(nomination_id):
            row = self.session.get(NominationRow, nomination_id)
        if row is None:
            raise NotFound(f"no nomination {nomination_id!r}: check the id (see `peakpilot list`)")
        return row

    def nominations(
        self, *, state: str | None, province: str | None, batch: str | None
    ) -> list[NominationRow]:
        query = select(NominationRow)
        if state is not None:
            query = query.where(col(NominationRow.state) == state)
        if province is not None:
            query = query.where(col(NominationRow.province) == province)
        if batch is not None:
            query = query.where(col(NominationRow.batch_id) == batch)
        return list(self.session.exec(query.order_by(col(NominationRow.id))))  # creation order

    def name_taken(self, batch_id: str, province: str, kind: str, name: str) -> bool:
        query = select(NominationRow.id).where(
            col(NominationRow.batch_id) == batch_id,
            col(NominationRow.province) == province,
            col(NominationRow.kind) == kind,
            col(NominationRow.name) == name,
        )
        return self.session.exec(query).first() is not None

    def create(self, row: NominationRow, actor: str) -> None:
        """Insert a new nomination with the ``nominate`` record that starts its trail."""
        record = _audit_record(
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
        row.audit_head = record.hash
        self.session.add(row)
        self.session.flush()  # the audit record's foreign key needs the nomination first
        self.session.add(record)

    def move(
        self,
        row: NominationRow,
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
        record = _audit_record(
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
        moved = self.session.execute(
            update(NominationRow)
            .where(col(NominationRow.id) == row.id, col(NominationRow.version) == row.version)
            .values(
                state=to_state,
                version=version,
                audit_head=record.hash,
                batch_id=batch_id,
                updated_at=at,
            )
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                f"nomination {row.id} was changed by someone else while you fired {event}: "
                "reload it and try again"
            )
        self.session.add(record)

    def history(self, nomination_id: str) -> list[AuditRecordRow]:
        query = (
            select(AuditRecordRow)
            .where(col(AuditRecordRow.nomination_id) == nomination_id)
            .order_by(col(AuditRecordRow.seq))
        )
        return list(self.session.exec(query))

    # -- batches and quotas ---------------------------------------------------------------

    def batch(self, batch_id: str) -> BatchRow:
        row = None
        if isinstance(batch_id, str) and BATCH_ID.fullmatch(batch_id):
            row = self.session.get(BatchRow, batch_id)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return row

    def newest_batch(self, *, open_only: bool = False) -> BatchRow | None:
        query = select(BatchRow).order_by(col(BatchRow.position).desc())
        if open_only:
            query = query.where(col(BatchRow.status) == OPEN)
        return self.session.exec(query).first()

    def batch_for_nomination(self, batch_id: str | None, province: str) -> BatchRow:
        """The named batch, or the newest open batch giving ``province`` a quota."""
        if batch_id is not None:
            return self.batch(batch_id)
        with_quota = (
            select(BatchRow)
            .join(QuotaRow, col(QuotaRow.batch_id) == col(BatchRow.id))
            .where(col(BatchRow.status) == OPEN, col(QuotaRow.province) == province)
            .order_by(col(BatchRow.position).desc())
        )
        row = self.session.exec(with_quota).first() or self.newest_batch(open_only=True)
        if row is None:
            raise Refused("cannot nominate: no batch is open")
        return row

    def batch_facts(self, row: BatchRow) -> BatchFacts:
        return BatchFacts(
            id=row.id,
            deadline_at=row.deadline_at.astimezone(self.program.timezone),
            is_open=row.status == OPEN,
        )

    def quota(self, batch_id: str, province: str, *, lock: bool) -> QuotaFacts | None:
        """The province's quota and its use. With ``lock``, submissions of one province
        queue on its quota row (PostgreSQL; SQLite's write lock already serialises)."""
        query = select(QuotaRow.quota).where(
            col(QuotaRow.batch_id) == batch_id, col(QuotaRow.province) == province
        )
        if lock:
            query = query.with_for_update()
        quota = self.session.exec(query).first()
        if quota is None:
            return None
        used = self.session.exec(
            select(func.count())
            .select_from(NominationRow)
            .where(
                col(NominationRow.batch_id) == batch_id,
                col(NominationRow.province) == province,
                col(NominationRow.state).in_(self.program.quota_counts),
            )
        ).one()
        return QuotaFacts(quota=quota, used=used)

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

    def carry_over_target(self, row: NominationRow) -> TargetFacts:
        """The newest open batch other than the nomination's own, as the rules see it."""
        query = (
            select(BatchRow)
            .where(col(BatchRow.status) == OPEN, col(BatchRow.id) != row.batch_id)
            .order_by(col(BatchRow.position).desc())
        )
        newest = self.session.exec(query).first()
        if newest is None:
            return TargetFacts(batch=None, quota=None, name_taken=False)
        quota = self.session.exec(
            select(QuotaRow.quota).where(
                col(QuotaRow.batch_id) == newest.id, col(QuotaRow.province) == row.province
            )
        ).first()
        return TargetFacts(
            batch=self.batch_facts(newest),
            quota=quota,
            name_taken=self.name_taken(newest.id, row.province, row.kind, row.name),
        )

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

    def close_batch(self, batch_id: str, now: datetime) -> None:
        """The deadline work ran: refuse what needs an open batch, drop pending reminders."""
        batch = self.batch(batch_id)
        batch.status, batch.closed_at = CLOSED, now
        self.session.execute(
            update(TimerRow)
            .where(
                col(TimerRow.batch_id) == batch_id,
                col(TimerRow.kind) == "reminder",
                col(TimerRow.status) == "pending",
            )
            .values(status="cancelled", done_at=now)
            .execution_options(synchronize_session=False)
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
        _insert_many(
            self.session.connection(),
            AuditRecordRow.__table__,  # type: ignore[attr-defined]
            ("nomination_id", "seq", "from_state", "prev_hash", "hash"),
            [
                (
                    nomination_id,
                    version + 1,
                    state,
                    head,
                    record_hash(nomination_id, version + 1, state, head),
                )
                for nomination_id, state, version, head in rows
            ],
            shared={
                "event": event,
                "to_state": to_state,
                "actor": actor,
                "at": at,
                "reason": None,
                "batch_id": batch_id,
            },
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

    def add_timers(self, timers: Iterable[TimerRow]) -> None:
        self.session.add_all(timers)

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

    def add_notices(self, outgoing: Iterable[Outgoing], now: datetime) -> None:
        """Queue rendered notices in this transaction: they commit or vanish with it."""
        for notice in outgoing:
            self.session.add(
                NoticeRow(
                    id=new_id(),
                    dedupe_key=notice.dedupe_key,
                    kind=notice.kind,
                    actor=notice.actor,
                    recipient=notice.recipient,
                    locale=notice.locale,
                    subject=notice.subject,
                    text=notice.text,
                    html=notice.html,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    nomination_id=notice.nomination_id,
                    batch_id=notice.batch_id,
                    created_at=now,
                )
            )

    def notices(self, status: str | None) -> list[NoticeRow]:
        query = select(NoticeRow)
        if status is not None:
            query = query.where(col(NoticeRow.status) == status)
        return list(self.session.exec(query.order_by(col(NoticeRow.id))))

    def notice(self, notice_id: str) -> NoticeRow:
        row = None
        if isinstance(notice_id, str) and _ID.fullmatch(notice_id):
            row = self.session.get(NoticeRow, notice_id)
        if row is None:
            raise NotFound(f"no notice {notice_id!r}: check the id (see `peakpilot notices`)")
        return row

    # -- idempotency ----------------------------------------------------------------------

    def idempotent_result(self, key: str) -> IdempotencyRow | None:
        return self.session.get(IdempotencyRow, key)

    def remember(self, row: IdempotencyRow) -> None:
        self.session.add(row)

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


_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # sqlite3's, psycopg's


def _insert_many(
    connection: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    shared: Mapping[str, Any],
) -> None:
    """INSERT ``rows`` (values of ``columns``), each with the ``shared`` values, in one
    executemany straight through the driver.

    SQLAlchemy prepares every row's parameters in Python, which for the thousands of rows
    of a sweep costs more than the insert itself. Here each shared value is converted once,
    by its column's type; the values of ``rows`` go to the driver as they are, so their
    columns must be ones that need no conversion (text, numbers).
    """
    dialect = connection.dialect
    for name in columns:
        if table.c[name].type.dialect_impl(dialect).bind_processor(dialect) is not None:
            raise TypeError(f"{table.name}.{name} needs converting: pass it in shared")
    tail = tuple(_converted(table.c[name], value, dialect) for name, value in shared.items())
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in (*columns, *shared))
    markers = ", ".join([_MARKERS[dialect.paramstyle]] * (len(columns) + len(shared)))
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({names}) VALUES ({markers})",
        [row + tail for row in rows],
    )


def _converted(column: sa.Column[Any], value: Any, dialect: sa.Dialect) -> Any:
    convert = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if convert is None or value is None else convert(value)


def _audit_values(
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
    """The columns of one audit record, its hash included (a plain dict: bulk inserts of
    thousands of records skip building ORM objects)."""
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


def _audit_record(**fields: Any) -> AuditRecordRow:
    return AuditRecordRow(**_audit_values(**fields))
