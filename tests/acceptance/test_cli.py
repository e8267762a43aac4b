"""Acceptance tests of the command line contract (DESIGN.md section 4).

Every test runs ``python -m peakpilot`` as a real subprocess against a real database (an
SQLite file; a fresh PostgreSQL database for the tests that take ``db_url``) and checks
what a script or a clerk sees: the exit code, stdout (one JSON document with ``--json``,
nothing on failure), one line on stderr for an error, and that a failed command wrote
nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.design import DESIGN_QUOTAS, DESIGN_STATES

BEFORE = "2023-10-20T09:00:00+08:00"
BEFORE_UTC = "2023-10-20T01:00:00+00:00"  # the same instant, another offset
AT_DEADLINE = "2023-11-15T00:00:00+08:00"
AT_DEADLINE_UTC = "2023-11-14T16:00:00+00:00"  # the same instant, another offset
JUST_BEFORE_DEADLINE = "2023-11-14T23:59:59+08:00"
BATCH = "2023-first"
EIGHT_HOURS = timedelta(hours=8)

STATES = DESIGN_STATES
QUOTAS = DESIGN_QUOTAS
NOMINATION_FIELDS = {"id", "batch", "province", "kind", "name", "level", "state", "version"}
HISTORY_FIELDS = {"seq", "event", "from_state", "to_state", "actor", "at", "reason"}
HEAVY_MODULES = ("pydantic", "pydantic_settings", "sqlmodel", "jinja2", "transitions", "yaml")


# -- helpers ---------------------------------------------------------------------------


def run(
    *args: str,
    db: str | None,
    now: str | None = BEFORE,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m peakpilot [--db DB] [--now NOW] ARGS...`` as a subprocess."""
    command = [sys.executable, "-m", "peakpilot"]
    if db is not None:
        command += ["--db", db]
    if now is not None:
        command += ["--now", now]
    command += list(args)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    environment.update(env or {})
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=environment,
        cwd=cwd,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"\n$ {' '.join(map(repr, proc.args[3:]))}\nexit {proc.returncode}\n"
        f"stdout: {proc.stdout[:2000]!r}\nstderr: {proc.stderr[:2000]!r}"
    )


def ok(*args: str, db: str | None, now: str | None = BEFORE) -> subprocess.CompletedProcess[str]:
    """Run a command that must succeed (exit 0)."""
    proc = run(*args, db=db, now=now)
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc


def doc(*args: str, db: str | None, now: str | None = BEFORE, after: bool = False) -> Any:
    """Run with ``--json`` (before the command, or after it) and return the document.

    The whole of stdout must be exactly one JSON document.
    """
    argv = (*args, "--json") if after else ("--json", *args)
    proc = ok(*argv, db=db, now=now)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"stdout is not one JSON document ({error}){describe(proc)}") from None


