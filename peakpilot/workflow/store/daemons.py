"""Running daemons: the ``daemons`` table, each row refreshed by its daemon's sweeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peakpilot.workflow.store.driver import Statements


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    id: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    sweep_seconds: float


class Daemons:
    """The ``daemons`` table."""

    def __init__(self, statements: Statements) -> None:
        self.sql = statements

    def beat(self, daemon: DaemonRecord) -> None:
        """Register the daemon, or refresh its ``last_seen``."""
        time_in = self.sql.dialect.time_in
        self.sql.execute(
            "INSERT INTO daemons (id, host, pid, started_at, last_seen, sweep_seconds) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
            (
                daemon.id,
                daemon.host,
                daemon.pid,
                time_in(daemon.started_at),
                time_in(daemon.last_seen),
                daemon.sweep_seconds,
            ),
        )

    def forget_silent(self, host: str, since: datetime, keep: str) -> None:
        """Drop the entries of ``host`` (but ``keep``) silent since before ``since``: a
        daemon that died is replaced by the next one started on its host."""
        self.sql.execute(
            "DELETE FROM daemons WHERE host = ? AND last_seen < ? AND id <> ?",
            (host, self.sql.dialect.time_in(since), keep),
        )

    def leave(self, daemon_id: str) -> None:
        """A daemon that stopped cleanly is no longer listed."""
        self.sql.execute("DELETE FROM daemons WHERE id = ?", (daemon_id,))

    def list(self) -> list[DaemonRecord]:
        time_out = self.sql.dialect.time_out
        return [
            DaemonRecord(id_, host, int(pid), time_out(started), time_out(seen), float(sweep))
            for id_, host, pid, started, seen, sweep in self.sql.all(
                "SELECT id, host, pid, started_at, last_seen, sweep_seconds FROM daemons "
                "ORDER BY started_at, id"
            )
        ]


__all__ = ["DaemonRecord", "Daemons"]
