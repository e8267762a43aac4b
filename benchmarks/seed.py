"""Bulk seeding straight into the schema: many drafted nominations, and pending timers.

Creating 100,000 or 1,000,000 nominations through ``Engine.nominate`` is not what any
figure measures and would take far too long. The rows are generated inside the database
by one ``INSERT ... SELECT`` over a counter (binding a million Python tuples costs five
times as much). Each nomination gets its ``nominate`` audit record with a valid hash, so
``Engine.verify_audit`` passes on a seeded database.

Seeded ids are 16 hex characters like ``new_id()``'s, stamped a year back so that they
never meet an id the engine makes later. Seed a database once per kind of row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.workload import BATCH, BEFORE_DEADLINE, PROVINCES, Nominated, sqlite_stamp
from peakpilot.workflow import audit

NOMINATION_COLUMNS = (
    "id, batch_id, province, kind, name, level, state, version, audit_head, created_at, updated_at"
)
AUDIT_COLUMNS = (
    "nomination_id, seq, event, from_state, to_state, actor, at, reason, batch_id, prev_hash, hash"
)
TIMER_COLUMNS = (
    "id, unique_key, kind, due_at, batch_id, province, nomination_id, payload, status, "
    "done_at, created_at"
)
_LOW_BITS = 20  # new_id(): 11 hex digits of milliseconds, 5 of a counter
_YEAR_MS = 365 * 24 * 3600 * 1000


def _exact(at: datetime) -> Callable[[str, str], str]:
    def exact(nomination_id: str, actor: str) -> str:
        return audit.record_hash(
            nomination_id=nomination_id,
            seq=1,
            event="nominate",
            from_state=None,
            to_state="drafted",
            actor=actor,
            at=at,
            reason=None,
            batch_id=BATCH,
            prev_hash=audit.GENESIS,
        )

    return exact


def nominate_template(at: datetime) -> tuple[str, str, str] | None:
    """The canonical JSON of a ``nominate`` record made at ``at``, cut around its id and
    its actor: ``head "ID" middle "ACTOR" tail``. Ids and actors are ASCII, so filling
    it needs no escaping. Checked against ``audit.record_hash``; None if they differ
    (then only ``record_hash`` itself will do)."""
    canonical = json.dumps(
        ["@ID@", 1, "nominate", None, "drafted", "@ACTOR@", _iso(at), None, BATCH, ""],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    head, rest = canonical.split('"@ID@"')
    middle, tail = rest.split('"@ACTOR@"')
    nomination_id, actor = "0123456789abcdef", "drc:hebei"
    filled = f'{head}"{nomination_id}"{middle}"{actor}"{tail}'
    if hashlib.sha256(filled.encode()).hexdigest() != _exact(at)(nomination_id, actor):
        return None
    return head, middle, tail


def nominate_hasher(at: datetime) -> Callable[[str, str], str]:
    """``audit.record_hash`` of a ``nominate`` record made at ``at``, as a function of
    (nomination id, actor): the template when it holds (a million calls to
    ``record_hash`` would cost more than the rest of the seeding), else ``record_hash``."""
    pieces = nominate_template(at)
    if pieces is None:
        return _exact(at)
    head, middle, tail = pieces
    sha256 = hashlib.sha256

    def template(nomination_id: str, actor: str) -> str:  # a plain closure: SQLite calls it
        return sha256(f'{head}"{nomination_id}"{middle}"{actor}"{tail}'.encode()).hexdigest()

    return template


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _id_base() -> int:
    """The millisecond seeded ids start from: a year back, before any id made now."""
    return time.time_ns() // 1_000_000 - _YEAR_MS


def _seeded_id(base: int, index: int) -> str:
    return f"{base + (index >> _LOW_BITS):011x}{index & ((1 << _LOW_BITS) - 1):05x}"


def _connect(path: Path) -> sqlite3.Connection:
    """A connection for seeding: no fsyncs (a failed seed is thrown away), a big cache."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -1048576")  # 1 GiB: the indexes stay in memory
    return connection


