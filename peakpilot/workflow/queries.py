"""The questions people and backends ask: one nomination, a list, a board, a history,
the pending timers, the outbox, the audit trail's integrity.

Each answer comes from one read-only transaction (one snapshot on PostgreSQL) and is a
frozen copy. Reads are scoped like writes (DESIGN 4): with an actor, a provincial one
(drc:P, gov:P) reads its own province only, and asking for another province's nomination
or notice is NotPermitted; without one (the operator's command line) a read sees
everything. The rules are :mod:`peakpilot.states.actors`' (``read_scope``,
``notice_province``).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from peakpilot.errors import InvalidInput, NotFound
from peakpilot.states.actors import Actor, province_actors
from peakpilot.vocabulary import ATTACH_EVENT, NoticeStatus
from peakpilot.workflow import audit
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import (
    AuditReport,
    Board,
    BrokenRecord,
    HistoryRecord,
    Nomination,
    NominationDetail,
    Notice,
    NoticeDetail,
    ProgramVersion,
    ProvinceBoard,
    Timer,
)
from peakpilot.workflow.store.transaction import Transaction

if TYPE_CHECKING:
    from peakpilot.workflow.change_report import ProgramChange


class Queries:
    """Every read of the Engine."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def get(self, nomination_id: str, actor: Actor | str | None) -> Nomination:
        reader = self.rt.reader(actor)

        def read(tx: Transaction) -> Nomination:
            record = tx.nominations.get(nomination_id)
            self.rt.check_reader(reader, record.province)
            return self.rt.nomination(record)

        return self.rt.db.run(read, write=False)

    def show(self, nomination_id: str, actor: Actor | str | None) -> NominationDetail:
        # the facts the rules read: only show needs them among the reads
        from peakpilot.workflow.decisions import decision_context

        reader = self.rt.reader(actor)
        now = self.rt.now()
        program, machine = self.rt.program, self.rt.machine

        def read(tx: Transaction) -> NominationDetail:
            record, batch = tx.nominations.get_with_batch(nomination_id)
            self.rt.check_reader(reader, record.province)
            current = self.rt.nomination(record)
            context = decision_context(
                self.rt, tx, record, batch, program.events, now, None, lock=False
            )
            allowed = machine.allowed_events(current, reader, context)
            history = self.rt.history(tx.trail.history(record.id))
            timers = [self.rt.timer(t) for t in tx.timers.pending(nomination=record.id)]
            return NominationDetail(current, tuple(allowed), tuple(history), tuple(timers))

        return self.rt.db.run(read, write=False)

    def list(
        self,
        *,
        state: str | None,
        province: str | None,
        batch: str | None,
        actor: Actor | str | None,
    ) -> builtins.list[Nomination]:
        program = self.rt.program
        state = None if state is None else program.state(state)
        province = None if province is None else program.province(province).slug
        province = self.rt.scoped_province(self.rt.reader(actor), province)

        def read(tx: Transaction) -> builtins.list[Nomination]:
            if batch is not None:
                tx.batches.get(batch)
            records = tx.nominations.list(state=state, province=province, batch=batch)
            return self.rt.nominations(records)

        return self.rt.db.run(read, write=False)

    def board(self, batch_id: str | None) -> Board:
        """Per province of a batch (the newest when None): quota, used, left, and the
        count per state, in the programme's orders; provinces with neither a quota nor a
        nomination in the batch are left out."""
        program = self.rt.program

        def read(tx: Transaction) -> Board:
            batch = tx.batches.get(batch_id) if batch_id is not None else tx.batches.newest()
            if batch is None:
                raise NotFound("no batch exists yet: run `peakpilot init`")
            quotas = tx.batches.quotas(batch.id)
            counts = tx.nominations.state_counts(batch.id)
            provinces = []
            for slug in program.provinces:
                if slug not in quotas and slug not in counts:
                    continue
                mine = counts.get(slug, {})
                states = {state: mine.get(state, 0) for state in program.states}
                used = sum(states[state] for state in program.quota_counts)
                quota = quotas.get(slug, 0)
                provinces.append(ProvinceBoard(slug, quota, used, max(quota - used, 0), states))
            return Board(
                batch=batch.id,
                deadline=self.rt.local(batch.deadline_at),
                status=batch.status.value,
                provinces=tuple(provinces),
            )

        return self.rt.db.run(read, write=False)

    def history(
        self, nomination_id: str, actor: Actor | str | None
    ) -> builtins.list[HistoryRecord]:
        reader = self.rt.reader(actor)

        def read(tx: Transaction) -> builtins.list[HistoryRecord]:
            record = tx.nominations.get(nomination_id)
            self.rt.check_reader(reader, record.province)
            return self.rt.history(tx.trail.history(record.id))

        return self.rt.db.run(read, write=False)

    def verify_audit(self) -> AuditReport:
        def read(tx: Transaction) -> AuditReport:
            checked, broken = audit.find_first_break(
                tx.trail.chain_heads(), tx.trail.chain_records()
            )
            if broken is None:
                broken = _first_bad_material(tx)
            if broken is None:
                return AuditReport(ok=True, records=checked, first_broken=None)
            return AuditReport(
                ok=False,
                records=tx.trail.count(),
                first_broken=BrokenRecord(broken.nomination, broken.seq, broken.problem),
            )

        return self.rt.db.run(read, write=False)

    def timers(self, batch: str | None, actor: Actor | str | None) -> builtins.list[Timer]:
        seen_from = self.rt.reader_scope(self.rt.reader(actor))

        def read(tx: Transaction) -> builtins.list[Timer]:
            if batch is not None:
                tx.batches.get(batch)
            pending = tx.timers.pending(batch=batch, seen_from=seen_from)
            return [self.rt.timer(t) for t in pending]

        return self.rt.db.run(read, write=False)

    def notices(self, status: str | None, actor: Actor | str | None) -> builtins.list[Notice]:
        wanted = None if status is None else notice_status(status)
        province = self.rt.reader_scope(self.rt.reader(actor))
        addressees = () if province is None else province_actors(province, self.rt.program)
        records = self.rt.db.run(
            lambda tx: tx.outbox.list(wanted, province=province, addressees=addressees),
            write=False,
        )
        return [self.rt.notice(record) for record in records]

    def notice(self, notice_id: str, actor: Actor | str | None) -> NoticeDetail:
        reader = self.rt.reader(actor)

        def read(tx: Transaction) -> NoticeDetail:
            record = tx.outbox.get(notice_id)
            if reader is not None:
                about = record.nomination_id
                province = None if about is None else tx.nominations.get(about).province
                self.rt.check_notice_reader(reader, record.id, record.actor, province)
            text, html = tx.outbox.bodies(record.id)
            return NoticeDetail(self.rt.notice(record), text, html)

        return self.rt.db.run(read, write=False)

    # -- programme versions ---------------------------------------------------------------

    def program_versions(self) -> builtins.list[ProgramVersion]:
        rows = self.rt.db.run(lambda tx: tx.programs.versions(), write=False)
        return [
            ProgramVersion(row.version, row.sha256, self.rt.local(row.loaded_at), row.actor)
            for row in rows
        ]

    def program_text(self, version: int | None) -> str:
        def read(tx: Transaction) -> str:
            wanted = version if version is not None else tx.programs.version_in_force(lock=False)
            return tx.programs.text(wanted)[0]

        return self.rt.db.run(read, write=False)

    def program_diff(self, from_version: int, to_version: int) -> ProgramChange:
        from peakpilot.config.program import rebuild_program
        from peakpilot.config.program_diff import compare
        from peakpilot.workflow.change_report import ProgramChange

        def read(tx: Transaction) -> tuple[tuple[str, str], tuple[str, str]]:
            return tx.programs.text(from_version), tx.programs.text(to_version)

        old, new = self.rt.db.run(read, write=False)
        differences = compare(
            rebuild_program(*old, f"programme version {from_version}"),
            rebuild_program(*new, f"programme version {to_version}"),
        )
        program = self.rt.program.id
        return ProgramChange(program, "diff", from_version, to_version, differences)


def _first_bad_material(tx: Transaction) -> audit.Break | None:
    """The ``attach`` record of the first material whose stored bytes no longer match
    the SHA-256 that record (hashed into the chain) gives them."""
    for bad in tx.materials.bad_blobs():
        for material in tx.materials.with_sha256(bad.sha256):
            for record in tx.trail.history(material.nomination_id):
                if record.event == ATTACH_EVENT and (record.data or {}).get("material") == (
                    material.id
                ):
                    problem = (
                        f"the bytes of material {material.id} do not match its sha256"
                        if bad.found != "missing"
                        else f"the bytes of material {material.id} are missing"
                    )
                    return audit.Break(material.nomination_id, record.seq, problem)
        return audit.Break("-", 0, f"stored bytes {bad.sha256} do not match their sha256")
    return None


def notice_status(text: str) -> NoticeStatus:
    """The status named by ``text``, or a refusal listing the statuses."""
    try:
        return NoticeStatus(text)
    except ValueError:
        raise InvalidInput(
            f"unknown notice status {text!r}: use one of {', '.join(NoticeStatus)}"
        ) from None


__all__ = ["Queries", "notice_status"]
