"""Bad input (issue 5, point 4): arbitrary strings, numbers and dates for every argument.

Three fronts, each driven by hypothesis:

1. The Python API (``Engine.nominate``, ``fire``, ``get``, ``show``, ``history``, ``list``,
   ``board``, ``open_batch``, ``notice``, ``retry_notice`` and ``FrozenClock``): the outcome
   is a return value or a :class:`peakpilot.PeakpilotError`, never another exception, and a
   refusal leaves every row of every table as it was. Many examples on a fresh copy of a
   seeded SQLite file per example; a smaller run on PostgreSQL (``db_url``).
2. The command line as a subprocess: exit 0, 2, 3, 4 or 5 only (6 only with
   ``--if-version``); a failure is exactly one line on stderr, no traceback, nothing on
   stdout with ``--json``, and the same rows; a success with ``--json`` is one JSON document.
   Invalid UTF-8 is passed as bytes in argv; argv items cannot hold NUL, so none do.
3. The loaders (``parse_program``, ``parse_quotas``, ``parse_contacts``) on arbitrary text,
   on generated YAML documents and on mutated versions of the shipped files: a Program, a
   dict or a Contacts, else :class:`ConfigError`. ``init --program`` with a mutated file
   exits 0 or 5.

Chinese names (and names carrying SQL, template or markup syntax) round-trip exactly.

The figures (examples and calls tried per test, outcomes by error class or exit code) are
written to ``.reliability/bad-input.json`` and printed. ``PEAKPILOT_FULL_RUN=1`` raises
the example counts (and lets hypothesis shrink the CLI failures it finds).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from peakpilot import Actor, Engine, FrozenClock, PeakpilotError, Program
from peakpilot.config.program import load_program, parse_program
from peakpilot.config.quotas import parse_quotas
from peakpilot.errors import ConfigError, DeliveryError, InvalidInput
from peakpilot.notifications.channels import Envelope
from peakpilot.notifications.contacts import Contacts, parse_contacts
from tests.conftest import BEFORE_DEADLINE, BEIJING

FULL = os.environ.get("PEAKPILOT_FULL_RUN") == "1"
ROOT = Path(__file__).resolve().parents[2]
FIGURES_FILE = ROOT / ".reliability" / "bad-input.json"
PARALLEL = max(2, min(4, os.cpu_count() or 2))  # CLI commands run side by side
BEFORE = BEFORE_DEADLINE.isoformat()  # 2023-10-20T09:00:00+08:00
CLI_OK = frozenset({0, 2, 3, 4, 5})
INIT_OK = frozenset({0, 5})
API_CODES = frozenset({3, 4, 5})
NOT_OPTIONS = frozenset({"--json", "--help", "-h", "--debug", "--version", "--db"})


def count(default: int, full: int) -> int:
    return full if FULL else default


def hypothesis_settings(
    examples: int, *, shrink: bool = True, explicit_only: bool = False
) -> settings:
    """Default-run CLI tests do not shrink (each step is a subprocess): the failure they
    report is the raw example, which the assertion message spells out. ``explicit_only``
    runs only the @example cases, except in the full run."""
    phases: tuple[Phase, ...] = tuple(Phase)
    if not FULL and explicit_only:
        phases = (Phase.explicit,)
    elif not FULL and not shrink:
        phases = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)
    return settings(
        max_examples=examples,
        deadline=None,
        phases=phases,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


# -- figures -----------------------------------------------------------------------------

_FIGURES: dict[str, dict[str, Any]] = {}
_FIGURES_LOCK = threading.Lock()


@dataclass
class Figures:
    """What one test tried: hypothesis examples, calls (API calls or CLI commands), and
    their outcomes (error class or exit code)."""

    examples: int = 0
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def example(self) -> None:
        self.examples += 1

    def outcome(self, label: str) -> None:
        with _FIGURES_LOCK:
            self.calls += 1
            self.outcomes[label] += 1


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    figure = Figures()
    started = time.perf_counter()
    yield figure
    _FIGURES[request.node.name] = {
        "examples": figure.examples,
        "calls": figure.calls,
        "outcomes": dict(sorted(figure.outcomes.items())),
        "seconds": round(time.perf_counter() - started, 2),
    }


@pytest.fixture(scope="module", autouse=True)
def _write_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _FIGURES:
        return
    totals: Counter[str] = Counter()
    for figure in _FIGURES.values():
        totals.update(figure["outcomes"])
    document = {
        "suite": "tests/faults/test_bad_input.py",
        "full_run": FULL,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "tests": dict(sorted(_FIGURES.items())),
        "totals": {
            "examples": sum(f["examples"] for f in _FIGURES.values()),
            "calls": sum(f["calls"] for f in _FIGURES.values()),
            "outcomes": dict(sorted(totals.items())),
            "contract_violations": sum(
                n for label, n in totals.items() if label.startswith(("unexpected", "exit 1"))
            ),
        },
    }
    FIGURES_FILE.parent.mkdir(exist_ok=True)
    FIGURES_FILE.write_text(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    lines = [f"\nbad input figures ({FIGURES_FILE.relative_to(ROOT)}):"]
    for name, figure in document["tests"].items():
        outcomes = ", ".join(f"{k}: {v}" for k, v in figure["outcomes"].items())
        lines.append(
            f"  {name}: {figure['examples']} examples, {figure['calls']} calls, "
            f"{figure['seconds']} s; {outcomes}"
        )
    text = "\n".join(lines)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(text)
    else:
        print(text)


# -- rows of every table -------------------------------------------------------------------

_PG_ENGINES: dict[str, sa.Engine] = {}


def table_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table (``{}`` for a database without tables)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not os.path.exists(path):
            return {}
        connection = sqlite3.connect(path)
        try:
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            return {
                name: sorted(repr(row) for row in connection.execute(f'SELECT * FROM "{name}"'))
                for name in names
            }
        finally:
            connection.close()
    engine = _PG_ENGINES.get(url)
    if engine is None:
        engine = _PG_ENGINES[url] = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        names = sorted(sa.inspect(connection).get_table_names())
        return {
            name: sorted(
                repr(tuple(row)) for row in connection.execute(sa.text(f'SELECT * FROM "{name}"'))
            )
            for name in names
        }


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file so that copying the file copies the database."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def copy_database(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{source}{suffix}"):
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


# -- the seeded database -----------------------------------------------------------------


class _CyclingChannel:
    """Delivers, fails for good, fails for now: in turn, to leave notices of each status."""

    def __init__(self) -> None:
        self._turn = itertools.cycle(("dead", "sent", "failed"))

    def send(self, envelope: Envelope) -> None:
        turn = next(self._turn)
        if turn == "dead":
            raise DeliveryError("mailbox does not exist", permanent=True)
        if turn == "failed":
            raise DeliveryError("connection refused")


def seed(engine: Engine) -> dict[str, str]:
    """The programme, four nominations in several states, a second batch, and notices
    sent, failed, dead and pending. Returns the ids by name."""
    engine.init()
    h = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="保定市", level="prefecture"
    )
    p = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="石家庄市", level="prefecture"
    )
    engine.fire(p.id, "submit_for_approval", "drc:hebei")
    engine.fire(p.id, "approve", "gov:hebei")
    k = engine.nominate(
        "drc:130000", province="130000", kind="park", name="曹妃甸经济技术开发区", level="national"
    )
    g = engine.nominate(
        "drc:guangdong", province="440000", kind="city", name="深圳市", level="sub_provincial"
    )
    for event, actor in (
        ("submit_for_approval", "drc:guangdong"),
        ("approve", "gov:guangdong"),
        ("submit", "drc:guangdong"),
    ):
        engine.fire(g.id, event, actor)
    engine.open_batch(
        "ndrc",
        "2024-second",
        deadline=datetime(2024, 6, 1, tzinfo=BEIJING),
        quotas={"hebei": 2, "guangdong": 1},
    )
    engine.dispatch_notices(_CyclingChannel())
    engine.fire(h.id, "submit_for_approval", "drc:hebei")  # leaves a pending notice
    ids = {"H": h.id, "P": p.id, "K": k.id, "G": g.id}
    for notice in engine.notices():
        ids.setdefault(f"N_{notice.status.upper()}", notice.id)
    assert {"N_DEAD", "N_SENT", "N_FAILED", "N_PENDING"} <= ids.keys(), ids
    return ids


@dataclass
class Template:
    path: Path
    ids: dict[str, str]
    rows: dict[str, list[str]]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("bad-input-template") / "seeded.db"
    with Engine(f"sqlite:///{path}", clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        ids = seed(engine)
    checkpoint(path)
    return Template(path, ids, table_rows(f"sqlite:///{path}"))


_COPIES = itertools.count()


class Sandbox:
    """Databases for one API test. On SQLite, a fresh copy of the seeded template per
    example (or one copy for a read-only test); on PostgreSQL, one seeded database that
    the examples share."""

    def __init__(self, db_url: str, template: Template, folder: Path) -> None:
        self.backend = "postgres" if db_url.startswith("postgresql") else "sqlite"
        self.template = template
        self.folder = folder
        self.url = db_url
        self._shared: Engine | None = None
        self._shared_copy: Path | None = None
        if self.backend == "postgres":
            with Engine(db_url, clock=FrozenClock(BEFORE_DEADLINE)) as engine:
                self.ids = seed(engine)
        else:
            self.ids = dict(template.ids)

    def examples(self, sqlite: int, postgres: int) -> int:
        return sqlite if self.backend == "sqlite" else postgres

    def _shared_url(self) -> str:
        if self.backend == "postgres":
            return self.url
        if self._shared_copy is None:
            self._shared_copy = self.folder / f"shared-{next(_COPIES)}.db"
            copy_database(self.template.path, self._shared_copy)
        return f"sqlite:///{self._shared_copy}"

    @contextmanager
    def engine(self, clock: Any = None, *, shared: bool = False) -> Iterator[tuple[Engine, str]]:
        """An Engine (frozen three weeks before the 2023 deadline unless ``clock``) and
        the URL of its database."""
        if shared or self.backend == "postgres":
            url = self._shared_url()
            if clock is None:
                if self._shared is None:
                    self._shared = Engine(url, clock=FrozenClock(BEFORE_DEADLINE))
                yield self._shared, url
            else:
                with Engine(url, clock=clock) as engine:
                    yield engine, url
            return
        path = self.folder / f"example-{next(_COPIES)}.db"
        copy_database(self.template.path, path)
        url = f"sqlite:///{path}"
        try:
            with Engine(url, clock=clock or FrozenClock(BEFORE_DEADLINE)) as engine:
                yield engine, url
        finally:
            remove_database(path)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
        for engine in _PG_ENGINES.values():
            engine.dispose()
        _PG_ENGINES.clear()


@pytest.fixture
def sandbox(db_url: str, template: Template, tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(db_url, template, tmp_path)
    yield box
    box.close()


@pytest.fixture
def sqlite_sandbox(template: Template, tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(f"sqlite:///{tmp_path / 'unused.db'}", template, tmp_path)
    yield box
    box.close()


# -- references to seeded records ---------------------------------------------------------


def _flip(value: str) -> str:
    return value[:-1] + ("1" if value[-1] == "0" else "0")


MANGLES: dict[str, Callable[[str], str]] = {
    "": lambda v: v,
    "upper": str.upper,
    "newline": lambda v: v + "\n",
    "space": lambda v: f" {v}",
    "short": lambda v: v[:-1],
    "long": lambda v: v + "0",
    "flip": _flip,
    "twice": lambda v: v + v,
}


@dataclass(frozen=True)
class Ref:
    """A seeded record's id, maybe mangled; resolved once the database is known."""

    key: str
    mangle: str = ""

    def resolve(self, ids: dict[str, str]) -> str:
        return MANGLES[self.mangle](ids[self.key])


