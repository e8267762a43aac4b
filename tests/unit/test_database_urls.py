"""Which database URLs peakpilot takes (DESIGN.md section 4, "Operating it"): the forms its
store is written for, in the spellings people write them; every other URL is a usage
error that lists the forms. Nothing here connects: ``create_engine`` only reads the URL."""

from __future__ import annotations

import pytest

from peakpilot import UsageError
from peakpilot.workflow.store.database import SUPPORTED_URLS, create_engine


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///peakpilot.db", "sqlite"),
        ("sqlite:////srv/peakpilot/peakpilot.db", "sqlite"),
        ("sqlite+pysqlite:///peakpilot.db", "sqlite"),
        ("sqlite://", "sqlite"),
        ("postgresql+psycopg://clerk@db.example.cn/peakpilot", "postgresql+psycopg"),
        ("postgresql://clerk@db.example.cn/peakpilot", "postgresql+psycopg"),
        ("postgres://clerk:secret@db.example.cn:5433/peakpilot", "postgresql+psycopg"),
        ("PostgreSQL://clerk@db.example.cn/peakpilot", "postgresql+psycopg"),
    ],
)
def test_the_supported_forms(url: str, driver: str) -> None:
    engine = create_engine(url)
    try:
        assert engine.url.drivername == driver
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://clerk:secret@db.example.cn/peakpilot",
        "mysql+pymysql://clerk@db.example.cn/peakpilot",
        "http://db.example.cn/peakpilot",
        "postgresql+psycopg2://clerk@db.example.cn/peakpilot",
        "postgresql+asyncpg://clerk@db.example.cn/peakpilot",
        "sqlite+aiosqlite:///peakpilot.db",
        "oracle://clerk@db.example.cn/peakpilot",
    ],
)
def test_another_kind_of_database_or_driver_is_a_usage_error_listing_the_forms(
    url: str,
) -> None:
    with pytest.raises(UsageError) as caught:
        create_engine(url)
    message = str(caught.value)
    assert "does not support" in message and message.endswith(SUPPORTED_URLS), message
    assert "secret" not in message, message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "url",
    ["", "garbage", "peakpilot.db", "sqlite:peakpilot.db", "postgresql://clerk:secret@db:port/x"],
)
def test_a_url_that_cannot_be_read_is_a_usage_error_listing_the_forms(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        create_engine(url)
    message = str(caught.value)
    assert message.startswith("cannot read database URL") and message.endswith(SUPPORTED_URLS)
    assert "secret" not in message, message


def test_a_supported_url_with_an_option_the_driver_refuses_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"sqlite:///peakpilot\.db\?timeout=soon"):
        create_engine("sqlite:///peakpilot.db?timeout=soon")


def test_the_forms_name_every_spelling() -> None:
    for form in ("sqlite:///FILE", "postgresql://", "postgres://", "postgresql+psycopg://"):
        assert form in SUPPORTED_URLS
