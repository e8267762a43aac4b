"""Nominations: the ``nominations`` table, each change a compare-and-set on ``version``
that appends the matching record to the nomination's audit chain."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peakpilot.errors import Conflict, NotFound, Refused, UniqueViolation
from peakpilot.vocabulary import NOMINATE_EVENT, ROW_ID
from peakpilot.workflow import audit
from peakpilot.workflow.store import batches
from peakpilot.workflow.store.batches import Batches, BatchRecord
from peakpilot.workflow.store.driver import Statements, placeholders
from peakpilot.workflow.store.trail import AuditTrail, new_record

COLUMNS = (
    "id",
    "batch_id",
    "province",
    "kind",
    "name",
    "level",
    "state",
    "version",
    "audit_head",
    "created_at",
    "updated_at",
    "program_version",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM nominations"
_WITH_BATCH = (
    f"SELECT {', '.join('n.' + c for c in COLUMNS)}, "
    f"{', '.join('b.' + c for c in batches.COLUMNS)} "
    "FROM nominations n JOIN batches b ON b.id = n.batch_id WHERE n.id = ?"
)
_INSERT = f"INSERT INTO nominations ({', '.join(COLUMNS)}) VALUES ({placeholders(len(COLUMNS))})"
_MOVE = (
    "UPDATE nominations SET state = ?, version = ?, audit_head = ?, batch_id = ?, "
    "updated_at = ?, program_version = ? WHERE id = ? AND version = ?"
)


@dataclass(frozen=True, slots=True)
class NominationRecord:
    """A nomination as stored (times in UTC); the Engine hands out snapshots of it."""

    id: str
    batch_id: str
    province: str
    kind: str
    name: str
    level: str
    state: str
    version: int
    audit_head: str
    created_at: datetime
    updated_at: datetime
    program_version: int = 1  # the programme version it last moved under


class Nominations:
    """The ``nominations`` table; its changes append to the audit trail."""

    def __init__(self, statements: Statements, trail: AuditTrail) -> None:
        self.sql = statements
        self.trail = trail

    # -- reads ----------------------------------------------------------------------------

    def get(self, nomination_id: str) -> NominationRecord:
        """The nomination, or NotFound (a malformed id is simply not found)."""
        return self._record(self._by_id(f"{_SELECT} WHERE id = ?", nomination_id))

    def get_with_batch(self, nomination_id: str) -> tuple[NominationRecord, BatchRecord]:
        """The nomination and its batch in one statement: every transition reads both (on
        PostgreSQL a statement is a round trip), or NotFound as :meth:`get`."""
        row = self._by_id(_WITH_BATCH, nomination_id)
        split = len(COLUMNS)
        return self._record(row[:split]), Batches(self.sql).record(row[split:])

    def _by_id(self, statement: str, nomination_id: str) -> Sequence[Any]:
        row = None
        if isinstance(nomination_id, str) and ROW_ID.fullmatch(nomination_id):
            row = self.sql.one(statement, (nomination_id,))
        if row is None:
            raise NotFound(f"no nomination {nomination_id!r}: check the id (see `peakpilot list`)")
        return row

    def list(
        self,
        *,
        state: str | None = None,
        province: str | None = None,
        batch: str | None = None,
        states: Sequence[str] | None = None,
    ) -> builtins.list[NominationRecord]:
        """Nominations in creation order, filtered by whichever of these are given."""
        conditions, params = [], []
        for column, value in (("state", state), ("province", province), ("batch_id", batch)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if states is not None:
            conditions.append(f"state IN ({placeholders(len(states))})")
            params.extend(states)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return [self._record(row) for row in self.sql.all(f"{_SELECT}{where} ORDER BY id", params)]

    def name_taken(self, batch_id: str, province: str, kind: str, name: str) -> bool:
        row = self.sql.one(
            "SELECT 1 FROM nominations "
            "WHERE batch_id = ? AND province = ? AND kind = ? AND name = ?",
            (batch_id, province, kind, name),
        )
        return row is not None

    def piloted_in(self, province: str, kind: str, name: str, states: Sequence[str]) -> str | None:
        """The batch in which the province's place of that name and kind became a pilot
        still counted as one (a nomination in ``states``), in any batch; or None."""
        if not states:
            return None
        row = self.sql.one(
            "SELECT batch_id FROM nominations WHERE province = ? AND kind = ? AND name = ? "
            f"AND state IN ({placeholders(len(states))}) ORDER BY id",
            (province, kind, name, *states),
        )
        return None if row is None else str(row[0])

    def owing(
        self,
        batch_id: str,
        states: Sequence[str],
        *,
        started_by: str,
        started_before: datetime,
        done_by: str,
        done_data: str,
    ) -> builtins.list[tuple[str, str, str, str]]:
        """(id, province, name, kind) of the batch's nominations in ``states`` that
        ``started_by`` reached before ``started_before`` and that have no ``done_by``
        record with ``done_data`` (its canonical JSON): the pilots owing one year's
        progress report, found in one statement however many there are."""
        rows = self.sql.all(
            "SELECT n.id, n.province, n.name, n.kind FROM nominations n "
            f"WHERE n.batch_id = ? AND n.state IN ({placeholders(len(states))}) "
            "AND EXISTS (SELECT 1 FROM audit_records s WHERE s.nomination_id = n.id "
            "AND s.event = ? AND s.at < ?) "
            "AND NOT EXISTS (SELECT 1 FROM audit_records d WHERE d.nomination_id = n.id "
            "AND d.event = ? AND d.data = ?) ORDER BY n.id",
            (
                batch_id,
                *states,
                started_by,
                self.sql.dialect.time_in(started_before),
                done_by,
                done_data,
            ),
        )
        return [tuple(row) for row in rows]

    def count_in_states(self, batch_id: str, province: str, states: Sequence[str]) -> int:
        """How many of the province's nominations of the batch are in ``states``."""
        return self.sql.count(
            "SELECT count(*) FROM nominations WHERE batch_id = ? AND province = ? "
            f"AND state IN ({placeholders(len(states))})",
            (batch_id, province, *states),
        )

    def names_in_states(
        self, batch_id: str, states: Sequence[str]
    ) -> builtins.list[tuple[str, str]]:
        """(province, name) of the batch's nominations in ``states``, in creation order."""
        rows = self.sql.all(
            "SELECT province, name FROM nominations WHERE batch_id = ? "
            f"AND state IN ({placeholders(len(states))}) ORDER BY id",
            (batch_id, *states),
        )
        return [(province, name) for province, name in rows]

    def state_counts(self, batch_id: str) -> dict[str, dict[str, int]]:
        """The batch's nominations per province and state."""
        counts: dict[str, dict[str, int]] = {}
        for province, state, count in self.sql.all(
            "SELECT province, state, count(*) FROM nominations WHERE batch_id = ? "
            "GROUP BY province, state",
            (batch_id,),
        ):
            counts.setdefault(province, {})[state] = count
        return counts

    def census(self) -> dict[tuple[str, str, str], int]:
        """How many nominations each batch, province and state holds (a programme change
        checks what it would strand)."""
        rows = self.sql.all(
            "SELECT batch_id, province, state, count(*) FROM nominations "
            "GROUP BY batch_id, province, state"
        )
        return {(batch, province, state): int(count) for batch, province, state, count in rows}

    def in_states(self, states: Sequence[str]) -> builtins.list[tuple[str, str, str]]:
        """(id, batch, province) of every nomination in ``states``."""
        return [
            (str(id_), str(batch), str(province))
            for id_, batch, province in self.sql.all(
                "SELECT id, batch_id, province FROM nominations "
                f"WHERE state IN ({placeholders(len(states))}) ORDER BY id",
                tuple(states),
            )
        ]

    # -- changes --------------------------------------------------------------------------

    def create(self, record: NominationRecord, actor: str) -> None:
        """Insert a new nomination with the ``nominate`` record that starts its trail.
        Refused when the batch already has a nomination of that name, kind and province
        (one written by a concurrent writer included)."""
        first = new_record(
            nomination_id=record.id,
            seq=1,
            event=NOMINATE_EVENT,
            from_state=None,
            to_state=record.state,
            actor=actor,
            at=record.created_at,
            reason=None,
            batch_id=record.batch_id,
            prev_hash=audit.GENESIS,
        )
        time_in = self.sql.dialect.time_in
        try:
            self.sql.execute(
                _INSERT,
                (
                    record.id,
                    record.batch_id,
                    record.province,
                    record.kind,
                    record.name,
                    record.level,
                    record.state,
                    record.version,
                    first.hash,
                    time_in(record.created_at),
                    time_in(record.updated_at),
                    record.program_version,
                ),
            )
        except UniqueViolation as error:
            if error.primary_key:
                raise
            raise Refused(
                f"cannot nominate {record.name!r}: {record.province} already has a "
                f"{record.kind} of that name in batch {record.batch_id}"
            ) from error
        self.trail.append([first])

    def move(
        self,
        record: NominationRecord,
        *,
        event: str,
        actor: str,
        at: datetime,
        reason: str | None,
        to_state: str,
        batch_id: str,
        program_version: int,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Record ``event`` and move the nomination, if nobody moved it since it was read.
        (An event that leaves the state as it is, an attached material included, is a
        move to the same state: it too takes the next version and link of the chain.)"""
        version = record.version + 1
        entry = new_record(
            nomination_id=record.id,
            seq=version,
            event=event,
            from_state=record.state,
            to_state=to_state,
            actor=actor,
            at=at,
            reason=reason,
            batch_id=batch_id,
            prev_hash=record.audit_head,
            data=data,
        )
        moved = self.sql.execute(
            _MOVE,
            (
                to_state,
                version,
                entry.hash,
                batch_id,
                self.sql.dialect.time_in(at),
                program_version,
                record.id,
                record.version,
            ),
        )
        if moved.rowcount != 1:
            raise Conflict(
                f"nomination {record.id} was changed by someone else while you fired {event}: "
                "reload it and try again"
            )
        self.trail.append([entry])

    def _record(self, row: Sequence[Any]) -> NominationRecord:
        time_out = self.sql.dialect.time_out
        (
            id_,
            batch_id,
            province,
            kind,
            name,
            level,
            state,
            version,
            head,
            created,
            updated,
            program_version,
        ) = row
        return NominationRecord(
            id_,
            batch_id,
            province,
            kind,
            name,
            level,
            state,
            version,
            head,
            time_out(created),
            time_out(updated),
            program_version,
        )


__all__ = ["COLUMNS", "NominationRecord", "Nominations"]