def resolve(value: Any, ids: dict[str, str]) -> Any:
    return value.resolve(ids) if isinstance(value, Ref) else value


NOMINATION_KEYS = ("H", "P", "K", "G")
NOTICE_KEYS = ("N_DEAD", "N_SENT", "N_FAILED", "N_PENDING")


def refs(keys: Sequence[str]) -> st.SearchStrategy[Ref]:
    return st.one_of(
        st.sampled_from([Ref(k) for k in keys]),
        st.builds(Ref, st.sampled_from(keys), st.sampled_from(sorted(MANGLES))),
    )


# -- values ----------------------------------------------------------------------------------

PROGRAM = load_program()
PROVINCES = ("hebei", "guangdong", "130000", "440000", "HEBEI", " hebei ", "shanxi", "xinjiang")
KINDS = ("city", "park")
LEVELS = ("prefecture", "sub_provincial", "municipality", "county", "national", "provincial")
ACTORS = (
    "drc:hebei",
    "gov:hebei",
    "ndrc",
    "drc:guangdong",
    "gov:guangdong",
    "drc:130000",
    "DRC:HEBEI",
    "system",
    "drc:shanxi",
)
BATCHES = ("2023-first", "2024-second")
EVENTS = PROGRAM.events
STATES = PROGRAM.states
NAMES = (
    "唐山市",
    "保定市",
    "雄安新区",
    "Tangshan",
    "曹妃甸 园区",
    "{{ 7*7 }}",
    "{% raw %}",
    "'; DROP TABLE nominations; --",
    "[/]",
    "石" * 200,
)
# Strings that have broken parsers, databases, templates and terminals before. Lone
# surrogates and NUL included: the API must refuse or store them, never crash.
# fmt: off
ODD = (
    "", " ", "\t", "\n", "\r\n", "\x00", "a\x00b", "hebei\x00", "\ud800", "\udcff",
    "石家\udc80庄市", "\x1b[31mred\x1b[0m", "\x7f", "\u202eevil", "\ufeffhebei", "\u200b",
    "\u2028", "\x85", "'; DROP TABLE nominations; --", '" OR "1"="1', "hebei' OR '1'='1",
    "{{ 7*7 }}", "{% raw %}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ config }}",
    "${7*7}", "%s%n%x", "[/]", "[bold]x[/bold]", "../../../../etc/passwd", "NULL", "None", "null",
    "~", "-1", "0", "1e309", "NaN", "9" * 400, "x" * 64, "x" * 65, "x" * 201, "x" * 4001,
    "hebei\n", "drc:hebei\n", "drc:", ":hebei", "drc::hebei", "drc:hebei:gov", "gov:999999",
    "drc:000000", "ndrc:hebei", "SYSTEM", "１３００００", "١٣٠٠٠٠", "ｈｅｂｅｉ", "HEBEİ",
    "2023-first\n", "2023-FIRST", "0123456789abcdef", "0123456789ABCDEF", "0123456789abcdef\n",
    "-", "--", "-x", "=", "🙂" * 50, "\U00020000",
)
# fmt: on
ALL_CHARS = st.characters(exclude_categories=())  # controls and lone surrogates too
CLI_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


CLI_ODD = tuple(s for s in ODD if "\x00" not in s and not _has_surrogate(s))
api_text = st.one_of(st.sampled_from(ODD), st.text(ALL_CHARS, max_size=40), st.text(max_size=120))


def api_arg(valid: Sequence[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values, else odd or arbitrary text."""
    return st.one_of(st.sampled_from(list(valid)), st.sampled_from(list(valid)), api_text)


CJK = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),
    st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF),
    st.characters(min_codepoint=0xF900, max_codepoint=0xFAFF),  # compatibility ideographs
    st.sampled_from("·（）〇、—　市县区新园"),
)


def _valid_name(name: str) -> bool:
    return bool(name.strip()) and name == name.strip()


chinese_names = st.text(CJK, min_size=1, max_size=200).filter(_valid_name)
printable_names = st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=200
).filter(_valid_name)
names = st.one_of(chinese_names, st.sampled_from(NAMES), api_text, printable_names)

actors = st.one_of(
    api_arg(ACTORS),
    st.builds(
        Actor,
        st.one_of(st.sampled_from(["drc", "gov", "ndrc", "system"]), api_text),
        st.one_of(st.none(), api_arg(PROVINCES)),
    ),
)
versions = st.one_of(
    st.none(),
    st.integers(),
    st.sampled_from([True, False, 0, 1, 2, 3, -1, 2**31, 2**63, -(2**63) - 1, 10**100]),
)

OFFSETS = st.builds(
    timezone, st.integers(-(24 * 60) + 1, 24 * 60 - 1).map(lambda m: timedelta(minutes=m))
)
PLUS8, MINUS12 = timezone(timedelta(hours=8)), timezone(timedelta(hours=-12))


class _NoOffset(tzinfo):
    """An 'aware' datetime whose zone has no offset: naive in disguise."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


EXTREME_DATETIMES = (
    datetime(1, 1, 1),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=PLUS8),
    datetime(1, 1, 1, 7, 59, tzinfo=PLUS8),
    datetime(1, 1, 1, tzinfo=MINUS12),
    datetime.max,
    datetime.max.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=PLUS8),
    datetime(9999, 12, 31, 23, 0, tzinfo=MINUS12),
    datetime(9999, 12, 31, 20, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=PLUS8),
    datetime(2024, 1, 1),
    datetime(2024, 1, 1, tzinfo=_NoOffset()),
    BEFORE_DEADLINE,
    BEFORE_DEADLINE + timedelta(microseconds=1),
    datetime(2023, 11, 15, tzinfo=BEIJING),
    datetime(2024, 3, 10, 2, 30),
)
any_datetimes = st.one_of(
    st.sampled_from(EXTREME_DATETIMES),
    st.datetimes(
        min_value=datetime.min,
        max_value=datetime.max,
        timezones=st.one_of(st.none(), OFFSETS, st.timezones()),
    ),
    st.datetimes(
        min_value=datetime(2023, 1, 1),
        max_value=datetime(2031, 1, 1),
        timezones=st.one_of(OFFSETS, st.timezones()),
    ),
)
quota_values = st.one_of(
    st.integers(min_value=1, max_value=5),
    st.integers(),
    st.sampled_from([0, -1, 1000, 1001, 2**31, 2**63, 10**30, True, False, 1.0, 2.5, None, "2"]),
)
quota_maps = st.dictionaries(api_arg(PROVINCES), quota_values, max_size=5)
batch_ids = api_arg(
    ("2024-third", "b", "x" * 64, "2023-first", "2024-second", "a.b_c-d", "3rd", "b7\n")
)


# -- the API oracle ------------------------------------------------------------------------


def attempt(
    figures: Figures,
    url: str,
    what: str,
    call: Callable[[], Any],
    *,
    reads: bool = False,
    conflict_ok: bool = False,
) -> Any:
    """Run one API call: a return value or a PeakpilotError (3, 4 or 5; 6 when a version
    was expected), never another exception; a refusal (and any read) writes nothing.
    Returns the value, or None after a refusal."""
    before = table_rows(url)
    try:
        result = call()
    except PeakpilotError as error:
        figures.outcome(f"{type(error).__name__} ({error.exit_code})")
        allowed = API_CODES | ({6} if conflict_ok else set())
        assert error.exit_code in allowed, (
            f"{what} -> {type(error).__name__} (exit {error.exit_code}): {error}"
        )
        assert table_rows(url) == before, f"{what} was refused ({error}) but rows changed"
        return None
    except Exception as error:
        figures.outcome(f"unexpected {type(error).__name__}")
        changed = "rows changed" if table_rows(url) != before else "no row changed"
        raise AssertionError(
            f"{what} raised {type(error).__name__}, not a PeakpilotError ({changed}): "
            f"{short(str(error), 300)}"
        ) from error
    figures.outcome("ok")
    if reads:
        assert table_rows(url) == before, f"{what} is a query but rows changed"
    return result


def call_text(method: str, /, *args: Any, **kwargs: Any) -> str:
    parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
    return f"engine.{method}({', '.join(parts)})"


# == 1. the Python API ======================================================================


@st.composite
def fuzz_some(
    draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]], fuzz: dict[str, Any]
) -> dict[str, Any]:
    """A valid call's arguments with a random subset (often none) replaced by fuzz, so that
    every check of the call, the last ones included, meets bad input."""
    arguments = dict(draw(valid))
    for name in sorted(draw(st.sets(st.sampled_from(sorted(fuzz))))):
        arguments[name] = draw(fuzz[name])
    return arguments


