"""The Engine facade: every command and query of peakpilot, for the CLI and for backends.

A thin layer over four parts with one job each: :mod:`~peakpilot.workflow.commands`
(what people change), :mod:`~peakpilot.workflow.queries` (what they ask),
:mod:`~peakpilot.workflow.deadlines` (what time does) and
:mod:`~peakpilot.workflow.delivery` (what goes out). They share a
:class:`~peakpilot.workflow.runtime.Runtime`: the database, the clock and the stored
programme, each part built when a call first needs it, so that a read never imports the
state machine or the templates (the parts that need them are imported by their first
call).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from peakpilot.clock import Clock, SystemClock
from peakpilot.config.settings import DEFAULT_MAX_MATERIAL_BYTES, DEFAULT_STALE_AFTER
from peakpilot.states.actors import Actor
from peakpilot.workflow.engine_programme import ProgrammeMethods
from peakpilot.workflow.queries import Queries
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import (
    AuditReport,
    Board,
    DispatchReport,
    HistoryRecord,
    Material,
    Nomination,
    NominationDetail,
    Notice,
    NoticeDetail,
    Pilot,
    TickReport,
    Timer,
)
from peakpilot.workflow.store.database import Database, StoreHooks, create_engine
from peakpilot.workflow.store.lapses import LAPSE_CHUNK

if TYPE_CHECKING:
    from peakpilot.notifications.channels import Channel
    from peakpilot.notifications.contacts import Contacts
    from peakpilot.workflow.attachments import Attachments
    from peakpilot.workflow.commands import Commands
    from peakpilot.workflow.deadlines import Deadlines
    from peakpilot.workflow.delivery import Delivery
    from peakpilot.workflow.health import Status
    from peakpilot.workflow.store.daemons import DaemonRecord


class Engine(ProgrammeMethods):
    """peakpilot's commands and queries over one database.

    Open it as a context manager (or call :meth:`close`). ``database`` is a URL or an
    SQLAlchemy engine owned by the caller, which the Engine then never disposes nor
    changes. ``template_cache_dir`` keeps compiled notice templates between processes
    (none by default: templates compile in memory). ``max_material_bytes`` is the
    largest document :meth:`attach` stores. A batch's deadline work done more than
    ``stale_after`` after its deadline still moves the nominations but stores its
    notices ``suppressed`` (kept, never sent). ``hooks`` are for tests that inject faults.
    """

    def __init__(
        self,
        database: str | sa.Engine = "sqlite:///peakpilot.db",
        *,
        clock: Clock | None = None,
        contacts: Contacts | str | Path | None = None,
        templates_dir: str | Path | None = None,
        template_cache_dir: str | Path | None = None,
        max_material_bytes: int = DEFAULT_MAX_MATERIAL_BYTES,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
        hooks: StoreHooks | None = None,
    ) -> None:
        owned = not isinstance(database, sa.Engine)
        sa_engine = create_engine(database) if isinstance(database, str) else database
        self._runtime = Runtime(
            Database(sa_engine, owned=owned, hooks=hooks),
            clock or SystemClock(),
            contacts=contacts,
            templates_dir=templates_dir,
            template_cache_dir=template_cache_dir,
        )
        self._queries = Queries(self._runtime)
        self._max_material_bytes = max_material_bytes
        self._stale_after = stale_after

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
        """Dispose of the database engine's pool, unless the engine is the caller's."""
        self._runtime.db.close()

    @property
    def database(self) -> Database:
        return self._runtime.db

    @property
    def clock(self) -> Clock:
        return self._runtime.clock

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
        return self._runtime.by_rules_in_force(
            lambda: self._commands.nominate(
                actor, province=province, kind=kind, name=name, level=level, batch=batch
            )
        )

    def fire(
        self,
        nomination_id: str,
        event: str,
        actor: Actor | str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Nomination:
        """Fire ``event`` on a nomination as ``actor`` and return the nomination after it.

        ``data`` is what the event carries (``{"period": 2024}``), checked against what
        the programme declares for it and kept, hashed, in the audit record. With
        ``idempotency_key``, a retry of the same call returns the first result and
        writes nothing. With ``expected_version``, the call is refused with
        :class:`Conflict` unless the nomination is still at that version.
        """
        return self._runtime.by_rules_in_force(
            lambda: self._commands.fire(
                nomination_id,
                event,
                actor,
                reason=reason,
                idempotency_key=idempotency_key,
                expected_version=expected_version,
                data=data,
            )
        )

    def attach(
        self,
        nomination_id: str,
        content: bytes | str | Path,
        *,
        kind: str,
        actor: Actor | str,
        title: str | None = None,
        doc_number: str | None = None,
        filename: str | None = None,
    ) -> Material:
        """Store a document (bytes, or a file's path) with a nomination, as ``actor``.

        Recognised by its content (PDF, OFD, DOCX, XLSX, PNG, JPEG; ``filename``'s suffix
        must agree), at most ``max_material_bytes``; an ``attach`` record joins the
        nomination's audit chain.
        """
        return self._runtime.by_rules_in_force(
            lambda: self._attachments.attach(
                nomination_id,
                content,
                kind=kind,
                actor=actor,
                title=title,
                doc_number=doc_number,
                filename=filename,
            )
        )

    def open_batch(
        self,
        actor: Actor | str,
        batch_id: str,
        *,
        deadline: datetime,
        quotas: Mapping[str, int],
    ) -> Board:
        """Open a follow-up batch with its quotas and timers, and tell the provinces."""
        self._runtime.by_rules_in_force(
            lambda: self._commands.open_batch(actor, batch_id, deadline=deadline, quotas=quotas)
        )
        return self.board(batch_id)

    # -- queries -------------------------------------------------------------------------

    def get(self, nomination_id: str, *, actor: Actor | str | None = None) -> Nomination:
        """The nomination as it is now.

        Every read takes ``actor``, and then answers only what that actor may see (DESIGN
        4): a provincial DRC or government (drc:P, gov:P) reads its own province only,
        and asking for another province's nomination is :class:`NotPermitted`; a
        national actor (ndrc) reads everything, and so does ``actor=None`` (the
        operator). An unparsable actor is :class:`InvalidInput`."""
        return self._queries.get(nomination_id, actor)

    def show(self, nomination_id: str, actor: Actor | str | None = None) -> NominationDetail:
        """A nomination with its history, pending timers and the events ``actor`` could
        fire now (every event when None); ``actor`` reads as for :meth:`get`."""
        return self._queries.show(nomination_id, actor)

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
        return self._queries.list(state=state, province=province, batch=batch, actor=actor)

    def board(self, batch: str | None = None) -> Board:
        """Per province of a batch (the newest when ``None``): quota, used, left, states."""
        return self._queries.board(batch)

    def history(
        self, nomination_id: str, *, actor: Actor | str | None = None
    ) -> builtins.list[HistoryRecord]:
        """The audit trail of one nomination, oldest first (``actor``: as for :meth:`get`)."""
        return self._queries.history(nomination_id, actor)

    def materials(
        self, nomination_id: str, *, actor: Actor | str | None = None
    ) -> builtins.list[Material]:
        """The documents attached to a nomination, oldest first (``actor``: as for
        :meth:`get`)."""
        return self._attachments.materials(nomination_id, actor)

    def material(
        self, material_id: str, *, actor: Actor | str | None = None
    ) -> tuple[Material, bytes]:
        """One material and its bytes (``actor``: as for :meth:`get`: another province's
        material is NotPermitted)."""
        return self._attachments.material(material_id, actor)

    def pilots(
        self,
        *,
        province: str | None = None,
        state: str | None = None,
        overdue: bool = False,
        actor: Actor | str | None = None,
    ) -> builtins.list[Pilot]:
        """The nominations from confirmation on: plan, last report, what is due next and
        whether it is overdue (``overdue``: only those). With ``actor``, as for
        :meth:`list`."""
        from peakpilot.workflow.pilots import pilots

        return pilots(
            self._runtime, province=province, state=state, overdue_only=overdue, actor=actor
        )

    def verify_audit(self) -> AuditReport:
        """Check every nomination's hash chain; report the first record that fails."""
        return self._queries.verify_audit()

    def timers(
        self, batch: str | None = None, *, actor: Actor | str | None = None
    ) -> builtins.list[Timer]:
        """Pending timers in due order, of one batch or of all.

        With a provincial ``actor`` (drc:P, gov:P): the timers of its province (its
        pilots' due days, reminders and milestones) and the batch-wide ones, which have
        no province (a batch's reminders and deadline: every province works to them);
        never another province's."""
        return self._queries.timers(batch, actor)

    def notices(
        self, status: str | None = None, *, actor: Actor | str | None = None
    ) -> builtins.list[Notice]:
        """The outbox, oldest first, optionally only notices of one status.

        With a provincial ``actor`` (drc:P, gov:P), the notices of its province: every
        notice about one of its nominations, whoever it was sent to (the NDRC's copy of
        a submission says no more than the nomination's history), and every notice about
        no nomination addressed to one of its actors (reminders, shortfalls, a batch's
        opening). Never another province's, nor a national round-up to the NDRC (the
        deadline summary); ndrc and ``actor=None`` read them all."""
        return self._queries.notices(status, actor)

    def notice(self, notice_id: str, *, actor: Actor | str | None = None) -> NoticeDetail:
        """One notice with its rendered text and HTML; a notice :meth:`notices` would
        not list for ``actor`` is NotPermitted."""
        return self._queries.notice(notice_id, actor)

    # -- time and delivery ---------------------------------------------------------------

    def tick(
        self,
        now: datetime | None = None,
        *,
        stop: threading.Event | None = None,
        lapse_chunk: int = LAPSE_CHUNK,
        progress: Callable[[], None] | None = None,
    ) -> TickReport:
        """Do every timer due at ``now`` (the clock's time by default), in due order.

        A deadline lapses at most ``lapse_chunk`` nominations per transaction
        (``LAPSE_CHUNK``, 5,000; lower it for smaller transactions): interrupted between
        chunks, it leaves its timer pending, and the next tick lapses the rest, then
        sends the notices listing them all. ``progress`` is called after each
        transaction (a daemon's heartbeat: it is working).
        """
        return self._runtime.by_rules_in_force(
            lambda: self._deadlines.tick(now, stop=stop, lapse_chunk=lapse_chunk, progress=progress)
        )

    def next_due_at(self) -> datetime | None:
        """When the earliest pending timer falls due (what the daemon sleeps until)."""
        return self._deadlines.next_due_at()

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
        return self._delivery().dispatch(
            channel,
            max_attempts=max_attempts,
            batch_size=batch_size,
            max_batches=max_batches,
            stop=stop,
        )

    def retry_notice(self, notice_id: str) -> Notice:
        """Put a failed or dead notice back in the queue, due now, with fresh attempts."""
        return self._delivery().retry(notice_id)

    def status(self, *, sweep_seconds: float = 5.0) -> Status:
        """Whether peakpilot is healthy (the ``status`` document): the schema, the
        programme version, the daemons' heartbeats, the timers' and notices' backlog, and
        the problems found. ``sweep_seconds`` is the daemons' sweep period, which the
        thresholds count in."""
        from peakpilot.workflow.health import read_status

        return read_status(self._runtime, sweep_seconds)

    def transition_counts(self) -> dict[str, int]:
        """How many audit records each event wrote (``peakpilot_transitions_total``)."""
        return self._runtime.db.run(lambda tx: tx.trail.counts_by_event(), write=False)

    def heartbeat(
        self, daemon: DaemonRecord, *, starting: bool = False, stopped: bool = False
    ) -> None:
        """A daemon registers (``starting``: replacing the silent entries of its host),
        says it is still alive, or, ``stopped``, leaves."""
        from peakpilot.workflow.health import heartbeat

        heartbeat(self._runtime, daemon, starting=starting, stopped=stopped)

    def check_templates(self) -> None:
        """Compile every template the programme's notices need; refuse a missing or
        broken one now (``init`` and the daemon's start do), not when a notice is due."""
        self._runtime.notifier.check_templates()

    @cached_property
    def _commands(self) -> Commands:
        from peakpilot.workflow.commands import Commands

        return Commands(self._runtime)

    @cached_property
    def _attachments(self) -> Attachments:
        from peakpilot.workflow.attachments import Attachments

        return Attachments(self._runtime, self._max_material_bytes)

    @cached_property
    def _deadlines(self) -> Deadlines:
        from peakpilot.workflow.deadlines import Deadlines

        return Deadlines(self._runtime, self._stale_after)

    def _delivery(self) -> Delivery:
        from peakpilot.workflow.delivery import Delivery  # the channels load only here

        return Delivery(self._runtime)