def sqlite_nominations(
    path: Path, count: int, *, prefix: str = "seeded", keep: bool = False
) -> list[Nominated]:
    """Add ``count`` drafted nominations of the 2023 batch, spread over the 15 provinces,
    to an initialised SQLite database; with ``keep``, return them (a million are not
    worth holding otherwise)."""
    base = _id_base()
    low, high = _seeded_id(base, 0), _seeded_id(base, max(count - 1, 0))
    stamp = sqlite_stamp(BEFORE_DEADLINE)
    connection = _connect(path)
    try:
        connection.create_function(
            "nominate_hash", 2, nominate_hasher(BEFORE_DEADLINE), deterministic=True
        )
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TEMP TABLE seed_provinces (pos INTEGER PRIMARY KEY, slug TEXT)")
        connection.executemany("INSERT INTO seed_provinces VALUES (?, ?)", enumerate(PROVINCES))
        connection.execute(
            f"""
            INSERT INTO nominations ({NOMINATION_COLUMNS})
            WITH RECURSIVE counter(i) AS (
                SELECT 0 WHERE :count > 0
                UNION ALL SELECT i + 1 FROM counter WHERE i + 1 < :count
            ),
            made(i, id, province) AS (
                SELECT i, printf('%011x%05x', :base + (i >> {_LOW_BITS}),
                                 i & {(1 << _LOW_BITS) - 1}), p.slug
                FROM counter JOIN seed_provinces AS p ON p.pos = i % {len(PROVINCES)}
            )
            SELECT id, :batch, province, 'city', printf('%s%07d', :prefix, i), 'prefecture',
                   'drafted', 1, nominate_hash(id, 'drc:' || province), :stamp, :stamp
            FROM made
            """,
            {"count": count, "base": base, "batch": BATCH, "prefix": prefix, "stamp": stamp},
        )
        connection.execute(
            f"INSERT INTO audit_records ({AUDIT_COLUMNS}) "
            "SELECT id, 1, 'nominate', NULL, 'drafted', 'drc:' || province, created_at, NULL, "
            "batch_id, '', audit_head FROM nominations WHERE id BETWEEN ? AND ? ORDER BY id",
            (low, high),
        )
        connection.execute("DROP TABLE seed_provinces")
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        made = []
        if keep:
            rows = connection.execute(
                "SELECT id, province FROM nominations WHERE id BETWEEN ? AND ? ORDER BY id",
                (low, high),
            )
            made = [Nominated(*row) for row in rows]
    finally:
        connection.close()
    return made


