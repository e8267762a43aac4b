"""The words peakpilot stores and compares: statuses, kinds, the system's own actor and
events, and the shapes of ids. One definition each, so that a status is never spelled
twice (a typo in a literal would be a silent bug, a typo in a name an import error).

States and events of nominations are not here: the programme file declares them.
"""

from __future__ import annotations

import re
from enum import StrEnum


class BatchStatus(StrEnum):
    """A batch is open until its deadline work has run (a stored status, not a clock
    comparison: a 2023 batch loaded later stays open until a tick does that work)."""

    OPEN = "open"
    CLOSED = "closed"


class TimerKind(StrEnum):
    REMINDER = "reminder"
    DEADLINE = "deadline"
    MILESTONE = "milestone"
    # the construction years: a reminder before each due day, and the due day itself
    PLAN_REMINDER = "plan_reminder"
    PLAN_DUE = "plan_due"
    REPORT_REMINDER = "report_reminder"
    REPORT_DUE = "report_due"
    RECTIFICATION_REMINDER = "rectification_reminder"
    RECTIFICATION_DUE = "rectification_due"


class TimerStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


class NoticeStatus(StrEnum):
    """Delivery is at least once: ``failed`` is retried with backoff, ``dead`` is not.
    ``suppressed``: rendered and kept, never sent (a deadline's letters written long
    after the deadline, about news nobody should receive as new)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    SUPPRESSED = "suppressed"


SYSTEM = "system"  # the role (and actor) of the scheduler's own work
NOMINATE_EVENT = "nominate"  # the audit record that starts every nomination's trail
LAPSE_EVENT = "lapse"  # what a deadline does to every unsubmitted nomination
ATTACH_EVENT = "attach"  # the audit record of a material attached (the state unchanged)

# Ids as they are made (peakpilot.workflow.ids): matched whole before any query, so a
# malformed id is simply "not found".
ROW_ID = re.compile(r"[0-9a-f]{16}")
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

__all__ = [
    "ATTACH_EVENT",
    "BATCH_ID",
    "LAPSE_EVENT",
    "NOMINATE_EVENT",
    "ROW_ID",
    "SYSTEM",
    "BatchStatus",
    "NoticeStatus",
    "TimerKind",
    "TimerStatus",
]
