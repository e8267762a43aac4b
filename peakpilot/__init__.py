"""peakpilot: the workflow engine of the national carbon-peak pilot programme.

The public face an agency backend embeds. Names are imported on first use, so that
``import peakpilot`` (and the CLI's quick commands) do not pay for SQLAlchemy up front.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peakpilot.clock import Clock, FrozenClock, SystemClock
    from peakpilot.config.program import Program, load_program
    from peakpilot.errors import (
        AuditBroken,
        ConfigError,
        Conflict,
        DeliveryError,
        InvalidInput,
        NotFound,
        NotPermitted,
        PeakpilotError,
        Refused,
        Unavailable,
        UsageError,
    )
    from peakpilot.states.actors import Actor
    from peakpilot.workflow.engine import Engine
    from peakpilot.workflow.snapshots import (
        AuditReport,
        Board,
        BrokenRecord,
        HistoryRecord,
        Nomination,
        NominationDetail,
        ProvinceBoard,
        Timer,
    )

_EXPORTS = {
    "Engine": "peakpilot.workflow.engine",
    "Actor": "peakpilot.states.actors",
    "Clock": "peakpilot.clock",
    "FrozenClock": "peakpilot.clock",
    "SystemClock": "peakpilot.clock",
    "Program": "peakpilot.config.program",
    "load_program": "peakpilot.config.program",
    **dict.fromkeys(
        (
            "AuditReport",
            "Board",
            "BrokenRecord",
            "HistoryRecord",
            "Nomination",
            "NominationDetail",
            "ProvinceBoard",
            "Timer",
        ),
        "peakpilot.workflow.snapshots",
    ),
    **dict.fromkeys(
        (
            "AuditBroken",
            "ConfigError",
            "Conflict",
            "DeliveryError",
            "InvalidInput",
            "NotFound",
            "NotPermitted",
            "PeakpilotError",
            "Refused",
            "Unavailable",
            "UsageError",
        ),
        "peakpilot.errors",
    ),
}

__all__ = [
    "Actor",
    "AuditBroken",
    "AuditReport",
    "Board",
    "BrokenRecord",
    "Clock",
    "ConfigError",
    "Conflict",
    "DeliveryError",
    "Engine",
    "FrozenClock",
    "HistoryRecord",
    "InvalidInput",
    "Nomination",
    "NominationDetail",
    "NotFound",
    "NotPermitted",
    "PeakpilotError",
    "Program",
    "ProvinceBoard",
    "Refused",
    "SystemClock",
    "Timer",
    "Unavailable",
    "UsageError",
    "load_program",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'peakpilot' has no attribute {name!r}")
    return getattr(import_module(module), name)
