"""The "obvious" baseline: ``transitions`` plus one SQLModel session per transition, as
someone would write it from the libraries' tutorials, with peakpilot's own tables.

A ``transitions.Machine`` (no bound model, no auto transitions) is built once. Each fire
opens a session, loads the nomination, reads the quota and counts its use with a
``select(func.count())``, triggers the machine on a plain object holding the state, sets
the row's attributes, adds the audit record (hashed with peakpilot's ``record_hash``) and
one short notice, and commits. The SQLite engine is set up as LIBRARY_NOTES says a
correct one must be: peakpilot's PRAGMAs, and ``BEGIN IMMEDIATE`` from a listener.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, func
from sqlmodel import Session, col, select
from transitions import Machine

from benchmarks.raw import MOVES, QUOTA_COUNTS
from benchmarks.workload import Step
from peakpilot.workflow.audit import record_hash
from peakpilot.workflow.tables import AuditRecordRow, NominationRow, NoticeRow, QuotaRow

STATES = ["drafted", "provincial_approval", "approved", "submitted"]


def sqlite_engine(path: Path) -> sa.Engine:
    """An SQLAlchemy engine on an SQLite file with peakpilot's PRAGMAs and writers that
    take the write lock when they begin."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        for pragma in (
            "busy_timeout = 30000",
            "journal_mode = WAL",
            "synchronous = FULL",
            "foreign_keys = ON",
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class NaiveFire:
    """One fire per call: one session, one commit."""

    def __init__(self, path: Path, at: datetime) -> None:
        self.engine = sqlite_engine(path)
        self.at = at.astimezone(UTC)
        self.machine = Machine(
            model=None,
            states=STATES,
            transitions=[
                {"trigger": name, "source": list(sources), "dest": dest}
                for name, (sources, dest, _, _) in MOVES.items()
            ],
            initial="drafted",
            auto_transitions=False,
        )

    def __call__(self, nomination_id: str, province: str, step: Step) -> None:
        with Session(self.engine) as session:
            row = session.get(NominationRow, nomination_id)
            if row is None:
                raise LookupError(f"no nomination {nomination_id}")
            quota = session.get(QuotaRow, (row.batch_id, row.province))
            used = session.exec(
                select(func.count())
                .select_from(NominationRow)
                .where(
                    col(NominationRow.batch_id) == row.batch_id,
                    col(NominationRow.province) == row.province,
                    col(NominationRow.state).in_(QUOTA_COUNTS),
                )
            ).one()
            if step.event == "submit" and (quota is None or used >= quota.quota):
                raise RuntimeError(f"the quota of {row.province} is full")
            subject = SimpleNamespace(state=row.state)
            if not self.machine.events[step.event].trigger(subject):
                raise RuntimeError(f"{step.event} refused from {row.state}")
            actor = step.actor(row.province)
            seq = row.version + 1
            digest = record_hash(
                nomination_id=row.id,
                seq=seq,
                event=step.event,
                from_state=row.state,
                to_state=subject.state,
                actor=actor,
                at=self.at,
                reason=step.reason,
                batch_id=row.batch_id,
                prev_hash=row.audit_head,
            )
            session.add(
                AuditRecordRow(
                    nomination_id=row.id,
                    seq=seq,
                    event=step.event,
                    from_state=row.state,
                    to_state=subject.state,
                    actor=actor,
                    at=self.at,
                    reason=step.reason,
                    batch_id=row.batch_id,
                    prev_hash=row.audit_head,
                    hash=digest,
                )
            )
            _, _, kind, recipient_role = MOVES[step.event]
            recipient = "ndrc" if recipient_role == "ndrc" else f"{recipient_role}:{province}"
            text = f"{row.name}: {row.state} -> {subject.state} ({step.event} by {actor})"
            dedupe = "\x1f".join((row.id, str(seq), kind, recipient, recipient))
            session.add(
                NoticeRow(
                    id=secrets.token_hex(8),
                    dedupe_key=hashlib.sha256(dedupe.encode()).hexdigest(),
                    kind=kind,
                    actor=recipient,
                    recipient=recipient,
                    locale="zh-CN",
                    subject=f"[peakpilot] {kind}: {row.name}",
                    text=text,
                    html=f"<p>{text}</p>",
                    status="pending",
                    next_attempt_at=self.at,
                    nomination_id=row.id,
                    batch_id=row.batch_id,
                    created_at=self.at,
                )
            )
            row.state = subject.state
            row.version = seq
            row.audit_head = digest
            row.updated_at = self.at
            session.commit()

    def close(self) -> None:
        self.engine.dispose()