def plans(*rows: dict[str, Any], **extra: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid argument sets: one of ``rows``, plus values drawn from ``extra``."""
    return st.tuples(st.sampled_from(rows), st.fixed_dictionaries(extra)).map(
        lambda pair: {**pair[0], **pair[1]}
    )


NOMINATE_CALLS = fuzz_some(
    plans(
        {"actor": "drc:hebei", "province": "hebei", "kind": "city", "level": "prefecture"},
        {"actor": "drc:130000", "province": "130000", "kind": "park", "level": "national"},
        {"actor": "DRC:HEBEI", "province": " HEBEI ", "kind": "city", "level": "municipality"},
        {"actor": "drc:guangdong", "province": "440000", "kind": "city", "level": "sub_provincial"},
        {"actor": "drc:shanxi", "province": "shanxi", "kind": "park", "level": "provincial"},
        {"actor": "drc:hebei", "province": "hebei", "kind": "city", "level": "county"},
        name=st.one_of(chinese_names, st.sampled_from(NAMES)),
        batch=st.sampled_from([None, None, "2023-first", "2024-second"]),
    ),
    {
        "actor": actors,
        "province": api_arg(PROVINCES),
        "kind": api_arg(KINDS),
        "name": names,
        "level": api_arg(LEVELS),
        "batch": st.one_of(st.none(), api_arg(BATCHES)),
    },
)


def _nominate(**arguments: Any) -> dict[str, Any]:
    base = {"actor": "drc:hebei", "province": "hebei", "kind": "city", "level": "prefecture"}
    return {**base, "batch": None, **arguments}


def test_api_nominate(sandbox: Sandbox, figures: Figures) -> None:
    @hypothesis_settings(sandbox.examples(count(100, 3000), count(20, 400)))
    @given(call=NOMINATE_CALLS)
    @example(_nominate(name="城" * 1_000_000))
    @example(_nominate(name="x" * 5_000_000))
    @example(_nominate(name=" " * 2_000_000))
    @example(_nominate(name="石\x00" * 500_000))
    @example(_nominate(name="石" * 200))
    @example(_nominate(name="石" * 201))
    @example(_nominate(name="唐山市", province="hebei" * 200_000))
    @example(_nominate(name="唐山市", batch="2023-first" * 100_000))
    @example(_nominate(name="'; DROP TABLE nominations; --"))
    @example(_nominate(name="{{ 7*7 }}", batch="2023-first"))
    def check(call: dict[str, Any]) -> None:
        figures.example()
        arguments = dict(call)
        actor = arguments.pop("actor")
        with sandbox.engine() as (engine, url):
            what = call_text("nominate", actor, **arguments)
            created = attempt(figures, url, what, lambda: engine.nominate(actor, **arguments))
            if created is not None:
                assert created.name == arguments["name"], what
                assert engine.get(created.id).name == arguments["name"], what
                assert created.province == PROGRAM.province(arguments["province"]).slug, what

    check()


FIRE_CALLS = fuzz_some(
    plans(
        {"nomination": Ref("H"), "event": "approve", "actor": "gov:hebei", "reason": None},
        {"nomination": Ref("H"), "event": "send_back", "actor": "gov:130000", "reason": "材料不全"},
        {"nomination": Ref("P"), "event": "submit", "actor": "drc:hebei", "reason": None},
        {"nomination": Ref("P"), "event": "withdraw", "actor": "DRC:HEBEI", "reason": None},
        {
            "nomination": Ref("K"),
            "event": "submit_for_approval",
            "actor": "drc:hebei",
            "reason": "",
        },
        {"nomination": Ref("G"), "event": "confirm", "actor": "ndrc", "reason": None},
        {"nomination": Ref("G"), "event": "reject", "actor": "ndrc", "reason": "不符合条件"},
        {"nomination": Ref("G"), "event": "defer", "actor": "ndrc", "reason": "下一批\n再议"},
        {"nomination": Ref("G"), "event": "send_back", "actor": "ndrc", "reason": "补充"},
        key=st.sampled_from([None, None, "key-1"]),
        version=st.sampled_from([None, None, 1, 2, 3, 4]),
    ),
    {
        "nomination": st.one_of(refs(NOMINATION_KEYS), api_text),
        "event": api_arg(EVENTS),
        "actor": actors,
        "reason": st.one_of(
            st.none(), api_text, st.sampled_from(["x" * 4000, "x" * 4001, "行一\n行二", "\r\n"])
        ),
        "key": st.one_of(st.none(), api_text, st.sampled_from(["k", "k" * 200, "k" * 201])),
        "version": versions,
    },
)


def _fire(**arguments: Any) -> dict[str, Any]:
    base = {"nomination": Ref("H"), "event": "approve", "actor": "gov:hebei", "reason": None}
    return {**base, "key": None, "version": None, **arguments}


def test_api_fire(sandbox: Sandbox, figures: Figures) -> None:
    @hypothesis_settings(sandbox.examples(count(100, 3000), count(20, 400)))
    @given(call=FIRE_CALLS)
    @example(_fire(key="k" * 1_000_000))
    @example(_fire(event="send_back", reason="x" * 3_000_000))
    @example(_fire(event="send_back", reason="{{ 7*7 }} [/] '; DROP TABLE x; --", key="k"))
    @example(_fire(key="\ud800"))
    @example(_fire(key="a\x00b"))
    @example(_fire(version=True))
    @example(_fire(version=10**100))
    def check(call: dict[str, Any]) -> None:
        figures.example()
        with sandbox.engine() as (engine, url):
            target = resolve(call["nomination"], sandbox.ids)
            event, actor, reason = call["event"], call["actor"], call["reason"]
            key, version = call["key"], call["version"]
            what = call_text(
                "fire",
                target,
                event,
                actor,
                reason=reason,
                idempotency_key=key,
                expected_version=version,
            )

            def fire() -> Any:
                return engine.fire(
                    target,
                    event,
                    actor,
                    reason=reason,
                    idempotency_key=key,
                    expected_version=version,
                )

            after = attempt(figures, url, what, fire, conflict_ok=version is not None)
            if after is not None:
                assert after.id == target.strip() and after.version >= 2, what
                if key is not None:
                    again = attempt(figures, url, f"again: {what}", fire, reads=True)
                    assert again == after, f"a retry with the same key gave another result: {what}"

    check()


def test_api_queries(sandbox: Sandbox, figures: Figures) -> None:
    nomination_ids = st.one_of(refs(NOMINATION_KEYS), api_text)
    queries = st.one_of(
        st.tuples(st.just("get"), nomination_ids),
        st.tuples(st.just("show"), nomination_ids, st.one_of(st.none(), actors)),
        st.tuples(st.just("history"), nomination_ids),
        st.tuples(
            st.just("list"),
            st.one_of(st.none(), api_arg(STATES)),
            st.one_of(st.none(), api_arg(PROVINCES)),
            st.one_of(st.none(), api_arg(BATCHES)),
        ),
        st.tuples(st.just("board"), st.one_of(st.none(), api_arg(BATCHES))),
        st.tuples(st.just("notice"), st.one_of(refs(NOTICE_KEYS), api_text)),
        st.tuples(st.just("timers"), st.one_of(st.none(), api_arg(BATCHES))),
        st.tuples(st.just("notices"), st.one_of(st.none(), api_arg(("pending", "sent", "dead")))),
    )

    @hypothesis_settings(sandbox.examples(count(200, 5000), count(40, 800)))
    @given(query=queries)
    @example(("get", "0" * 5_000_000))
    @example(("board", "2023-first" * 500_000))
    @example(("list", None, None, "\ud800"))
    @example(("board", "a\x00b"))
    def check(query: tuple[Any, ...]) -> None:
        figures.example()
        name, *args = query
        with sandbox.engine(shared=True) as (engine, url):
            args = [resolve(a, sandbox.ids) for a in args]
            if name == "list":
                state, province, batch = args
                kwargs = {"state": state, "province": province, "batch": batch}
                attempt(
                    figures,
                    url,
                    call_text("list", **kwargs),
                    lambda: engine.list(**kwargs),
                    reads=True,
                )
            else:
                method = getattr(engine, name)
                attempt(figures, url, call_text(name, *args), lambda: method(*args), reads=True)

    check()


OPEN_BATCH_CALLS = fuzz_some(
    plans(
        {"actor": "ndrc", "quotas": {"hebei": 1}},
        {"actor": "NDRC", "quotas": {"hebei": 2, "440000": 1, "xinjiang": 1000}},
        batch=st.one_of(
            st.sampled_from(["2024-third", "x" * 64, "a.b_c-d", "3"]),
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
        ),
        deadline=st.datetimes(
            min_value=datetime(2023, 10, 21), max_value=datetime(2030, 1, 1), timezones=OFFSETS
        ),
    ),
    {
        "actor": api_arg(("ndrc", "NDRC", "drc:hebei", "system")),
        "batch": batch_ids,
        "deadline": any_datetimes,
        "quotas": quota_maps,
    },
)


def _open_batch(**arguments: Any) -> dict[str, Any]:
    base = {"actor": "ndrc", "batch": "2024-third", "quotas": {"hebei": 1}}
    return {**base, "deadline": datetime(2024, 12, 1, tzinfo=PLUS8), **arguments}


def test_api_open_batch(sandbox: Sandbox, figures: Figures) -> None:
    @hypothesis_settings(sandbox.examples(count(100, 3000), count(20, 400)))
    @given(call=OPEN_BATCH_CALLS)
    @example(_open_batch(deadline=datetime(1, 1, 1, tzinfo=PLUS8)))
    @example(_open_batch(deadline=datetime(9999, 12, 31, 23, tzinfo=MINUS12)))
    @example(_open_batch(deadline=datetime(9999, 12, 31, 20, tzinfo=UTC)))
    @example(_open_batch(quotas={"hebei": 10**30}))
    @example(_open_batch(quotas={"hebei": 2**63}))
    @example(_open_batch(batch="2024-third\n"))
    @example(_open_batch(quotas={"hebei": 1, "130000": 2}))
    def check(call: dict[str, Any]) -> None:
        figures.example()
        actor, batch, deadline, quotas = (
            call["actor"],
            call["batch"],
            call["deadline"],
            call["quotas"],
        )
        with sandbox.engine() as (engine, url):
            what = call_text("open_batch", actor, batch, deadline=deadline, quotas=quotas)
            board = attempt(
                figures,
                url,
                what,
                lambda: engine.open_batch(actor, batch, deadline=deadline, quotas=quotas),
            )
            if board is not None:
                assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", board.batch), (
                    f"{what} opened a batch whose id breaks the id rule: {board.batch!r}"
                )
                assert board.batch == batch, what
                given_quotas = {PROGRAM.province(p).slug: q for p, q in quotas.items()}
                assert {p.province: p.quota for p in board.provinces} == given_quotas, what

    check()


def test_api_notices(sqlite_sandbox: Sandbox, figures: Figures) -> None:
    @hypothesis_settings(count(60, 2000))
    @given(
        method=st.sampled_from(["notice", "retry_notice"]),
        notice=st.one_of(refs(NOTICE_KEYS), refs(NOMINATION_KEYS), api_text),
    )
    def check(method: str, notice: Any) -> None:
        figures.example()
        with sqlite_sandbox.engine() as (engine, url):
            target = resolve(notice, sqlite_sandbox.ids)
            call = getattr(engine, method)
            result = attempt(
                figures,
                url,
                call_text(method, target),
                lambda: call(target),
                reads=method == "notice",
            )
            if method == "retry_notice" and result is not None:
                assert result.status == "pending", result

    check()


def _storable_as_utc(at: datetime) -> bool:
    """Aware, and an instant that UTC can represent (year 1 to 9999)."""
    if at.tzinfo is None or at.utcoffset() is None:
        return False
    try:
        at.astimezone(UTC)
    except OverflowError:
        return False
    return True


@hypothesis_settings(count(300, 10000))
@given(at=any_datetimes)
@example(datetime(1, 1, 1, tzinfo=PLUS8))
@example(datetime.max.replace(tzinfo=MINUS12))
def test_frozen_clock_takes_any_aware_datetime_and_refuses_the_rest(at: datetime) -> None:
    """DESIGN 4b: FrozenClock takes any aware datetime (stored as UTC), refuses a naive one
    (with a PeakpilotError, like every refusal)."""
    try:
        clock = FrozenClock(at)
    except PeakpilotError:
        assert not _storable_as_utc(at), f"FrozenClock refused {at!r}"
        return
    except Exception as error:
        raise AssertionError(
            f"FrozenClock({at!r}) raised {type(error).__name__}: {error}"
        ) from error
    assert clock.now() == at.astimezone(UTC) and clock.now().utcoffset() == timedelta(0), at


def test_api_at_absurd_times(sqlite_sandbox: Sandbox, figures: Figures) -> None:
    """Every command with the engine's clock anywhere in years 1 to 9999."""
    operations: dict[str, Callable[[Engine, dict[str, str]], Any]] = {
        "nominate": lambda e, ids: e.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        ),
        "fire": lambda e, ids: e.fire(ids["H"], "withdraw", "drc:hebei"),
        "submit": lambda e, ids: e.fire(ids["P"], "submit", "drc:hebei"),
        "show": lambda e, ids: e.show(ids["P"], "drc:hebei"),
        "get": lambda e, ids: e.get(ids["G"]),
        "history": lambda e, ids: e.history(ids["G"]),
        "list": lambda e, ids: e.list(),
        "board": lambda e, ids: e.board(None),
        "open_batch": lambda e, ids: e.open_batch(
            "ndrc", "2031-third", deadline=datetime(2031, 1, 1, tzinfo=BEIJING), quotas={"hebei": 1}
        ),
        "notice": lambda e, ids: e.notice(ids["N_PENDING"]),
        "retry_notice": lambda e, ids: e.retry_notice(ids["N_DEAD"]),
        "timers": lambda e, ids: e.timers(),
    }
    reads = {"show", "get", "history", "list", "board", "notice", "timers"}

    @hypothesis_settings(count(80, 2000))
    @given(at=any_datetimes, operation=st.sampled_from(sorted(operations)))
    @example(datetime(9999, 12, 31, 20, tzinfo=UTC), "show")
    @example(datetime(9999, 12, 31, 20, tzinfo=UTC), "open_batch")
    @example(datetime(1, 1, 1, tzinfo=UTC), "nominate")
    @example(datetime.max.replace(tzinfo=UTC), "fire")
    @example(datetime.max.replace(tzinfo=UTC), "retry_notice")
    def check(at: datetime, operation: str) -> None:
        try:
            clock = FrozenClock(at)
        except Exception:  # the clock itself: test_frozen_clock_takes_any_aware_datetime...
            assume(False)
        figures.example()
        with sqlite_sandbox.engine(clock) as (engine, url):
            attempt(
                figures,
                url,
                f"at {at!r}: {operation}",
                lambda: operations[operation](engine, sqlite_sandbox.ids),
                reads=operation in reads,
            )

    check()


