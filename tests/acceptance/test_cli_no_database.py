"""Commands meet a database that is not there (DESIGN.md section 4, "Operating it": a
read-only command never creates a database file; 3, not initialised).

Connecting to an SQLite file that does not exist creates it, so ``list`` in an empty
folder used to leave an empty ``peakpilot.db`` behind (issue 13). Every command but
``init`` (and ``demo``, which initialises) now answers 3 and leaves the folder as it found
it: no database, no ``-wal`` or ``-shm`` file, no output file, no outbox. Each runs as a
subprocess in a scratch folder with no ``PEAKPILOT_*`` variable, so that the default
database, ``./peakpilot.db``, is the one it looks for.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.acceptance.test_cli import BATCH, BEFORE, STATES, assert_failed, describe, run

NOMINATION = "01HDZ3Q9V6X8J5KPRW2M4T7BNC"
SHIPPED_PROGRAM = Path(__file__).parents[2] / "peakpilot/config/programs/carbon_peak_2023.yaml"

READS = [
    ("list",),
    ("list", "--state", "submitted", "--province", "hebei", "--batch", BATCH),
    ("show", NOMINATION),
    ("show", NOMINATION, "--as", "ndrc"),
    ("history", NOMINATION),
    ("board",),
    ("board", "--batch", BATCH),
    ("deadlines",),
    ("deadlines", "--batch", BATCH),
    ("notices",),
    ("notices", "--status", "dead"),
    ("notices", "show", NOMINATION),
    ("pilots",),
    ("pilots", "--province", "hebei", "--overdue"),
    ("materials", NOMINATION),
    ("materials", "get", NOMINATION, "-o", "plan.pdf"),
    ("program", "versions"),
    ("program", "show"),
    ("program", "show", "1"),
    ("program", "diff", "1", "2"),
    ("audit", "verify"),
]

# commands that write, refused for want of a database before they write anything
WRITES = [
    ("tick",),
    ("notices", "dispatch"),
    ("notices", "retry", NOMINATION),
    (
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
    ),
    ("fire", NOMINATION, "submit_for_approval", "--as", "drc:hebei"),
]


def ids(commands: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(command) for command in commands]


def in_empty_folder(
    folder: Path, *args: str, db: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(*args, db=db, now=BEFORE, env={}, cwd=folder)


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
@pytest.mark.parametrize("command", READS + WRITES, ids=ids(READS + WRITES))
def test_a_command_in_an_empty_folder_creates_nothing(
    tmp_path: Path, command: tuple[str, ...], json_flag: tuple[str, ...]
) -> None:
    proc = in_empty_folder(tmp_path, *json_flag, *command)
    assert_failed(proc, 3)
    assert "not initialised" in proc.stderr and "peakpilot init" in proc.stderr, describe(proc)
    assert str(tmp_path / "peakpilot.db") in proc.stderr, describe(proc)  # where it looked
    assert list(tmp_path.iterdir()) == [], describe(proc)


def test_a_database_in_a_folder_that_is_not_there_is_not_initialised(tmp_path: Path) -> None:
    """Not "cannot reach database ... unable to open database file" (1)."""
    proc = in_empty_folder(tmp_path, "list", db=f"sqlite:///{tmp_path}/data/peakpilot.db")
    assert_failed(proc, 3)
    assert "not initialised" in proc.stderr, describe(proc)
    assert list(tmp_path.iterdir()) == []


def test_the_diagram_of_no_database_is_the_shipped_programme(tmp_path: Path) -> None:
    proc = in_empty_folder(tmp_path, "diagram")
    assert proc.returncode == 0, describe(proc)
    for state in STATES:
        assert state in proc.stdout, state
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_of_init_creates_nothing(tmp_path: Path) -> None:
    proc = in_empty_folder(tmp_path, "init", "--program", str(SHIPPED_PROGRAM), "--dry-run")
    assert proc.returncode == 0, describe(proc)
    assert list(tmp_path.iterdir()) == []


def test_init_creates_the_database_and_the_reads_then_answer(tmp_path: Path) -> None:
    assert in_empty_folder(tmp_path, "list").returncode == 3
    proc = in_empty_folder(tmp_path, "init")
    assert proc.returncode == 0, describe(proc)
    assert (tmp_path / "peakpilot.db").is_file()
    proc = in_empty_folder(tmp_path, "list")
    assert proc.returncode == 0, describe(proc)
