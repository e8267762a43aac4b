"""The daemon's log: one line per action, plain or JSON, every instant in UTC with ``Z``
(field names: docs/OPERATIONS.md)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("peakpilot.daemon")


def utc_text(value: datetime, timespec: str = "auto") -> str:
    """An instant as every log line writes it: UTC, ISO 8601, ``Z`` (one zone for every
    line and field, whatever the programme's zone or the host's)."""
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The action's fields of a line, instants in UTC."""
    return {
        key: utc_text(value) if isinstance(value, datetime) else value
        for key, value in getattr(record, "fields", {}).items()
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at, level, message and the action's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "at": utc_text(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """``time level message key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={value}" for key, value in _fields(record).items() if value is not None
        )
        at = utc_text(datetime.fromtimestamp(record.created, UTC), timespec="seconds")
        line = f"{at} {record.levelname.lower()} {record.getMessage()}"
        return f"{line} {fields}" if fields else line


def configure_logging(fmt: str) -> None:
    """Our lines at INFO; APScheduler's own only when they are errors (its warnings about
    a job still running at its next interval are expected with one worker thread)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    for name, level in (("peakpilot", logging.INFO), ("apscheduler", logging.ERROR)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


__all__ = ["JsonFormatter", "PlainFormatter", "configure_logging", "log", "utc_text"]
