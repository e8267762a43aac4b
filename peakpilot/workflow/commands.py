"""The commands people give: create a nomination, fire an event, open a batch.

A command is one transaction: read what the rules need, let the pure rules and machine
of :mod:`peakpilot.states` decide, then write the new state (a compare-and-set on
``version``), the audit record, any new timers and the rendered notices together.
Nothing is written when any step refuses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from peakpilot.config.program import Names
from peakpilot.errors import Conflict, InvalidInput, Refused
from peakpilot.notifications.compose import BatchInfo
from peakpilot.states.actors import Actor
from peakpilot.states.batches import check_open_batch
from peakpilot.states.guards import DecisionContext
from peakpilot.states.text_rules import check_idempotency_key, check_name, check_reason
from peakpilot.vocabulary import BATCH_ID
from peakpilot.workflow import pilot_timers
from peakpilot.workflow.decisions import batch_facts, decision_context, quota_facts
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import Nomination, to_json
from peakpilot.workflow.store.batches import BatchRecord
from peakpilot.workflow.store.idempotency import RememberedCall
from peakpilot.workflow.store.nominations import NominationRecord
from peakpilot.workflow.store.transaction import Transaction
from peakpilot.workflow.timers import batch_timers, milestone_timers


class Commands:
    """Every change a person (or a backend acting for one) makes."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def nominate(
        self,
        actor: Actor | str,
        *,
        province: str,
        kind: str,
        name: str,
        level: str,
        batch: str | None,
    ) -> Nomination:
        program = self.rt.program
        actor = self.rt.actor(actor)
        province_slug = program.province(province).slug
        kind_spec = program.kind(kind)
        if level not in kind_spec.levels:
            raise InvalidInput(
                f"unknown level {level!r} for a {kind}: use one of {', '.join(kind_spec.levels)}"
            )
        check_name(name)
        now = self.rt.now()
        machine = self.rt.machine

        def create(tx: Transaction) -> Nomination:
            batch_record = self._batch_for_nomination(tx, batch, province_slug)
            context = DecisionContext(
                now=now,
                batch=batch_facts(self.rt, batch_record),
                province_name=program.provinces[province_slug].names.en,
                quota=quota_facts(self.rt, tx, batch_record.id, province_slug, lock=False),
            )
            taken = tx.nominations.name_taken(batch_record.id, province_slug, kind, name)
            piloted_in = tx.nominations.piloted_in(
                province_slug, kind, name, program.piloted_states
            )
            machine.check_nominate(
                actor,
                province_slug,
                kind,
                name,
                level,
                context,
                name_taken=taken,
                piloted_in=piloted_in,
            )
            record = NominationRecord(
                id=new_id(),
                batch_id=batch_record.id,
                province=province_slug,
                kind=kind,
                name=name,
                level=level,
                state=program.initial_state,
                version=1,
                audit_head="",
                created_at=now,
                updated_at=now,
                program_version=self.rt.program_version,
            )
            tx.nominations.create(record, str(actor))
            return self.rt.nomination(record)

        return self.rt.write(create)

    def fire(
        self,
        nomination_id: str,
        event: str,
        actor: Actor | str,
        *,
        reason: str | None,
        idempotency_key: str | None,
        expected_version: int | None,
        data: Mapping[str, Any] | None = None,
    ) -> Nomination:
        actor = self.rt.actor(actor)
        check_reason(reason)
        if data is not None and not isinstance(data, Mapping):
            raise InvalidInput(f"data is a mapping of the event's items, not {type(data).__name__}")
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)

        def transition(tx: Transaction) -> Nomination:
            if idempotency_key is not None:
                replay = self._replay(tx, idempotency_key, nomination_id, event, actor)
                if replay is not None:
                    return replay
            after = self._move(tx, nomination_id, event, actor, reason, expected_version, data)
            if idempotency_key is not None:
                result = to_json(after)
                call = RememberedCall(after.id, event, str(actor), result)
                tx.remembered.remember(idempotency_key, call, self.rt.now())
            return after

        try:
            return self.rt.write(transition)
        except Conflict:
            # A concurrent call with the same key may have won: its result is ours.
            if idempotency_key is not None:
                replay = self.rt.db.run(
                    lambda tx: self._replay(tx, idempotency_key, nomination_id, event, actor),
                    write=False,
                )
                if replay is not None:
                    return replay
            raise

    def _move(
        self,
        tx: Transaction,
        nomination_id: str,
        event: str,
        actor: Actor,
        reason: str | None,
        expected_version: int | None,
        data: Mapping[str, Any] | None,
    ) -> Nomination:
        program, machine = self.rt.program, self.rt.machine
        record, batch_record = tx.nominations.get_with_batch(nomination_id)
        if expected_version is not None and record.version != expected_version:
            raise Conflict(
                f"nomination {record.id} is at version {record.version}, not "
                f"{expected_version}: someone changed it; reload it and try again"
            )
        current = self.rt.nomination(record)
        now = self.rt.now()
        # the move's existence is checked before its context is read (the contract's order)
        transition = machine.transition(event, record.state, f"nomination {record.id}")
        context = decision_context(
            self.rt, tx, record, batch_record, (event,), now, reason, lock=True, data=data
        )
        to_state, stored = machine.decide_with_data(current, event, actor, context)
        # A move whose rules look at a target batch (carry_over) lands in that batch.
        batch = context.batch
        if context.target is not None and context.target.batch is not None:
            batch = context.target.batch
        tx.nominations.move(
            record,
            event=event,
            actor=str(actor),
            at=now,
            reason=reason,
            to_state=to_state,
            batch_id=batch.id,
            program_version=self.rt.program_version,
            data=stored,
        )
        pilot_timers.end_timers(tx, program, record.id, to_state, now)
        if event == program.milestone_event:
            tx.timers.add(milestone_timers(program, record.id, batch.id, record.province, now))
        # a report round is shared by the batch's pilots: made by the first that needs it
        tx.timers.add(pilot_timers.started_by(program, event, record, stored, now), if_missing=True)
        notices = self.rt.notifier.for_event(
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
            from_batch=record.batch_id if batch.id != record.batch_id else None,
            data=stored,
        )
        tx.outbox.add(notices, now)
        return dataclasses.replace(
            current,
            state=to_state,
            version=current.version + 1,
            batch=batch.id,
            updated_at=self.rt.local(now),
            program_version=self.rt.program_version,
        )

    def _batch_for_nomination(
        self, tx: Transaction, batch_id: str | None, province: str
    ) -> BatchRecord:
        """The named batch, or the newest open batch giving ``province`` a quota (the
        newest open one when none does: the rules then say why)."""
        if batch_id is not None:
            return tx.batches.get(batch_id)
        found = tx.batches.newest_open_with_quota(province) or tx.batches.newest(open_only=True)
        if found is None:
            raise Refused("cannot nominate: no batch is open")
        return found

    def _replay(
        self, tx: Transaction, key: str, nomination_id: str, event: str, actor: Actor
    ) -> Nomination | None:
        stored = tx.remembered.get(key)
        if stored is None:
            return None
        if (stored.nomination_id, stored.event, stored.actor) != (nomination_id, event, str(actor)):
            raise Refused(
                f"idempotency key {key!r} was used for {stored.event} of nomination "
                f"{stored.nomination_id} by {stored.actor}: use a new key for a new request"
            )
        fields = json.loads(stored.result)
        fields.setdefault("program_version", 1)  # remembered before versions were kept
        for name in ("created_at", "updated_at"):
            fields[name] = self.rt.local(datetime.fromisoformat(fields[name]))
        return Nomination(**fields)

    def open_batch(
        self,
        actor: Actor | str,
        batch_id: str,
        *,
        deadline: datetime,
        quotas: Mapping[str, int],
    ) -> None:
        program = self.rt.program
        actor = self.rt.actor(actor)
        now = self.rt.now()
        notifier = self.rt.notifier

        def open_(tx: Transaction) -> None:
            # a malformed id (one the driver cannot even encode) is the rules' to refuse
            well_formed = isinstance(batch_id, str) and BATCH_ID.fullmatch(batch_id) is not None
            exists = well_formed and tx.batches.exists(batch_id)
            deadline_at, resolved = check_open_batch(
                program, actor, batch_id, deadline=deadline, now=now, quotas=quotas, exists=exists
            )
            tx.batches.open(
                batch_id, program_id=program.id, deadline_at=deadline_at, quotas=resolved, now=now
            )
            tx.timers.add(batch_timers(program, batch_id, deadline_at, now, skip_past=True))
            info = BatchInfo(batch_id, deadline_at)
            outgoing = []
            for slug, quota in resolved.items():
                outgoing += notifier.compose(
                    "batch_opened",
                    notifier.timer_recipients("batch_opened", slug),
                    partial(_batch_opened_context, slug, program.provinces[slug].names, quota),
                    at=now,
                    batch=info,
                    dedupe=(batch_id, slug),
                )
            tx.outbox.add(outgoing, now)

        self.rt.write(open_)


def _batch_opened_context(slug: str, names: Names, quota: int, locale: str) -> dict[str, Any]:
    return {"province": {"slug": slug, "name": names.get(locale)}, "quota": quota}


__all__ = ["Commands"]
