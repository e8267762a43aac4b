"""How the driver reads a stored instant back: aware and in UTC, whatever form SQLite
holds it in (peakpilot's own form without an offset, or one another tool wrote)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from peakpilot.workflow.store.driver import SqlDialect

SQLITE = SqlDialect(sa.create_engine("sqlite://").dialect)
AT = datetime(2026, 12, 3, 15, 45, 17, 345716, tzinfo=UTC)


@pytest.mark.parametrize(
    "stored",
    [
        "2026-12-03 15:45:17.345716",  # as peakpilot writes it
        "2026-12-03 15:45:17.345716+00:00",  # a datetime bound by SQLAlchemy's text()
        "2026-12-03 23:45:17.345716+08:00",  # the same instant, another offset
    ],
)
def test_a_stored_instant_reads_back_in_utc(stored: str) -> None:
    read = SQLITE.time_out(stored)
    assert read == AT and read.utcoffset() == timedelta(0)


def test_what_is_written_reads_back() -> None:
    written = SQLITE.time_in(AT.astimezone(timezone(timedelta(hours=8))))
    assert SQLITE.time_out(written) == AT
