"""Programme versions from the command line (a real subprocess, on an SQLite file and on
PostgreSQL): init keeping the stored programme, --dry-run, a refused change's one line,
--migrate, program versions|show|diff, and each bad input's exit code."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from peakpilot import Engine, FrozenClock
from peakpilot.config.program import load_program
from tests.acceptance.test_cli import BEFORE, doc, fails, ok
from tests.integration.test_program_versions import without_approved as drop_approved

SHIPPED = load_program().source


def snapshot(db: str) -> dict[str, list[tuple[object, ...]]]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as connection:
            return {
                table: sorted(map(tuple, connection.execute(sa.text(f"SELECT * FROM {table}"))))
                for table in ("programs", "program_versions", "nominations", "audit_records")
            }
    finally:
        engine.dispose()


@pytest.fixture
def approved(db_url: str) -> tuple[str, list[str]]:
    """A database with two Hebei nominations approved by the province (via the API)."""
    with Engine(db_url, clock=FrozenClock(datetime.fromisoformat(BEFORE))) as engine:
        engine.init()
        ids = []
        for name in ("唐山市", "保定市"):
            n = engine.nominate(
                "drc:hebei", province="hebei", kind="city", name=name, level="prefecture"
            )
            engine.fire(n.id, "submit_for_approval", "drc:hebei")
            engine.fire(n.id, "approve", "gov:hebei")
            ids.append(n.id)
        return db_url, ids


def write(path: Path, document: dict[str, object]) -> str:
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return str(path)


def without_approved(tmp_path: Path) -> str:
    """The shipped programme without the `approved` state, written to a file."""
    document = yaml.safe_load(SHIPPED)
    drop_approved(document)
    return write(tmp_path / "v2.yaml", document)


def test_a_change_from_dry_run_to_refusal_to_migration(
    approved: tuple[str, list[str]], tmp_path: Path
) -> None:
    db, ids = approved
    program = without_approved(tmp_path)
    before = snapshot(db)
    dry = ok("init", "--program", program, "--dry-run", db=db).stdout
    assert "version 1 -> 2 (dry run: nothing written)" in dry
    assert "  - approved" in dry
    assert "state approved is removed but holds 2 nominations" in dry
    assert snapshot(db) == before
    refused = fails(5, "init", "--program", program, db=db)
    assert "state approved is removed but holds 2 nominations" in refused.stderr
    assert snapshot(db) == before
    mapping = tmp_path / "migrate.yaml"
    mapping.write_text("states:\n  approved: provincial_approval\n", "utf-8")
    applied = doc("init", "--program", program, "--migrate", str(mapping), "--as", "ndrc", db=db)
    assert (applied["version"], applied["changed"]) == (2, True)
    change = applied["change"]
    assert (change["outcome"], change["from_version"], change["to_version"]) == ("applied", 1, 2)
    assert change["moves"] == [
        {"from_state": "approved", "to_state": "provincial_approval", "nominations": 2}
    ]
    shown = doc("show", ids[0], db=db)
    assert (shown["state"], shown["program_version"]) == ("provincial_approval", 2)
    assert shown["history"][-1]["event"] == "migrate"
    assert "programme  version 2" in ok("show", ids[0], db=db).stdout
    versions = doc("program", "versions", db=db)
    assert [(v["version"], v["actor"]) for v in versions] == [(1, "system"), (2, "ndrc")]
    assert set(versions[0]) == {"version", "sha256", "loaded_at", "actor"}
    assert ok("program", "show", "1", db=db).stdout == SHIPPED
    assert doc("program", "show", db=db)["version"] == 2
    diff = ok("program", "diff", "1", "2", db=db).stdout
    assert "states:\n  - approved" in diff
    assert "~ approve from provincial_approval" in diff
    assert "  ! " not in diff
    # a plain init keeps version 2; the same text again is unchanged
    assert "up to date" in ok("init", db=db).stdout
    again = doc("init", "--program", program, db=db)
    assert (again["version"], again["change"]["outcome"]) == (2, "unchanged")
    ok("audit", "verify", db=db)


def test_bad_input_to_a_programme_change(approved: tuple[str, list[str]], tmp_path: Path) -> None:
    db, _ = approved
    program = without_approved(tmp_path)
    before = snapshot(db)
    fails(2, "init", "--migrate", str(tmp_path / "m.yaml"), db=db)
    fails(2, "init", "--dry-run", db=db)
    missing = fails(5, "init", "--program", program, "--migrate", str(tmp_path / "no.yaml"), db=db)
    assert "cannot read migration file" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("approved: drafted\n", "utf-8")
    shape = fails(5, "init", "--program", program, "--migrate", str(broken), db=db)
    assert "write `states:`" in shape.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("states:\n  approved: nowhere\n", "utf-8")
    named = fails(5, "init", "--program", program, "--migrate", str(unknown), db=db)
    assert "maps approved to nowhere" in named.stderr
    other = yaml.safe_load(SHIPPED)
    other["id"] = "another_programme"
    fails(5, "init", "--program", write(tmp_path / "other.yaml", other), db=db)
    fails(4, "init", "--program", program, "--as", "drc:hebei", db=db)
    fails(3, "program", "show", "9", db=db)
    fails(3, "program", "diff", "1", "9", db=db)
    assert snapshot(db) == before


def test_a_dry_run_on_a_new_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    program = tmp_path / "programme.yaml"
    program.write_text(SHIPPED, "utf-8")
    out = ok("init", "--program", str(program), "--dry-run", db=f"sqlite:///{path}").stdout
    assert "dry run: would initialise" in out
    assert "version 1" in out
    assert not path.exists()
