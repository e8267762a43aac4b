"""Settings that fail loudly (DESIGN.md section 4, "Operating it"), through the command
line as an operator meets them: a ``PEAKPILOT_CONFIG`` that cannot be used is refused (5)
naming the file and the key or line, and a database URL of a kind peakpilot does not
support is a usage error (2) listing the forms it takes. Either way the command stops
before it touches a database: the folder it ran in holds what it held before.

Each command runs as a subprocess in a scratch folder with a scratch environment (no
``PEAKPILOT_*`` variable but those the test sets), so that the default database,
``./peakpilot.db``, would appear there if anything created it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.acceptance.test_cli import BATCH, assert_failed, describe, run

FORMS = ("sqlite:///FILE", "postgresql://", "postgres://", "postgresql+psycopg://")
COMMANDS = [("list",), ("init",), ("board",)]
COMMAND_IDS = ["list", "init", "board"]


def in_folder(
    folder: Path, *args: str, env: dict[str, str], db: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``peakpilot ARGS`` run in ``folder`` with only ``env`` for settings."""
    return run(*args, db=db, now=None, env=env, cwd=folder)


def files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


# -- the settings file ---------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_settings_file_that_is_not_there_is_refused(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Not ignored, with ./peakpilot.db created in its stead (issue 13)."""
    missing = tmp_path / "etc" / "peakpilot.toml"
    proc = in_folder(tmp_path, *command, env={"PEAKPILOT_CONFIG": str(missing)})
    assert_failed(proc, 5)
    assert f"settings file {missing}: No such file or directory" in proc.stderr, describe(proc)
    assert files(tmp_path) == set()


def test_a_settings_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "peakpilot.toml"  # a folder where the file should be
    folder.mkdir()
    proc = in_folder(tmp_path, "list", env={"PEAKPILOT_CONFIG": str(folder)})
    assert_failed(proc, 5)
    assert f"cannot read settings file {folder}" in proc.stderr, describe(proc)
    assert files(tmp_path) == {"peakpilot.toml"}


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_misspelt_key_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Not ignored: the database it meant to name would silently be ./peakpilot.db."""
    config = tmp_path / "peakpilot.toml"
    config.write_text(f'databse_url = "sqlite:///{tmp_path}/meant.db"\n', encoding="utf-8")
    proc = in_folder(tmp_path, *command, env={"PEAKPILOT_CONFIG": str(config)})
    assert_failed(proc, 5)
    assert f"{config}: unknown setting 'databse_url'" in proc.stderr, describe(proc)
    assert "database_url" in proc.stderr.split("'databse_url'", 1)[1], describe(proc)
    assert files(tmp_path) == {"peakpilot.toml"}


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_toml_syntax_error_is_refused_naming_the_file_and_the_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Not "unexpected error (TOMLDecodeError)" without the file (issue 13)."""
    config = tmp_path / "peakpilot.toml"
    config.write_text('notify_channel = "smtp"\nsmtp_host = mail.example.cn\n', encoding="utf-8")
    proc = in_folder(tmp_path, *command, env={"PEAKPILOT_CONFIG": str(config)})
    assert_failed(proc, 5)
    assert f"{config}:2: invalid TOML in settings file" in proc.stderr, describe(proc)
    assert "unexpected" not in proc.stderr and "TOMLDecodeError" not in proc.stderr
    assert files(tmp_path) == {"peakpilot.toml"}


def test_an_invalid_value_in_the_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path,
) -> None:
    config = tmp_path / "peakpilot.toml"
    config.write_text('smtp_port = "twenty-five"\n', encoding="utf-8")
    proc = in_folder(tmp_path, "list", env={"PEAKPILOT_CONFIG": str(config)})
    assert_failed(proc, 5)
    assert f"{config}: smtp_port: 'twenty-five' is not a whole number" in proc.stderr
    assert files(tmp_path) == {"peakpilot.toml"}


def test_a_settings_file_that_names_the_database(tmp_path: Path) -> None:
    """The file works when it is right: init and board on the database it names."""
    config = tmp_path / "peakpilot.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path}/named.db"\n', encoding="utf-8")
    env = {"PEAKPILOT_CONFIG": str(config)}
    assert in_folder(tmp_path, "init", env=env).returncode == 0
    proc = in_folder(tmp_path, "--json", "board", env=env)
    assert proc.returncode == 0, describe(proc)
    assert json.loads(proc.stdout)["batch"] == BATCH
    assert "peakpilot.db" not in files(tmp_path) and "named.db" in files(tmp_path)


# -- database URLs ---------------------------------------------------------------------------

UNSUPPORTED = [
    "mysql://clerk:secret@db.example.cn/peakpilot",
    "http://db.example.cn/peakpilot",
    "postgresql+psycopg2://clerk@db.example.cn/peakpilot",
    "sqlite+aiosqlite:///peakpilot.db",
    "garbage",
    "peakpilot.db",
    "",
]


@pytest.mark.parametrize("url", UNSUPPORTED, ids=lambda url: url or "empty")
@pytest.mark.parametrize("given", ["--db", "environment", "file"])
def test_an_unsupported_database_url_is_a_usage_error_listing_the_forms(
    tmp_path: Path, url: str, given: str
) -> None:
    """Not a library's message ("Can't load plugin", "No module named 'MySQLdb'") with
    exit 5: the operator is told which forms peakpilot takes."""
    env: dict[str, str] = {}
    db = None
    if given == "--db":
        db = url
    elif given == "environment":
        env["PEAKPILOT_DATABASE_URL"] = url
    else:
        config = tmp_path / "peakpilot.toml"
        config.write_text(f"database_url = {json.dumps(url)}\n", encoding="utf-8")
        env["PEAKPILOT_CONFIG"] = str(config)
    before = files(tmp_path)
    proc = in_folder(tmp_path, "--json", "list", env=env, db=db)
    assert_failed(proc, 2)
    for form in FORMS:
        assert form in proc.stderr, describe(proc)
    assert "secret" not in proc.stderr, describe(proc)
    assert "plugin" not in proc.stderr and "No module" not in proc.stderr, describe(proc)
    assert files(tmp_path) == before


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_without_the_driver_are_psycopg(postgres_url: str, scheme: str) -> None:
    """libpq's two spellings, as other tools print them, reach the same database."""
    url = sa.make_url(postgres_url).set(drivername=scheme).render_as_string(hide_password=False)
    assert url.startswith(f"{scheme}://")
    proc = run("--json", "init", db=url, now=None)
    assert proc.returncode == 0, describe(proc)
    assert json.loads(proc.stdout)["database"].startswith("postgresql+psycopg://")
    proc = run("--json", "board", db=postgres_url, now=None)  # the same database
    assert proc.returncode == 0, describe(proc)
    assert json.loads(proc.stdout)["batch"] == BATCH
