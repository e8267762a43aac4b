"""The raw baselines of the fire figures: what ``Engine.fire`` must do, written straight
against the driver (``sqlite3``, or ``psycopg``) with nothing in between.

Per fire, one transaction: read the nomination by id; read the province's quota row
(locked ``FOR UPDATE`` on PostgreSQL, as the engine does; SQLite's ``BEGIN IMMEDIATE``
already serialises writers) and count its submitted + confirmed nominations of the batch;
check the move; compare-and-set the nomination (state, version, audit head); append the
audit record, its SHA-256 hash computed as ``peakpilot.workflow.audit`` does, so the
chains stay valid and ``verify_audit`` can check the baseline did the whole job; queue
one pre-rendered short notice in the outbox; commit.

Differences from the engine, kept on purpose: the quota is read on every fire (the
engine reads it for ``submit`` only, but reads the batch row on every fire instead), and
the notice is a short fixed text rather than a Jinja2 rendering. Both are what a careful
hand-written version would do; the gap to the engine is the engine's overhead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.workload import Step, sqlite_stamp

# event: (states it leaves, state it enters, notice kind, who the notice goes to)
MOVES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "submit_for_approval": (("drafted",), "provincial_approval", "sent_for_approval", "gov"),
    "approve": (("provincial_approval",), "approved", "approved", "drc"),
    "submit": (("approved",), "submitted", "submitted", "ndrc"),
    "send_back": (("provincial_approval", "approved", "submitted"), "drafted", "sent_back", "drc"),
}
QUOTA_COUNTS = ("submitted", "confirmed")
NOTICE_NOTE = (
    "the baselines queue one short pre-rendered notice per fire; the engine renders its "
    "Jinja2 templates (text and HTML) for it"
)

SELECT_NOMINATION = (
    "SELECT id, batch_id, province, kind, name, level, state, version, audit_head, "
    "created_at, updated_at FROM nominations WHERE id = ?"
)
SELECT_QUOTA = "SELECT quota FROM quota_allocations WHERE batch_id = ? AND province = ?"
COUNT_USED = (
    "SELECT count(*) FROM nominations WHERE batch_id = ? AND province = ? AND state IN (?, ?)"
)
COMPARE_AND_SET = (
    "UPDATE nominations SET state = ?, version = ?, audit_head = ?, updated_at = ? "
    "WHERE id = ? AND version = ?"
)
INSERT_AUDIT = (
    "INSERT INTO audit_records (nomination_id, seq, event, from_state, to_state, actor, at, "
    "reason, batch_id, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_NOTICE = (
    "INSERT INTO notices (id, dedupe_key, kind, actor, recipient, locale, subject, text, html, "
    "status, attempts, next_attempt_at, nomination_id, batch_id, created_at) "
    "VALUES (?, ?, ?, ?, ?, 'zh-CN', ?, ?, ?, 'pending', 0, ?, ?, ?, ?)"
)


def chain_hash(*fields: Any) -> str:
    """SHA-256 of a record's fields and its predecessor's hash, in audit.py's canonical
    JSON form (the instant as UTC ISO text with microseconds)."""
    encoded = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


@functools.cache
def _format_style(sql: str) -> str:
    """psycopg's placeholders for the statements above (they hold no literal '?')."""
    return sql.replace("?", "%s")


class RawFire:
    """One fire per call, on a DB-API connection; subclasses say how to talk to it."""

    quota_lock = ""

    def __init__(self, at: datetime) -> None:
        self.at_iso = at.astimezone(UTC).isoformat(timespec="microseconds")
        self.stored: Any = at

    # -- the driver ------------------------------------------------------------------------

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- the work --------------------------------------------------------------------------

    def __call__(self, nomination_id: str, province: str, step: Step) -> None:
        self.begin()
        try:
            self._fire(nomination_id, step)
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def _fire(self, nomination_id: str, step: Step) -> None:
        row = self.one(SELECT_NOMINATION, (nomination_id,))
        if row is None:
            raise LookupError(f"no nomination {nomination_id}")
        _, batch_id, province, _, name, _, state, version, head = row[:9]
        quota = self.one(SELECT_QUOTA + self.quota_lock, (batch_id, province))
        used = self.one(COUNT_USED, (batch_id, province, *QUOTA_COUNTS))
        sources, to_state, kind, recipient_role = MOVES[step.event]
        if state not in sources:
            raise RuntimeError(f"{step.event} is not possible from {state}")
        if step.event == "submit" and (quota is None or used is None or used[0] >= quota[0]):
            raise RuntimeError(f"the quota of {province} is full")
        actor = step.actor(province)
        seq = version + 1
        digest = chain_hash(
            nomination_id,
            seq,
            step.event,
            state,
            to_state,
            actor,
            self.at_iso,
            step.reason,
            batch_id,
            head,
        )
        moved = self.execute(
            COMPARE_AND_SET, (to_state, seq, digest, self.stored, nomination_id, version)
        )
        if moved != 1:
            raise RuntimeError(f"nomination {nomination_id} changed under us")
        self.execute(
            INSERT_AUDIT,
            (
                nomination_id,
                seq,
                step.event,
                state,
                to_state,
                actor,
                self.stored,
                step.reason,
                batch_id,
                head,
                digest,
            ),
        )
        recipient = "ndrc" if recipient_role == "ndrc" else f"{recipient_role}:{province}"
        dedupe = "\x1f".join((nomination_id, str(seq), kind, recipient, recipient))
        text = f"{name}: {state} -> {to_state} ({step.event} by {actor})"
        self.execute(
            INSERT_NOTICE,
            (
                secrets.token_hex(8),
                hashlib.sha256(dedupe.encode()).hexdigest(),
                kind,
                recipient,
                recipient,
                f"[peakpilot] {kind}: {name}",
                text,
                f"<p>{text}</p>",
                self.stored,
                nomination_id,
                batch_id,
                self.stored,
            ),
        )


class RawSqlite(RawFire):
    """``sqlite3`` with peakpilot's PRAGMAs: WAL, synchronous=FULL, a busy timeout,
    foreign keys, and the driver's own transaction handling off (``BEGIN IMMEDIATE``)."""

    def __init__(self, path: Path, at: datetime) -> None:
        super().__init__(at)
        self.stored = sqlite_stamp(at)
        self.connection = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "busy_timeout = 30000",
            "journal_mode = WAL",
            "synchronous = FULL",
            "foreign_keys = ON",
        ):
            self.connection.execute(f"PRAGMA {pragma}")

    def begin(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = self.connection.execute(sql, params).fetchone()
        return found

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self.connection.execute(sql, params).rowcount

    def close(self) -> None:
        self.connection.close()


class RawPostgres(RawFire):
    """``psycopg`` 3, one connection, one transaction per fire at the server's default
    isolation (READ COMMITTED), the quota row locked as the engine locks it."""

    quota_lock = " FOR UPDATE"

    def __init__(self, conninfo: str, at: datetime) -> None:
        super().__init__(at)
        self.connection = psycopg.connect(conninfo)
        self.cursor = self.connection.cursor()

    def begin(self) -> None:
        pass  # psycopg opens the transaction with the first statement

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return self.cursor.execute(_format_style(sql), params).fetchone()

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self.cursor.execute(_format_style(sql), params).rowcount

    def close(self) -> None:
        self.connection.close()
