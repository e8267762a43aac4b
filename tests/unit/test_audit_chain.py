"""The audit trail's hash chain (DESIGN §3): one chain per nomination, the head on the
nomination row; an edited, inserted, reordered or deleted record (the newest included) is
found, and the break names the nomination and the record (seq) that fails."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peakpilot.workflow.audit import (
    GENESIS,
    Break,
    ChainHead,
    ChainRecord,
    find_first_break,
    record_hash,
    sweep_hasher,
)

BEIJING = timezone(timedelta(hours=8))
T0 = datetime(2023, 10, 20, 9, 0, 0, 123456, tzinfo=BEIJING)

HASH_FIELDS = {
    "nomination_id": "n-1",
    "seq": 2,
    "event": "send_back",
    "from_state": "submitted",
    "to_state": "drafted",
    "actor": "ndrc",
    "at": T0,
    "reason": "材料不全",
    "batch_id": "2023-first",
    "prev_hash": "a" * 64,
}


# --- record_hash ---------------------------------------------------------------------


def test_record_hash_is_deterministic_sha256_hex() -> None:
    first = record_hash(**HASH_FIELDS)
    assert first == record_hash(**dict(HASH_FIELDS))
    assert re.fullmatch(r"[0-9a-f]{64}", first), first  # a SHA-256 digest, lower-case hex


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nomination_id", "n-2"),
        ("seq", 3),
        ("event", "reject"),
        ("from_state", None),
        ("from_state", "approved"),
        ("to_state", "rejected"),
        ("actor", "gov:hebei"),
        ("at", T0 + timedelta(microseconds=1)),
        ("at", T0 + timedelta(days=1)),
        ("reason", None),
        ("reason", ""),
        ("reason", "材料不全 "),
        ("batch_id", "2024-second"),
        ("prev_hash", "b" * 64),
        ("prev_hash", GENESIS),
    ],
)
def test_record_hash_depends_on_every_field(field: str, value: object) -> None:
    assert HASH_FIELDS[field] != value
    assert record_hash(**{**HASH_FIELDS, field: value}) != record_hash(**HASH_FIELDS)


def test_record_hash_is_about_the_instant_not_its_zone() -> None:
    same_instant = T0.astimezone(UTC)
    assert record_hash(**{**HASH_FIELDS, "at": same_instant}) == record_hash(**HASH_FIELDS)


def test_record_hash_keeps_its_canonical_form() -> None:
    """Trails written by earlier releases must still verify: the digest of a record never
    changes, however the hashing is implemented."""
    assert record_hash(**HASH_FIELDS) == (
        "4ec5e32ea2e3a73adf29602c29526302b2ca23b2cd721f9c98e3cb7b6be90737"
    )
    bare = {**HASH_FIELDS, "from_state": None, "reason": None, "prev_hash": GENESIS}
    assert record_hash(**bare) == (
        "751c0bc0e80ace285f7fec56001e74cb1c57a07f2f1877f08d7f617dbb67378e"
    )


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@given(
    nomination_id=_TEXT,
    seq=st.integers(min_value=1, max_value=10**6),
    from_state=st.none() | _TEXT,
    prev_hash=_TEXT,
    shared=st.tuples(_TEXT, _TEXT, _TEXT, st.none() | _TEXT, _TEXT),
)
def test_a_sweep_hasher_hashes_as_record_hash_does(
    nomination_id: str,
    seq: int,
    from_state: str | None,
    prev_hash: str,
    shared: tuple[str, str, str, str | None, str],
) -> None:
    event, to_state, actor, reason, batch_id = shared
    hasher = sweep_hasher(
        event=event, to_state=to_state, actor=actor, at=T0, reason=reason, batch_id=batch_id
    )
    assert hasher(nomination_id, seq, from_state, prev_hash) == record_hash(
        nomination_id=nomination_id,
        seq=seq,
        event=event,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        at=T0,
        reason=reason,
        batch_id=batch_id,
        prev_hash=prev_hash,
    )


def test_record_hash_fields_cannot_bleed_into_each_other() -> None:
    one = record_hash(**{**HASH_FIELDS, "from_state": "ab", "to_state": "c"})
    two = record_hash(**{**HASH_FIELDS, "from_state": "a", "to_state": "bc"})
    assert one != two
    three = record_hash(**{**HASH_FIELDS, "reason": "None"})
    assert three != record_hash(**{**HASH_FIELDS, "reason": None})


# --- chains --------------------------------------------------------------------------


def _chain(
    nomination_id: str, steps: list[tuple[str, str, str, str | None]]
) -> tuple[ChainHead, list[ChainRecord]]:
    """Records for ``steps`` of (event, to_state, actor, reason), starting with nominate."""
    records: list[ChainRecord] = []
    prev_hash, prev_state = GENESIS, None
    for seq, (event, to_state, actor, reason) in enumerate(steps, start=1):
        record = _record(
            nomination_id,
            seq,
            event,
            prev_state,
            to_state,
            actor,
            T0 + timedelta(hours=seq),
            reason,
            prev_hash,
        )
        records.append(record)
        prev_hash, prev_state = record.hash, to_state
    return ChainHead(nomination_id, prev_state or "", prev_hash), records


def _record(
    nomination_id: str,
    seq: int,
    event: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    reason: str | None,
    prev_hash: str,
    batch_id: str = "2023-first",
) -> ChainRecord:
    fields = dict(
        nomination_id=nomination_id,
        seq=seq,
        event=event,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        at=at,
        reason=reason,
        batch_id=batch_id,
        prev_hash=prev_hash,
    )
    return ChainRecord(**fields, hash=record_hash(**fields))  # type: ignore[arg-type]


def _rehash(record: ChainRecord, **changes: object) -> ChainRecord:
    """``record`` with ``changes`` and a hash that matches them (a careful forger)."""
    changed = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
    fields = {f.name: getattr(changed, f.name) for f in dataclasses.fields(changed)}
    fields.pop("hash")
    return dataclasses.replace(changed, hash=record_hash(**fields))


def _world() -> tuple[list[ChainHead], list[ChainRecord]]:
    """Three nominations, ordered by id; n3's chain has five records."""
    h1, r1 = _chain(
        "n1",
        [
            ("nominate", "drafted", "drc:hebei", None),
            ("submit_for_approval", "provincial_approval", "drc:hebei", None),
            ("approve", "approved", "gov:hebei", None),
        ],
    )
    h2, r2 = _chain(
        "n2",
        [
            ("nominate", "drafted", "drc:shanxi", None),
            ("withdraw", "withdrawn", "drc:shanxi", None),
        ],
    )
    h3, r3 = _chain(
        "n3",
        [
            ("nominate", "drafted", "drc:hebei", None),
            ("submit_for_approval", "provincial_approval", "drc:hebei", None),
            ("send_back", "drafted", "gov:hebei", "材料不全\n请补充"),
            ("submit_for_approval", "provincial_approval", "drc:hebei", None),
            ("withdraw", "withdrawn", "drc:hebei", None),
        ],
    )
    return [h1, h2, h3], [*r1, *r2, *r3]


