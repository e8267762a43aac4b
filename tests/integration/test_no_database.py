"""The Python API on an SQLite file that is not there: every call but ``init`` raises
NotFound (not initialised) and creates nothing, as the CLI's commands do (DESIGN.md
section 4: a read-only command never creates a database file). The check is the
transaction's, so a backend meets it whichever call it makes first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from peakpilot import Engine, FrozenClock, NotFound
from peakpilot.notifications.channels import FileChannel
from tests.conftest import BEFORE_DEADLINE

ID = "01HDZ3Q9V6X8J5KPRW2M4T7BNC"

CALLS: dict[str, Callable[[Engine], Any]] = {
    "list": lambda e: e.list(),
    "get": lambda e: e.get(ID),
    "show": lambda e: e.show(ID),
    "history": lambda e: e.history(ID),
    "board": lambda e: e.board("2023-first"),
    "timers": lambda e: e.timers(),
    "notices": lambda e: e.notices(),
    "notice": lambda e: e.notice(ID),
    "pilots": lambda e: e.pilots(),
    "materials": lambda e: e.materials(ID),
    "material": lambda e: e.material(ID),
    "program_diff": lambda e: e.program_diff(1, 2),
    "check_templates": lambda e: e.check_templates(),
    "program": lambda e: e.program,
    "program_versions": lambda e: e.program_versions(),
    "program_text": lambda e: e.program_text(),
    "verify_audit": lambda e: e.verify_audit(),
    "next_due_at": lambda e: e.next_due_at(),
    "tick": lambda e: e.tick(),
    "nominate": lambda e: e.nominate(
        "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
    ),
    "fire": lambda e: e.fire(ID, "submit_for_approval", "drc:hebei"),
    "retry_notice": lambda e: e.retry_notice(ID),
    "attach": lambda e: e.attach(ID, b"%PDF-1.4\n", kind="plan", actor="drc:hebei"),
    "open_batch": lambda e: e.open_batch(
        "ndrc", "2024-second", deadline=BEFORE_DEADLINE + timedelta(days=300), quotas={"hebei": 1}
    ),
}


def engine_on(path: Path) -> Engine:
    return Engine(f"sqlite:///{path}", clock=FrozenClock(BEFORE_DEADLINE))


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_call_on_a_missing_sqlite_file_is_not_found_and_creates_nothing(
    tmp_path: Path, call: Callable[[Engine], Any]
) -> None:
    not_initialised = r"is not initialised: there is no file .*peakpilot\.db"
    with (
        engine_on(tmp_path / "peakpilot.db") as e,
        pytest.raises(NotFound, match=not_initialised),
    ):
        call(e)
    assert list(tmp_path.iterdir()) == []


def test_dispatching_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with engine_on(data / "peakpilot.db") as e, pytest.raises(NotFound):
        e.dispatch_notices(
            FileChannel(tmp_path / "outbox", "peakpilot <noreply@peakpilot.invalid>")
        )
    assert list(tmp_path.iterdir()) == [data] and list(data.iterdir()) == []


def test_init_creates_it_and_the_same_engine_then_reads(tmp_path: Path) -> None:
    """The engine does not remember that the file was missing."""
    with engine_on(tmp_path / "peakpilot.db") as e:
        with pytest.raises(NotFound):
            e.list()
        e.init()
        assert e.list() == []
        assert e.board("2023-first").batch == "2023-first"


def test_sqlite_in_memory_and_uri_forms(tmp_path: Path) -> None:
    """In memory there is no file to look for; an SQLite URI names its file."""
    memory = Engine("sqlite://", clock=FrozenClock(BEFORE_DEADLINE))
    with memory as e, pytest.raises(NotFound, match="holds no programme"):
        e.list()
    path = tmp_path / "named by uri.db"
    uri = f"sqlite:///file:{path.as_posix().replace(' ', '%20')}?uri=true"
    with Engine(uri, clock=FrozenClock(BEFORE_DEADLINE)) as e:
        with pytest.raises(NotFound, match="not initialised"):
            e.list()
        assert not path.exists()
        e.init()
        assert e.list() == []
    assert path.is_file()