def drafted_rows(
    count: int, *, prefix: str, stamp: Callable[[datetime], Any], chunk: int = 50_000
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """The rows :func:`sqlite_nominations` makes, as Python tuples a chunk at a time
    (nominations, audit records), for drivers that stream them (COPY)."""
    base, stored, hasher = _id_base(), stamp(BEFORE_DEADLINE), nominate_hasher(BEFORE_DEADLINE)
    for start in range(0, count, chunk):
        nominations, records = [], []
        for index in range(start, min(start + chunk, count)):
            nomination_id = _seeded_id(base, index)
            province = PROVINCES[index % len(PROVINCES)]
            actor = f"drc:{province}"
            head = hasher(nomination_id, actor)
            name = f"{prefix}{index:07d}"
            nominations.append(
                (
                    *(nomination_id, BATCH, province, "city", name, "prefecture", "drafted"),
                    *(1, head, stored, stored),
                )
            )
            records.append(
                (
                    *(nomination_id, 1, "nominate", None, "drafted", actor, stored, None),
                    *(BATCH, audit.GENESIS, head),
                )
            )
        yield nominations, records


def postgres_nominations(conninfo: str, count: int, *, prefix: str = "seeded") -> None:
    """Add ``count`` drafted nominations to an initialised PostgreSQL database: generated
    by the server (``generate_series``, its ``sha256``) when the hash template holds,
    else streamed from Python with ``COPY``."""
    pieces = nominate_template(BEFORE_DEADLINE)
    with psycopg.connect(conninfo) as connection:
        if pieces is None:
            _copy_nominations(connection, count, prefix)
        else:
            _generate_nominations(connection, count, prefix, pieces)
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")


def _generate_nominations(
    connection: psycopg.Connection[Any], count: int, prefix: str, pieces: tuple[str, str, str]
) -> None:
    base = _id_base()
    low, high = _seeded_id(base, 0), _seeded_id(base, max(count - 1, 0))
    head, middle, tail = pieces
    connection.execute(
        f"""
        INSERT INTO nominations ({NOMINATION_COLUMNS})
        SELECT id, %(batch)s, province, 'city',
               %(prefix)s || lpad(i::text, greatest(7, length(i::text)), '0'), 'prefecture',
               'drafted', 1,
               encode(sha256(convert_to(%(head)s || '"' || id || '"' || %(middle)s || '"drc:'
                                        || province || '"' || %(tail)s, 'UTF8')), 'hex'),
               %(at)s, %(at)s
        FROM (
            SELECT i,
                   lpad(to_hex(%(base)s::bigint + (i >> {_LOW_BITS})), 11, '0')
                   || lpad(to_hex(i & {(1 << _LOW_BITS) - 1}), 5, '0') AS id,
                   (%(provinces)s::text[])[i %% {len(PROVINCES)} + 1] AS province
            FROM generate_series(0, %(count)s - 1) AS i
        ) AS made
        """,
        {
            "batch": BATCH,
            "prefix": prefix,
            "head": head,
            "middle": middle,
            "tail": tail,
            "at": BEFORE_DEADLINE,
            "base": base,
            "provinces": list(PROVINCES),
            "count": count,
        },
    )
    connection.execute(
        f"INSERT INTO audit_records ({AUDIT_COLUMNS}) "
        "SELECT id, 1, 'nominate', NULL, 'drafted', 'drc:' || province, created_at, NULL, "
        "batch_id, '', audit_head FROM nominations WHERE id BETWEEN %s AND %s",
        (low, high),
    )


def _copy_nominations(connection: psycopg.Connection[Any], count: int, prefix: str) -> None:
    with connection.cursor() as cursor:
        for nominations, records in drafted_rows(count, prefix=prefix, stamp=lambda at: at):
            with cursor.copy(f"COPY nominations ({NOMINATION_COLUMNS}) FROM STDIN") as copy:
                for row in nominations:
                    copy.write_row(row)
            with cursor.copy(f"COPY audit_records ({AUDIT_COLUMNS}) FROM STDIN") as copy:
                for row in records:
                    copy.write_row(row)


def sqlite_milestones(
    path: Path, nominations: Sequence[Nominated], count: int, *, due: datetime
) -> None:
    """``count`` pending milestone timers spread over ``nominations``, all due at ``due``
    (far in the future: nothing the daemon will do, only hold), each its own unique key."""
    base, stamp = _id_base(), sqlite_stamp(BEFORE_DEADLINE)
    connection = _connect(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "CREATE TEMP TABLE seed_owners (pos INTEGER PRIMARY KEY, id TEXT, province TEXT)"
        )
        connection.executemany(
            "INSERT INTO seed_owners VALUES (?, ?, ?)",
            [(pos, n.id, n.province) for pos, n in enumerate(nominations)],
        )
        connection.execute(
            f"""
            INSERT INTO timers ({TIMER_COLUMNS})
            WITH RECURSIVE counter(i) AS (
                SELECT 0 WHERE :count > 0
                UNION ALL SELECT i + 1 FROM counter WHERE i + 1 < :count
            )
            SELECT printf('%011x%05x', :base + (i >> {_LOW_BITS}), i & {(1 << _LOW_BITS) - 1}),
                   o.id || '/milestone/' || (3000 + i / :owners), 'milestone', :due, :batch,
                   o.province, o.id, '{{"year": ' || (3000 + i / :owners) || '}}', 'pending',
                   NULL, :stamp
            FROM counter JOIN seed_owners AS o ON o.pos = i % :owners
            """,
            {
                "count": count,
                "base": base,
                "owners": len(nominations),
                "due": sqlite_stamp(due),
                "batch": BATCH,
                "stamp": stamp,
            },
        )
        connection.execute("DROP TABLE seed_owners")
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
    finally:
        connection.close()
