"""The table of DESIGN 4's "Reads are scoped like writes", shared by its API test
(tests/integration/test_read_scope.py) and its CLI test (tests/acceptance/
test_cli_read_scope.py): every read command x every kind of actor, on one database that
holds something of each kind a read can return.

What each actor should get is worked out here, independently of peakpilot's own rules:
the operator's read (no actor) is the reference, and a provincial reader gets the part of
it that belongs to its province (or a refusal, exit 4), by the rules written out below.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from peakpilot import Engine, FrozenClock
from peakpilot.workflow.snapshots import to_jsonable
from tests.conftest import BEFORE_DEADLINE, DEADLINE
from tests.construction_helpers import PDF, PNG, confirmed

# When the table is read: after the 2023 deadline work and a second batch's opening.
READ_AT = DEADLINE + timedelta(days=5, hours=9)
READ_AT_TEXT = READ_AT.isoformat()
HEBEI, SHANXI = "hebei", "shanxi"

ALL = "*"  # a reader of every province: no actor (the operator), or ndrc
EVERYONE = "everyone"  # an item every reader sees: a batch-wide timer (no province)
NATIONAL = "national"  # an item only a reader of every province sees: the NDRC's round-up
NOT_PERMITTED, INVALID = 4, 5

# kind of actor -> (the actor, what it reads: ALL, a province, or INVALID)
ACTORS: dict[str, tuple[str | None, str | int]] = {
    "none": (None, ALL),
    "ndrc": ("ndrc", ALL),
    "drc-own": ("drc:hebei", HEBEI),  # the province of the nomination the reads ask about
    "gov-own": ("gov:130000", HEBEI),  # Hebei by its GB/T 2260 code
    "drc-other": ("drc:shanxi", SHANXI),
    "gov-other": ("gov:shanxi", SHANXI),
    "unparsable": ("drc hebei", INVALID),
}


@dataclass
class World:
    """The database and the ids the reads ask about."""

    url: str
    hebei: str  # a confirmed Hebei pilot, with a material, timers and notices
    shanxi: str  # a confirmed Shanxi pilot, the same
    lapsed: str  # a Hebei nomination lapsed at the 2023 deadline
    material: str  # a material of the Hebei pilot
    material_sha256: str
    notices: dict[str, str]  # the notices `notices show` asks about, by name
    province: dict[str, str]  # nomination id -> its province
    full: dict[str, Any] = field(default_factory=dict)  # read -> the operator's view
    owner: dict[str, str] = field(default_factory=dict)  # list item id -> whose it is


def build(url: str) -> World:
    """Two pilots (Hebei, Shanxi) confirmed with a material each, a Hebei draft, the 2023
    deadline's work (lapse, shortfall letters to the provinces, the summary to the NDRC)
    and a second batch opened (its batch-wide reminders and deadline pending)."""
    clock = FrozenClock(BEFORE_DEADLINE)
    with Engine(url, clock=clock) as engine:
        engine.init()
        hebei = confirmed(engine, "唐山市", HEBEI)
        shanxi = confirmed(engine, "大同市", SHANXI)
        lapsed = engine.nominate(
            "drc:hebei", province=HEBEI, kind="city", name="保定市", level="prefecture"
        )
        material = engine.attach(
            hebei.id, PDF, kind="implementation_plan", actor="drc:hebei", filename="plan.pdf"
        )
        engine.attach(shanxi.id, PNG, kind="other", actor="gov:shanxi", filename="photo.png")
        clock.set(DEADLINE)
        engine.tick()
        clock.set(READ_AT)
        engine.open_batch(
            "ndrc",
            "2024-second",
            deadline=datetime(2024, 6, 30, tzinfo=DEADLINE.tzinfo),
            quotas={HEBEI: 1, SHANXI: 1},
        )
        outbox = engine.notices()

        def notice(kind: str, actor: str, nomination: str | None) -> str:
            found = [
                n.id for n in outbox if (n.kind, n.actor, n.nomination) == (kind, actor, nomination)
            ]
            assert found, f"the table needs a {kind} notice to {actor} about {nomination}"
            return found[0]

        world = World(
            url=url,
            hebei=hebei.id,
            shanxi=shanxi.id,
            lapsed=lapsed.id,
            material=material.id,
            material_sha256=material.sha256,
            notices={
                "to-gov-about-hebei": notice("sent_for_approval", "gov:hebei", hebei.id),
                "to-ndrc-about-hebei": notice("submitted", "ndrc", hebei.id),
                "shortfall-to-drc-hebei": notice("shortfall", "drc:hebei", None),
                "summary-to-ndrc": notice("deadline_summary", "ndrc", None),
            },
            province={hebei.id: HEBEI, shanxi.id: SHANXI, lapsed.id: HEBEI},
        )
        for read in READS.values():  # the reference: what the operator reads
            world.full[read.name] = read.view(to_jsonable(read.api(engine, world, None)))
        for timer in engine.timers():
            world.owner[timer.id] = timer.province or EVERYONE
        for n in outbox:
            world.owner[n.id] = _notice_owner(n.actor, n.nomination, world)
        for nomination_id, province in world.province.items():
            world.owner[nomination_id] = province
    _check_the_table_can_fail(world)
    return world


def _notice_owner(addressee: str, nomination: str | None, world: World) -> str:
    """Whose a notice is (the README's rule): the province of the nomination it is about,
    else of the provincial actor it is addressed to, else only national readers'."""
    if nomination is not None:
        return world.province[nomination]
    role, _, province = addressee.partition(":")
    return province if role in ("drc", "gov") else NATIONAL


def _check_the_table_can_fail(world: World) -> None:
    """Each list holds items of both provinces (and of everyone, or of the nation), so a
    read that forgot its scope, or scoped too much, is caught."""
    for name in ("list", "pilots", "deadlines", "notices"):
        owners = {world.owner[i] for i in world.full[name]}
        assert {HEBEI, SHANXI} <= owners, (name, owners)
    deadlines = {world.owner[i] for i in world.full["deadlines"]}
    assert EVERYONE in deadlines
    assert NATIONAL in {world.owner[i] for i in world.full["notices"]}


# -- the reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One read command: how the API and the CLI ask it, what of the answer is compared,
    and whose the answer is.

    ``scope`` is ``"one"`` for a read of one thing, whose province ``owner`` gives (a
    reader of another province is refused); ``"list"`` for a list a provincial reader
    gets filtered; ``"asked"`` for a list filtered by an explicit ``--province hebei``
    (another province's reader is refused).
    """

    name: str
    api: Callable[[Engine, World, str | None], Any]
    cli: Callable[[World, Path], tuple[str, ...]]
    view: Callable[[Any], Hashable]
    scope: str
    owner: Callable[[World], str] = lambda world: HEBEI


def _ids(document: Any) -> tuple[str, ...]:
    return tuple(item["id"] for item in document)


def _nomination(document: Any) -> Hashable:
    return (document["id"], document["state"])


def _show(document: Any) -> Hashable:
    return (
        document["id"],
        document["state"],
        tuple(h["event"] for h in document["history"]),
        _ids(document["timers"]),
    )


def _history(document: Any) -> Hashable:
    return tuple((h["seq"], h["event"]) for h in document)


def _material(document: Any) -> Hashable:
    return (document["id"], document["sha256"])


def _notice(document: Any) -> Hashable:
    return (document["id"], document["kind"], document["actor"], document["subject"])


def _material_read(engine: Engine, world: World, actor: str | None) -> Any:
    material, content = engine.material(world.material, actor=actor)
    assert hashlib.sha256(content).hexdigest() == material.sha256
    return material


def _notice_read(name: str) -> Read:
    return Read(
        name=f"notices show {name}",
        api=lambda engine, world, actor: engine.notice(world.notices[name], actor=actor),
        cli=lambda world, _out: ("notices", "show", world.notices[name]),
        view=_notice,
        scope="one",
        owner=lambda world: world.owner[world.notices[name]],
    )


_TABLE = [
    Read(
        "get",  # the API's; the command line's is `show`
        lambda engine, world, actor: engine.get(world.hebei, actor=actor),
        lambda world, _out: (),
        _nomination,
        "one",
    ),
    Read(
        "show",
        lambda engine, world, actor: engine.show(world.hebei, actor),
        lambda world, _out: ("show", world.hebei),
        _show,
        "one",
    ),
    Read(
        "history",
        lambda engine, world, actor: engine.history(world.hebei, actor=actor),
        lambda world, _out: ("history", world.hebei),
        _history,
        "one",
    ),
    Read(
        "materials",
        lambda engine, world, actor: engine.materials(world.hebei, actor=actor),
        lambda world, _out: ("materials", world.hebei),
        _ids,
        "one",
    ),
    Read(
        "materials get",
        _material_read,
        lambda world, out: ("materials", "get", world.material, "-o", str(out)),
        _material,
        "one",
    ),
    Read(
        "list",
        lambda engine, world, actor: engine.list(actor=actor),
        lambda world, _out: ("list",),
        _ids,
        "list",
    ),
    Read(
        "list --province hebei",
        lambda engine, world, actor: engine.list(province=HEBEI, actor=actor),
        lambda world, _out: ("list", "--province", HEBEI),
        _ids,
        "asked",
    ),
    Read(
        "pilots",
        lambda engine, world, actor: engine.pilots(actor=actor),
        lambda world, _out: ("pilots",),
        _ids,
        "list",
    ),
    Read(
        "pilots --province hebei",
        lambda engine, world, actor: engine.pilots(province="130000", actor=actor),
        lambda world, _out: ("pilots", "--province", "130000"),
        _ids,
        "asked",
    ),
    Read(
        "deadlines",
        lambda engine, world, actor: engine.timers(actor=actor),
        lambda world, _out: ("deadlines",),
        _ids,
        "list",
    ),
    Read(
        "notices",
        lambda engine, world, actor: engine.notices(actor=actor),
        lambda world, _out: ("notices",),
        _ids,
        "list",
    ),
    *(
        _notice_read(name)
        for name in (
            "to-gov-about-hebei",
            "to-ndrc-about-hebei",
            "shortfall-to-drc-hebei",
            "summary-to-ndrc",
        )
    ),
]
READS = {read.name: read for read in _TABLE}
# The command line passes --as to the same Engine calls: its table leaves out the API's
# `get` (`show` is the command line's) and two of the four notices, whose rule the API's
# table covers, to keep to a subprocess per case.
CLI_READS = {
    name: read
    for name, read in READS.items()
    if name not in ("get", "notices show to-gov-about-hebei", "notices show shortfall-to-drc-hebei")
}


def expected(read: Read, world: World, reads: str | int) -> Hashable | int:
    """What a reader of ``reads`` (ALL, a province, or INVALID) gets from ``read``: the
    view it must see, or the exit code of its refusal."""
    if reads == INVALID:
        return INVALID
    full = world.full[read.name]
    if reads == ALL:
        return full
    if read.scope == "one":
        return full if read.owner(world) == reads else NOT_PERMITTED
    if read.scope == "asked":
        return full if reads == HEBEI else NOT_PERMITTED
    assert isinstance(full, tuple)
    return tuple(i for i in full if world.owner[i] in (reads, EVERYONE))


def rows(engine: sa.Engine) -> dict[str, list[str]]:
    """Every row of every table: a read, refused or not, writes nothing."""
    with engine.connect() as connection:
        return {
            name: sorted(
                repr(tuple(row)) for row in connection.execute(sa.text(f'SELECT * FROM "{name}"'))
            )
            for name in sorted(sa.inspect(connection).get_table_names())
        }


def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database for one test module (``request.param``: sqlite or postgres): the
    table's cases only read, so they share it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('read_scope') / 'peakpilot.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    name = f"peakpilot_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