def _ordered(records: list[ChainRecord]) -> list[ChainRecord]:
    """How the store reads them: by nomination id, then seq (stable for equal keys)."""
    return sorted(records, key=lambda r: (r.nomination_id, r.seq))


def _index(records: list[ChainRecord], nomination_id: str, seq: int) -> int:
    return next(
        i for i, r in enumerate(records) if r.nomination_id == nomination_id and r.seq == seq
    )


def _break(heads: list[ChainHead], records: list[ChainRecord]) -> Break:
    _, found = find_first_break(heads, records)
    assert found is not None, "the tampering was not found"
    return found


def test_a_valid_trail_verifies() -> None:
    heads, records = _world()
    assert len(records) == 10
    assert find_first_break(heads, records) == (10, None)


def test_an_empty_trail_verifies() -> None:
    assert find_first_break([], []) == (0, None)


def _edit(field: str, record: ChainRecord) -> object:
    value = getattr(record, field)
    if field == "at":
        return value + timedelta(microseconds=1)
    if value is None:
        return "drafted" if field == "from_state" else "edited"
    if field in ("prev_hash", "hash"):
        return ("0" if value[:1] != "0" else "1") + value[1:]
    return value + "x"


EDITABLE = [
    "event",
    "from_state",
    "to_state",
    "actor",
    "at",
    "reason",
    "batch_id",
    "prev_hash",
    "hash",
]


