"""The Engine facade: every command and query of peakpilot, for the CLI and for backends.

A command is one transaction: read what the rules need, let the pure machine decide,
then write the new state (compare-and-set on ``version``), the audit record and the
idempotency record together. Nothing is written when any step refuses.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc, func, select, update
from sqlmodel import Session

from peakpilot.clock import Clock, SystemClock, require_aware
from peakpilot.config.program import Program, load_program, parse_program
from peakpilot.errors import Conflict, InvalidInput, NotFound, Refused
from peakpilot.states.actors import Actor, resolve_actor
from peakpilot.states.guards import BatchFacts, DecisionContext, QuotaFacts, TargetFacts
from peakpilot.states.machine import Workflow
from peakpilot.states.text_rules import check_name, check_reason
from peakpilot.workflow import audit
from peakpilot.workflow.database import Database, create_engine
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.snapshots import (
    AuditReport,
    Board,
    BrokenRecord,
    HistoryRecord,
    Nomination,
    NominationDetail,
    ProvinceBoard,
    to_jsonable,
)
from peakpilot.workflow.tables import (
    AuditRecordRow,
    BatchRow,
    IdempotencyRow,
    NominationRow,
    ProgramRow,
    QuotaRow,
)

_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_IDEMPOTENCY_KEY_LENGTH = 200
OPEN, CLOSED = "open", "closed"

# One machine per programme text, shared by every Engine of the process.
_WORKFLOWS: dict[str, Workflow] = {}


def _workflow_for(program: Program) -> Workflow:
    workflow = _WORKFLOWS.get(program.digest)
    if workflow is None:
        workflow = _WORKFLOWS[program.digest] = Workflow(program)
    return workflow


class Engine:
    """peakpilot's commands and queries over one database.

    Open it as a context manager (or call :meth:`close`). ``database`` is a URL or an
    SQLAlchemy engine owned by the caller, which the Engine then never disposes.
    """

    def __init__(
        self,
        database: str | sa.Engine = "sqlite:///peakpilot.db",
        *,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(database, sa.Engine):
            self._owns_engine = False
            sa_engine = database
        else:
            self._owns_engine = True
            sa_engine = create_engine(database)
        self._db = Database(sa_engine)
        self.clock: Clock = clock or SystemClock()
        self._workflow: Workflow | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the connections, unless the database engine belongs to the caller."""
        if self._owns_engine:
            self._db.engine.dispose()

    @property
    def database(self) -> Database:
        return self._db

    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "the clock's time")

    # -- the programme ---------------------------------------------------------------

    @property
    def workflow(self) -> Workflow:
        """The machine of the programme stored in the database (loaded once)."""
        if self._workflow is None:
            try:
                with self._db.read() as session:
                    row = session.exec(select(ProgramRow)).scalars().first()  # type: ignore[call-overload]
            except (exc.OperationalError, exc.ProgrammingError) as error:
                if "no such table" in str(error) or "does not exist" in str(error):
                    row = None
                else:
                    raise self._db.unreachable(error) from None
            if row is None:
                raise NotFound(
                    f"database {self._db.engine.url.render_as_string(hide_password=True)} "
                    "holds no programme: run `peakpilot init` first"
                )
            self._workflow = _workflow_for(parse_program(row.source, f"stored programme {row.id}"))
        return self._workflow

    @property
    def program(self) -> Program:
        return self.workflow.program

    def init(self, program: Program | str | Path | None = None) -> dict[str, Any]:
        """Create or upgrade the schema and load the programme; repeating it changes nothing.

        ``program`` is a validated :class:`Program`, a path to a programme file, or
        ``None`` for the shipped 2023 programme. Returns what was done.
        """
        from peakpilot.workflow.migrations import upgrade_to_head

        if not isinstance(program, Program):
            program = load_program(program)
        now = self._now()
        with self._db.write() as session:
            if self._db.dialect == "postgresql":
                # two concurrent inits must not both create the schema
                session.execute(sa.text("SELECT pg_advisory_xact_lock(7209321)"))
            upgrade_to_head(session.connection())
            changed = _load_program(session, program, now)
        self._workflow = _workflow_for(program)
        return {"program": program.id, "batch": program.first_batch.id, "changed": changed}

    # -- commands --------------------------------------------------------------------

    def nominate(
        self,
        actor: Actor | str,
        *,
        province: str,
        kind: str,
        name: str,
        level: str,
        batch: str | None = None,
    ) -> Nomination:
        """Create a nomination in ``drafted``; refuse what the programme does not allow."""
        program = self.program
        actor = self._actor(actor)
        province_slug = program.province(province).slug
        kind_spec = program.kind(kind)
        if level not in kind_spec.levels:
            raise InvalidInput(
                f"unknown level {level!r} for a {kind}: use one of {', '.join(kind_spec.levels)}"
            )
        check_name(name)
        now = self._now()
        with self._translated(), self._db.write() as session:
            batch_row = self._batch_for_nomination(session, batch, province_slug)
            context = DecisionContext(
                now=now,
                batch=_batch_facts(batch_row, program),
                province_name=program.provinces[province_slug].names.en,
                quota=self._quota(session, batch_row.id, province_slug, lock=False),
            )
            self.workflow.check_nominate(actor, province_slug, kind, name, context)
            if not kind_spec.levels[level]:
                raise Refused(
                    f"cannot nominate {name!r}: a {level}-level {kind} is not eligible "
                    f"({kind_spec.rule})"
                )
            if self._name_taken(session, batch_row.id, province_slug, kind, name):
                raise Refused(
                    f"cannot nominate {name!r}: {province_slug} already has a {kind} of that "
                    f"name in batch {batch_row.id}"
                )
            row = NominationRow(
                id=new_id(),
                batch_id=batch_row.id,
                province=province_slug,
                kind=kind,
                name=name,
                level=level,
                state=program.initial_state,
                version=1,
                audit_head="",
                created_at=now,
                updated_at=now,
            )
            record = _audit_record(row, 1, "nominate", None, str(actor), now, None, "")
            row.audit_head = record.hash
            session.add(row)
            session.flush()
            session.add(record)
            return self._snapshot(row)

    def fire(
        self,
        nomination_id: str,
        event: str,
        actor: Actor | str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
    ) -> Nomination:
        """Fire ``event`` on a nomination as ``actor`` and return the nomination after it.

        With ``idempotency_key``, a retry of the same call returns the first result and
        writes nothing. With ``expected_version``, the call is refused with
        :class:`Conflict` unless the nomination is still at that version.
        """
        actor = self._actor(actor)
        check_reason(reason)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 200:
            raise InvalidInput("an idempotency key is 1 to 200 characters long")
        try:
            with self._translated(), self._db.write() as session:
                if idempotency_key is not None:
                    replay = self._replay(session, idempotency_key, nomination_id, event, actor)
                    if replay is not None:
                        return replay
                return self._fire(
                    session,
                    nomination_id,
                    event,
                    actor,
                    reason,
                    idempotency_key,
                    expected_version,
                )
        except Conflict:
            # A concurrent call with the same key may have won: it is then our result.
            if idempotency_key is not None:
                with self._db.read() as session:
                    replay = self._replay(session, idempotency_key, nomination_id, event, actor)
                if replay is not None:
                    return replay
            raise

    def _fire(
        self,
        session: Session,
        nomination_id: str,
        event: str,
        actor: Actor,
        reason: str | None,
        idempotency_key: str | None,
        expected_version: int | None,
    ) -> Nomination:
        row = self._nomination_row(session, nomination_id)
        if expected_version is not None and row.version != expected_version:
            raise Conflict(
                f"nomination {row.id} is at version {row.version}, not {expected_version}: "
                "someone changed it; reload it and try again"
            )
        current = self._snapshot(row)
        now = self._now()
        self.workflow.transition(event, row.state, f"nomination {row.id}")
        context = self._context(session, row, event, now, reason, lock=True)
        target_state = self.workflow.decide(current, event, actor, context)
        # A move whose rules look at a target batch (carry_over) lands in that batch.
        batch_id = row.batch_id
        if context.target is not None and context.target.batch is not None:
            batch_id = context.target.batch.id
        version = current.version + 1
        record = _audit_record(
            row,
            version,
            event,
            current.state,
            str(actor),
            now,
            reason,
            row.audit_head,
            to_state=target_state,
            batch_id=batch_id,
        )
        moved = session.execute(
            update(NominationRow)
            .where(NominationRow.id == row.id, NominationRow.version == current.version)  # type: ignore[arg-type]
            .values(
                state=target_state,
                version=version,
                audit_head=record.hash,
                batch_id=batch_id,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                f"nomination {row.id} was changed by someone else while you fired {event}: "
                "reload it and try again"
            )
        session.add(record)
        after = dataclasses.replace(
            current,
            state=target_state,
            version=version,
            batch=batch_id,
            updated_at=self._local(now),
        )
        if idempotency_key is not None:
            session.add(
                IdempotencyRow(
                    key=idempotency_key,
                    nomination_id=row.id,
                    event=event,
                    actor=str(actor),
                    result=json.dumps(to_jsonable(after), ensure_ascii=False),
                    created_at=now,
                )
            )
        session.flush()
        return after

    # -- queries ---------------------------------------------------------------------

    def get(self, nomination_id: str) -> Nomination:
        """The nomination as it is now."""
        with self._db.read() as session:
            return self._snapshot(self._nomination_row(session, nomination_id))

    def show(self, nomination_id: str, actor: Actor | str | None = None) -> NominationDetail:
        """A nomination with its history and the events ``actor`` could fire now."""
        resolved = None if actor is None else self._actor(actor)
        now = self._now()
        with self._db.read() as session:
            row = self._nomination_row(session, nomination_id)
            current = self._snapshot(row)
            context = self._context(session, row, None, now, None, lock=False)
            allowed = self.workflow.allowed_events(current, resolved, context)
            history = self._history(session, row.id)
        return NominationDetail(current, tuple(allowed), tuple(history), ())

    def list(
        self,
        *,
        state: str | None = None,
        province: str | None = None,
        batch: str | None = None,
    ) -> list[Nomination]:
        """Nominations in creation order, filtered by state, province and batch."""
        program = self.program
        query = select(NominationRow)
        if state is not None:
            query = query.where(NominationRow.state == program.state(state))
        if province is not None:
            slug = program.province(province).slug
            query = query.where(NominationRow.province == slug)
        with self._db.read() as session:
            if batch is not None:
                self._batch_row(session, batch)
                query = query.where(NominationRow.batch_id == batch)
            rows = session.execute(
                query.order_by(NominationRow.id)  # ids sort in creation order
            ).scalars()
            return [self._snapshot(row) for row in rows]

    def board(self, batch: str | None = None) -> Board:
        """Per province of a batch (the newest when ``None``): quota, used, left, states."""
        program = self.program
        with self._db.read() as session:
            if batch is None:
                batch_row = (
                    session.execute(
                        select(BatchRow).order_by(BatchRow.position.desc())  # type: ignore[attr-defined]
                    )
                    .scalars()
                    .first()
                )
                if batch_row is None:
                    raise NotFound("no batch exists yet: run `peakpilot init`")
            else:
                batch_row = self._batch_row(session, batch)
            quotas = dict(
                session.execute(
                    select(QuotaRow.province, QuotaRow.quota).where(
                        QuotaRow.batch_id == batch_row.id
                    )
                ).all()
            )
            counts: dict[str, dict[str, int]] = {}
            for province, state, count in session.execute(
                select(NominationRow.province, NominationRow.state, func.count())
                .where(NominationRow.batch_id == batch_row.id)
                .group_by(NominationRow.province, NominationRow.state)
            ):
                counts.setdefault(province, {})[state] = count
        provinces = []
        for slug in program.provinces:
            if slug not in quotas and slug not in counts:
                continue
            states = {state: counts.get(slug, {}).get(state, 0) for state in program.states}
            used = sum(states[state] for state in program.quota_counts)
            quota = quotas.get(slug, 0)
            provinces.append(ProvinceBoard(slug, quota, used, max(quota - used, 0), states))
        return Board(
            batch=batch_row.id,
            deadline=self._local(batch_row.deadline_at),
            status=batch_row.status,
            provinces=tuple(provinces),
        )

    def history(self, nomination_id: str) -> list[HistoryRecord]:
        """The audit trail of one nomination, oldest first."""
        with self._db.read() as session:
            row = self._nomination_row(session, nomination_id)
            return self._history(session, row.id)

    def verify_audit(self) -> AuditReport:
        """Check every nomination's hash chain; report the first record that fails."""
        table = AuditRecordRow.__table__  # type: ignore[attr-defined]
        heads = select(NominationRow.id, NominationRow.state, NominationRow.audit_head).order_by(
            NominationRow.id
        )
        records = (
            select(*(table.c[name] for name in audit.ChainRecord.__slots__))
            .order_by(table.c.nomination_id, table.c.seq)
            .execution_options(yield_per=5000)  # a server-side cursor: memory stays flat
        )
        with self._db.read() as session:
            head_rows = [audit.ChainHead(*row) for row in session.execute(heads)]
            result = session.execute(records)
            try:
                checked, broken = audit.find_first_break(
                    head_rows, (audit.ChainRecord(*row) for row in result)
                )
            finally:
                result.close()
            total = checked
            if broken is not None:
                total = session.execute(select(func.count()).select_from(table)).scalar_one()
        if broken is None:
            return AuditReport(ok=True, records=total, first_broken=None)
        first = BrokenRecord(broken.nomination, broken.seq, broken.problem)
        return AuditReport(ok=False, records=total, first_broken=first)

    # -- helpers ---------------------------------------------------------------------

    def _actor(self, actor: Actor | str) -> Actor:
        if isinstance(actor, str):
            actor = Actor.parse(actor)
        return resolve_actor(actor, self.program)

    def _local(self, value: datetime) -> datetime:
        return value.astimezone(self.program.timezone)

    def _snapshot(self, row: NominationRow) -> Nomination:
        return Nomination(
            id=row.id,
            batch=row.batch_id,
            province=row.province,
            kind=row.kind,
            name=row.name,
            level=row.level,
            state=row.state,
            version=row.version,
            created_at=self._local(row.created_at),
            updated_at=self._local(row.updated_at),
        )

    def _history(self, session: Session, nomination_id: str) -> list[HistoryRecord]:
        rows = session.execute(
            select(AuditRecordRow)
            .where(AuditRecordRow.nomination_id == nomination_id)
            .order_by(AuditRecordRow.seq)  # type: ignore[arg-type]
        ).scalars()
        return [
            HistoryRecord(
                r.seq, r.event, r.from_state, r.to_state, r.actor, self._local(r.at), r.reason
            )
            for r in rows
        ]

    def _nomination_row(self, session: Session, nomination_id: str) -> NominationRow:
        row = None
        if isinstance(nomination_id, str) and _ID.match(nomination_id):
            row = session.get(NominationRow, nomination_id)
        if row is None:
            raise NotFound(f"no nomination {nomination_id!r}: check the id (see `peakpilot list`)")
        return row

    def _batch_row(self, session: Session, batch_id: str) -> BatchRow:
        row = session.get(BatchRow, batch_id) if 0 < len(batch_id) <= 64 else None
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return row

    def _batch_for_nomination(
        self, session: Session, batch_id: str | None, province: str
    ) -> BatchRow:
        """The named batch, or the newest open batch giving ``province`` a quota."""
        if batch_id is not None:
            return self._batch_row(session, batch_id)
        open_batches = (
            select(BatchRow)
            .where(BatchRow.status == OPEN)
            .order_by(
                BatchRow.position.desc()  # type: ignore[attr-defined]
            )
        )
        with_quota = open_batches.join(
            QuotaRow, (QuotaRow.batch_id == BatchRow.id) & (QuotaRow.province == province)
        )
        row = session.execute(with_quota).scalars().first()
        row = row or session.execute(open_batches).scalars().first()
        if row is None:
            raise Refused("cannot nominate: no batch is open")
        return row

    def _quota(
        self, session: Session, batch_id: str, province: str, *, lock: bool
    ) -> QuotaFacts | None:
        """The province's quota and its use; ``lock`` serialises submissions on PostgreSQL."""
        query = select(QuotaRow.quota).where(
            QuotaRow.batch_id == batch_id, QuotaRow.province == province
        )
        if lock:
            query = query.with_for_update()
        quota = session.execute(query).scalar_one_or_none()
        if quota is None:
            return None
        used = session.execute(
            select(func.count())
            .select_from(NominationRow)
            .where(
                NominationRow.batch_id == batch_id,
                NominationRow.province == province,
                NominationRow.state.in_(self.program.quota_counts),  # type: ignore[attr-defined]
            )
        ).scalar_one()
        return QuotaFacts(quota=quota, used=used)

    def _name_taken(
        self, session: Session, batch_id: str, province: str, kind: str, name: str
    ) -> bool:
        return (
            session.execute(
                select(NominationRow.id).where(
                    NominationRow.batch_id == batch_id,
                    NominationRow.province == province,
                    NominationRow.kind == kind,
                    NominationRow.name == name,
                )
            ).first()
            is not None
        )

    def _context(
        self,
        session: Session,
        row: NominationRow,
        event: str | None,
        now: datetime,
        reason: str | None,
        *,
        lock: bool,
    ) -> DecisionContext:
        """What the guards of ``event`` (of every event of the state, when ``None``) read."""
        program = self.program
        workflow = self.workflow
        events = [event] if event is not None else list(program.events)
        needs = frozenset().union(*(workflow.needs(e, row.state) for e in events))
        batch_row = self._batch_row(session, row.batch_id)
        quota = target = None
        if "quota" in needs:
            quota = self._quota(session, row.batch_id, row.province, lock=lock)
        if "target" in needs:
            target = self._carry_over_target(session, row)
        return DecisionContext(
            now=now,
            batch=_batch_facts(batch_row, program),
            province_name=program.provinces[row.province].names.en,
            reason=reason,
            quota=quota,
            target=target,
        )

    def _carry_over_target(self, session: Session, row: NominationRow) -> TargetFacts:
        newest = (
            session.execute(
                select(BatchRow)
                .where(BatchRow.status == OPEN, BatchRow.id != row.batch_id)
                .order_by(BatchRow.position.desc())  # type: ignore[attr-defined]
            )
            .scalars()
            .first()
        )
        if newest is None:
            return TargetFacts(batch=None, quota=None, name_taken=False)
        quota = session.execute(
            select(QuotaRow.quota).where(
                QuotaRow.batch_id == newest.id, QuotaRow.province == row.province
            )
        ).scalar_one_or_none()
        return TargetFacts(
            batch=_batch_facts(newest, self.program),
            quota=quota,
            name_taken=self._name_taken(session, newest.id, row.province, row.kind, row.name),
        )

    def _replay(
        self, session: Session, key: str, nomination_id: str, event: str, actor: Actor
    ) -> Nomination | None:
        stored = session.get(IdempotencyRow, key)
        if stored is None:
            return None
        if (stored.nomination_id, stored.event, stored.actor) != (nomination_id, event, str(actor)):
            raise Refused(
                f"idempotency key {key!r} was used for {stored.event} of nomination "
                f"{stored.nomination_id} by {stored.actor}: use a new key for a new request"
            )
        fields = json.loads(stored.result)
        for name in ("created_at", "updated_at"):
            fields[name] = self._local(datetime.fromisoformat(fields[name]))
        return Nomination(**fields)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn a unique-constraint race lost to a concurrent writer into a clerk's error."""
        try:
            yield
        except exc.IntegrityError as error:
            text = str(error.orig)
            if (
                "uq_nominations_name" in text
                or "nominations.batch_id, nominations.province" in text
            ):
                raise Refused(
                    "a nomination of that name, kind and province already exists in the batch"
                ) from None
            raise Conflict(
                "another writer changed the same records at the same time: try again"
            ) from None


def _batch_facts(row: BatchRow, program: Program) -> BatchFacts:
    return BatchFacts(
        id=row.id,
        deadline_at=row.deadline_at.astimezone(program.timezone),
        is_open=row.status == OPEN,
    )


def _audit_record(
    row: NominationRow,
    seq: int,
    event: str,
    from_state: str | None,
    actor: str,
    at: datetime,
    reason: str | None,
    prev_hash: str,
    *,
    to_state: str | None = None,
    batch_id: str | None = None,
) -> AuditRecordRow:
    content = {
        "nomination_id": row.id,
        "seq": seq,
        "event": event,
        "from_state": from_state,
        "to_state": to_state or row.state,
        "actor": actor,
        "at": at,
        "reason": reason,
        "batch_id": batch_id or row.batch_id,
        "prev_hash": prev_hash,
    }
    return AuditRecordRow(**content, hash=audit.record_hash(**content))


def _load_program(session: Session, program: Program, now: datetime) -> bool:
    """Store the programme and its first batch; return whether anything changed."""
    stored = session.execute(select(ProgramRow)).scalars().first()
    changed = False
    if stored is not None and stored.id != program.id:
        raise Refused(
            f"the database holds programme {stored.id}; it cannot also hold {program.id}: "
            "use another database"
        )
    if stored is None:
        session.add(
            ProgramRow(id=program.id, digest=program.digest, source=program.source, loaded_at=now)
        )
        changed = True
    elif stored.digest != program.digest:
        stranded = session.execute(
            select(NominationRow.state)
            .where(NominationRow.state.not_in(program.states))  # type: ignore[attr-defined]
            .limit(1)
        ).scalar_one_or_none()
        if stranded is not None:
            raise Refused(
                f"cannot load this programme: nominations are in state {stranded!r}, "
                "which it does not declare"
            )
        stored.digest, stored.source, stored.loaded_at = program.digest, program.source, now
        changed = True
    session.flush()
    spec = program.first_batch
    batch = session.get(BatchRow, spec.id)
    if batch is None:
        session.add(
            BatchRow(
                id=spec.id,
                program_id=program.id,
                position=1,
                deadline_at=spec.deadline_at,
                status=OPEN,
                opened_at=now,
            )
        )
        session.flush()
        session.add_all(
            QuotaRow(batch_id=spec.id, province=p, quota=q) for p, q in spec.quotas.items()
        )
        return True
    if batch.deadline_at != spec.deadline_at:
        batch.deadline_at = spec.deadline_at
        changed = True
    existing = {
        q.province: q
        for q in session.execute(select(QuotaRow).where(QuotaRow.batch_id == spec.id)).scalars()
    }
    for province, quota in spec.quotas.items():
        if province not in existing:
            session.add(QuotaRow(batch_id=spec.id, province=province, quota=quota))
            changed = True
        elif existing[province].quota != quota:
            existing[province].quota = quota
            changed = True
    return changed
