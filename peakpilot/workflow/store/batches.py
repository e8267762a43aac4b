"""Batches and their quotas: the ``batches`` and ``quota_allocations`` tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peakpilot.errors import NotFound
from peakpilot.vocabulary import BATCH_ID, BatchStatus
from peakpilot.workflow.store.driver import Statements

COLUMNS = ("id", "deadline_at", "status", "position")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM batches"
_QUOTA = "SELECT quota FROM quota_allocations WHERE batch_id = ? AND province = ?"


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    deadline_at: datetime
    status: BatchStatus
    position: int

    @property
    def is_open(self) -> bool:
        return self.status == BatchStatus.OPEN


class Batches:
    """The ``batches`` table with each batch's quotas."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def get(self, batch_id: str) -> BatchRecord:
        """The batch, or NotFound (a malformed id is simply not found)."""
        row = None
        if isinstance(batch_id, str) and BATCH_ID.fullmatch(batch_id):
            row = self.sql.one(f"{_SELECT} WHERE id = ?", (batch_id,))
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return self.record(row)

    def exists(self, batch_id: str) -> bool:
        return self.sql.one("SELECT 1 FROM batches WHERE id = ?", (batch_id,)) is not None

    def newest(
        self, *, open_only: bool = False, other_than: str | None = None
    ) -> BatchRecord | None:
        """The most recently opened batch (of the open ones, of those but ``other_than``)."""
        conditions, params = [], []
        if open_only:
            conditions.append("status = ?")
            params.append(BatchStatus.OPEN.value)
        if other_than is not None:
            conditions.append("id <> ?")
            params.append(other_than)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        row = self.sql.one(f"{_SELECT}{where} ORDER BY position DESC LIMIT 1", params)
        return None if row is None else self.record(row)

    def newest_open_with_quota(self, province: str) -> BatchRecord | None:
        """The newest open batch that gives ``province`` places."""
        row = self.sql.one(
            f"SELECT {', '.join('b.' + c for c in COLUMNS)} FROM batches b "
            "JOIN quota_allocations q ON q.batch_id = b.id "
            "WHERE b.status = ? AND q.province = ? ORDER BY b.position DESC LIMIT 1",
            (BatchStatus.OPEN.value, province),
        )
        return None if row is None else self.record(row)

    def record(self, row: Sequence[Any]) -> BatchRecord:
        """A batch from its ``COLUMNS``, as selected (also by other repositories' joins)."""
        return BatchRecord(row[0], self.sql.dialect.time_out(row[1]), BatchStatus(row[2]), row[3])

    # -- quotas ---------------------------------------------------------------------------

    def quotas(self, batch_id: str) -> dict[str, int]:
        rows = self.sql.all(
            "SELECT province, quota FROM quota_allocations WHERE batch_id = ?", (batch_id,)
        )
        return dict(rows)  # type: ignore[arg-type]

    def quota(self, batch_id: str, province: str, *, lock: bool = False) -> int | None:
        """The province's places in the batch. With ``lock``, submissions of one province
        queue on its quota row (PostgreSQL; SQLite's write lock already serialises)."""
        row = self.sql.one(
            _QUOTA + (self.sql.dialect.for_update if lock else ""), (batch_id, province)
        )
        return None if row is None else int(row[0])

    def open_quotas(self) -> dict[str, dict[str, int]]:
        """Every open batch's quotas, province by province (an open batch without any
        included)."""
        quotas: dict[str, dict[str, int]] = {}
        for batch_id, province, quota in self.sql.all(
            "SELECT b.id, q.province, q.quota FROM batches b "
            "LEFT JOIN quota_allocations q ON q.batch_id = b.id WHERE b.status = ? "
            "ORDER BY b.position",
            (BatchStatus.OPEN.value,),
        ):
            places = quotas.setdefault(batch_id, {})
            if province is not None:
                places[province] = int(quota)
        return quotas

    def open_past_deadline(self, now: datetime) -> list[BatchRecord]:
        """Open batches whose deadline is at or before ``now``: their deadline work is due."""
        rows = self.sql.all(
            f"{_SELECT} WHERE status = ? AND deadline_at <= ? ORDER BY position",
            (BatchStatus.OPEN.value, self.sql.dialect.time_in(now)),
        )
        return [self.record(row) for row in rows]

    def remove_quota(self, batch_id: str, province: str) -> None:
        self.sql.execute(
            "DELETE FROM quota_allocations WHERE batch_id = ? AND province = ?",
            (batch_id, province),
        )

    def set_quota(self, batch_id: str, province: str, quota: int) -> bool:
        """Give the province ``quota`` places in the batch; whether that changed anything."""
        current = self.quota(batch_id, province)
        if current == quota:
            return False
        if current is None:
            self.sql.execute(
                "INSERT INTO quota_allocations (batch_id, province, quota) VALUES (?, ?, ?)",
                (batch_id, province, quota),
            )
        else:
            self.sql.execute(
                "UPDATE quota_allocations SET quota = ? WHERE batch_id = ? AND province = ?",
                (quota, batch_id, province),
            )
        return True

    # -- changes ---------------------------------------------------------------------------

    def open(
        self,
        batch_id: str,
        *,
        program_id: str,
        deadline_at: datetime,
        quotas: Mapping[str, int],
        now: datetime,
    ) -> BatchRecord:
        """A new open batch after every existing one, with its quotas."""
        position = self.sql.count("SELECT coalesce(max(position), 0) FROM batches") + 1
        time_in = self.sql.dialect.time_in
        self.sql.execute(
            "INSERT INTO batches (id, program_id, position, deadline_at, status, opened_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                program_id,
                position,
                time_in(deadline_at),
                BatchStatus.OPEN.value,
                time_in(now),
            ),
        )
        self.sql.execute_many(
            "INSERT INTO quota_allocations (batch_id, province, quota) VALUES (?, ?, ?)",
            [(batch_id, province, quota) for province, quota in quotas.items()],
        )
        return BatchRecord(batch_id, deadline_at, BatchStatus.OPEN, position)

    def close(self, batch_id: str, now: datetime) -> None:
        """Its deadline work ran: what needs an open batch is refused from now on."""
        self.sql.execute(
            "UPDATE batches SET status = ?, closed_at = ? WHERE id = ?",
            (BatchStatus.CLOSED.value, self.sql.dialect.time_in(now), batch_id),
        )

    def move_deadline(self, batch_id: str, deadline_at: datetime) -> None:
        self.sql.execute(
            "UPDATE batches SET deadline_at = ? WHERE id = ?",
            (self.sql.dialect.time_in(deadline_at), batch_id),
        )


__all__ = ["COLUMNS", "BatchRecord", "Batches"]