@pytest.mark.parametrize("seq", [1, 3, 5])
@pytest.mark.parametrize("field", EDITABLE)
def test_an_edited_field_is_found_at_its_record(field: str, seq: int) -> None:
    heads, records = _world()
    i = _index(records, "n3", seq)
    records[i] = dataclasses.replace(records[i], **{field: _edit(field, records[i])})
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n3", seq), found


@pytest.mark.parametrize("nomination", ["n1", "n2", "n3"])
def test_an_edited_record_of_each_nomination_is_found(nomination: str) -> None:
    heads, records = _world()
    i = _index(records, nomination, 2)
    records[i] = dataclasses.replace(records[i], actor="ndrc")
    found = _break(heads, records)
    assert (found.nomination, found.seq) == (nomination, 2)
    assert "edited" in found.problem


def test_an_edited_field_with_a_recomputed_hash_breaks_the_next_link() -> None:
    heads, records = _world()
    i = _index(records, "n3", 3)
    records[i] = _rehash(records[i], reason="no reason at all")
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n3", 4)
    assert "link" in found.problem


def test_a_removed_middle_record_is_found_where_the_gap_is() -> None:
    heads, records = _world()
    del records[_index(records, "n3", 3)]
    found = _break(heads, records)
    # the first record that fails is the one after the gap; its problem says why
    assert (found.nomination, found.seq) == ("n3", 4)
    assert "removed" in found.problem


def test_a_removed_first_record_is_found() -> None:
    heads, records = _world()
    del records[_index(records, "n1", 1)]
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n1", 2)


@pytest.mark.parametrize(("nomination", "newest"), [("n1", 3), ("n2", 2), ("n3", 5)])
def test_a_removed_newest_record_is_found_by_the_head(nomination: str, newest: int) -> None:
    heads, records = _world()
    del records[_index(records, nomination, newest)]
    found = _break(heads, records)
    assert (found.nomination, found.seq) == (nomination, newest)
    assert "newest record is missing" in found.problem


def test_all_records_of_a_nomination_removed() -> None:
    heads, records = _world()
    records = [r for r in records if r.nomination_id != "n2"]
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n2", 1)


def test_two_records_swapped_are_found() -> None:
    """Records 2 and 3 trade places (their seq numbers swapped, read back in seq order)."""
    heads, records = _world()
    i, j = _index(records, "n3", 2), _index(records, "n3", 3)
    records[i] = dataclasses.replace(records[i], seq=3)
    records[j] = dataclasses.replace(records[j], seq=2)
    found = _break(heads, _ordered(records))
    assert (found.nomination, found.seq) == ("n3", 2)


def test_two_records_swapped_with_their_contents_are_found() -> None:
    """Records 2 and 3 swap everything but their seq (an UPDATE of both rows)."""
    heads, records = _world()
    i, j = _index(records, "n3", 2), _index(records, "n3", 3)
    a, b = records[i], records[j]
    records[i] = dataclasses.replace(b, seq=2)
    records[j] = dataclasses.replace(a, seq=3)
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n3", 2)


@pytest.mark.parametrize("forged_first", [True, False])
def test_an_inserted_record_with_a_duplicate_seq_is_found(forged_first: bool) -> None:
    heads, records = _world()
    i = _index(records, "n3", 3)
    before = records[i - 1]
    forged = _record(
        "n3",
        3,
        "approve",
        before.to_state,
        "approved",
        "gov:hebei",
        before.at + timedelta(minutes=1),
        None,
        before.hash,
    )
    records.insert(i if forged_first else i + 1, forged)
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n3", 3)


