"""The declared schema: SQLModel tables, the one place a table's columns, keys and
indexes are spelled out.

Schema changes go through the Alembic migrations beside this module; a test compares
these declarations with the migrated schema on SQLite and PostgreSQL. Nothing at run
time goes through the ORM: each table is read and written by one repository of
:mod:`peakpilot.workflow.store`, as SQL text against these names.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class ProgramRow(SQLModel, table=True):
    """The programme in force: its current version, copied here so that every command
    reads it in one row. Writers read ``version`` first (locking the row on PostgreSQL),
    so a process still holding an older version never writes by its rules."""

    __tablename__ = "programs"

    id: str = Field(primary_key=True, max_length=64)
    digest: str = Field(max_length=64)
    source: str = Field(sa_column=Column(Text, nullable=False))
    # the validated programme as JSON (peakpilot.config.program.Program.to_compiled)
    compiled: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    loaded_at: datetime
    version: int = Field(sa_column=Column(Integer, nullable=False, server_default="1"))


class ProgramVersionRow(SQLModel, table=True):
    """Every programme text the database has loaded, numbered 1, 2, ... in loading order."""

    __tablename__ = "program_versions"

    version: int = Field(primary_key=True)
    program_id: str = Field(foreign_key="programs.id", max_length=64)
    sha256: str = Field(max_length=64)
    source: str = Field(sa_column=Column(Text, nullable=False))
    compiled: str = Field(sa_column=Column(Text, nullable=False))
    loaded_at: datetime
    actor: str = Field(max_length=64)


class BatchRow(SQLModel, table=True):
    """A batch of the programme. ``status`` turns ``closed`` when its deadline work ran."""

    __tablename__ = "batches"

    id: str = Field(primary_key=True, max_length=64)
    program_id: str = Field(foreign_key="programs.id", max_length=64)
    position: int = Field(unique=True)  # opening order: the newest open batch has the highest
    deadline_at: datetime
    status: str = Field(max_length=16)
    opened_at: datetime
    closed_at: datetime | None = None


class QuotaRow(SQLModel, table=True):
    """A province's places in a batch; the row submissions of that province lock."""

    __tablename__ = "quota_allocations"

    batch_id: str = Field(foreign_key="batches.id", primary_key=True, max_length=64)
    province: str = Field(primary_key=True, max_length=32)
    quota: int


class NominationRow(SQLModel, table=True):
    """A nomination. ``version`` is compared and set on every change; ``audit_head`` is
    the hash of its newest audit record, so that deleting that record is detectable.

    ``ix_nominations_batch_state`` lists a batch's nominations in one state in creation
    order: a deadline's lapse takes them 5,000 at a time, each chunk from the rows next to
    the last chunk's and none of those already lapsed."""

    __tablename__ = "nominations"
    __table_args__ = (
        UniqueConstraint("batch_id", "province", "kind", "name", name="uq_nominations_name"),
        Index("ix_nominations_batch_province_state", "batch_id", "province", "state"),
        Index("ix_nominations_batch_state", "batch_id", "state"),
        Index("ix_nominations_state", "state"),
    )

    id: str = Field(primary_key=True, max_length=32)
    batch_id: str = Field(foreign_key="batches.id", max_length=64)
    province: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    name: str = Field(max_length=200)
    level: str = Field(max_length=32)
    state: str = Field(max_length=32)
    version: int
    audit_head: str = Field(max_length=64)
    created_at: datetime
    updated_at: datetime
    # the programme version the nomination last moved under
    program_version: int = Field(sa_column=Column(Integer, nullable=False, server_default="1"))


class AuditRecordRow(SQLModel, table=True):
    """One link of a nomination's hash chain. Append-only: the engine never updates it.

    Indexed by batch and event, so that a deadline finds every nomination it lapsed, in
    however many transactions it did so, without reading the whole trail."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_batch_event", "batch_id", "event"),)

    nomination_id: str = Field(
        sa_column=Column(String(32), ForeignKey("nominations.id"), primary_key=True)
    )
    seq: int = Field(primary_key=True)
    event: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    actor: str = Field(max_length=64)
    at: datetime
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    batch_id: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    # the event's data as canonical JSON (keys sorted), hashed with the record; or null
    data: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class IdempotencyRow(SQLModel, table=True):
    """The first result of a ``fire`` made with an idempotency key, replayed on retries."""

    __tablename__ = "idempotency_keys"

    key: str = Field(primary_key=True, max_length=200)
    nomination_id: str = Field(foreign_key="nominations.id", max_length=32)
    event: str = Field(max_length=32)
    actor: str = Field(max_length=64)
    result: str = Field(sa_column=Column(Text, nullable=False))  # the snapshot, as JSON
    created_at: datetime


class NoticeRow(SQLModel, table=True):
    """A rendered notice in the outbox: written in the transaction of its event, then
    delivered at least once. ``dedupe_key`` makes the same notice impossible twice;
    ``claimed_until`` is the lease of the dispatcher sending it."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_due", "status", "next_attempt_at"),)

    id: str = Field(primary_key=True, max_length=32)
    dedupe_key: str = Field(unique=True, max_length=255)
    kind: str = Field(max_length=32)
    actor: str = Field(max_length=64)
    recipient: str = Field(max_length=255)
    locale: str = Field(max_length=8)
    subject: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: datetime
    claimed_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    nomination_id: str | None = Field(default=None, max_length=32, index=True)
    batch_id: str | None = Field(default=None, max_length=64)
    created_at: datetime
    sent_at: datetime | None = None


class TimerRow(SQLModel, table=True):
    """A durable timer: the database, not the scheduler, remembers what is due.

    ``unique_key`` (e.g. ``2023-first/reminder/7``) keeps the same timer from existing
    twice, however often the batch or nomination that starts it is processed."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "status", "due_at"),)

    id: str = Field(primary_key=True, max_length=32)
    unique_key: str = Field(unique=True, max_length=255)
    kind: str = Field(max_length=32)
    due_at: datetime
    batch_id: str = Field(foreign_key="batches.id", max_length=64)
    province: str | None = Field(default=None, max_length=32)
    nomination_id: str | None = Field(default=None, foreign_key="nominations.id", max_length=32)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON
    status: str = Field(max_length=16)
    done_at: datetime | None = None
    created_at: datetime


class MaterialBlobRow(SQLModel, table=True):
    """A document's bytes, stored once however often they are attached: the key is their
    SHA-256, which ``audit verify`` recomputes."""

    __tablename__ = "material_blobs"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class MaterialRow(SQLModel, table=True):
    """A document attached to a nomination (its ``attach`` audit record carries the same
    facts, hashed into the nomination's chain)."""

    __tablename__ = "materials"

    id: str = Field(primary_key=True, max_length=32)
    nomination_id: str = Field(foreign_key="nominations.id", max_length=32, index=True)
    kind: str = Field(max_length=32)
    sha256: str = Field(foreign_key="material_blobs.sha256", max_length=64)
    size: int
    media_type: str = Field(max_length=100)
    title: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    doc_number: str | None = Field(default=None, max_length=100)
    actor: str = Field(max_length=64)
    attached_at: datetime


class DaemonRow(SQLModel, table=True):
    """A running daemon, for ``status``: it registers when it starts, refreshes
    ``last_seen`` every sweep and leaves when it stops cleanly, so a row whose
    ``last_seen`` has gone quiet is a daemon that died or hangs."""

    __tablename__ = "daemons"

    id: str = Field(primary_key=True, max_length=32)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime
    last_seen: datetime
    sweep_seconds: float
