"""Clocks: the only place peakpilot learns what time it is.

The engine never calls ``datetime.now`` itself; it asks its clock. Production uses
:class:`SystemClock`; tests, ``--now`` and the 2023 replay use :class:`FrozenClock` (the
replay moves it from one moment of its story to the next), so all of them run the same
code path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

# Instants the engine accepts: wide enough for any programme, narrow enough that adding a
# reminder offset or showing the time in any zone can never overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def require_aware(value: datetime, what: str = "time") -> datetime:
    """Return ``value`` in UTC, refusing a naive datetime (its zone would be a guess)."""
    from peakpilot.errors import InvalidInput

    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} {value!r} is not a date and time")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidInput(f"{what} {value.isoformat()} has no UTC offset: give one, e.g. +08:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{what} {value.isoformat()} cannot be expressed in UTC") from None


def require_instant(value: datetime, what: str = "time") -> datetime:
    """:func:`require_aware`, and within the years 1900 to 8999: the engine adds offsets
    to instants and shows them in the programme's zone, which must never overflow."""
    from peakpilot.errors import InvalidInput

    utc = require_aware(value, what)
    if not EARLIEST <= utc < LATEST:
        raise InvalidInput(f"{what} {value.isoformat()} is outside the years 1900 to 8999")
    return utc


class Clock(Protocol):
    """Anything that can tell the current instant as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FrozenClock:
    """A clock that stands still until told to move (tests, ``--now``, the demo)."""

    def __init__(self, at: datetime) -> None:
        self._at = require_aware(at, "clock time")

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (which must be aware)."""
        self._at = require_aware(at, "clock time")

    def advance(self, delta: timedelta) -> None:
        """Move forward (or back, with a negative delta) by ``delta``."""
        self._at = self._at + delta

    def __repr__(self) -> str:
        return f"FrozenClock({self._at.isoformat()})"
