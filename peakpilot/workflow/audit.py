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
from json.encoder import encode_basestring
from typing import Any

GENESIS = ""
# The canonical form: what json.dumps(content, ensure_ascii=False, separators=(",", ":"))
# writes, with the encoder built once rather than once per record.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# ... which writes each string of the content as this function does (``ensure_ascii=False``)
_string = encode_basestring

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
    """SHA-256 of a record's content and its predecessor's hash, in a canonical form:
    the text ``json.dumps([nomination_id, seq, event, from_state, to_state, actor, at,
    reason, batch_id, prev_hash], ensure_ascii=False, separators=(",", ":"))`` writes,
    with the event's data (keys sorted) as one more item when it has any: a record
    without data hashes exactly as records did before events carried data.

    The text is put together from each string encoded on its own by the same encoder,
    which writes the same characters as encoding the whole list but without building
    the list and walking it (``audit verify`` hashes every record of the database)."""
    text = (
        f"[{_string(nomination_id)},{seq:d},{_string(event)},{_maybe(from_state)},"
        f"{_string(to_state)},{_string(actor)},{_string(_instant(at))},{_maybe(reason)},"
        f"{_string(batch_id)},{_string(prev_hash)}"
    )
    if data is not None:
        text += f",{_CANONICAL.encode(canonical_data(data))}"
    return hashlib.sha256(f"{text}]".encode()).hexdigest()


def _maybe(value: str | None) -> str:
    return "null" if value is None else _string(value)


def canonical_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Event data in the order it is hashed and stored (keys sorted), so that the same
    data gives the same hash however the caller ordered it."""
    return {key: data[key] for key in sorted(data)}


def data_text(data: Mapping[str, Any] | None) -> str | None:
    """Event data as the JSON text the trail stores."""
    return None if data is None else _CANONICAL.encode(canonical_data(data))


def sweep_hasher(
    *,
    event: str,
    to_state: str,
    actor: str,
    at: datetime,
    reason: str | None,
    batch_id: str,
    data: Mapping[str, Any] | None = None,
) -> SweepHasher:
    """:func:`record_hash` for records that differ only in nomination, seq, from_state and
    predecessor: the records of one system sweep, such as a deadline's lapse or a
    programme change's migration.

    The shared fields are encoded once instead of once per record (a deadline may hash
    100,000 records); the text hashed is the same, and so is the hash.
    """
    event_part = _string(event)
    shared = _CANONICAL.encode([to_state, actor, _instant(at), reason, batch_id])[1:-1]
    tail = "]" if data is None else f",{_CANONICAL.encode(canonical_data(data))}]"

    def record(nomination_id: str, seq: int, from_state: str | None, prev_hash: str) -> str:
        text = (
            f"[{_string(nomination_id)},{seq:d},{event_part},{_maybe(from_state)},"
            f"{shared},{_string(prev_hash)}{tail}"
        )
        return hashlib.sha256(text.encode()).hexdigest()

    return record


def _instant(at: datetime) -> str:
    # positional: isoformat parses keyword arguments at twice the cost of the formatting
    return at.astimezone(UTC).isoformat("T", "microseconds")


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