def test_an_inserted_record_that_renumbers_the_rest_is_found() -> None:
    """A forged, well-linked record 3; the old 3..5 are renumbered 4..6. The forged one
    verifies on its own, so the first record that fails is the old 3, now numbered 4."""
    heads, records = _world()
    i = _index(records, "n3", 3)
    before = records[i - 1]
    forged = _record(
        "n3",
        3,
        "approve",
        before.to_state,
        "approved",
        "gov:hebei",
        before.at + timedelta(minutes=1),
        None,
        before.hash,
    )
    renumbered = [
        dataclasses.replace(r, seq=r.seq + 1) if r.nomination_id == "n3" and r.seq >= 3 else r
        for r in records
    ]
    found = _break(heads, _ordered([*renumbered, forged]))
    assert (found.nomination, found.seq) == ("n3", 4)


@pytest.mark.parametrize("nomination", ["n1", "n3"])
def test_an_appended_record_is_found_and_named(nomination: str) -> None:
    """A forged record appended after the newest one, well linked to it, the head left as
    it was: the record that fails is the appended one (there is no record after it)."""
    heads, records = _world()
    last = max((r for r in records if r.nomination_id == nomination), key=lambda r: r.seq)
    forged = _record(
        nomination,
        last.seq + 1,
        "withdraw",
        last.to_state,
        "withdrawn",
        "drc:hebei",
        last.at + timedelta(minutes=1),
        None,
        last.hash,
    )
    found = _break(heads, _ordered([*records, forged]))
    assert (found.nomination, found.seq) == (nomination, last.seq + 1), found
    assert "missing" not in found.problem, found


@pytest.mark.parametrize(
    ("stranger", "position"),
    [("n0", "before every nomination"), ("n2a", "between two"), ("n9", "after every one")],
)
def test_a_record_of_an_unknown_nomination_is_found(stranger: str, position: str) -> None:
    heads, records = _world()
    orphan = _record(stranger, 1, "nominate", None, "drafted", "drc:hebei", T0, None, GENESIS)
    found = _break(heads, _ordered([*records, orphan]))
    assert (found.nomination, found.seq) == (stranger, 1), position
    assert "no nomination" in found.problem


def test_a_deleted_nomination_row_leaves_its_records_unknown() -> None:
    heads, records = _world()
    heads = [h for h in heads if h.nomination_id != "n2"]
    found = _break(heads, records)
    assert (found.nomination, found.seq) == ("n2", 1)


@pytest.mark.parametrize(
    ("nomination", "state", "last_seq"),
    [("n1", "submitted", 3), ("n2", "drafted", 2), ("n3", "confirmed", 5)],
)
def test_a_nomination_whose_state_differs_from_its_trail(
    nomination: str, state: str, last_seq: int
) -> None:
    heads, records = _world()
    heads = [
        dataclasses.replace(h, state=state) if h.nomination_id == nomination else h for h in heads
    ]
    found = _break(heads, records)
    assert (found.nomination, found.seq) == (nomination, last_seq)
    assert state in found.problem


def test_an_edited_head_is_found() -> None:
    heads, records = _world()
    heads[1] = dataclasses.replace(heads[1], audit_head="f" * 64)
    found = _break(heads, records)
    assert found.nomination == "n2"


def test_the_first_break_is_the_earliest_in_order() -> None:
    heads, records = _world()
    i1, i3 = _index(records, "n1", 2), _index(records, "n3", 1)
    records[i3] = dataclasses.replace(records[i3], actor="ndrc")
    records[i1] = dataclasses.replace(records[i1], actor="ndrc")
    checked, found = find_first_break(heads, records)
    assert found is not None and (found.nomination, found.seq) == ("n1", 2)
    assert checked == 2