def fails(
    code: int, *args: str, db: str | None, now: str | None = BEFORE, one_line: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command that must fail with ``code``: no traceback, one line on stderr, and
    (with ``--json``) nothing on stdout."""
    proc = run(*args, db=db, now=now)
    assert_failed(proc, code, one_line=one_line)
    return proc


def assert_failed(
    proc: subprocess.CompletedProcess[str], code: int, *, one_line: bool = True
) -> None:
    assert proc.returncode == code, f"expected exit {code}{describe(proc)}"
    assert "Traceback" not in proc.stderr, describe(proc)
    assert proc.stderr.strip(), f"an error must say what to fix on stderr{describe(proc)}"
    if one_line:
        assert len(proc.stderr.splitlines()) == 1, (
            f"an error must be exactly one line on stderr{describe(proc)}"
        )
    if "--json" in proc.args:
        assert proc.stdout == "", f"with --json, stdout must be empty on failure{describe(proc)}"


def nominate(
    db: str,
    name: str,
    *,
    province: str = "hebei",
    kind: str = "city",
    level: str = "prefecture",
    actor: str | None = None,
) -> str:
    """Create a nomination (human output) and return the id it printed."""
    proc = ok(
        "nominate",
        "--province",
        province,
        "--kind",
        kind,
        "--name",
        name,
        "--level",
        level,
        "--as",
        actor or f"drc:{province}",
        db=db,
    )
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("\n"), describe(proc)
    nomination_id = proc.stdout.strip()
    assert nomination_id and not re.search(r"\s", nomination_id), describe(proc)
    return nomination_id


def fire(
    db: str, nomination_id: str, event: str, actor: str, *extra: str, now: str = BEFORE
) -> Any:
    """Fire one event with ``--json`` after the command; return the nomination document."""
    return doc("fire", nomination_id, event, "--as", actor, *extra, db=db, now=now, after=True)


def db_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table, to show that a failed command wrote nothing."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            names = sorted(sa.inspect(connection).get_table_names())
            return {
                name: sorted(
                    repr(tuple(row))
                    for row in connection.execute(sa.text(f'SELECT * FROM "{name}"'))
                )
                for name in names
            }
    finally:
        engine.dispose()


def audit_table(url: str) -> tuple[str, str]:
    """The audit trail's table (its name contains ``audit``) and its nomination column."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = [t for t in inspector.get_table_names() if "audit" in t]
        assert len(tables) == 1, f"expected one audit table, found {tables}"
        columns = {c["name"] for c in inspector.get_columns(tables[0])}
        assert columns >= HISTORY_FIELDS, f"{tables[0]} lacks {HISTORY_FIELDS - columns}"
        nomination_columns = [c for c in columns if "nomination" in c]
        assert len(nomination_columns) == 1, columns
        return tables[0], nomination_columns[0]
    finally:
        engine.dispose()


def execute_sql(url: str, statement: str, **params: Any) -> None:
    """Tamper with the database behind peakpilot's back (sqlite3 for an SQLite file)."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with connection:
                connection.execute(statement, params)
        finally:
            connection.close()
    else:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(statement), params)
        finally:
            engine.dispose()


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() is not None, f"{text!r} has no offset"
    return value


def assert_nomination(document: Any, **expected: Any) -> None:
    assert isinstance(document, dict), document
    missing = NOMINATION_FIELDS - document.keys()
    assert not missing, f"nomination document lacks {missing}: {document}"
    for key, value in expected.items():
        assert document[key] == value, f"{key}: {document[key]!r} != {value!r} in {document}"


def assert_history_record(record: Any) -> None:
    assert isinstance(record, dict), record
    missing = HISTORY_FIELDS - record.keys()
    assert not missing, f"history record lacks {missing}: {record}"
    assert instant(record["at"]).utcoffset() == EIGHT_HOURS, record


# -- a shared, read-mostly database ----------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An initialised SQLite database holding four nominations:

    H (Hebei city, drafted), P (Hebei city, provincial_approval, version 2),
    K (Hebei park, drafted; typed as 130000), G (Guangdong city, drafted; typed as 440000).
    Only read-only and failing commands may run against it.
    """
    url = f"sqlite:///{tmp_path_factory.mktemp('base') / 'peakpilot.db'}"
    ok("init", db=url)
    h = nominate(url, "保定市")
    p = nominate(url, "石家庄市")
    k = nominate(
        url,
        "曹妃甸经济技术开发区",
        province="130000",
        kind="park",
        level="national",
        actor="drc:130000",
    )
    g = nominate(url, "深圳市", province="440000", level="sub_provincial", actor="drc:guangdong")
    fire(url, p, "submit_for_approval", "drc:hebei")
    unknown = h[:-1] + ("1" if h[-1] == "0" else "0")
    return {"db": url, "H": h, "P": p, "K": k, "G": g, "UNKNOWN": unknown}


# -- the program and its entry points --------------------------------------------------


def test_help_and_console_script() -> None:
    proc = ok("--help", db=None, now=None)
    for command in ("init", "nominate", "fire", "show", "list", "board", "history", "diagram"):
        assert command in proc.stdout, describe(proc)

    script = Path(sys.executable).parent / "peakpilot"
    assert script.is_file() and os.access(script, os.X_OK), f"no console script at {script}"
    proc = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, describe(proc)
    assert "nominate" in proc.stdout


def loaded_modules(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -m peakpilot ARGV`` in a process that lists, on stderr at exit, the
    top-level packages it imported."""
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print(*sorted({m.split('.')[0] for m in sys.modules}),"
        " file=sys.stderr))\n"
        f"sys.argv = ['peakpilot', *{list(argv)!r}]\n"
        "runpy.run_module('peakpilot', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    return proc, set(proc.stderr.split())


def test_help_loads_click_only() -> None:
    """``--help`` is the cheapest start-up (issue 6's figure cli_help): no database
    driver, no Rich, no settings model, whichever module of the CLI a command lives in."""
    for argv in (["--help"], ["fire", "--help"], ["notices", "show", "--help"]):
        proc, loaded = loaded_modules(*argv)
        assert proc.returncode == 0, describe(proc)
        assert "click" in loaded, proc.stderr  # the check itself works
        heavy = loaded & {"sqlalchemy", "rich", *HEAVY_MODULES}
        assert not heavy, (argv, sorted(heavy))


def test_init_is_repeatable_and_reports_no_change(db_url: str) -> None:
    first = doc("init", db=db_url)
    assert isinstance(first, dict)
    assert first.get("changed") is True, first
    rows = db_rows(db_url)

    again = ok("init", db=db_url)
    assert re.search(
        r"up to date|unchanged|nothing (changed|to do)|no change", again.stdout, re.I
    ), f"a repeated init must say that nothing changed{describe(again)}"
    third = doc("init", db=db_url, after=True)
    assert third.get("changed") is False, third
    assert db_rows(db_url) == rows, "a repeated init changed the database"


def test_env_database_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    proc = run("init", db=None, now=None, env={"PEAKPILOT_DATABASE_URL": url}, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert (tmp_path / "env.db").is_file(), "PEAKPILOT_DATABASE_URL was not used"
    assert not (tmp_path / "peakpilot.db").exists(), "the default database was used, not the env"


# -- nominate ---------------------------------------------------------------------------


def test_nominate_prints_the_id_or_the_document(sqlite_url: str) -> None:
    ok("init", db=sqlite_url)
    # human: only the id; province and actor typed as the GB/T 2260 code
    city = nominate(sqlite_url, "承德市", province="130000", actor="drc:130000")

    park = doc(
        "nominate", "--province", "130000", "--kind", "park", "--name", "承德市",
        "--level", "provincial", "--as", "drc:hebei",
        db=sqlite_url, after=True,
    )  # fmt: skip
    assert_nomination(
        park, batch=BATCH, province="hebei", kind="park", name="承德市", level="provincial",
        state="drafted", version=1,
    )  # fmt: skip
    assert park["id"] != city

    # the same name in another province, and a name of exactly 200 characters, are fine
    other = nominate(sqlite_url, "承德市", province="shanxi")
    longest = nominate(sqlite_url, "长" * 200)

    listed = doc("list", db=sqlite_url)
    assert isinstance(listed, list)
    by_id = {item["id"]: item for item in listed}
    assert set(by_id) == {city, park["id"], other, longest}
    assert_nomination(
        by_id[city], batch=BATCH, province="hebei", kind="city", name="承德市",
        level="prefecture", state="drafted", version=1,
    )  # fmt: skip
    assert by_id[other]["province"] == "shanxi"
    assert by_id[longest]["name"] == "长" * 200


# -- fire through the whole lifecycle ---------------------------------------------------


def test_lifecycle_to_confirmed(db_url: str) -> None:
    ok("init", db=db_url)
    nid = nominate(db_url, "唐山市")

    # a retry with the same idempotency key gives the same answer and does the event once
    key = ("--idempotency-key", "retry-1")
    first = fire(db_url, nid, "submit_for_approval", "drc:hebei", *key)
    assert fire(db_url, nid, "submit_for_approval", "drc:hebei", *key) == first

    reason = "材料不全\nplease add the 2022 emissions inventory"
    steps = [
        ("submit_for_approval", "drc:hebei", key, "provincial_approval"),
        ("send_back", "gov:hebei", ("--reason", reason), "drafted"),
        ("submit_for_approval", "drc:130000", (), "provincial_approval"),
        ("approve", "gov:hebei", ("--if-version", "4"), "approved"),
        ("submit", "drc:hebei", (), "submitted"),
        ("confirm", "ndrc", (), "confirmed"),
    ]
    for version, (event, actor, extra, state) in enumerate(steps, start=2):
        if version == 2:
            after = first  # fired above, with the idempotency key
        else:  # the last one at the same instant written in UTC
            now = BEFORE_UTC if event == "confirm" else BEFORE
            after = fire(db_url, nid, event, actor, *extra, now=now)
        assert_nomination(
            after, id=nid, batch=BATCH, province="hebei", kind="city", name="唐山市",
            level="prefecture", state=state, version=version,
        )  # fmt: skip

    shown = doc("show", nid, db=db_url)
    assert_nomination(shown, id=nid, state="confirmed", version=7)
    # its construction begins: no plan is attached yet, so only the NDRC's revocation
    assert shown["allowed_events"] == ["revoke"]
    assert isinstance(shown["timers"], list)

    records = doc("history", nid, db=db_url, after=True)
    assert isinstance(records, list)
    assert shown["history"] == records
    for record in records:
        assert_history_record(record)
    assert [r["seq"] for r in records] == list(range(1, 8)), records
    assert [r["event"] for r in records] == ["nominate"] + [s[0] for s in steps]
    assert [r["from_state"] for r in records] == [None, "drafted"] + [s[3] for s in steps[:-1]]
    assert [r["to_state"] for r in records] == ["drafted"] + [s[3] for s in steps]
    assert [r["actor"] for r in records] == ["drc:hebei"] + [
        "drc:hebei" if a == "drc:130000" else a for _e, a, _x, _s in steps
    ]
    assert [r["reason"] for r in records] == [None, None, reason, None, None, None, None]
    # times are shown in the programme's zone, whatever offset --now was written with
    assert all(instant(r["at"]) == instant(BEFORE) for r in records)


# -- quota, deadline, board -------------------------------------------------------------


def test_quota_deadline_and_board(db_url: str) -> None:
    ok("init", db=db_url)
    a, b, c, d = (nominate(db_url, name) for name in ("唐山市", "张家口市", "邯郸市", "沧州市"))
    for nid in (a, b, c, d):  # more candidates than the quota may be approved
        fire(db_url, nid, "submit_for_approval", "drc:hebei")
        fire(db_url, nid, "approve", "gov:hebei")
    fire(db_url, a, "submit", "drc:hebei")
    fire(db_url, b, "submit", "drc:hebei")

    rows = db_rows(db_url)
    for event in ("reject", "defer", "send_back"):  # the NDRC must say why
        fails(5, "--json", "fire", b, event, "--as", "ndrc", db=db_url)
    # at the deadline (whatever the offset it is written with) submitting is refused
    fails(5, "--json", "fire", c, "submit", "--as", "drc:hebei", db=db_url, now=AT_DEADLINE)
    fails(5, "fire", c, "submit", "--as", "drc:hebei", db=db_url, now=AT_DEADLINE_UTC)
    assert db_rows(db_url) == rows, "a refused command wrote to the database"

    fire(db_url, c, "submit", "drc:hebei", now=JUST_BEFORE_DEADLINE)
    fire(db_url, a, "confirm", "ndrc")

    board = doc("board", "--batch", BATCH, db=db_url, after=True)
    assert board["batch"] == BATCH
    deadline = instant(board["deadline"])
    assert deadline.utcoffset() == EIGHT_HOURS, board["deadline"]
    assert deadline == instant(AT_DEADLINE)
    provinces = {p["province"]: p for p in board["provinces"]}
    assert set(provinces) == set(QUOTAS)
    for slug, quota in QUOTAS.items():
        assert provinces[slug]["quota"] == quota, provinces[slug]
    hebei = provinces["hebei"]
    assert (hebei["used"], hebei["left"]) == (3, 0), hebei  # 2 submitted + 1 confirmed
    assert hebei["states"] == {
        **dict.fromkeys(STATES, 0), "approved": 1, "submitted": 2, "confirmed": 1,
    }  # fmt: skip
    assert (provinces["shanxi"]["used"], provinces["shanxi"]["left"]) == (0, 2)

    # the quota is full: the fourth is refused and nothing is written
    rows = db_rows(db_url)
    fails(5, "fire", d, "submit", "--as", "drc:hebei", "--json", db=db_url)
    assert db_rows(db_url) == rows, "a refused submit wrote to the database"

    # withdrawing a submitted nomination frees its place
    fire(db_url, b, "withdraw", "drc:hebei")
    assert fire(db_url, d, "submit", "drc:hebei")["state"] == "submitted"


# -- show, list, history, board, diagram on the shared database -------------------------


@pytest.mark.parametrize(
    ("who", "actor", "now", "expected"),
    [
        ("H", None, BEFORE, {"submit_for_approval", "withdraw"}),
        ("H", "drc:hebei", AT_DEADLINE, {"withdraw"}),
        ("P", None, BEFORE, {"approve", "send_back", "withdraw"}),
        ("P", "gov:hebei", BEFORE, {"approve", "send_back"}),
        ("P", "drc:130000", BEFORE, {"withdraw"}),
        ("P", "ndrc", BEFORE, set()),
    ],
)
def test_show_allowed_events(
    base: dict[str, str], who: str, actor: str | None, now: str, expected: set[str]
) -> None:
    args = ("show", base[who]) + (("--as", actor) if actor else ())
    shown = doc(*args, db=base["db"], now=now)
    assert_nomination(shown, id=base[who], province="hebei")
    events = shown["allowed_events"]
    assert isinstance(events, list) and len(events) == len(set(events)), events
    assert set(events) == expected
    assert isinstance(shown["history"], list) and shown["history"]
    assert isinstance(shown["timers"], list)


def test_show_human(base: dict[str, str]) -> None:
    proc = ok("show", base["P"], "--as", "gov:hebei", db=base["db"])
    for text in (base["P"], "石家庄市", "provincial_approval", "approve", "submit_for_approval"):
        assert text in proc.stdout, describe(proc)


def test_history_oldest_first(base: dict[str, str]) -> None:
    records = doc("history", base["P"], db=base["db"])
    assert isinstance(records, list) and len(records) == 2, records
    for record in records:
        assert_history_record(record)
    first, second = records
    assert (first["seq"], first["event"], first["from_state"], first["to_state"]) == (
        1, "nominate", None, "drafted",
    )  # fmt: skip
    assert (first["actor"], first["reason"]) == ("drc:hebei", None)
    assert (second["seq"], second["event"], second["from_state"], second["to_state"]) == (
        2, "submit_for_approval", "drafted", "provincial_approval",
    )  # fmt: skip
    assert instant(first["at"]) == instant(BEFORE)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), {"H", "P", "K", "G"}),
        (("--batch", BATCH), {"H", "P", "K", "G"}),
        (("--state", "provincial_approval"), {"P"}),
        (("--province", "130000"), {"H", "P", "K"}),
        (("--province", "guangdong", "--state", "drafted"), {"G"}),
    ],
)
def test_list_filters(base: dict[str, str], filters: tuple[str, ...], expected: set[str]) -> None:
    listed = doc("list", *filters, db=base["db"])
    assert isinstance(listed, list), listed
    for item in listed:
        assert_nomination(item, batch=BATCH)
        assert item["province"] in QUOTAS, item
    assert sorted(item["id"] for item in listed) == sorted(base[k] for k in expected)


def test_list_human(base: dict[str, str]) -> None:
    proc = ok("list", db=base["db"])
    for key in ("H", "P", "K", "G"):
        assert base[key] in proc.stdout, describe(proc)


def test_board_of_a_fresh_batch(base: dict[str, str]) -> None:
    board = doc("board", db=base["db"])
    assert board["batch"] == BATCH
    assert instant(board["deadline"]) == instant(AT_DEADLINE)
    assert instant(board["deadline"]).utcoffset() == EIGHT_HOURS
    provinces = {p["province"]: p for p in board["provinces"]}
    assert {slug: p["quota"] for slug, p in provinces.items()} == QUOTAS
    for slug, p in provinces.items():
        assert set(p) >= {"province", "quota", "used", "left", "states"}, p
        assert (p["used"], p["left"]) == (0, QUOTAS[slug]), p
    assert provinces["hebei"]["states"]["drafted"] == 2
    assert provinces["hebei"]["states"]["provincial_approval"] == 1
    assert provinces["guangdong"]["states"]["drafted"] == 1
    assert sum(provinces["shanxi"]["states"].values()) == 0


def test_board_loads_neither_the_engine_nor_the_settings_model(base: dict[str, str]) -> None:
    """Its start-up is issue 6's figure: the board is two queries on the stored facts."""
    proc, loaded = loaded_modules("--db", base["db"], "--json", "board")
    assert proc.returncode == 0, describe(proc)
    assert json.loads(proc.stdout)["batch"] == BATCH
    assert "sqlalchemy" in loaded, proc.stderr  # the check itself works
    assert loaded.isdisjoint(HEAVY_MODULES), sorted(loaded & set(HEAVY_MODULES))


def test_board_from_a_toml_settings_file(base: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "peakpilot.toml"
    config.write_text(f"database_url = {base['db']!r}\n", encoding="utf-8")
    proc = run("--json", "board", db=None, env={"PEAKPILOT_CONFIG": str(config)}, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert json.loads(proc.stdout)["batch"] == BATCH


def test_a_database_stored_before_its_compiled_programme_was_kept(
    base: dict[str, str], tmp_path: Path
) -> None:
    """Its programme's text is validated instead (slower, the same answers), until the
    next init stores the compiled form."""
    older = tmp_path / "older.db"
    shutil.copy(base["db"].removeprefix("sqlite:///"), older)
    with sqlite3.connect(older) as connection:
        connection.execute("UPDATE programs SET compiled = NULL")
    url = f"sqlite:///{older}"
    assert doc("board", db=url) == doc("board", db=base["db"])
    assert doc("show", base["P"], db=url) == doc("show", base["P"], db=base["db"])
    ok("init", db=url)
    with sqlite3.connect(older) as connection:
        assert connection.execute("SELECT compiled FROM programs").fetchone()[0] is not None


@pytest.mark.parametrize(
    "command",
    [("show", "{P}", "--as", "gov:hebei")],
    ids=["show"],
)
def test_json_after_the_command_is_the_same_document(
    base: dict[str, str], command: tuple[str, ...]
) -> None:
    args = tuple(a.format(**base) for a in command)
    assert doc(*args, db=base["db"]) == doc(*args, db=base["db"], after=True)


def test_diagram(base: dict[str, str]) -> None:
    mermaid = ok("diagram", db=base["db"]).stdout
    assert "stateDiagram-v2" in mermaid
    dot = ok("diagram", "--format", "dot", db=base["db"]).stdout
    assert "digraph" in dot
    for state in STATES:
        assert state in mermaid and state in dot, state
    document = doc("diagram", "--format", "mermaid", db=base["db"], after=True)
    assert "stateDiagram-v2" in json.dumps(document, ensure_ascii=False)


def test_diagram_of_a_database_without_a_programme_draws_the_shipped_one(db_url: str) -> None:
    """A new database (an SQLite file not there yet, an empty PostgreSQL database) holds
    no programme: ``diagram`` draws the shipped one, and initialises nothing."""
    mermaid = ok("diagram", db=db_url).stdout
    assert "stateDiagram-v2" in mermaid
    for state in STATES:
        assert state in mermaid, state
    assert "run `peakpilot init` first" in fails(3, "list", db=db_url).stderr


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_diagram_of_an_unreachable_database_is_an_error(json_flag: tuple[str, ...]) -> None:
    """Only a database without a programme falls back to the shipped one: one that
    cannot be reached is reported (1), not drawn over."""
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    proc = fails(1, *json_flag, "diagram", db=url)
    assert "cannot reach database" in proc.stderr and "127.0.0.1:1/nowhere" in proc.stderr
    assert proc.stdout == ""


def test_diagram_of_a_damaged_programme_is_an_error(tmp_path: Path) -> None:
    """A stored programme that no longer reads back is refused (5), not replaced by the
    shipped one: its compiled form damaged, or (stored before compiled forms were kept)
    its text."""
    url = f"sqlite:///{tmp_path / 'damaged.db'}"
    ok("init", db=url)
    execute_sql(url, "UPDATE programs SET compiled = '{\"format\": 2}'")
    proc = fails(5, "diagram", db=url)
    assert "the stored programme is damaged" in proc.stderr
    assert proc.stdout == ""
    execute_sql(url, "UPDATE programs SET compiled = NULL, source = 'states: [never closed'")
    proc = fails(5, "diagram", db=url)
    assert "stored programme" in proc.stderr
    assert proc.stdout == ""


# -- refusals: exit codes, one line on stderr, nothing written --------------------------

FAILURES = [
    # 3: not found (also a malformed id, and an unknown --batch)
    pytest.param(3, ("show", "{UNKNOWN}"), BEFORE, id="3-show-unknown-id"),
    pytest.param(3, ("show", "no/such id!"), BEFORE, id="3-show-malformed-id"),
    pytest.param(3, ("history", "{UNKNOWN}"), BEFORE, id="3-history-unknown-id"),
    pytest.param(3, ("fire", "{UNKNOWN}", "approve", "--as", "gov:hebei"), BEFORE,
                 id="3-fire-unknown-id"),
    pytest.param(3, ("fire", "{UNKNOWN}", "approve", "--as", "drc:shanxi"), BEFORE,
                 id="3-fire-unknown-id-beats-wrong-role"),
    pytest.param(3, ("fire", "{UNKNOWN}", "frobnicate", "--as", "gov:shanxi"), BEFORE,
                 id="3-fire-unknown-id-beats-unknown-event"),
    pytest.param(3, ("fire", "x" * 300, "approve", "--as", "gov:hebei"), BEFORE,
                 id="3-fire-malformed-id"),
    pytest.param(3, ("list", "--batch", "2099-nope"), BEFORE, id="3-list-unknown-batch"),
    pytest.param(3, ("board", "--batch", "2099-nope"), BEFORE, id="3-board-unknown-batch"),
    pytest.param(3, ("nominate", "--province", "hebei", "--kind", "city", "--name", "衡水市",
                     "--level", "prefecture", "--batch", "2099-nope", "--as", "drc:hebei"),
                 BEFORE, id="3-nominate-unknown-batch"),
    # 4: not permitted
    pytest.param(4, ("fire", "{P}", "approve", "--as", "drc:hebei"), BEFORE,
                 id="4-approve-as-drc"),
    pytest.param(4, ("fire", "{P}", "approve", "--as", "gov:shanxi"), BEFORE,
                 id="4-approve-as-other-province"),
    pytest.param(4, ("fire", "{P}", "send_back", "--as", "drc:hebei"), BEFORE,
                 id="4-wrong-role-beats-missing-reason"),
    pytest.param(4, ("fire", "{P}", "send_back", "--as", "gov:shanxi"), BEFORE,
                 id="4-other-province-beats-missing-reason"),
    pytest.param(4, ("fire", "{H}", "submit_for_approval", "--as", "gov:hebei"), AT_DEADLINE,
                 id="4-wrong-role-beats-deadline"),
    pytest.param(4, ("nominate", "--province", "hebei", "--kind", "city", "--name", "衡水市",
                     "--level", "prefecture", "--as", "drc:shanxi"), BEFORE,
                 id="4-nominate-for-another-province"),
    pytest.param(4, ("nominate", "--province", "hebei", "--kind", "city", "--name", "衡水市",
                     "--level", "prefecture", "--as", "gov:hebei"), BEFORE,
                 id="4-nominate-as-gov"),
    pytest.param(4, ("show", "{P}", "--as", "drc:shanxi"), BEFORE,
                 id="4-show-another-provinces-nomination"),
    pytest.param(4, ("history", "{P}", "--as", "gov:shanxi"), BEFORE,
                 id="4-history-another-provinces-nomination"),
    # 5: refused
    pytest.param(5, ("fire", "{H}", "approve", "--as", "gov:hebei"), BEFORE, id="5-wrong-state"),
    pytest.param(5, ("fire", "{H}", "approve", "--as", "drc:hebei"), BEFORE,
                 id="5-wrong-state-beats-wrong-role"),
    pytest.param(5, ("fire", "{P}", "frobnicate", "--as", "gov:hebei"), BEFORE,
                 id="5-unknown-event"),
    pytest.param(5, ("fire", "{P}", "frobnicate", "--as", "gov:shanxi"), BEFORE,
                 id="5-unknown-event-beats-wrong-role"),
    pytest.param(5, ("fire", "{P}", "send_back", "--as", "gov:hebei"), BEFORE,
                 id="5-send-back-without-reason"),
    pytest.param(5, ("fire", "{P}", "send_back", "--as", "gov:hebei", "--reason", "a\x1bb"),
                 BEFORE, id="5-reason-with-control-character"),
    pytest.param(5, ("fire", "{H}", "submit_for_approval", "--as", "drc:hebei"), AT_DEADLINE,
                 id="5-submit-for-approval-at-deadline"),
    pytest.param(5, ("fire", "{P}", "approve", "--as", "gov hebei"), BEFORE,
                 id="5-fire-unparsable-actor"),
    pytest.param(5, ("fire", "{P}", "approve", "--as", "gov:atlantis"), BEFORE,
                 id="5-fire-actor-unknown-province"),
    pytest.param(5, ("list", "--province", "atlantis"), BEFORE, id="5-list-unknown-province"),
    *(
        pytest.param(5, ("nominate", "--province", p, "--kind", k, "--name", n, "--level", lv,
                         "--as", a), BEFORE, id=f"5-nominate-{label}")
        for label, p, k, n, lv, a in [
            ("county-city", "hebei", "city", "迁安市", "county", "drc:hebei"),
            ("duplicate-name", "hebei", "city", "保定市", "prefecture", "drc:hebei"),
            ("duplicate-name-by-code", "130000", "city", "保定市", "prefecture", "drc:hebei"),
            ("empty-name", "hebei", "city", "", "prefecture", "drc:hebei"),
            ("201-character-name", "hebei", "city", "长" * 201, "prefecture", "drc:hebei"),
            ("control-character-in-name", "hebei", "city", "a\x07b", "prefecture", "drc:hebei"),
            ("unparsable-actor", "hebei", "city", "衡水市", "prefecture", "drc hebei"),
            ("unknown-province", "atlantis", "city", "衡水市", "prefecture", "drc:hebei"),
            ("unknown-kind", "hebei", "town", "衡水市", "prefecture", "drc:hebei"),
            ("unknown-level", "hebei", "city", "衡水市", "national", "drc:hebei"),
        ]
    ),
    # 6: concurrent change (P is at version 2)
    pytest.param(6, ("fire", "{P}", "approve", "--as", "gov:hebei", "--if-version", "1"), BEFORE,
                 id="6-stale-version"),
]  # fmt: skip


@pytest.fixture(scope="module")
def refusals(
    base: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess[str], str]]:
    """Every case of FAILURES, run with ``--json`` on its own copy of the shared database
    (so a case that writes is caught by name), several at a time to save wall-clock time."""
    source = Path(base["db"].removeprefix("sqlite:///"))
    folder = tmp_path_factory.mktemp("refusals")
    jobs = []
    for case in FAILURES:
        copy = folder / f"{case.id}.db"
        shutil.copyfile(source, copy)
        if source.with_name(source.name + "-wal").exists():  # not checkpointed yet
            shutil.copyfile(source.with_name(source.name + "-wal"), f"{copy}-wal")
        _code, args, now = case.values
        argv = tuple(a.format(**base) for a in args)
        jobs.append((case.id, f"sqlite:///{copy}", argv, now))

    def attempt(job: tuple[str, str, tuple[str, ...], str]) -> tuple[str, Any]:
        case_id, url, argv, now = job
        return case_id, (run("--json", *argv, db=url, now=now), url)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        return dict(pool.map(attempt, jobs))


@pytest.mark.parametrize(("code", "args", "now"), FAILURES)
def test_refusal(
    base: dict[str, str],
    refusals: dict[str, tuple[subprocess.CompletedProcess[str], str]],
    request: pytest.FixtureRequest,
    code: int,
    args: tuple[str, ...],
    now: str,
) -> None:
    proc, url = refusals[request.node.callspec.id]
    assert_failed(proc, code)
    assert db_rows(url) == db_rows(base["db"]), "the failed command wrote to the database"


USAGE_ERRORS = [
    pytest.param(("list", "--bogus"), BEFORE, id="unknown-option"),
    pytest.param(("--bogus", "list"), BEFORE, id="unknown-global-option"),
    pytest.param(("nominate", "--province", "hebei", "--kind", "city", "--name", "X",
                  "--as", "drc:hebei"), BEFORE, id="missing-level"),
    pytest.param(("fire", "0123456789abcdef", "approve"), BEFORE, id="missing-as"),
    pytest.param(("fire", "0123456789abcdef", "approve", "--as", "gov:hebei",
                  "--if-version", "two"), BEFORE, id="non-integer-version"),
    pytest.param(("list",), "2023-10-20T09:00:00", id="naive-now"),
    pytest.param(("list",), "next tuesday", id="unreadable-now"),
    pytest.param(("frobnicate",), BEFORE, id="unknown-command"),
    pytest.param(("diagram", "--format", "png"), BEFORE, id="diagram-png"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "now"), USAGE_ERRORS)
def test_usage_error(sqlite_url: str, args: tuple[str, ...], now: str) -> None:
    fails(2, "--json", *args, db=sqlite_url, now=now, one_line=False)
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists(), "a usage error wrote a file"


def test_usage_errors_are_one_line_on_stderr(sqlite_url: str) -> None:
    offenders = []
    for case in USAGE_ERRORS:
        args, now = case.values
        proc = run(*args, db=sqlite_url, now=now)
        assert proc.returncode == 2, describe(proc)
        if len(proc.stderr.splitlines()) != 1:
            offenders.append(f"{case.id}: {proc.stderr!r}")
    assert not offenders, "an error must be exactly one line on stderr:\n" + "\n".join(offenders)


# -- audit verify -----------------------------------------------------------------------


def test_audit_verify_finds_edits_and_deletions(db_url: str) -> None:
    ok("init", db=db_url)
    x = nominate(db_url, "唐山市")
    y = nominate(db_url, "张家口市")
    fire(db_url, x, "submit_for_approval", "drc:hebei")
    fire(db_url, x, "approve", "gov:hebei")
    fire(db_url, y, "submit_for_approval", "drc:hebei")

    report = doc("audit", "verify", db=db_url, after=True)
    assert report == {**report, "ok": True, "records": 5, "first_broken": None}, report

    table, column = audit_table(db_url)
    where = f"{column} = :nomination AND seq = :seq"

    # an edited record of the second nomination
    execute_sql(db_url, f"UPDATE {table} SET reason = 'x' WHERE {where}", nomination=y, seq=2)
    proc = run("audit", "verify", "--json", db=db_url)
    assert proc.returncode == 7, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    report = json.loads(proc.stdout)
    assert report["ok"] is False, report
    assert report["first_broken"]["nomination"] == y, report
    assert report["first_broken"]["seq"] == 2, report

    # put it back: the chain verifies again
    execute_sql(db_url, f"UPDATE {table} SET reason = NULL WHERE {where}", nomination=y, seq=2)
    assert doc("audit", "verify", db=db_url)["ok"] is True

    # the newest record of the first nomination deleted
    execute_sql(db_url, f"DELETE FROM {table} WHERE {where}", nomination=x, seq=3)
    proc = run("--json", "audit", "verify", db=db_url)
    assert proc.returncode == 7, describe(proc)
    report = json.loads(proc.stdout)
    assert report["ok"] is False, report
    assert report["first_broken"]["nomination"] == x, report
    assert report["first_broken"]["seq"] in (2, 3), report


# -- demo -------------------------------------------------------------------------------


def test_demo_into_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    started = time.monotonic()
    proc = ok("demo", db=url, now=None)
    assert time.monotonic() - started < 30, "the demo took 30 s or more"
    tail = "\n".join(proc.stdout.rstrip().splitlines()[-40:])
    for slug in QUOTAS:  # it ends with the boards of both batches
        assert slug in tail, f"the demo does not end with a board:\n{tail}"
    assert "2024-second" in tail

    board = doc("board", "--batch", BATCH, db=url, now=None)
    assert board["batch"] == BATCH and len(board["provinces"]) == len(QUOTAS)
    # by 2030 the batch's pilots have moved on from confirmed (used counts what is still
    # submitted or confirmed): the board shows them in the construction states
    building = ("in_construction", "completed", "revoked")
    assert {s: sum(p["states"][s] for p in board["provinces"]) for s in building} == {
        "in_construction": 4,
        "completed": 1,
        "revoked": 1,
    }
    assert doc("audit", "verify", db=url, now=None)["ok"] is True
    # it ends with the pilots: one completed in 2030, one revoked, the rest building
    pilots = {p["name"]: p for p in doc("pilots", db=url, now=None)}
    assert len(pilots) == 7
    assert (pilots["唐山市"]["state"], pilots["唐山市"]["last_period"]) == ("completed", 2029)
    assert pilots["鄂尔多斯市"]["state"] == "revoked"
    assert not any(p["overdue"] for p in pilots.values())
    assert "The pilots" in proc.stdout and "Audit trail" in proc.stdout
    assert all(name in proc.stdout.split("The pilots")[-1] for name in pilots)
    materials = doc("materials", pilots["沧州市"]["id"], db=url, now=None)
    assert {m["kind"] for m in materials} == {
        "implementation_plan",
        "progress_report",
        "rectification_report",
    }
    assert {m["media_type"] for m in materials} == {"application/pdf"}
    # every event of the programme is played at least once, and every notice kind sent
    played = {
        record["event"]
        for nomination in doc("list", db=url, now=None)
        for record in doc("history", nomination["id"], db=url, now=None)
    }
    assert played == {
        "nominate",
        "submit_for_approval",
        "approve",
        "send_back",
        "submit",
        "confirm",
        "reject",
        "defer",
        "withdraw",
        "lapse",
        "carry_over",
        # the construction years (DESIGN 2b), and the documents attached
        "attach",
        "submit_plan",
        "return_plan",
        "approve_plan",
        "report_progress",
        "pass_midterm",
        "fail_evaluation",
        "accept_rectification",
        "complete",
        "revoke",
        # the programme's second version (issue 12): a migration and its new event
        "migrate",
        "refer_to_experts",
    }
    notices = doc("notices", db=url, now=None)
    assert {n["status"] for n in notices} == {"sent"}
    assert {n["kind"] for n in notices} == {
        "sent_for_approval",
        "approved",
        "sent_back",
        "submitted",
        "confirmed",
        "rejected",
        "deferred",
        "withdrawn",
        "carried_over",
        "reminder",
        "shortfall",
        "deadline_summary",
        "batch_opened",
        "milestone",
        "plan_submitted",
        "plan_returned",
        "plan_approved",
        "plan_reminder",
        "plan_overdue",
        "progress_reported",
        "report_reminder",
        "report_overdue",
        "evaluated",
        "rectification_reminder",
        "rectification_accepted",
        "revoked",
        "referred_to_experts",
    }
    assert {n["locale"] for n in notices} == {"zh-CN", "en"}
    versions = doc("program", "versions", db=url, now=None)
    assert [(v["version"], v["actor"]) for v in versions] == [(1, "system"), (2, "ndrc")]

    rows = db_rows(url)
    fails(5, "demo", db=url, now=None)
    assert db_rows(url) == rows, "a refused demo wrote to the database"


def test_demo_json_is_one_document(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    summary = doc("demo", db=url, now=None, after=True)
    assert isinstance(summary, dict)
    assert summary["pilots"] == 7
    rows = db_rows(url)
    assert summary["materials"] == len(rows["materials"]) > 0
    assert summary["materials"] == sum("'attach'" in row for row in rows["audit_records"])
