"""What every command and query of one Engine shares: the database, the clock, the
programme stored in the database, and what is built from it, each made once, when a
call first needs it.

A read loads the programme from its compiled form (no PyYAML, no pydantic); the state
machine (``transitions``) is built for the first decision and the notifier (Jinja2) for
the first notice, so a process that only reads never imports either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from peakpilot.clock import Clock, require_instant
from peakpilot.config.program import Program, parse_program
from peakpilot.errors import NotFound, NotPermitted, ProgramChanged
from peakpilot.states.actors import (
    Actor,
    ActorResolver,
    notice_province,
    read_scope,
    sees_notice,
    sees_province,
)
from peakpilot.workflow.snapshots import HistoryRecord, Material, Nomination, Notice, Timer
from peakpilot.workflow.store.database import Database

if TYPE_CHECKING:
    from peakpilot.notifications.compose import Notifier
    from peakpilot.notifications.contacts import Contacts
    from peakpilot.states.machine import StateMachine
    from peakpilot.workflow.audit import ChainRecord
    from peakpilot.workflow.store.materials import MaterialRecord
    from peakpilot.workflow.store.nominations import NominationRecord
    from peakpilot.workflow.store.outbox import NoticeRecord
    from peakpilot.workflow.store.timers import TimerRecord
    from peakpilot.workflow.store.transaction import Transaction

T = TypeVar("T")


def no_programme(database: str) -> NotFound:
    return NotFound(f"database {database} holds no programme: run `peakpilot init` first")


class Runtime:
    """The shared state of one Engine; every part is built on first use."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        contacts: Contacts | str | Path | None = None,
        templates_dir: str | Path | None = None,
        template_cache_dir: str | Path | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._contacts = contacts
        self._templates_dir = templates_dir
        self._template_cache_dir = template_cache_dir
        self._program: Program | None = None
        self._version = 0
        self._machine: StateMachine | None = None
        self._notifier: Notifier | None = None
        self._actors: ActorResolver | None = None

    def now(self) -> datetime:
        return require_instant(self.clock.now(), "the clock's time")

    # -- the programme and what is built from it ----------------------------------------

    @property
    def program(self) -> Program:
        """The programme stored in the database (loaded once)."""
        if self._program is None:
            stored = self.db.run(lambda tx: tx.programs.stored(), write=False)
            if stored is None:
                raise no_programme(self.db.url)
            if stored.compiled is not None:
                self._program = Program.from_compiled(stored.compiled)
            else:  # stored before compiled forms were kept: the next init adds it
                self._program = parse_program(stored.source, f"stored programme {stored.id}")
            self._version = stored.version
        return self._program

    @property
    def program_version(self) -> int:
        """The number of the stored version :attr:`program` is."""
        self.program  # noqa: B018 - loads the programme and its number together
        return self._version

    def use_program(self, program: Program, version: int) -> None:
        """``init`` put ``program`` in force as ``version``: what was built from an older
        one is dropped."""
        if self._program != program:
            self.forget_program()
            self._program = program
        self._version = version

    def forget_program(self) -> None:
        """Drop the programme and what was built from it: the next call loads the
        version in force."""
        self._program, self._version = None, 0
        self._machine = self._notifier = self._actors = None

    # -- writing by the rules in force ----------------------------------------------------

    def write(self, work: Callable[[Transaction], T]) -> T:
        """``work`` in one write transaction that first checks that the programme this
        process decides by is still the one in force (ProgramChanged otherwise), holding
        it in force until the commit: no process writes by rules that were replaced."""
        held = self.program_version

        def checked(tx: Transaction) -> T:
            in_force = tx.programs.version_in_force(lock=True)
            if in_force != held:
                raise ProgramChanged(held, in_force)
            return work(tx)

        return self.db.run(checked)

    def by_rules_in_force(self, command: Callable[[], T]) -> T:
        """Run ``command``; when the programme changed since it was loaded, load the
        version in force and run the command once more, by the new rules."""
        try:
            return command()
        except ProgramChanged:
            self.forget_program()
            return command()

    @property
    def machine(self) -> StateMachine:
        """The programme's state machine (``transitions``), built for the first decision."""
        from peakpilot.states.machine import StateMachine

        if self._machine is None:
            self._machine = StateMachine(self.program)
        return self._machine

    @property
    def notifier(self) -> Notifier:
        """Renders the programme's notices for the configured contacts."""
        if self._notifier is None:
            self._notifier = self.notifier_for(self.program)
        return self._notifier

    def notifier_for(self, program: Program) -> Notifier:
        """A notifier of ``program``: ``init`` checks a programme's templates with one
        before the programme is stored."""
        from peakpilot.notifications.compose import Notifier
        from peakpilot.notifications.render import renderer_for

        renderer = renderer_for(self._templates_dir, self._template_cache_dir)
        return Notifier(program, renderer, self.contacts_for(program))

    def contacts_for(self, program: Program) -> Contacts:
        """The contacts this Engine was given (a file is read and checked against
        ``program``'s actors): where notices render in which language, and where the
        dispatcher sends them."""
        from peakpilot.notifications.contacts import Contacts, load_contacts

        contacts = self._contacts
        if isinstance(contacts, Contacts):
            return contacts
        return Contacts() if contacts is None else load_contacts(contacts, program)

    # -- actors ---------------------------------------------------------------------------

    def actor(self, actor: Actor | str) -> Actor:
        """``actor`` in its canonical form under the programme."""
        if self._actors is None:
            self._actors = ActorResolver(self.program)
        return self._actors(actor)

    def reader(self, actor: Actor | str | None) -> Actor | None:
        """Who reads, resolved (an unparsable actor is InvalidInput); None reads all."""
        return None if actor is None else self.actor(actor)

    def check_reader(self, reader: Actor | None, province: str) -> None:
        """A provincial actor reads its own province only (NotPermitted otherwise)."""
        if reader is not None and not sees_province(reader, province, self.program):
            raise NotPermitted(f"{reader} may not read the nominations of {province}")

    def reader_scope(self, reader: Actor | None) -> str | None:
        """The one province ``reader`` may read, or None when it reads them all."""
        return None if reader is None else read_scope(reader, self.program)

    def scoped_province(self, reader: Actor | None, province: str | None) -> str | None:
        """The province a list-like read is limited to: the one asked for (NotPermitted
        when the reader may not read it), else the reader's own, else none."""
        if province is not None:
            self.check_reader(reader, province)
            return province
        return self.reader_scope(reader)

    def check_notice_reader(
        self, reader: Actor | None, notice_id: str, addressee: str, about: str | None
    ) -> None:
        """A provincial actor reads its own province's notices only (NotPermitted
        otherwise; see :func:`~peakpilot.states.actors.notice_province`)."""
        if reader is not None and not sees_notice(reader, addressee, about, self.program):
            whose = notice_province(addressee, about, self.program)
            raise NotPermitted(
                f"{reader} may not read notice {notice_id}: "
                + (f"it concerns {whose}" if whose else f"it is addressed to {addressee}")
            )

    # -- snapshots: stored records as the API hands them out -----------------------------

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.program.timezone)

    def nomination(self, record: NominationRecord) -> Nomination:
        return self.nominations([record])[0]

    def nominations(self, records: Iterable[NominationRecord]) -> list[Nomination]:
        """Snapshots of ``records``; the programme's time zone looked up once for a list
        of thousands rather than twice a row."""
        zone = self.program.timezone
        return [
            Nomination(
                id=record.id,
                batch=record.batch_id,
                province=record.province,
                kind=record.kind,
                name=record.name,
                level=record.level,
                state=record.state,
                version=record.version,
                created_at=record.created_at.astimezone(zone),
                updated_at=record.updated_at.astimezone(zone),
                program_version=record.program_version,
            )
            for record in records
        ]

    def timer(self, record: TimerRecord) -> Timer:
        return Timer(
            id=record.id,
            kind=record.kind.value,
            due_at=self.local(record.due_at),
            batch=record.batch_id,
            province=record.province,
            nomination=record.nomination_id,
        )

    def notice(self, record: NoticeRecord) -> Notice:
        return Notice(
            id=record.id,
            kind=record.kind,
            recipient=record.recipient,
            actor=record.actor,
            locale=record.locale,
            subject=record.subject,
            status=record.status.value,
            attempts=record.attempts,
            created_at=self.local(record.created_at),
            sent_at=None if record.sent_at is None else self.local(record.sent_at),
            next_attempt_at=self.local(record.next_attempt_at),
            last_error=record.last_error,
            nomination=record.nomination_id,
            batch=record.batch_id,
        )

    def history(self, records: list[ChainRecord]) -> list[HistoryRecord]:
        zone = self.program.timezone
        return [
            HistoryRecord(
                r.seq,
                r.event,
                r.from_state,
                r.to_state,
                r.actor,
                r.at.astimezone(zone),
                r.reason,
                r.data,
            )
            for r in records
        ]

    def material(self, record: MaterialRecord) -> Material:
        return Material(
            id=record.id,
            nomination=record.nomination_id,
            kind=record.kind,
            sha256=record.sha256,
            size=record.size,
            media_type=record.media_type,
            title=record.title,
            doc_number=record.doc_number,
            actor=record.actor,
            attached_at=self.local(record.attached_at),
        )


__all__ = ["Runtime", "no_programme"]
