"""The Engine facade: every command and query of peakpilot, for the CLI and for backends.

The outbox's delivery, the migrations and the programme loader are imported by the
commands that use them: every CLI process imports this module, and most never send mail.

A command is one transaction: read what the rules need, let the pure machine decide,
then write the new state (compare-and-set on ``version``), the audit record and the
idempotency record together. Nothing is written when any step refuses.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Session, select

from peakpilot.clock import Clock, SystemClock, require_instant
from peakpilot.config.program import Names, Program, load_program, parse_program
from peakpilot.config.quotas import MAX_QUOTA
from peakpilot.errors import Conflict, InvalidInput, NotPermitted, Refused
from peakpilot.notifications.compose import BatchInfo, Notifier
from peakpilot.notifications.contacts import Contacts, load_contacts
from peakpilot.notifications.render import renderer_for
from peakpilot.states.actors import Actor, sees_province
from peakpilot.states.guards import DecisionContext
from peakpilot.states.machine import Workflow
from peakpilot.states.text_rules import check_name, check_reason
from peakpilot.workflow import audit
from peakpilot.workflow.database import Database, create_engine, masked
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.reads import BATCH_ID, OPEN, BatchRecord, is_missing_table, no_programme
from peakpilot.workflow.records import NominationRecord, Records, RememberedCall
from peakpilot.workflow.snapshots import (
    AuditReport,
    Board,
    BrokenRecord,
    DispatchReport,
    HistoryRecord,
    Nomination,
    NominationDetail,
    Notice,
    NoticeDetail,
    TickReport,
    Timer,
    to_jsonable,
)
from peakpilot.workflow.store import Store
from peakpilot.workflow.tables import (
    AuditRecordRow,
    BatchRow,
    NoticeRow,
    ProgramRow,
    TimerRow,
)
from peakpilot.workflow.timers import (
    LAPSE_CHUNK,
    LapseMemory,
    TimerWork,
    batch_timers,
    milestone_timers,
)

if TYPE_CHECKING:
    from peakpilot.notifications.channels import Channel

MAX_IDEMPOTENCY_KEY_LENGTH = 200
IDEMPOTENCY_KEY = re.compile(rf"[!-~]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}")

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
        contacts: Contacts | str | Path | None = None,
        templates_dir: str | Path | None = None,
    ) -> None:
        self._owns_engine = not isinstance(database, sa.Engine)
        sa_engine = database if isinstance(database, sa.Engine) else create_engine(database)
        self._db = Database(sa_engine)
        self.clock: Clock = clock or SystemClock()
        self._contacts = contacts
        self._templates_dir = templates_dir
        self._workflow: Workflow | None = None
        self._notifier: Notifier | None = None

    # -- lifecycle -----------------------------------------------------------------------

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
        """Release the connections; dispose of the database engine unless it belongs to
        the caller."""
        self._db.close()
        if self._owns_engine:
            self._db.engine.dispose()

    @property
    def database(self) -> Database:
        return self._db

    # -- the programme -------------------------------------------------------------------

    @property
    def workflow(self) -> Workflow:
        """The machine of the programme stored in the database (loaded once)."""
        if self._workflow is None:
            try:
                with self._db.read() as session:
                    # the text only: a database not yet upgraded may lack newer columns
                    row = session.exec(select(ProgramRow.id, ProgramRow.source)).first()
            except (exc.OperationalError, exc.ProgrammingError) as error:
                if not is_missing_table(error):
                    raise self._db.unreachable(error) from None
                row = None
            if row is None:
                raise no_programme(masked(self._db.engine.url))
            program_id, source = row
            program = parse_program(source, f"stored programme {program_id}")
            self._workflow = _workflow_for(program)
        return self._workflow

    @property
    def program(self) -> Program:
        return self.workflow.program

    @property
    def notifier(self) -> Notifier:
        """Renders the programme's notices for the configured contacts (checked once)."""
        if self._notifier is None or self._notifier.program is not self.program:
            contacts = self._contacts
            if not isinstance(contacts, Contacts):
                contacts = Contacts() if contacts is None else load_contacts(contacts, self.program)
            self._notifier = Notifier(self.program, renderer_for(self._templates_dir), contacts)
        return self._notifier

    def init(self, program: Program | str | Path | None = None) -> dict[str, Any]:
        """Create or upgrade the schema and load the programme; repeating it changes nothing.

        ``program`` is a validated :class:`Program`, a path to a programme file, or
        ``None`` for the shipped 2023 programme. Returns what was done.
        """
        from peakpilot.workflow.loading import store_program
        from peakpilot.workflow.migrations import upgrade_to_head

        if not isinstance(program, Program):
            program = load_program(program)
        now = self._now()
        with self._db.write() as session:
            if self._db.dialect == "postgresql":
                # two concurrent inits must not both create the schema
                session.execute(sa.text("SELECT pg_advisory_xact_lock(7209321)"))
            upgrade_to_head(session.connection())
            changed = store_program(session, program, now)
        self._workflow = _workflow_for(program)
        return {"program": program.id, "batch": program.first_batch.id, "changed": changed}

    # -- commands ------------------------------------------------------------------------

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
        """Create a nomination in the initial state; refuse what the programme forbids."""
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
        with self._unique_names(), self._db.write() as session:
            store = self._store(session)
            batch_row = store.batch_for_nomination(batch, province_slug)
            context = DecisionContext(
                now=now,
                batch=store.batch_facts(batch_row),
                province_name=program.provinces[province_slug].names.en,
                quota=store.quota(batch_row.id, province_slug, lock=False),
            )
            self.workflow.check_nominate(actor, province_slug, kind, name, context)
            if not kind_spec.levels[level]:
                raise Refused(
                    f"cannot nominate {name!r}: a {level}-level {kind} is not eligible "
                    f"({kind_spec.rule})"
                )
            if store.name_taken(batch_row.id, province_slug, kind, name):
                raise Refused(
                    f"cannot nominate {name!r}: {province_slug} already has a {kind} of that "
                    f"name in batch {batch_row.id}"
                )
            row = NominationRecord(
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
            store.create(row, str(actor))
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
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidInput(
                f"an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII "
                "characters"
            )
        program = self.program

        def transition(connection: PoolProxiedConnection) -> Nomination:
            records = Records(connection, self._db.sql, program)
            if idempotency_key is not None:
                replay = self._replay(records, idempotency_key, nomination_id, event, actor)
                if replay is not None:
                    return replay
            after = self._move(records, nomination_id, event, actor, reason, expected_version)
            if idempotency_key is not None:
                result = json.dumps(to_jsonable(after), ensure_ascii=False)
                call = RememberedCall(after.id, event, str(actor), result)
                records.remember(idempotency_key, call, self._now())
            return after

        try:
            with self._unique_names():
                return self._db.transact(transition)
        except Conflict:
            # A concurrent call with the same key may have won: its result is ours.
            if idempotency_key is not None:
                with self._db.read() as session:
                    store = self._store(session)
                    replay = self._replay(store, idempotency_key, nomination_id, event, actor)
                if replay is not None:
                    return replay
            raise

    def _move(
        self,
        store: Records,
        nomination_id: str,
        event: str,
        actor: Actor,
        reason: str | None,
        expected_version: int | None,
    ) -> Nomination:
        row, batch_row = store.nomination_and_batch(nomination_id)
        if expected_version is not None and row.version != expected_version:
            raise Conflict(
                f"nomination {row.id} is at version {row.version}, not {expected_version}: "
                "someone changed it; reload it and try again"
            )
        current = self._snapshot(row)
        now = self._now()
        # the move's existence is checked before its context is read (the contract's order)
        transition = self.workflow.transition(event, row.state, f"nomination {row.id}")
        context = self._context(store, row, batch_row, event, now, reason, lock=True)
        to_state = self.workflow.decide(current, event, actor, context)
        # A move whose rules look at a target batch (carry_over) lands in that batch.
        batch = context.batch
        if context.target is not None and context.target.batch is not None:
            batch = context.target.batch
        batch_id = batch.id
        store.move(
            row,
            event=event,
            actor=str(actor),
            at=now,
            reason=reason,
            to_state=to_state,
            batch_id=batch_id,
        )
        if event == self.program.milestone_event:
            store.add_timers(milestone_timers(self.program, row.id, batch_id, row.province, now))
        store.add_notices(
            self.notifier.for_event(
                current,
                transition.notice,
                seq=current.version + 1,
                event=event,
                actor=str(actor),
                from_state=current.state,
                to_state=to_state,
                reason=reason,
                at=now,
                batch=BatchInfo(batch.id, batch.deadline_at),
                from_batch=row.batch_id if batch_id != row.batch_id else None,
            ),
            now,
        )
        return dataclasses.replace(
            current,
            state=to_state,
            version=current.version + 1,
            batch=batch_id,
            updated_at=self._local(now),
        )

    # -- queries -------------------------------------------------------------------------

    def get(self, nomination_id: str, *, actor: Actor | str | None = None) -> Nomination:
        """The nomination as it is now; with ``actor``, only if that actor may see it."""
        reader = None if actor is None else self._actor(actor)
        with self._db.read() as session:
            row = self._store(session).nomination(nomination_id)
            self._check_reader(reader, row.province)
            return self._snapshot(row)

    def show(self, nomination_id: str, actor: Actor | str | None = None) -> NominationDetail:
        """A nomination with its history and the events ``actor`` could fire now."""
        resolved = None if actor is None else self._actor(actor)
        now = self._now()
        with self._db.read() as session:
            store = self._store(session)
            row, batch_row = store.nomination_and_batch(nomination_id)
            current = self._snapshot(row)
            context = self._context(store, row, batch_row, None, now, None, lock=False)
            allowed = self.workflow.allowed_events(current, resolved, context)
            history = self._history(store.history(row.id))
            timers = [self._timer(t) for t in store.pending_timers(nomination=row.id)]
        return NominationDetail(current, tuple(allowed), tuple(history), tuple(timers))

    def list(
        self,
        *,
        state: str | None = None,
        province: str | None = None,
        batch: str | None = None,
        actor: Actor | str | None = None,
    ) -> builtins.list[Nomination]:
        """Nominations in creation order, filtered by state, province and batch.

        With ``actor``, only what that actor may see: a provincial DRC or government
        lists its own province (asking for another is NotPermitted)."""
        program = self.program
        state = None if state is None else program.state(state)
        province = None if province is None else program.province(province).slug
        if actor is not None:
            reader = self._actor(actor)
            if province is not None:
                self._check_reader(reader, province)
            elif program.roles[reader.role].scope == "province":
                province = reader.province
        with self._db.read() as session:
            store = self._store(session)
            if batch is not None:
                store.batch(batch)
            rows = store.nominations(state=state, province=province, batch=batch)
            return [self._snapshot(row) for row in rows]

    def board(self, batch: str | None = None) -> Board:
        """Per province of a batch (the newest when ``None``): quota, used, left, states."""
        facts = self.program.facts
        with self._db.reads() as reads:
            return reads.board(facts, batch)

    def history(
        self, nomination_id: str, *, actor: Actor | str | None = None
    ) -> builtins.list[HistoryRecord]:
        """The audit trail of one nomination, oldest first (``actor``: as for :meth:`get`)."""
        reader = None if actor is None else self._actor(actor)
        with self._db.read() as session:
            store = self._store(session)
            row = store.nomination(nomination_id)
            self._check_reader(reader, row.province)
            return self._history(store.history(row.id))

    def verify_audit(self) -> AuditReport:
        """Check every nomination's hash chain; report the first record that fails."""
        with self._db.read() as session:
            store = self._store(session)
            checked, broken = audit.find_first_break(store.chain_heads(), store.chain_records())
            if broken is None:
                return AuditReport(ok=True, records=checked, first_broken=None)
            return AuditReport(
                ok=False,
                records=store.audit_record_count(),
                first_broken=BrokenRecord(broken.nomination, broken.seq, broken.problem),
            )

    # -- deadlines and batches -------------------------------------------------------------

    def tick(
        self,
        now: datetime | None = None,
        *,
        stop: threading.Event | None = None,
        lapse_chunk: int = LAPSE_CHUNK,
    ) -> TickReport:
        """Do every timer due at ``now`` (the clock's time by default), in due order.

        Each timer and its effects commit together, so a tick interrupted at any point
        leaves each timer done once or not at all; a second tick for the same ``now``
        finds nothing due and changes nothing. A deadline lapses at most ``lapse_chunk``
        nominations per transaction (``LAPSE_CHUNK``, 5,000; lower it for smaller
        transactions): interrupted between chunks, it leaves its timer pending, and the
        next tick lapses the rest, then sends the notices listing them all.
        """
        now = require_instant(now, "tick time") if now is not None else self._now()
        if not 1 <= lapse_chunk <= LAPSE_CHUNK:
            raise InvalidInput(f"a lapse chunk is 1 to {LAPSE_CHUNK} nominations")
        notifier = self.notifier
        outcomes = []
        lapses = LapseMemory()  # what each committed chunk lapsed, for the closing one
        while stop is None or not stop.is_set():
            with self._unique_names(), self._db.write() as session:
                store = self._store(session)
                timer = store.next_due_timer(now)
                if timer is None:
                    break
                work = TimerWork(store, notifier, now, lapse_chunk=lapse_chunk, memory=lapses)
                outcome = work.run(timer)
                if outcome is not None:
                    store.finish_timer(timer, now)
            lapses.committed()
            if outcome is not None:
                outcomes.append(outcome)
        return TickReport(self._local(now), tuple(outcomes))

    def next_due_at(self) -> datetime | None:
        """When the earliest pending timer falls due (what the daemon sleeps until)."""
        with self._db.read() as session:
            due = self._store(session).next_due_at()
        return None if due is None else self._local(due)

    def timers(self, batch: str | None = None) -> builtins.list[Timer]:
        """Pending timers in due order, of one batch or of all."""
        with self._db.read() as session:
            store = self._store(session)
            if batch is not None:
                store.batch(batch)
            return [self._timer(t) for t in store.pending_timers(batch=batch)]

    def open_batch(
        self,
        actor: Actor | str,
        batch_id: str,
        *,
        deadline: datetime,
        quotas: Mapping[str, int],
    ) -> Board:
        """Open a follow-up batch with its quotas and timers, and tell the provinces."""
        program = self.program
        actor = self._actor(actor)
        if actor.role not in program.open_batch_roles:
            raise NotPermitted(
                f"{actor} may not open a batch: only {' or '.join(program.open_batch_roles)} may"
            )
        if not isinstance(batch_id, str) or not BATCH_ID.fullmatch(batch_id):
            raise InvalidInput(
                f"batch id {batch_id!r}: use 1 to 64 letters, digits, '.', '_' or '-'"
            )
        deadline_at = require_instant(deadline, "the deadline")
        now = self._now()
        if deadline_at <= now:
            raise Refused(
                f"cannot open batch {batch_id}: its deadline "
                f"{self._local(deadline_at).isoformat()} is not in the future"
            )
        resolved = {}
        for province, quota in quotas.items():
            slug = program.province(province).slug
            if slug in resolved:
                raise InvalidInput(f"{slug} is given twice")
            if isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= MAX_QUOTA:
                raise InvalidInput(
                    f"the quota of {slug} must be a whole number from 1 to {MAX_QUOTA}"
                )
            resolved[slug] = quota
        if not resolved:
            raise InvalidInput("give at least one province a quota")
        with self._unique_names(), self._db.write() as session:
            store = self._store(session)
            if session.get(BatchRow, batch_id) is not None:
                raise Refused(f"cannot open batch {batch_id}: a batch of that id exists")
            row = BatchRow(
                id=batch_id,
                program_id=program.id,
                position=0,
                deadline_at=deadline_at,
                status=OPEN,
                opened_at=now,
            )
            store.open_batch(row, resolved)
            store.add_timers(batch_timers(program, batch_id, deadline_at, now, skip_past=True))
            info = BatchInfo(batch_id, deadline_at)
            outgoing = []
            for slug, quota in resolved.items():
                province_names = program.provinces[slug].names
                outgoing += self.notifier.compose(
                    "batch_opened",
                    self.notifier.timer_recipients("batch_opened", slug),
                    partial(_batch_opened_context, slug, province_names, quota),
                    at=now,
                    batch=info,
                    dedupe=(batch_id, slug),
                )
            store.add_notices(outgoing, now)
        return self.board(batch_id)

    # -- notices -------------------------------------------------------------------------

    def notices(self, status: str | None = None) -> builtins.list[Notice]:
        """The outbox, oldest first, optionally only notices of one status."""
        from peakpilot.workflow import outbox

        if status is not None and status not in outbox.STATUSES:
            raise InvalidInput(
                f"unknown notice status {status!r}: use one of {', '.join(outbox.STATUSES)}"
            )
        with self._db.read() as session:
            rows = self._store(session).notices(status)
            return [self._notice(row) for row in rows]

    def notice(self, notice_id: str) -> NoticeDetail:
        """One notice with its rendered text and HTML."""
        with self._db.read() as session:
            row = self._store(session).notice(notice_id)
            return NoticeDetail(self._notice(row), row.text, row.html)

    def retry_notice(self, notice_id: str) -> Notice:
        """Put a failed or dead notice back in the queue, due now, with fresh attempts."""
        from peakpilot.workflow import outbox

        now = self._now()
        with self._db.write() as session:
            row = self._store(session).notice(notice_id)
            if row.status not in (outbox.FAILED, outbox.DEAD):
                raise Refused(
                    f"notice {row.id} is {row.status}: only a failed or dead notice is retried"
                )
            row.status, row.attempts, row.next_attempt_at = outbox.PENDING, 0, now
            row.claimed_until = None
            session.flush()
            return self._notice(row)

    def dispatch_notices(
        self,
        channel: Channel,
        *,
        max_attempts: int = 8,
        batch_size: int = 50,
        max_batches: int | None = None,
        stop: threading.Event | None = None,
    ) -> DispatchReport:
        """Send every notice due now through ``channel``; failures stay in the outbox.

        Runs until nothing due is left unclaimed (or ``max_batches`` claims of
        ``batch_size`` were sent). Each claim and each outcome is its own short
        transaction: no transaction is open while a message is being sent.
        """
        from peakpilot.notifications.channels import DeliveryError
        from peakpilot.workflow import outbox

        counts = {outbox.SENT: 0, outbox.FAILED: 0, outbox.DEAD: 0}
        batches = 0
        while True:
            claimed = []
            if (stop is None or not stop.is_set()) and (  # a stopping daemon claims nothing
                max_batches is None or batches < max_batches
            ):
                batches += 1
                with self._db.write() as session:
                    claimed = outbox.claim_due(session, self._now(), batch_size)
            if not claimed:
                return DispatchReport(
                    counts[outbox.SENT], counts[outbox.FAILED], counts[outbox.DEAD]
                )
            for item in claimed:
                try:
                    channel.send(item.envelope)
                except DeliveryError as error:
                    with self._db.write() as session:
                        status = outbox.record_failure(
                            session,
                            item.envelope.notice_id,
                            self._now(),
                            str(error),
                            permanent=error.permanent,
                            max_attempts=max_attempts,
                        )
                    counts[status] += 1
                else:
                    with self._db.write() as session:
                        outbox.record_sent(session, item.envelope.notice_id, self._now())
                    counts[outbox.SENT] += 1

    # -- helpers -------------------------------------------------------------------------

    def _store(self, session: Session) -> Store:
        return Store(session, self.program, self._db.sql)

    def _now(self) -> datetime:
        return require_instant(self.clock.now(), "the clock's time")

    def _actor(self, actor: Actor | str) -> Actor:
        return self.workflow.actor(actor)

    def _check_reader(self, reader: Actor | None, province: str) -> None:
        if reader is not None and not sees_province(reader, province, self.program):
            raise NotPermitted(f"{reader} may not read the nominations of {province}")

    def _local(self, value: datetime) -> datetime:
        return value.astimezone(self.program.timezone)

    def _snapshot(self, row: NominationRecord) -> Nomination:
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

    def _timer(self, row: TimerRow) -> Timer:
        return Timer(
            id=row.id,
            kind=row.kind,
            due_at=self._local(row.due_at),
            batch=row.batch_id,
            province=row.province,
            nomination=row.nomination_id,
        )

    def _notice(self, row: NoticeRow) -> Notice:
        return Notice(
            id=row.id,
            kind=row.kind,
            recipient=row.recipient,
            actor=row.actor,
            locale=row.locale,
            subject=row.subject,
            status=row.status,
            attempts=row.attempts,
            created_at=self._local(row.created_at),
            sent_at=None if row.sent_at is None else self._local(row.sent_at),
            next_attempt_at=self._local(row.next_attempt_at),
            last_error=row.last_error,
            nomination=row.nomination_id,
            batch=row.batch_id,
        )

    def _history(self, records: builtins.list[AuditRecordRow]) -> builtins.list[HistoryRecord]:
        return [
            HistoryRecord(
                r.seq, r.event, r.from_state, r.to_state, r.actor, self._local(r.at), r.reason
            )
            for r in records
        ]

    def _context(
        self,
        store: Records,
        row: NominationRecord,
        batch: BatchRecord,
        event: str | None,
        now: datetime,
        reason: str | None,
        *,
        lock: bool,
    ) -> DecisionContext:
        """What the guards of ``event`` (of every event of the state, when ``None``) read
        about the nomination in ``batch`` (its own); the quota and the carry-over target
        only when a guard needs them."""
        events = (event,) if event is not None else self.program.events
        needs = frozenset().union(*(self.workflow.needs(e, row.state) for e in events))
        return DecisionContext(
            now=now,
            batch=store.batch_facts(batch),
            province_name=self.program.provinces[row.province].names.en,
            reason=reason,
            quota=store.quota(row.batch_id, row.province, lock=lock) if "quota" in needs else None,
            target=store.carry_over_target(row) if "target" in needs else None,
        )

    def _replay(
        self, store: Records, key: str, nomination_id: str, event: str, actor: Actor
    ) -> Nomination | None:
        stored = store.remembered(key)
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
    def _unique_names(self) -> Iterator[None]:
        """Turn a uniqueness race lost to a concurrent writer into the clerk's error."""
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


def _batch_opened_context(slug: str, names: Names, quota: int, locale: str) -> dict[str, Any]:
    return {"province": {"slug": slug, "name": names.get(locale)}, "quota": quota}