def test_api_tick_at_any_time(sqlite_sandbox: Sandbox, figures: Figures) -> None:
    """``tick(now=...)`` with naive, aware and absurd times: timer work done, or refused
    with nothing written."""

    @hypothesis_settings(count(60, 2000))
    @given(at=any_datetimes)
    @example(datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    @example(datetime(1, 1, 1, tzinfo=UTC))
    @example(datetime(2024, 1, 1))
    def check(at: datetime) -> None:
        figures.example()
        with sqlite_sandbox.engine() as (engine, url):
            attempt(figures, url, call_text("tick", now=at), lambda: engine.tick(now=at))

    check()


def test_api_names_round_trip(sandbox: Sandbox, figures: Figures) -> None:
    """A name the engine accepts comes back exactly: get, list, show, and the text of the
    notice it is named in (no normalisation, no template or markup evaluation)."""
    used: set[tuple[str, str]] = set()

    @hypothesis_settings(sandbox.examples(count(40, 1000), count(12, 200)))
    @given(name=st.one_of(chinese_names, chinese_names, printable_names))
    @example("石家庄市")
    @example("𠀀𪚥\uf900\ufa6e")  # astral and compatibility ideographs (NFC would change them)
    @example("{{ 7*7 }}{% raw %}")
    @example("'; DROP TABLE nominations; --")
    @example("[bold]粗[/bold] [/]")
    @example("石" * 200)
    def check(name: str) -> None:
        figures.example()
        with sandbox.engine() as (engine, url):
            assume((url, name) not in used)
            used.add((url, name))
            created = attempt(
                figures,
                url,
                call_text("nominate", name=name),
                lambda: engine.nominate(
                    "drc:hebei", province="hebei", kind="park", name=name, level="national"
                ),
            )
            assert created is not None and created.name == name, name
            assert engine.get(created.id).name == name
            assert name in [n.name for n in engine.list(province="hebei", state="drafted")]
            engine.fire(created.id, "submit_for_approval", "drc:hebei")
            detail = engine.show(created.id)
            assert detail.nomination.name == name
            assert [r.event for r in engine.history(created.id)] == [
                "nominate",
                "submit_for_approval",
            ]
            mine = [n for n in engine.notices() if n.nomination == created.id]
            assert mine, f"no notice for {name!r}"
            for notice in mine:
                text = engine.notice(notice.id).text
                assert name in text, f"{name!r} is not in the notice text:\n{text}"

    check()


# == 3. the loaders =========================================================================

SHIPPED_SOURCE = (
    resources.files("peakpilot.config.programs")
    .joinpath("carbon_peak_2023.yaml")
    .read_text(encoding="utf-8")
)
QUOTAS_SOURCE = "hebei: 2\nguangdong: 1\nshanxi: 3\n"
CONTACTS_SOURCE = """\
ndrc:
  email: [climate@ndrc.example.cn]
  locale: zh-CN
drc:hebei:
  email: [drc@hebei.example.cn, deputy@hebei.example.cn]
  locale: en
gov:130000:
  email: office@hebei.example.cn
"""
_TOKEN = re.compile(r"[A-Za-z0-9_:+.\-]+")
VOCABULARY = sorted(
    set(_TOKEN.findall(SHIPPED_SOURCE))
    | {
        "-1",
        "0",
        "1000",
        "1001",
        "99999999999999999999999999",
        "true",
        "null",
        "~",
        "[]",
        "{}",
        "'",
        '"',
        "&a",
        "*a",
        "!!python/object/apply:os.system ['echo hacked']",
        "!!binary AAAA",
        "!!int x",
        "!!float nan",
        "!!timestamp 2023-02-30",
        "2023-02-30",
        "2023-13-45T25:61:00+08:00",
        "0001-01-01T00:00:00+08:00",
        "9999-12-31T23:59:59-12:00",
        ".inf",
        ".nan",
        "0x10",
        "0o7",
        "1_000",
        "Mars/Olympus",
        "{{ 7*7 }}",
        "石家庄",
        "\t",
        "\x00",
        "\x85",
        "\ud800",
    }
)


@st.composite
def mutated(draw: st.DrawFn, source: str) -> str:
    """``source`` with one to three line-level changes: a line replaced, deleted,
    duplicated, swapped, re-indented, a word swapped for another, or characters flipped."""
    lines = source.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            lines = [draw(st.text(ALL_CHARS, max_size=40))]
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        operation = draw(
            st.sampled_from(
                [
                    "replace",
                    "delete",
                    "duplicate",
                    "swap",
                    "indent",
                    "word",
                    "word",
                    "flip",
                    "insert",
                ]
            )
        )
        if operation == "replace":
            lines[index] = draw(st.text(ALL_CHARS, max_size=60)) + "\n"
        elif operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif operation == "indent":
            lines[index] = draw(st.sampled_from(["", " ", "  ", "    ", "\t"])) + line.lstrip(" ")
        elif operation == "word":
            words = list(_TOKEN.finditer(line))
            if words:
                word = words[draw(st.integers(0, len(words) - 1))]
                replacement = draw(st.sampled_from(VOCABULARY))
                lines[index] = line[: word.start()] + replacement + line[word.end() :]
        elif operation == "flip":
            chars = list(line)
            for _ in range(draw(st.integers(1, 3))):
                if chars:
                    chars[draw(st.integers(0, len(chars) - 1))] = draw(ALL_CHARS)
            lines[index] = "".join(chars)
        else:
            lines.insert(index, draw(st.text(ALL_CHARS, max_size=60)) + "\n")
    return "".join(lines)


def dump_yaml(document: Any) -> str:
    """YAML text for a generated document (its repr when PyYAML cannot write it)."""
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except Exception:
        return repr(document)


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["hebei", "ndrc", "drc:hebei", "a@b.cn", "en", "zh-CN", "email", "locale"]),
    st.dates(),
    st.datetimes(),
)
yaml_documents = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
).map(lambda document: dump_yaml(document))


