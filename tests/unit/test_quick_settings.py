"""The quick commands' database URL is the one the settings model resolves, or none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from peakpilot.config.quick import DEFAULT_DATABASE_URL, quick_database_url
from peakpilot.config.settings import load_settings

CASES = {
    "nothing set": ({}, None),
    "the variable": ({"PEAKPILOT_DATABASE_URL": "sqlite:///from-env.db"}, None),
    "the variable in lower case": ({"peakpilot_database_url": "sqlite:///lower.db"}, None),
    "an empty variable": ({"PEAKPILOT_DATABASE_URL": ""}, None),
    "the flag over the variable": (
        {"PEAKPILOT_DATABASE_URL": "sqlite:///from-env.db"},
        "sqlite:///flag.db",
    ),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PEAKPILOT_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("environment", "flag"), CASES.values(), ids=CASES.keys())
def test_the_quick_url_is_the_settings_url(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], flag: str | None
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert quick_database_url(flag) == load_settings(database_url=flag).database_url


def test_the_default() -> None:
    assert quick_database_url(None) == DEFAULT_DATABASE_URL == load_settings().database_url


def test_a_toml_file_is_left_to_the_settings_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "peakpilot.toml"
    config.write_text('database_url = "sqlite:///from-toml.db"\n', encoding="utf-8")
    monkeypatch.setenv("PEAKPILOT_CONFIG", str(config))
    assert quick_database_url(None) is None
    assert load_settings().database_url == "sqlite:///from-toml.db"
    assert quick_database_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_two_spellings_of_the_variable_are_left_to_the_settings_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEAKPILOT_DATABASE_URL", "sqlite:///upper.db")
    monkeypatch.setenv("Peakpilot_Database_Url", "sqlite:///mixed.db")
    assert quick_database_url(None) is None
