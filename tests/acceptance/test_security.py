"""Secrets stay secret, `system` cannot be claimed, and the outbox is the owner's."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

NOW = "2023-10-20T09:00:00+08:00"
SECRET = "s3cret-Pa55"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    return subprocess.run(
        [sys.executable, "-m", "peakpilot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


@pytest.fixture
def nomination(sqlite_url: str) -> str:
    assert run("--db", sqlite_url, "init").returncode == 0
    created = run(
        "--db",
        sqlite_url,
        "--now",
        NOW,
        "nominate",
        "--province",
        "hebei",
        "--kind",
        "city",
        "--name",
        "唐山市",
        "--level",
        "prefecture",
        "--as",
        "drc:hebei",
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


@pytest.mark.parametrize("event", ["lapse", "submit_for_approval"])
def test_system_cannot_be_claimed_from_the_command_line(
    sqlite_url: str, nomination: str, event: str
) -> None:
    result = run(
        "--db",
        sqlite_url,
        "--now",
        "2023-11-15T00:00:00+08:00",
        "fire",
        nomination,
        event,
        "--as",
        "system",
    )
    assert result.returncode == 4
    assert result.stderr.count("\n") == 1 and "system" in result.stderr
    history = run("--db", sqlite_url, "--json", "history", nomination)
    assert [r["event"] for r in json.loads(history.stdout)] == ["nominate"]


def test_an_unreachable_database_is_named_without_its_password() -> None:
    result = run("--db", f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/nowhere", "list")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "127.0.0.1:1/nowhere" in result.stderr and "***" in result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.postgres
def test_json_output_masks_the_database_password(postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)  # trust auth ignores it
    result = run("--db", url, "--json", "init")
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert json.loads(result.stdout)["database"].count("***") == 1


def test_the_smtp_password_appears_nowhere(
    sqlite_url: str, nomination: str, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("gov:hebei:\n  email: [office@hebei.example.cn]\n", encoding="utf-8")
    env = {
        "PEAKPILOT_CONTACTS": str(contacts),
        "PEAKPILOT_NOTIFY_CHANNEL": "smtp",
        "PEAKPILOT_SMTP_HOST": "127.0.0.1",
        "PEAKPILOT_SMTP_PORT": "1",
        "PEAKPILOT_SMTP_USER": "peakpilot",
        "PEAKPILOT_SMTP_PASSWORD": SECRET,
    }
    fired = run(
        "--db",
        sqlite_url,
        "--now",
        NOW,
        "fire",
        nomination,
        "submit_for_approval",
        "--as",
        "drc:hebei",
        env=env,
    )
    dispatched = run("--db", sqlite_url, "--now", NOW, "--json", "notices", "dispatch", env=env)
    listed = run("--db", sqlite_url, "--json", "notices", env=env)
    assert json.loads(dispatched.stdout)["failed"] == 1
    notice = json.loads(listed.stdout)[0]["id"]
    shown = run("--db", sqlite_url, "--json", "notices", "show", notice, env=env)
    assert json.loads(shown.stdout)["last_error"]
    for result in (fired, dispatched, listed, shown):
        assert SECRET not in result.stdout + result.stderr


def test_outbox_files_are_the_owners_alone(
    sqlite_url: str, nomination: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    env = {"PEAKPILOT_OUTBOX_DIR": str(outbox)}
    run(
        "--db",
        sqlite_url,
        "--now",
        NOW,
        "fire",
        nomination,
        "submit_for_approval",
        "--as",
        "drc:hebei",
        env=env,
    )
    assert run("--db", sqlite_url, "--now", NOW, "notices", "dispatch", env=env).returncode == 0
    (eml,) = outbox.glob("*.eml")
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