def loaded(
    figures: Figures, what: str, load: Callable[[], Any], expected: type | tuple[type, ...]
) -> Any:
    """A loader's outcome: a value of ``expected`` or a ConfigError, nothing else."""
    try:
        value = load()
    except ConfigError as error:
        figures.outcome("ConfigError")
        assert str(error).strip(), f"{what}: a ConfigError without a message"
        return None
    except Exception as error:
        figures.outcome(f"unexpected {type(error).__name__}")
        raise AssertionError(
            f"{what} raised {type(error).__name__}, not a ConfigError: {short(str(error), 300)}"
        ) from error
    figures.outcome("ok")
    assert isinstance(value, expected), f"{what} returned {type(value).__name__}"
    return value


def any_source(base: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(ALL_CHARS, max_size=200),
        st.text(max_size=400),
        st.sampled_from(ODD),
        yaml_documents,
        mutated(base),
        mutated(base),
    )


@hypothesis_settings(count(400, 10000))
@given(source=any_source(SHIPPED_SOURCE))
@example("a: [" * 5000)
@example("- " * 5000 + "x")
@example("&a [*a, *a]\n" + "".join(f"b{i}: &b{i} [*b{i - 1}, *b{i - 1}]\n" for i in range(1, 3)))
@example(SHIPPED_SOURCE + "\nextra: 1\n")
@example(SHIPPED_SOURCE.replace("Asia/Shanghai", "../../../etc/passwd"))
@example(SHIPPED_SOURCE.replace('"2023-11-15T00:00:00+08:00"', "2023-11-15"))
@example(SHIPPED_SOURCE.replace("hebei: 3", "hebei: 99999999999999999999999"))
@example(SHIPPED_SOURCE * 3)
def test_parse_program_on_bad_text(figures: Figures, source: str) -> None:
    figures.example()
    program = loaded(
        figures, f"parse_program({short(source)})", lambda: parse_program(source), Program
    )
    if program is not None:
        assert program.initial_state in program.states


@hypothesis_settings(count(200, 10000))
@given(
    source=st.one_of(
        any_source(QUOTAS_SOURCE),
        st.dictionaries(api_arg(PROVINCES), quota_values, max_size=5).map(dump_yaml),
    )
)
@example("hebei: 99999999999999999999999999\n")
@example("hebei: -1\n")
@example("hebei: true\n")
@example("hebei: 1\n130000: 1\n")
@example("hebei: 1\n" * 20_000)
@example("? [a, b]\n: 1\n")
@example("{hebei: 1, null: 2}")
def test_parse_quotas_on_bad_text(figures: Figures, source: str) -> None:
    figures.example()
    quotas = loaded(
        figures, f"parse_quotas({short(source)})", lambda: parse_quotas(source, PROGRAM), dict
    )
    if quotas is not None:
        assert quotas and set(quotas) <= set(PROGRAM.provinces), quotas
        for value in quotas.values():
            assert type(value) is int and 1 <= value <= 1000, quotas


contact_documents = st.dictionaries(
    api_arg(ACTORS),
    st.one_of(
        st.fixed_dictionaries(
            {"email": st.one_of(st.lists(api_arg(["a@b.cn", "x.y@hebei.example.cn"])), api_text)},
            optional={"locale": api_arg(["en", "zh-CN"])},
        ),
        yaml_scalars,
    ),
    max_size=4,
).map(dump_yaml)


@hypothesis_settings(count(300, 10000))
@given(source=st.one_of(any_source(CONTACTS_SOURCE), contact_documents))
@example("ndrc:\n  email: ['a@b.cn\\nBcc: evil@x.cn']\n")
@example("ndrc:\n  email: [a@b.cn]\n  locale: zh-cn\n")
@example("drc:hebei:\n  email: [a@b.cn]\ndrc:130000:\n  email: [c@d.cn]\n")
@example("system:\n  email: [a@b.cn]\n")
def test_parse_contacts_on_bad_text(figures: Figures, source: str) -> None:
    figures.example()
    contacts = loaded(
        figures,
        f"parse_contacts({short(source)})",
        lambda: parse_contacts(source, PROGRAM),
        Contacts,
    )
    if contacts is not None:
        for actor, contact in contacts.entries.items():
            assert str(Actor.parse(actor)) == actor and contact.addresses, contacts


def _safe_path(path: str) -> bool:
    """Not a device or a process file, which could block or never end."""
    return not path.lstrip().startswith(("/dev", "/proc", "/sys"))


@hypothesis_settings(count(150, 5000))
@given(
    path=st.one_of(
        api_text.filter(_safe_path),
        st.sampled_from(
            ["", ".", "/", "a\x00b", "\ud800.yaml", "\udcff", "x" * 5000, "pyproject.toml", "/etc"]
        ),
    ),
    loader=st.sampled_from(["program", "quotas", "contacts"]),
)
@example("a\x00b", "program")
@example("\ud800.yaml", "quotas")
def test_loaders_on_arbitrary_paths(figures: Figures, path: str, loader: str) -> None:
    """``load_program``/``load_quotas``/``load_contacts`` (what ``Engine.init(path)`` and
    ``Engine(contacts=path)`` call) on any path string: a value or a ConfigError."""
    from peakpilot.config.quotas import load_quotas
    from peakpilot.notifications.contacts import load_contacts

    figures.example()
    load = {
        "program": lambda: load_program(path),
        "quotas": lambda: load_quotas(path, PROGRAM),
        "contacts": lambda: load_contacts(path, PROGRAM),
    }[loader]
    loaded(figures, f"load_{loader}({short(path)})", load, (Program, dict, Contacts))


def test_api_init_with_a_mutated_programme(sqlite_sandbox: Sandbox, figures: Figures) -> None:
    """A mutated programme that parses is loaded by init (or refused), and every command
    afterwards still answers with a value or a PeakpilotError."""

    @hypothesis_settings(count(40, 1500))
    @given(source=mutated(SHIPPED_SOURCE), fresh=st.booleans())
    def check(source: str, fresh: bool) -> None:
        try:
            program = parse_program(source)
        except ConfigError:
            assume(False)
        figures.example()
        with sqlite_sandbox.engine() as (engine, url):
            if fresh:
                engine = Engine(f"{url}.fresh.db", clock=FrozenClock(BEFORE_DEADLINE))
                url = f"{url}.fresh.db"
            ids = sqlite_sandbox.ids
            try:
                loaded_ok = attempt(
                    figures, url, "engine.init(mutated)", lambda: engine.init(program)
                )
                if loaded_ok is None:
                    return
                steps: list[tuple[str, Callable[[], Any], bool]] = [
                    ("board", lambda: engine.board(None), True),
                    ("list", lambda: engine.list(), True),
                    ("timers", lambda: engine.timers(), True),
                    ("show", lambda: engine.show(ids["P"], "gov:hebei"), True),
                    (
                        "nominate",
                        lambda: engine.nominate(
                            "drc:hebei",
                            province="hebei",
                            kind="city",
                            name="唐山市",
                            level="prefecture",
                        ),
                        False,
                    ),
                    ("fire", lambda: engine.fire(ids["H"], "approve", "gov:hebei"), False),
                    ("tick", lambda: engine.tick(), False),
                ]
                for name, step, reads in steps:
                    attempt(figures, url, f"after init(mutated): {name}", step, reads=reads)
            finally:
                if fresh:
                    engine.close()
                    remove_database(Path(url.removeprefix("sqlite:///")))

    check()


# == 2. the command line ====================================================================

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
LAST = object()  # the previous step's stdout (an id printed by nominate)


@dataclass(frozen=True)
class FileArg:
    """The path of a file the script writes into its folder before running."""

    name: str


@dataclass(frozen=True)
class FromStep:
    """A value picked from the JSON document an earlier step of the script printed."""

    index: int
    pick: Callable[[Any], str]


@dataclass
class Step:
    argv: list[Any]
    json: bool = False
    reads: bool = False
    allowed: frozenset[int] = CLI_OK
    now: Any = BEFORE
    env: dict[str, Any] = field(default_factory=dict)


@dataclass
class Script:
    """Commands run in order on one database (a copy of the seeded template, or a new
    one); the script stops at the first command that exits non-zero."""

    steps: list[Step]
    files: dict[str, bytes] = field(default_factory=dict)
    fresh: bool = False


@dataclass
class Outcome:
    step: Step
    argv: list[Any]
    code: int
    stdout: bytes
    stderr: bytes
    violation: str | None

    def describe(self) -> str:
        return (
            f"\n$ {''.join(f'{k}={short(v)} ' for k, v in self.step.env.items())}"
            f"peakpilot {' '.join(short(a) for a in self.argv)}\n"
            f"exit {self.code}\nstdout: {short(self.stdout, 1500)}\n"
            f"stderr: {short(self.stderr, 1500)}"
        )


def _bytes_of(value: Any) -> bytes:
    return value if isinstance(value, bytes) else os.fsencode(value)


