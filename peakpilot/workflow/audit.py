"""The audit trail's hash chain: one chain per nomination.

Each record's hash covers its own content and the previous record's hash; the nomination
row holds the newest hash. So an edited record, one inserted or removed in the middle,
records swapped, and the newest record deleted are all found, and no single global row
serialises every writer. (Anyone who can rewrite a whole chain and its head can forge it;
that needs a signing key kept outside the database, which this trail does not claim.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = ""
# The canonical form: what json.dumps(content, ensure_ascii=False, separators=(",", ":"))
# writes, with the encoder built once rather than once per record.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# (nomination_id, seq, from_state, prev_hash) -> the hash of one record of a sweep
SweepHasher = Callable[[str, int, str | None, str], str]


def record_hash(
    *,
    nomination_id: str,
    seq: int,
    event: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    reason: str | None,
    batch_id: str,
    prev_hash: str,
    data: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 of a record's content and its predecessor's hash, in a canonical form.

    An event's data is hashed with it, as one more item at the end; a record without data
    hashes exactly as records did before events carried data, so older chains verify."""
    content: list[Any] = [
        nomination_id,
        seq,
        event,
        from_state,
        to_state,
        actor,
        _instant(at),
        reason,
        batch_id,
        prev_hash,
    ]
    if data is not None:
        content.append(canonical_data(data))
    return hashlib.sha256(_CANONICAL.encode(content).encode()).hexdigest()


def canonical_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Event data in the order it is hashed and stored (keys sorted), so that the same
    data gives the same hash however the caller ordered it."""
    return {key: data[key] for key in sorted(data)}


def data_text(data: Mapping[str, Any] | None) -> str | None:
    """Event data as the JSON text the trail stores."""
    return None if data is None else _CANONICAL.encode(canonical_data(data))


def sweep_hasher(
    *, event: str, to_state: str, actor: str, at: datetime, reason: str | None, batch_id: str
) -> SweepHasher:
    """:func:`record_hash` for records that differ only in nomination, seq, from_state and
    predecessor: the records of one system sweep, such as a deadline's lapse.

    The shared fields are encoded once instead of once per record (a deadline may hash
    100,000 records); the text hashed is the same, and so is the hash.
    """
    encode = _CANONICAL.encode
    event_part = encode(event)
    shared = encode([to_state, actor, _instant(at), reason, batch_id])[1:-1]

    def record(nomination_id: str, seq: int, from_state: str | None, prev_hash: str) -> str:
        text = (
            f"[{encode(nomination_id)},{seq:d},{event_part},{encode(from_state)},"
            f"{shared},{encode(prev_hash)}]"
        )
        return hashlib.sha256(text.encode()).hexdigest()

    return record


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class ChainRecord:
    nomination_id: str
    seq: int
    event: str
    from_state: str | None
    to_state: str
    actor: str
    at: datetime
    reason: str | None
    batch_id: str
    prev_hash: str
    hash: str
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChainHead:
    nomination_id: str
    state: str
    audit_head: str


@dataclass(frozen=True, slots=True)
class Break:
    """The first record that fails verification, and why."""

    nomination: str
    seq: int
    problem: str


def find_first_break(
    heads: Iterable[ChainHead], records: Iterable[ChainRecord]
) -> tuple[int, Break | None]:
    """Walk every chain; return (records checked, first break or None).

    Both inputs must be ordered by nomination id (records then by seq).
    """
    checked = 0
    record_iter: Iterator[ChainRecord] = iter(records)
    pending = next(record_iter, None)
    for head in heads:
        # records of nominations that sort before this one have no nomination row
        if pending is not None and pending.nomination_id < head.nomination_id:
            return checked, Break(pending.nomination_id, pending.seq, "record of no nomination")
        prev_hash, prev_state, seq, head_seq = GENESIS, None, 0, None
        while pending is not None and pending.nomination_id == head.nomination_id:
            record, pending = pending, next(record_iter, None)
            checked += 1
            seq += 1
            if head_seq is not None:
                return checked, Break(
                    head.nomination_id,
                    record.seq,
                    "added after the newest record the nomination knows",
                )
            problem = _problem(record, seq, prev_hash, prev_state)
            if problem is not None:
                return checked, Break(head.nomination_id, record.seq, problem)
            prev_hash, prev_state = record.hash, record.to_state
            if record.hash == head.audit_head:
                head_seq = seq
        if head_seq is None:
            return checked, Break(
                head.nomination_id,
                seq + 1,
                "the newest record is missing (the nomination's head does not match)",
            )
        if prev_state != head.state:
            return checked, Break(
                head.nomination_id,
                seq,
                f"the nomination is {head.state} but its trail ends in {prev_state}",
            )
    if pending is not None:
        return checked, Break(pending.nomination_id, pending.seq, "record of no nomination")
    return checked, None


def _problem(
    record: ChainRecord, expected_seq: int, prev_hash: str, prev_state: str | None
) -> str | None:
    if record.seq != expected_seq:
        return f"expected record {expected_seq} here: a record was removed or inserted"
    if record.prev_hash != prev_hash:
        return "does not link to the record before it"
    if record.from_state != prev_state:
        return f"starts from {record.from_state} but the record before ended in {prev_state}"
    recomputed = record_hash(
        nomination_id=record.nomination_id,
        seq=record.seq,
        event=record.event,
        from_state=record.from_state,
        to_state=record.to_state,
        actor=record.actor,
        at=record.at,
        reason=record.reason,
        batch_id=record.batch_id,
        prev_hash=record.prev_hash,
        data=record.data,
    )
    if recomputed != record.hash:
        return "its content does not match its hash: the record was edited"
    return None
