"""Reads are scoped like writes (DESIGN 4), on the command line: every read command x
every kind of actor, ``python -m peakpilot --json ... [--as ACTOR]`` as a subprocess (the
table is tests/read_scope.py, shared with the API's test, which runs it on SQLite and
PostgreSQL; the command line adds no SQL of its own, so its table runs on SQLite only).

Without ``--as`` the command line reads everything (the operator's tool); with it, a
provincial actor reads its own province only and another province's nomination, material
or notice is exit 4 with nothing on stdout; an unparsable actor is 5. The cases only
read, so they share one database and run two at a time; the database's rows are the same
after all of them as before.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.acceptance.test_cli import assert_failed, describe, run
from tests.read_scope import (
    ACTORS,
    CLI_READS,
    READ_AT_TEXT,
    World,
    build,
    expected,
    rows,
)


@dataclass
class Runs:
    world: World
    procs: dict[tuple[str, str], subprocess.CompletedProcess[str]]
    outputs: dict[tuple[str, str], Path]
    rows_before: dict[str, list[str]]
    rows_after: dict[str, list[str]]


def _attempt(world: World, case: tuple[str, str], output: Path) -> subprocess.CompletedProcess[str]:
    name, kind = case
    actor = ACTORS[kind][0]
    as_actor = ("--as", actor) if actor is not None else ()
    argv = CLI_READS[name].cli(world, output)
    return run("--json", *argv, *as_actor, db=world.url, now=READ_AT_TEXT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every case of the table, run once on one SQLite database, two at a time."""
    world = build(f"sqlite:///{tmp_path_factory.mktemp('read_scope') / 'peakpilot.db'}")
    folder = tmp_path_factory.mktemp("read_scope_out")
    outputs = {
        (name, kind): folder / f"{name}-{kind}.bin".replace(" ", "_")
        for name in CLI_READS
        for kind in ACTORS
    }
    engine = sa.create_engine(world.url)
    try:
        before = rows(engine)
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = pool.map(lambda case: (case, _attempt(world, case, outputs[case])), outputs)
            procs = dict(done)
        after = rows(engine)
    finally:
        engine.dispose()
    return Runs(world, procs, outputs, before, after)


@pytest.mark.parametrize("kind", ACTORS)
@pytest.mark.parametrize("name", CLI_READS)
def test_read(runs: Runs, name: str, kind: str) -> None:
    read, reads = CLI_READS[name], ACTORS[kind][1]
    proc = runs.procs[(name, kind)]
    want = expected(read, runs.world, reads)
    output = runs.outputs[(name, kind)]
    if isinstance(want, int):
        assert_failed(proc, want)
        assert not output.exists(), "a refused `materials get` wrote its file"
    else:
        assert proc.returncode == 0, describe(proc)
        assert read.view(json.loads(proc.stdout)) == want, describe(proc)
        if name == "materials get":
            assert hashlib.sha256(output.read_bytes()).hexdigest() == runs.world.material_sha256
    assert runs.rows_after == runs.rows_before, "a read wrote to the database"


def test_as_before_a_notices_subcommand(runs: Runs) -> None:
    """`notices --as A show ID` reads as A (never as the operator); --as means nothing to
    dispatch and retry, so it is a usage error there rather than silently dropped."""
    world = runs.world
    notice = world.notices["to-gov-about-hebei"]
    proc = run("notices", "--as", "gov:shanxi", "show", notice, db=world.url, now=READ_AT_TEXT)
    assert_failed(proc, 4)
    proc = run("--json", "notices", "--as", "gov:hebei", "show", notice, db=world.url)
    assert proc.returncode == 0 and json.loads(proc.stdout)["id"] == notice, describe(proc)
    proc = run("notices", "--as", "drc:hebei", "dispatch", db=world.url, now=READ_AT_TEXT)
    assert_failed(proc, 2, one_line=False)