def contract_violation(
    step: Step, code: int, stdout: bytes, stderr: bytes, same_rows: bool
) -> str | None:
    """What in this outcome breaks the CLI contract (DESIGN section 4), or None."""
    err = stderr.decode("utf-8", "replace")
    problems = []
    if code not in step.allowed:
        problems.append(f"exit {code} is not one of {sorted(step.allowed)}")
    if "Traceback" in err:
        problems.append("a traceback on stderr")
    if code != 0:
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].strip():
            problems.append(f"stderr is {len(lines)} lines, not one")
        if step.json and stdout:
            problems.append("with --json, stdout must be empty on failure")
        if not same_rows:
            problems.append("the command failed but rows changed")
    else:
        if step.json:
            try:
                json.loads(stdout.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                problems.append(f"with --json, stdout is not one JSON document ({error})")
        if step.reads and not same_rows:
            problems.append("a query changed rows")
    return "; ".join(problems) or None


_SCRIPTS = itertools.count()


def run_script(script: Script, template: Template, root: Path) -> list[Outcome]:
    folder = root / f"script-{next(_SCRIPTS)}"
    folder.mkdir()
    path = folder / "peakpilot.db"
    if not script.fresh:
        copy_database(template.path, path)
    url = f"sqlite:///{path}"
    for name, content in script.files.items():
        (folder / name).write_bytes(content)
    rows = {} if script.fresh else template.rows
    outcomes: list[Outcome] = []
    last = b""
    try:
        for step in script.steps:
            argv = []
            for value in step.argv:
                if value is LAST:
                    value = last.decode("utf-8", "replace").strip()
                elif isinstance(value, FromStep):
                    value = value.pick(json.loads(outcomes[value.index].stdout))
                elif isinstance(value, FileArg):
                    value = str(folder / value.name)
                argv.append(resolve(value, template.ids))
            command: list[Any] = [sys.executable, "-m", "peakpilot", "--db", url]
            if step.now is not None:
                command += ["--now", step.now]
            env: dict[Any, Any] = {**BASE_ENV, "PEAKPILOT_OUTBOX_DIR": str(folder / "outbox")}
            env.update(step.env)
            if any(isinstance(v, bytes) for v in env.values()):
                env = {_bytes_of(k): _bytes_of(v) for k, v in env.items()}
            proc = subprocess.run(
                [*command, *argv],
                capture_output=True,
                timeout=180,
                env=env,
                cwd=folder,
                check=False,
            )
            after = table_rows(url)
            violation = contract_violation(
                step, proc.returncode, proc.stdout, proc.stderr, after == rows
            )
            shown = (["--now", step.now] if step.now is not None else []) + argv
            outcomes.append(
                Outcome(step, shown, proc.returncode, proc.stdout, proc.stderr, violation)
            )
            if violation is not None or proc.returncode != 0:
                break
            rows, last = after, proc.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return outcomes


def execute(
    scripts: Sequence[Script], template: Template, root: Path, figures: Figures
) -> list[list[Outcome]]:
    """Run the scripts side by side and tally every command's exit code."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(lambda s: run_script(s, template, root), scripts))
    for outcomes in results:
        for outcome in outcomes:
            figures.outcome(f"exit {outcome.code}")
    return results


def run_scripts(
    scripts: Sequence[Script], template: Template, root: Path, figures: Figures
) -> list[list[Outcome]]:
    """Run the scripts side by side, tally every command, and fail on the first one that
    breaks the contract."""
    results = execute(scripts, template, root, figures)
    for outcomes in results:
        for outcome in outcomes:
            assert outcome.violation is None, f"{outcome.violation}{outcome.describe()}"
    return results


# -- argv strategies ------------------------------------------------------------------------

BAD_UTF8 = st.one_of(
    st.sampled_from(
        [
            b"\xff",
            b"\xff\xfe",
            b"\xe4\xb8",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"hebei\xff",
            b"\xe7\x9f\xb3\xff",
        ]
    ),
    st.binary(min_size=1, max_size=16).filter(lambda b: b"\x00" not in b and not _decodes(b)),
)


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _argv_safe(value: Any) -> bool:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return not isinstance(text, str) or text not in NOT_OPTIONS


cli_text = st.one_of(st.sampled_from(CLI_ODD), st.text(CLI_CHARS, max_size=40), BAD_UTF8).filter(
    _argv_safe
)


def cli_arg(valid: Sequence[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(list(valid)), cli_text)


def cli_ids(keys: Sequence[str]) -> st.SearchStrategy[Any]:
    return st.one_of(refs(keys), cli_text)


@st.composite
def options(
    draw: st.DrawFn, spec: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any] | None]]
) -> list[Any]:
    """``--flag value`` pairs in any order. Each flag is valid (first strategy), fuzzed
    (second), left out or given twice; a flag without a valid strategy is optional."""
    fuzzed = draw(st.sets(st.sampled_from(sorted(spec))))
    pairs: list[list[Any]] = []
    for flag, (valid, fuzz) in spec.items():
        if flag in fuzzed:
            how = draw(st.sampled_from(["fuzz", "fuzz", "fuzz", "fuzz", "omit", "twice"]))
            if how == "omit":
                continue
            pairs.append([flag, draw(fuzz if fuzz is not None else valid)])
            if how == "twice":
                pairs.append([flag, draw(valid)])
        elif fuzz is not None:
            pairs.append([flag, draw(valid)])
    order = draw(st.permutations(pairs))
    return [item for pair in order for item in pair]


JSON_PLACES = st.sampled_from(["none", "before", "after"])


def with_json(argv: list[Any], place: str, **step: Any) -> Step:
    if place == "before":
        argv = ["--json", *argv]
    elif place == "after":
        argv = [*argv, "--json"]
    return Step(argv, json=place != "none", **step)


now_values = st.one_of(
    st.just(BEFORE),
    any_datetimes.map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2023-10-20T09:00:00Z",
            "2023-10-20",
            "2023-10-20T09:00:00",
            "+08:00",
            "0001-01-01T00:00:00+08:00",
            "0001-01-01T00:00:00-08:00",
            "9999-12-31T23:59:59-12:00",
            "9999-12-31T23:59:59.999999+14:00",
            "2023-02-30T00:00:00+08:00",
            "2023-10-20T09:00:00+24:00",
            "10000-01-01T00:00:00+00:00",
            "now",
        ]
    ),
    cli_text,
)


@st.composite
def nominate_steps(draw: st.DrawFn) -> Step:
    spec = {
        "--province": (st.sampled_from(PROVINCES), cli_arg(PROVINCES)),
        "--kind": (st.sampled_from(KINDS), cli_arg(KINDS)),
        "--name": (st.one_of(chinese_names, st.sampled_from(NAMES)), cli_arg(NAMES)),
        "--level": (st.sampled_from(LEVELS), cli_arg(LEVELS)),
        "--batch": (st.sampled_from(BATCHES), cli_arg(BATCHES)),
        "--as": (st.sampled_from(["drc:hebei", "drc:130000", *ACTORS]), cli_arg(ACTORS)),
    }
    # --batch is optional: valid and fuzzed values both come only when it is "fuzzed"
    argv = ["nominate", *draw(options({**spec, "--batch": (spec["--batch"][1], None)}))]
    now = draw(now_values) if draw(st.integers(0, 9)) == 0 else BEFORE  # test_cli_now does more
    return with_json(argv, draw(JSON_PLACES), now=now)


@st.composite
def fire_steps(draw: st.DrawFn) -> Step:
    spec = {
        "--as": (st.sampled_from(ACTORS), cli_arg(ACTORS)),
        "--reason": (cli_arg(["退回补充材料", "x" * 4000, "x" * 4001, "[/]", "{{ 7*7 }}"]), None),
        "--idempotency-key": (cli_arg(["k1", "k" * 200, "k" * 201]), None),
        "--if-version": (
            cli_arg(["1", "2", "0", "-1", "99999999999999999999999", "1.5", "0x1", " 1", "１"]),
            None,
        ),
    }
    positional = [draw(cli_ids(NOMINATION_KEYS)), draw(cli_arg(EVENTS))]
    if draw(st.integers(0, 9)) == 0:
        positional = draw(st.lists(cli_text, max_size=3))
    argv = ["fire", *positional, *draw(options(spec))]
    allowed = CLI_OK | ({6} if "--if-version" in argv else set())
    return with_json(argv, draw(JSON_PLACES), allowed=allowed)


@st.composite
def query_steps(draw: st.DrawFn) -> Step:
    nomination = cli_ids(NOMINATION_KEYS)
    command = draw(
        st.sampled_from(
            ["show", "list", "board", "history", "notices show", "notices", "deadlines"]
        )
    )
    if command == "show":
        argv = ["show", draw(nomination)]
        if draw(st.booleans()):
            argv += ["--as", draw(cli_arg(ACTORS))]
    elif command == "list":
        argv = [
            "list",
            *draw(
                options(
                    {
                        "--state": (cli_arg(STATES), None),
                        "--province": (cli_arg(PROVINCES), None),
                        "--batch": (cli_arg(BATCHES), None),
                    }
                )
            ),
        ]
    elif command in ("board", "deadlines"):
        argv = [command, *draw(options({"--batch": (cli_arg(BATCHES), None)}))]
    elif command == "history":
        argv = ["history", draw(nomination)]
    elif command == "notices show":
        argv = ["notices", "show", draw(st.one_of(cli_ids(NOTICE_KEYS), nomination))]
    else:
        argv = [
            "notices",
            *draw(options({"--status": (cli_arg(["pending", "sent", "dead"]), None)})),
        ]
    return with_json(argv, draw(JSON_PLACES), reads=True)


QUOTAS_FILES = st.one_of(
    st.just(b"hebei: 1\nguangdong: 2\n"),
    st.sampled_from(
        [
            b"",
            b"hebei: 0\n",
            b"hebei: -5\n",
            b"hebei: 1001\n",
            b"hebei: 99999999999999999999999999\n",
            b"hebei: 1\n130000: 2\n",
            b"mars: 1\n",
            b"- hebei\n",
            b"hebei: \xff\n",
            b"\xef\xbb\xbfhebei: 1\n",
            b"hebei: !!python/object/apply:os.system ['echo hacked']\n",
            b"hebei: 1\x00\n",
            b"a: [" * 3000,
        ]
    ),
    any_source(QUOTAS_SOURCE).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@st.composite
def batch_open_steps(draw: st.DrawFn) -> tuple[Step, dict[str, bytes]]:
    quotas = FileArg("quotas.yaml")
    path_fuzz = st.one_of(
        st.just(quotas),
        st.sampled_from(["/dev/null", ".", "/", "missing.yaml", "/proc/self/status"]),
        cli_text,
    )
    spec = {
        "--id": (st.sampled_from(["2024-third", "3rd.batch_x-1"]), batch_ids.filter(_cli_ok)),
        "--deadline": (
            st.sampled_from(["2024-12-01T00:00:00+08:00", "2030-01-01T00:00:00Z"]),
            now_values,
        ),
        "--quotas": (st.just(quotas), path_fuzz),
        "--as": (st.sampled_from(["ndrc", "NDRC"]), cli_arg(ACTORS)),
    }
    argv = ["batch", "open", *draw(options(spec))]
    step = with_json(argv, draw(JSON_PLACES))
    return step, {"quotas.yaml": draw(QUOTAS_FILES)}


def _cli_ok(value: Any) -> bool:
    return (
        isinstance(value, bytes) or ("\x00" not in value and not _has_surrogate(value))
    ) and _argv_safe(value)


# -- the CLI tests ----------------------------------------------------------------------------


def scripts_of(steps: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(steps, min_size=PARALLEL, max_size=PARALLEL)


def test_cli_nominate(template: Template, tmp_path: Path, figures: Figures) -> None:
    @hypothesis_settings(count(6, 250), shrink=False)
    @given(steps=scripts_of(nominate_steps()))
    def check(steps: list[Step]) -> None:
        figures.example()
        run_scripts([Script([s]) for s in steps], template, tmp_path, figures)

    check()


def test_cli_fire(template: Template, tmp_path: Path, figures: Figures) -> None:
    @hypothesis_settings(count(6, 250), shrink=False)
    @given(steps=scripts_of(fire_steps()))
    def check(steps: list[Step]) -> None:
        figures.example()
        run_scripts([Script([s]) for s in steps], template, tmp_path, figures)

    check()


def test_cli_queries(template: Template, tmp_path: Path, figures: Figures) -> None:
    @hypothesis_settings(count(6, 250), shrink=False)
    @given(steps=scripts_of(query_steps()))
    def check(steps: list[Step]) -> None:
        figures.example()
        run_scripts([Script([s]) for s in steps], template, tmp_path, figures)

    check()


def test_cli_batch_open(template: Template, tmp_path: Path, figures: Figures) -> None:
    @hypothesis_settings(count(5, 250), shrink=False)
    @given(steps=scripts_of(batch_open_steps()))
    def check(steps: list[tuple[Step, dict[str, bytes]]]) -> None:
        figures.example()
        run_scripts([Script([s], files=f) for s, f in steps], template, tmp_path, figures)

    check()


NOW_COMMANDS: list[tuple[list[Any], bool]] = [
    (["list"], True),
    (["board"], True),
    (["show", Ref("P"), "--as", "drc:hebei"], True),
    (["history", Ref("G")], True),
    (["deadlines"], True),
    (
        [
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
        ],
        False,
    ),
    (["fire", Ref("H"), "withdraw", "--as", "drc:hebei"], False),
    (
        [
            "batch",
            "open",
            "--id",
            "2031-x",
            "--deadline",
            "2031-01-01T00:00:00+08:00",
            "--quotas",
            FileArg("quotas.yaml"),
            "--as",
            "ndrc",
        ],
        False,
    ),
    (["tick"], False),
]


def test_cli_now(template: Template, tmp_path: Path, figures: Figures) -> None:
    """``--now`` (and ``PEAKPILOT_NOW``) anywhere in years 1 to 9999, or not a time."""

    @st.composite
    def now_scripts(draw: st.DrawFn) -> Script:
        argv, reads = draw(st.sampled_from(NOW_COMMANDS))
        now = draw(now_values)
        place = draw(JSON_PLACES)
        if draw(st.booleans()):
            step = with_json(argv, place, reads=reads, now=now)
        else:
            step = with_json(argv, place, reads=reads, now=None, env={"PEAKPILOT_NOW": now})
        return Script([step], files={"quotas.yaml": b"hebei: 1\n"})

    @hypothesis_settings(count(4, 200), shrink=False)
    @given(scripts=st.lists(now_scripts(), min_size=PARALLEL, max_size=PARALLEL))
    def check(scripts: list[Script]) -> None:
        figures.example()
        run_scripts(scripts, template, tmp_path, figures)

    check()


COMMAND_WORDS = (
    "init",
    "nominate",
    "fire",
    "show",
    "list",
    "board",
    "history",
    "deadlines",
    "notices",
    "show",
    "retry",
    "dispatch",
    "tick",
    "batch",
    "open",
    "diagram",
    "audit",
    "verify",
    "--province",
    "--kind",
    "--name",
    "--level",
    "--batch",
    "--as",
    "--reason",
    "--state",
    "--idempotency-key",
    "--if-version",
    "--id",
    "--deadline",
    "--quotas",
    "--status",
    "--format",
    "--program",
    "--now",
    "--json",
    "-",
)


def test_cli_arbitrary_argv(template: Template, tmp_path: Path, figures: Figures) -> None:
    """Arbitrary argv of command words, values and invalid UTF-8 (never `daemon`, which
    runs until stopped, `demo`, or a second `--db`)."""
    tokens = st.one_of(
        st.sampled_from(COMMAND_WORDS), cli_text, BAD_UTF8, refs(NOMINATION_KEYS + NOTICE_KEYS)
    )

    @st.composite
    def argv_steps(draw: st.DrawFn) -> Step:
        argv = draw(st.lists(tokens, min_size=1, max_size=8))
        if draw(st.booleans()):
            argv[0] = draw(st.sampled_from(COMMAND_WORDS[:13]))
        words = {a.decode("utf-8", "replace") if isinstance(a, bytes) else a for a in argv}
        assume(not words & {"daemon", "demo", "--db", "--debug"})
        allowed = CLI_OK | ({6} if "--if-version" in words else set())
        return Step(argv, allowed=allowed)

    @hypothesis_settings(count(5, 250), shrink=False)
    @given(steps=scripts_of(argv_steps()))
    @example(
        [Step(["board", "--batch", b"\xff"]), Step(["nominate", "--name", b"\xe4\xb8"])]
        + [Step([b"\xff\xfe"])] * (PARALLEL - 2)
    )
    def check(steps: list[Step]) -> None:
        figures.example()
        run_scripts([Script([s]) for s in steps], template, tmp_path, figures)

    check()


def test_cli_init_with_a_mutated_programme(
    template: Template, tmp_path: Path, figures: Figures
) -> None:
    """``init --program FILE`` with a mutated programme: exit 0 or 5 with one line; when
    it loads, the next command still keeps the contract."""

    @st.composite
    def init_scripts(draw: st.DrawFn) -> Script:
        source = draw(mutated(SHIPPED_SOURCE)).encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 9)) == 0:
            source = draw(st.binary(max_size=200)) + source
        fresh = draw(st.booleans())
        place = draw(JSON_PLACES)
        init = with_json(["init", "--program", FileArg("programme.yaml")], place, allowed=INIT_OK)
        follow = ["board"] if fresh else ["show", Ref("P"), "--as", "gov:hebei"]
        return Script(
            [init, with_json(follow, place, reads=True)],
            files={"programme.yaml": source},
            fresh=fresh,
        )

    @hypothesis_settings(count(5, 250), shrink=False)
    @given(scripts=st.lists(init_scripts(), min_size=PARALLEL, max_size=PARALLEL))
    def check(scripts: list[Script]) -> None:
        figures.example()
        run_scripts(scripts, template, tmp_path, figures)

    check()


def test_cli_huge_values(template: Template, tmp_path: Path, figures: Figures) -> None:
    """Values near the 128 KiB limit of one argv item, and files of megabytes."""
    big = "城" * 40_000  # 120 KB of UTF-8
    quotas = FileArg("quotas.yaml")
    programme = FileArg("programme.yaml")
    nominate = [
        "nominate",
        "--province",
        "hebei",
        "--kind",
        "city",
        "--level",
        "prefecture",
        "--as",
        "drc:hebei",
    ]
    scripts = [
        Script([Step([*nominate, "--name", big, "--json"], json=True)]),
        Script([Step(["--json", *nominate, "--name", "唐山市", "--batch", big], json=True)]),
        Script([Step(["fire", Ref("P"), "send_back", "--as", "gov:hebei", "--reason", big])]),
        Script(
            [
                Step(
                    [
                        "fire",
                        Ref("H"),
                        "withdraw",
                        "--as",
                        "drc:hebei",
                        "--idempotency-key",
                        big,
                        "--json",
                    ],
                    json=True,
                )
            ]
        ),
        Script([Step(["show", "a" * 120_000, "--json"], json=True, reads=True)]),
        Script([Step(["list", "--province", "h" * 120_000], reads=True)]),
        Script(
            [
                Step(
                    [
                        "batch",
                        "open",
                        "--id",
                        "2024-third",
                        "--deadline",
                        "2024-12-01T00:00:00+08:00",
                        "--quotas",
                        quotas,
                        "--as",
                        "ndrc",
                    ]
                )
            ],
            files={"quotas.yaml": b"# " + b"x" * 3_000_000 + b"\nhebei: 1\n"},
        ),
        Script(
            [
                Step(
                    [
                        "batch",
                        "open",
                        "--id",
                        "2024-third",
                        "--deadline",
                        "2024-12-01T00:00:00+08:00",
                        "--quotas",
                        quotas,
                        "--as",
                        "ndrc",
                    ]
                )
            ],
            files={"quotas.yaml": b"hebei: 1\n" * 30_000},
        ),
        Script(
            [Step(["init", "--program", programme], allowed=INIT_OK)],
            files={"programme.yaml": SHIPPED_SOURCE.encode() * 40},
            fresh=True,
        ),
    ]
    figures.example()
    run_scripts(scripts, template, tmp_path, figures)


def _newest(kind: str) -> Callable[[Any], str]:
    def pick(notices: Any) -> str:
        return str([n for n in notices if n["kind"] == kind][-1]["id"])

    return pick


def test_cli_names_round_trip(template: Template, tmp_path: Path, figures: Figures) -> None:
    """Names typed on the command line come back exactly (--json of nominate and show, the
    notice's text), and every human table that shows them still prints."""
    park = [
        "nominate",
        "--province",
        "hebei",
        "--kind",
        "park",
        "--level",
        "national",
        "--as",
        "drc:hebei",
    ]

    def script(name: str) -> Script:
        created = FromStep(0, lambda document: str(document["id"]))
        return Script(
            [
                Step(["--json", *park, "--name", name], json=True),
                Step(["--json", "show", created], json=True, reads=True),
                Step(["fire", created, "submit_for_approval", "--as", "drc:hebei"]),
                Step(["--json", "notices", "--status", "pending"], json=True, reads=True),
                Step(
                    ["--json", "notices", "show", FromStep(3, _newest("sent_for_approval"))],
                    json=True,
                    reads=True,
                ),
                Step(["list"], reads=True),
                Step(["notices"], reads=True),
            ]
        )

    cli_names = st.one_of(chinese_names, printable_names).filter(_argv_safe)

    @hypothesis_settings(count(1, 40), shrink=False, explicit_only=True)
    @given(names=st.lists(cli_names, min_size=PARALLEL, max_size=PARALLEL))
    @example(
        ["石家庄市𠀀\uf900", "[/] [bold]粗[/bold] {{ 7*7 }} '; DROP TABLE nominations; --"]
        + ["唐山市"] * (PARALLEL - 2)
    )
    def check(names: list[str]) -> None:
        figures.example()
        scripts = [script(name) for name in names]
        results = run_scripts(scripts, template, tmp_path, figures)
        for name, done, planned in zip(names, results, scripts, strict=True):
            failed = [o for o in done if o.code != 0]
            assert not failed and len(done) == len(planned.steps), (
                f"the round trip of {name!r} stopped{failed[0].describe() if failed else ''}"
            )
            assert json.loads(done[0].stdout)["name"] == name, done[0].describe()
            assert json.loads(done[1].stdout)["name"] == name, done[1].describe()
            text = json.loads(done[4].stdout)["text"]
            assert name in text, f"{name!r} is not in the notice text:\n{text}"

    check()


# -- defects found by the tests above, pinned as plain examples ------------------------------

API_PINNED: list[Any] = [
    pytest.param(lambda e, ids: e.timers("\udcff"), id="timers-batch-lone-surrogate"),
    pytest.param(
        lambda e, ids: Engine(
            e.database.engine, clock=FrozenClock(datetime.max.replace(tzinfo=UTC))
        ).fire(ids["H"], "withdraw", "drc:hebei"),
        id="fire-with-the-clock-at-the-end-of-9999",
    ),
    pytest.param(
        lambda e, ids: e.tick(now=datetime(9999, 12, 31, 23, 59, tzinfo=UTC)),
        id="tick-at-the-end-of-9999",
    ),
    pytest.param(lambda e, ids: e.init("programme\x00.yaml"), id="init-path-with-nul"),
    pytest.param(lambda e, ids: e.init("\ud800.yaml"), id="init-path-lone-surrogate"),
    pytest.param(lambda e, ids: e.board("a\ud800"), id="board-lone-surrogate"),
    pytest.param(lambda e, ids: e.list(batch="\udcff"), id="list-batch-lone-surrogate"),
    pytest.param(
        lambda e, ids: e.nominate(
            "drc:hebei",
            province="hebei",
            kind="city",
            name="唐山市",
            level="prefecture",
            batch="\udcff",
        ),
        id="nominate-batch-lone-surrogate",
    ),
    pytest.param(
        lambda e, ids: e.fire(ids["H"], "withdraw", "drc:hebei", idempotency_key="\ud800"),
        id="fire-key-lone-surrogate",
    ),
    pytest.param(lambda e, ids: e.board("a\x00b"), id="board-nul"),
    pytest.param(lambda e, ids: e.list(batch="\x00"), id="list-batch-nul"),
    pytest.param(
        lambda e, ids: e.fire(ids["H"], "withdraw", "drc:hebei", idempotency_key="a\x00b"),
        id="fire-key-nul",
    ),
    pytest.param(
        lambda e, ids: e.open_batch(
            "ndrc", "2024-third", deadline=datetime(1, 1, 1, tzinfo=PLUS8), quotas={"hebei": 1}
        ),
        id="open-batch-deadline-year-1",
    ),
    pytest.param(
        lambda e, ids: e.open_batch(
            "ndrc",
            "2024-third",
            deadline=datetime(9999, 12, 31, 23, tzinfo=MINUS12),
            quotas={"hebei": 1},
        ),
        id="open-batch-deadline-past-9999-in-utc",
    ),
    pytest.param(
        lambda e, ids: e.open_batch(
            "ndrc",
            "2024-third",
            deadline=datetime(9999, 12, 31, 20, tzinfo=UTC),
            quotas={"hebei": 1},
        ),
        id="open-batch-deadline-9999-in-utc",
    ),
    pytest.param(
        lambda e, ids: e.open_batch(
            "ndrc",
            "2024-third",
            deadline=datetime(2024, 12, 1, tzinfo=PLUS8),
            quotas={"hebei": 10**30},
        ),
        id="open-batch-huge-quota",
    ),
]


@pytest.mark.parametrize("call", API_PINNED)
def test_api_pinned(call: Any, sqlite_sandbox: Sandbox, figures: Figures) -> None:
    figures.example()
    with sqlite_sandbox.engine() as (engine, url):
        attempt(figures, url, "the pinned call", lambda: call(engine, sqlite_sandbox.ids))


@pytest.mark.postgres
def test_api_pinned_on_postgres(
    postgres_url: str, template: Template, tmp_path: Path, figures: Figures
) -> None:
    """The same calls on PostgreSQL, where NUL in a text parameter is an error of its own."""
    box = Sandbox(postgres_url, template, tmp_path)
    broken = []
    try:
        for param in API_PINNED:
            figures.example()
            with box.engine() as (engine, url):
                call = param.values[0]
                try:
                    attempt(figures, url, param.id, lambda: call(engine, box.ids))  # noqa: B023
                except AssertionError as error:
                    broken.append(f"{param.id}: {str(error).splitlines()[0]}")
    finally:
        box.close()
    assert not broken, "\n".join(broken)


def test_api_batch_id_with_a_trailing_newline_is_refused(
    sandbox: Sandbox, figures: Figures
) -> None:
    """The batch id rule is 1 to 64 letters, digits, '.', '_' or '-': not a newline."""
    figures.example()
    with sandbox.engine() as (engine, url):
        before = table_rows(url)
        with pytest.raises(InvalidInput):
            engine.open_batch(
                "ndrc",
                "2024-third\n",
                deadline=datetime(2024, 12, 1, tzinfo=PLUS8),
                quotas={"hebei": 1},
            )
        assert table_rows(url) == before


def test_frozen_clock_pinned() -> None:
    # refusing an instant before year 1 in UTC is fine; any other exception is not
    with contextlib.suppress(PeakpilotError):
        FrozenClock(datetime(1, 1, 1, tzinfo=PLUS8))


NOMINATE_ARGV = [
    "nominate",
    "--province",
    "hebei",
    "--kind",
    "city",
    "--level",
    "prefecture",
    "--as",
    "drc:hebei",
]
BATCH_OPEN_ARGV = ["batch", "open", "--quotas", FileArg("quotas.yaml"), "--as", "ndrc"]
CLI_PINNED: list[Any] = [
    pytest.param([Step(["board", "--batch", b"\xff"])], id="board-batch-invalid-utf8"),
    pytest.param([Step(["list", "--batch", b"\xff"])], id="list-batch-invalid-utf8"),
    pytest.param(
        [Step([*NOMINATE_ARGV, "--name", "唐山市", "--batch", b"\xff"])],
        id="nominate-batch-invalid-utf8",
    ),
    pytest.param(
        [Step(["fire", Ref("H"), "withdraw", "--as", "drc:hebei", "--idempotency-key", b"\xff"])],
        id="fire-key-invalid-utf8",
    ),
    pytest.param([Step(["list"], now="0001-01-01T00:00:00+08:00")], id="now-year-1"),
    pytest.param([Step(["list"], now="9999-12-31T23:59:59-12:00")], id="now-after-9999-in-utc"),
    pytest.param(
        [Step(["list"], now=None, env={"PEAKPILOT_NOW": "0001-01-01T00:00:00+08:00"})],
        id="env-now-year-1",
    ),
    pytest.param(
        [Step([*BATCH_OPEN_ARGV, "--id", "2024-third", "--deadline", "9999-12-31T23:00:00-12:00"])],
        id="batch-open-deadline-after-9999-in-utc",
    ),
    pytest.param(
        [Step([*BATCH_OPEN_ARGV, "--id", "2024-third", "--deadline", "9999-12-31T20:00:00+00:00"])],
        id="batch-open-deadline-9999",
    ),
    pytest.param(
        [
            Step(
                [
                    *BATCH_OPEN_ARGV,
                    "--id",
                    "2024-third\n",
                    "--deadline",
                    "2024-12-01T00:00:00+08:00",
                ],
                allowed=frozenset({5}),
            )
        ],
        id="batch-open-id-with-newline",
    ),
    pytest.param([Step(["tick"], now="9999-12-31T23:59:00+00:00")], id="tick-at-the-end-of-9999"),
    pytest.param(
        [Step([*NOMINATE_ARGV, "--name", "[/]"]), Step(["list"], reads=True)],
        id="list-after-a-name-with-markup",
    ),
    pytest.param(
        [Step([*NOMINATE_ARGV, "--name", "[/]"]), Step(["show", LAST], reads=True)],
        id="show-of-a-name-with-markup",
    ),
    pytest.param(
        [
            Step(["fire", Ref("P"), "send_back", "--as", "gov:hebei", "--reason", "[/]"]),
            Step(["history", Ref("P")], reads=True),
        ],
        id="history-with-a-reason-with-markup",
    ),
]


def test_cli_pinned(template: Template, tmp_path: Path, figures: Figures) -> None:
    """Each pinned case is a script of its own (all run side by side); every case that
    breaks the contract is listed."""
    figures.example()
    scripts = [
        Script(list(case.values[0]), files={"quotas.yaml": b"hebei: 1\n"}) for case in CLI_PINNED
    ]
    results = execute(scripts, template, tmp_path, figures)
    broken = []
    for case, script, outcomes in zip(CLI_PINNED, scripts, results, strict=True):
        bad = [o for o in outcomes if o.violation is not None]
        if bad:
            broken.append(f"[{case.id}] {bad[0].violation}{bad[0].describe()}")
        elif len(outcomes) < len(script.steps):
            broken.append(f"[{case.id}] a preparatory step failed{outcomes[-1].describe()}")
    assert not broken, f"{len(broken)} of {len(CLI_PINNED)} cases break the contract:\n" + (
        "\n".join(broken)
    )
