"""Whether peakpilot is healthy, for operators and monitors (``status``, ``/healthz``).

One read of what the database says (the schema's revision, the programme version, the
daemons' heartbeats, the timers' and notices' backlog) and the rules that turn it into
problems a person can act on. Unhealthy means something is late or lost:

- a timer overdue by more than three sweep periods (no daemon is doing the work);
- a dead notice (delivery gave up: someone must act on it);
- a notice pending for more than an hour (delivery is not keeping up, or is down);
- a daemon registered but silent for three of its sweep periods (it died or hangs);
- a schema older than this peakpilot's (run ``init``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from peakpilot.workflow.runtime import Runtime, no_programme
from peakpilot.workflow.store.daemons import DaemonRecord
from peakpilot.workflow.store.transaction import Transaction

PENDING_TOO_LONG = timedelta(hours=1)
SWEEPS_OF_SILENCE = 3


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class TimerBacklog:
    pending: int
    overdue: int
    oldest_overdue: datetime | None


@dataclass(frozen=True, slots=True)
class NoticeBacklog:
    pending: int
    failed: int
    dead: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True, slots=True)
class Status:
    """The ``status`` document: ``healthy`` is False exactly when ``problems`` is not
    empty; each problem is a sentence saying what is wrong and what to look at."""

    schema: str
    program_version: int | None
    daemons: tuple[DaemonStatus, ...]
    timers: TimerBacklog
    notices: NoticeBacklog
    healthy: bool
    problems: tuple[str, ...]


def problems(
    *,
    now: datetime,
    schema: str,
    schema_head: str,
    daemons: list[DaemonRecord],
    timers: TimerBacklog,
    notices: NoticeBacklog,
) -> list[str]:
    """What is wrong, as sentences (empty: healthy)."""
    found = []
    if schema != schema_head:
        found.append(
            f"the schema is at revision {schema}, this peakpilot needs {schema_head}: "
            "run `peakpilot init`"
        )
    if timers.overdue:
        found.append(
            f"{timers.overdue} timer{'s are' if timers.overdue > 1 else ' is'} overdue, the "
            f"oldest due {timers.oldest_overdue.isoformat() if timers.oldest_overdue else '?'}:"
            " is a daemon running?"
        )
    if notices.dead:
        found.append(
            f"{notices.dead} notice{'s are' if notices.dead > 1 else ' is'} dead: see "
            "`peakpilot notices --status dead`, fix the cause, then `notices retry ID`"
        )
    if notices.oldest_pending_at is not None and now - notices.oldest_pending_at > (
        PENDING_TOO_LONG
    ):
        found.append(
            f"a notice has waited since {notices.oldest_pending_at.isoformat()} to be sent: "
            "is the dispatcher (the daemon) running, and the mail server reachable?"
        )
    for daemon in daemons:
        silence = now - daemon.last_seen
        if silence > timedelta(seconds=SWEEPS_OF_SILENCE * daemon.sweep_seconds):
            found.append(
                f"daemon {daemon.host}:{daemon.pid} has been silent since "
                f"{daemon.last_seen.isoformat()} ({int(silence.total_seconds())} s): it died "
                "or hangs; restart it (a daemon started on that host replaces its entry)"
            )
    return found


def read_status(rt: Runtime, sweep_seconds: float) -> Status:
    """The status now, from one read of the database (times in the programme's zone)."""
    from alembic.script import ScriptDirectory

    from peakpilot.workflow.migrations import alembic_config

    now = rt.now()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head() or "?"
    overdue_before = now - timedelta(seconds=SWEEPS_OF_SILENCE * sweep_seconds)

    def read(tx: Transaction) -> Status:
        stored = tx.programs.stored()
        if stored is None:
            raise no_programme(rt.db.url)
        row = tx.statements.one("SELECT version_num FROM alembic_version")
        schema = "?" if row is None else str(row[0])
        daemons = tx.daemons.list() if schema == head else []
        pending, overdue, oldest = tx.timers.backlog(overdue_before)
        counts = tx.outbox.by_status()
        oldest_pending = tx.outbox.oldest_pending_at()
        timers = TimerBacklog(pending, overdue, oldest and rt.local(oldest))
        notices = NoticeBacklog(
            counts.get("pending", 0),
            counts.get("failed", 0),
            counts.get("dead", 0),
            oldest_pending and rt.local(oldest_pending),
        )
        found = problems(
            now=now,
            schema=schema,
            schema_head=head,
            daemons=daemons,
            timers=timers,
            notices=notices,
        )
        return Status(
            schema=schema,
            program_version=stored.version,
            daemons=tuple(
                DaemonStatus(d.host, d.pid, rt.local(d.started_at), rt.local(d.last_seen))
                for d in daemons
            ),
            timers=timers,
            notices=notices,
            healthy=not found,
            problems=tuple(found),
        )

    return rt.db.run(read, write=False)


def heartbeat(rt: Runtime, daemon: DaemonRecord, *, starting: bool, stopped: bool) -> None:
    """Register or refresh a daemon (``last_seen`` now), or let a stopped one leave. A
    daemon ``starting`` replaces the silent entries of its host (a daemon that died and
    is being restarted); until then a dead daemon stays listed, and unhealthy."""
    now = rt.now()

    def beat(tx: Transaction) -> None:
        if stopped:
            tx.daemons.leave(daemon.id)
            return
        tx.daemons.beat(dataclasses.replace(daemon, last_seen=now))
        if starting:
            silent = now - timedelta(seconds=SWEEPS_OF_SILENCE * daemon.sweep_seconds)
            tx.daemons.forget_silent(daemon.host, silent, keep=daemon.id)

    rt.db.run(beat)


__all__ = [
    "DaemonStatus",
    "NoticeBacklog",
    "Status",
    "TimerBacklog",
    "heartbeat",
    "problems",
    "read_status",
]
