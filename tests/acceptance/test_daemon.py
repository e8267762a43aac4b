"""The daemon as a real process (issue 4, DESIGN.md sections 3-4).

``python -m peakpilot --db URL daemon`` runs on the system clock against a database
prepared through the Python API (also on the system clock): ``init``, one ``tick`` to
close the 2023 batch, then a follow-up batch whose deadline is a few seconds ahead. Every
wait polls the database or the daemon's log against a generous deadline, never a fixed
sleep; measured delays are printed (``pytest -s``) with the prefix ``MEASURED``.

These are the few things only a real process shows: APScheduler firing on the wall
clock, signals, exit codes, the log on stdout, the SQLite lock dying with its process,
two daemons sharing PostgreSQL. The daemon's logic (the wake-up re-armed at the next due
time, the catch-up after downtime, dispatch, a stop honoured, the reconnection backoff)
is tested on simulated time in ``tests/integration/test_daemon_jobs.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from peakpilot import Engine, Nomination

T = TypeVar("T")
SWEEP_SECONDS = "1"
STARTED = "daemon started"


# -- helpers ---------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    limit = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > limit:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """One ``peakpilot daemon`` subprocess whose stdout and stderr go to a file."""

    def __init__(
        self,
        url: str,
        tmp_path: Path,
        *args: str,
        name: str = "daemon",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
        environment.update(
            PEAKPILOT_SWEEP_SECONDS=SWEEP_SECONDS,
            PEAKPILOT_OUTBOX_DIR=str(tmp_path / "outbox"),
            **(env or {}),
        )
        self.command = [sys.executable, "-m", "peakpilot", "--db", url, *args]
        self.started_at = datetime.now(UTC)
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in wait())
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=environment, text=True
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    @property
    def lines(self) -> list[str]:
        return self.log.splitlines()

    def wait_started(self, timeout: float = 20) -> float:
        """Seconds from spawn until the daemon logged that it started."""
        wait_for(f"{STARTED!r} in the log of {self.command}", self._started, timeout)
        return (datetime.now(UTC) - self.started_at).total_seconds()

    def _started(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon exited {self.process.returncode}:\n{self.log}")
        return STARTED in self.log

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM, then the exit code and the seconds it took.

        The job that produced the outcome a test waited for may still be running (say,
        re-arming the wake-up): the daemon finishes it and exits 0 all the same."""
        begun = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.wait(10)
            raise AssertionError(f"no exit within {timeout}s of SIGTERM:\n{self.log}") from None
        return code, time.monotonic() - begun

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.wait(10)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait(10)
        self._log.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons with ``daemons(url, *args)``; any left running are killed after."""
    started: list[Daemon] = []

    def start(
        url: str, *args: str, name: str = "daemon", env: dict[str, str] | None = None
    ) -> Daemon:
        d = Daemon(url, tmp_path, *(args or ("daemon",)), name=name, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.cleanup()


def prepare(url: str) -> Engine:
    """An initialised database on the system clock, the 2023 batch's deadline work done."""
    engine = Engine(url)
    engine.init()
    report = engine.tick()
    assert [o.kind for o in report.outcomes][-1] == "deadline"
    assert engine.board("2023-first").status == "closed"
    return engine


def open_soon(engine: Engine, seconds: float, batch: str = "soon", **quotas: int) -> datetime:
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    engine.open_batch("ndrc", batch, deadline=deadline, quotas=quotas or {"hebei": 2, "shanxi": 1})
    assert [t.kind for t in engine.timers(batch)] == ["deadline"]
    return deadline


def walk(
    engine: Engine, name: str, state: str, province: str = "hebei", batch: str = "soon"
) -> Nomination:
    """A nomination of ``batch`` walked to ``state`` by its rightful actors."""
    n = engine.nominate(
        f"drc:{province}",
        province=province,
        kind="city",
        name=name,
        level="prefecture",
        batch=batch,
    )
    steps = [
        ("submit_for_approval", "drc"),
        ("approve", "gov"),
        ("submit", "drc"),
        ("confirm", "ndrc"),
    ]
    order = ("drafted", "provincial_approval", "approved", "submitted", "confirmed")
    for event, role in steps[: order.index(state)]:
        n = engine.fire(n.id, event, "ndrc" if role == "ndrc" else f"{role}:{province}")
    assert n.state == state
    return n


def the_cast(engine: Engine) -> tuple[list[Nomination], list[Nomination]]:
    """Nominations of batch ``soon``: those the deadline lapses, and those it leaves."""
    lapsing = [
        walk(engine, "唐山市", "drafted"),
        walk(engine, "保定市", "provincial_approval"),
        walk(engine, "太原市", "approved", "shanxi"),
    ]
    kept = [walk(engine, "邯郸市", "submitted"), walk(engine, "沧州市", "confirmed")]
    return lapsing, kept


def lapse_records(engine: Engine) -> Counter[str]:
    with engine.database.engine.connect() as connection:
        return Counter(
            connection.execute(
                sa.text("SELECT nomination_id FROM audit_records WHERE event = 'lapse'")
            ).scalars()
        )


def lapsed(engine: Engine, nominations: list[Nomination]) -> bool:
    return all(engine.get(n.id).state == "follow_up_batch" for n in nominations)


def deadline_sent(engine: Engine, batch: str = "soon") -> bool:
    """The deadline's notices (shortfall, summary) of ``batch`` exist and are all sent.

    (Not the batch's ``batch_opened`` notices: a daemon SIGKILLed while sending them
    leaves them leased to it for a while, by design.)"""
    kinds = {"shortfall", "deadline_summary"}
    statuses = {n.status for n in engine.notices() if n.batch == batch and n.kind in kinds}
    return statuses == {"sent"}


def measured(what: str, seconds: float) -> None:
    print(f"\nMEASURED {what}: {seconds * 1000:.1f} ms")


# -- on SQLite ---------------------------------------------------------------------------


def test_the_daemon_lapses_on_time_logs_each_action_and_stops_on_sigterm(
    sqlite_url: str, daemons: Callable[..., Daemon]
) -> None:
    """The batch opens once the daemon runs (its sweep finds the new deadline), so the
    time the daemon takes to start, slow under load, is not part of the deadline's lead."""
    with prepare(sqlite_url) as engine:
        daemon = daemons(sqlite_url)
        daemon.wait_started()
        wait_for("the catch-up", lambda: "caught up" in daemon.log, timeout=20)
        deadline = open_soon(engine, 3)
        lapsing, kept = the_cast(engine)
        assert datetime.now(UTC) < deadline, "setup took too long to test firing on time"
        assert lapse_records(engine) == Counter(), "lapsed before the deadline"

        wait_for("the lapse", lambda: lapsed(engine, lapsing), timeout=3 + 20)
        delays = []
        for n in lapsing:
            record = engine.history(n.id)[-1]
            assert (record.event, record.actor) == ("lapse", "system")
            delays.append((record.at - deadline).total_seconds())
        measured("lapse delay after the deadline (max)", max(delays))
        assert min(delays) >= 0, f"lapsed before the deadline: {delays}"
        assert max(delays) < 2, f"lapsed {max(delays):.3f}s after the deadline"
        for n in kept:
            assert engine.get(n.id) == n
        assert engine.board("soon").status == "closed"
        wait_for("the deadline's notices to be sent", lambda: deadline_sent(engine), timeout=10)

        code, seconds = daemon.terminate()
        measured("SIGTERM to exit", seconds)
        assert code == 0, daemon.log
        assert seconds < 10
        lines = daemon.lines
        actions = [line for line in lines if "closed the batch" in line]
        assert len(actions) == 1, lines
        assert "batch=soon" in actions[0] and "lapsed=3" in actions[0], actions
        # the confirmed one was confirmed after 2025: its 2025 milestone is not announced
        # as approaching (DESIGN 2b), and its 2030 one is years ahead
        assert not [line for line in lines if "milestone" in line], lines
        assert sum(STARTED in line for line in lines) == 1, lines
        assert "daemon stopped" in lines[-1], lines
        assert not [line for line in lines if " error " in line or "Traceback" in line], lines
        assert lapse_records(engine) == Counter(n.id for n in lapsing)
        assert engine.verify_audit().ok


class GatedInbox:
    """An aiosmtpd handler that holds the first message's DATA until the test opens the
    gate: the daemon is then provably in the middle of sending."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        self.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_while_the_deadline_work_is_in_hand_finishes_it_and_exits_0(
    sqlite_url: str, daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    """The deadline's tick has committed and its notices are being sent (the SMTP server
    holds the message) when SIGTERM arrives: the daemon finishes the send and exits 0
    within 10 seconds."""
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("ndrc:\n  email: [climate@ndrc.example.cn]\n", encoding="utf-8")
    inbox = GatedInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with prepare(sqlite_url) as engine:
            open_soon(engine, 3)
            lapsing, _ = the_cast(engine)
            with engine.database.engine.begin() as connection:  # the cast's letters: done
                connection.execute(sa.text("UPDATE notices SET status = 'sent'"))
            daemon = daemons(
                sqlite_url,
                env={
                    "PEAKPILOT_CONTACTS": str(contacts),
                    "PEAKPILOT_NOTIFY_CHANNEL": "smtp",
                    "PEAKPILOT_SMTP_HOST": "127.0.0.1",
                    "PEAKPILOT_SMTP_PORT": str(port),
                },
            )
            daemon.wait_started()
            wait_for("the deadline summary at the SMTP server", inbox.entered.is_set, 3 + 10)
            assert inbox.recipients == [["climate@ndrc.example.cn"]]
            assert lapsed(engine, lapsing)  # the tick committed; its dispatch is in hand
            daemon.process.send_signal(signal.SIGTERM)
            begun = time.monotonic()
            # the signal has landed while the message is still held
            wait_for(
                "the daemon to log the signal", lambda: "stopping signal=SIGTERM" in daemon.log, 10
            )
            inbox.gate.set()
            try:
                code = daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"no exit within 10 s of SIGTERM sent during the deadline work:\n{daemon.log}"
                ) from None
            measured("SIGTERM during work to exit", time.monotonic() - begun)
            assert code == 0, daemon.log
            summary = [n for n in engine.notices() if n.kind == "deadline_summary"]
            assert [n.status for n in summary if n.batch == "soon"] == ["sent"]
    finally:
        inbox.gate.set()
        controller.stop()


@pytest.mark.parametrize(
    "arguments",
    [("daemon", "--log-format", "json"), ("--json", "daemon"), ("daemon", "--json")],
    ids=["log-format", "json-before", "json-after"],
)
def test_json_logs_are_one_object_per_line(
    sqlite_url: str, daemons: Callable[..., Daemon], arguments: tuple[str, ...]
) -> None:
    """--json is accepted before and after `daemon`, as everywhere, and means JSON lines."""
    with prepare(sqlite_url) as engine:
        open_soon(engine, 3)
        lapsing, _ = the_cast(engine)
        daemon = daemons(sqlite_url, *arguments)
        daemon.wait_started()
        wait_for("the lapse", lambda: lapsed(engine, lapsing), timeout=3 + 10)
        wait_for("the deadline's notices to be sent", lambda: deadline_sent(engine), timeout=10)
        code, _ = daemon.terminate()
        assert code == 0, daemon.log
    documents = []
    for line in daemon.lines:
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON object: {line!r}\n{daemon.log}") from None
        assert isinstance(document, dict), line
        assert {"at", "level", "message"} <= document.keys(), line
        # one zone for every line and every instant in it: UTC, written with Z
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", document["at"]), line
        assert "+08:00" not in line and "+00:00" not in line, line
        documents.append(document)
    actions = [d for d in documents if d["message"] == "closed the batch"]
    assert len(actions) == 1, documents
    assert (actions[0]["batch"], actions[0]["lapsed"]) == ("soon", 3)
    assert documents[0]["message"] == STARTED and documents[-1]["message"] == "daemon stopped"


def test_one_daemon_per_sqlite_database_and_the_lock_dies_with_the_process(
    sqlite_url: str, daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    prepare(sqlite_url).close()
    lock = Path(sqlite_url.removeprefix("sqlite:///") + ".daemon.lock")
    first = daemons(sqlite_url, name="first")
    first.wait_started()
    assert lock.read_text() == str(first.process.pid)
    before = database_files(tmp_path)

    second = daemons(sqlite_url, name="second")
    code = second.wait(timeout=30)
    assert code == 5, second.log
    lines = second.lines
    assert len(lines) == 1, lines
    assert "already running" in lines[0] and str(first.process.pid) in lines[0], lines
    assert first.process.poll() is None, "the refused daemon stopped the running one"
    assert database_files(tmp_path) == before, "the refused daemon left something"
    assert lock.read_text() == str(first.process.pid)

    first.kill()
    killed = time.monotonic()
    third = daemons(sqlite_url, name="third")
    third.wait_started(timeout=20)
    measured("SIGKILL to a new daemon started", time.monotonic() - killed)
    assert not [line for line in third.lines if "already running" in line], third.log
    code, _ = third.terminate()
    assert code == 0, third.log
    assert not lock.exists(), "a daemon that stopped leaves no lock file"


def beside_the_database(folder: Path) -> set[str]:
    """The files in the database's folder, but the tests' own daemon logs."""
    return {path.name for path in folder.iterdir() if path.suffix != ".log"}


def database_files(folder: Path) -> set[str]:
    """The database's files and those made beside it (not the running daemon's outbox)."""
    return {path.name for path in folder.iterdir() if path.name.startswith("peakpilot.db")}


@pytest.mark.parametrize("database", ["none", "no programme", "no folder"])
def test_a_daemon_refused_before_it_starts_leaves_nothing(tmp_path: Path, database: str) -> None:
    """No database file, no lock file (DESIGN 4: a read never creates a database; a
    daemon with nothing to guard makes no guard)."""
    url = "sqlite:///peakpilot.db"  # in the daemon's working folder
    if database == "no programme":  # an SQLite file, but not one init made
        sqlite3.connect(tmp_path / "peakpilot.db").execute("CREATE TABLE t (x)").connection.close()
    elif database == "no folder":
        url = "sqlite:///data/peakpilot.db"
    before = beside_the_database(tmp_path)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "peakpilot", "--db", url, "daemon"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 3, proc
    assert len(proc.stderr.splitlines()) == 1 and "peakpilot init" in proc.stderr, proc.stderr
    assert beside_the_database(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--now", "2023-11-15T00:00:00+08:00", "daemon"), {}),
        (("daemon", "--now", "2023-11-15T00:00:00+08:00"), {}),
        (("daemon",), {"PEAKPILOT_NOW": "2023-11-15T00:00:00+08:00"}),
    ],
    ids=["--now before", "--now after", "PEAKPILOT_NOW"],
)
def test_the_daemon_refuses_a_simulated_clock(
    sqlite_url: str, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    prepare(sqlite_url).close()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    environment.update(env, PEAKPILOT_OUTBOX_DIR=str(tmp_path / "outbox"))
    proc = subprocess.run(
        [sys.executable, "-m", "peakpilot", "--db", sqlite_url, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


# -- on PostgreSQL ------------------------------------------------------------------------

BATCHES = 200
PILOTS = 40


@pytest.mark.postgres
def test_two_daemons_on_postgresql_do_each_timer_exactly_once(
    postgres_url: str, daemons: Callable[..., Daemon]
) -> None:
    with prepare(postgres_url) as engine:
        provinces = list(engine.program.provinces)
        # PILOTS confirmed pilots whose implementation plans are overdue when the daemons
        # start (confirmed now, their plan's due day is moved into the past: 120 days'
        # wait is no test; their reminders go, as on a daemon that was down that long)
        open_soon(engine, 3600, "pilots", hebei=PILOTS)
        pilots = [walk(engine, f"试点{i:03d}", "confirmed", batch="pilots") for i in range(PILOTS)]
        with engine.database.engine.begin() as c:
            c.execute(sa.text("DELETE FROM timers WHERE kind = 'plan_reminder'"))
            c.execute(
                sa.text("UPDATE timers SET due_at = :t WHERE kind = 'plan_due'"),
                {"t": datetime.now(UTC) - timedelta(hours=1)},
            )
        # BATCHES batches whose deadlines fall due while both daemons run
        base = datetime.now(UTC) + timedelta(seconds=8)
        drafts = {}
        for i in range(BATCHES):
            batch, province = f"b{i:03d}", provinces[i % len(provinces)]
            # setup slower than planned (a loaded machine): a deadline just ahead instead,
            # with time to nominate before it
            deadline = max(
                base + timedelta(milliseconds=10 * i), datetime.now(UTC) + timedelta(seconds=3)
            )
            engine.open_batch("ndrc", batch, deadline=deadline, quotas={province: 1})
            drafts[batch] = walk(engine, f"市{i:03d}", "drafted", province, batch)
        last = deadline
        due = [t for t in engine.timers() if t.due_at <= last]
        assert len(due) == BATCHES + PILOTS
        if datetime.now(UTC) >= base:
            print("\nNOTE setup outlasted the deadlines: the daemons race at start instead")

        a = daemons(postgres_url, name="a")
        b = daemons(postgres_url, name="b")
        a.wait_started()
        b.wait_started()

        def all_done() -> bool:
            with engine.database.engine.connect() as c:
                left = c.execute(
                    sa.text(
                        "SELECT count(*) FROM timers WHERE status = 'pending' AND due_at <= :t"
                    ),
                    {"t": last},
                ).scalar()
                unsent = c.execute(
                    # the 2023 batch, closed years late at start, keeps its letters suppressed
                    sa.text(
                        "SELECT count(*) FROM notices WHERE status NOT IN ('sent', 'suppressed')"
                    )
                ).scalar()
            return left == 0 and unsent == 0

        wait_for("every due timer done and every notice sent", all_done, timeout=60)
        measured("last deadline to all done", (datetime.now(UTC) - last).total_seconds())
        for d in (a, b):
            code, _ = d.terminate()
            assert code == 0, d.log

        with engine.database.engine.connect() as c:
            timers = c.execute(
                sa.text("SELECT unique_key, kind, status, done_at FROM timers")
            ).all()
            notices = c.execute(
                sa.text(
                    "SELECT kind, batch_id, actor, nomination_id, attempts FROM notices "
                    "WHERE status <> 'suppressed'"  # the 2023 batch's, closed years late
                )
            ).all()
        done = [t for t in timers if t.status == "done"]
        assert len({t.unique_key for t in done}) == len(done)
        for batch in drafts:
            assert (f"{batch}/deadline", "deadline", "done") in {
                (t.unique_key, t.kind, t.status) for t in timers
            }
        for pilot in pilots:
            by_key = {t.unique_key: t.status for t in timers}
            assert by_key[f"{pilot.id}/plan/due"] == "done"
            assert by_key[f"{pilot.id}/milestone/2030"] == "pending"

        # each batch's lapse exactly once, and each nomination's
        assert lapse_records(engine) == Counter(n.id for n in drafts.values())
        for batch, n in drafts.items():
            assert engine.get(n.id).state == "follow_up_batch", batch
            assert engine.board(batch).status == "closed"

        # no duplicate notices, each sent exactly once
        occasions = Counter((n.kind, n.batch_id, n.actor, n.nomination_id) for n in notices)
        assert [o for o, count in occasions.items() if count > 1] == []
        kinds = Counter(n.kind for n in notices)
        of_b = Counter(n.kind for n in notices if n.batch_id in drafts)
        assert of_b["deadline_summary"] == BATCHES
        assert of_b["shortfall"] == 2 * BATCHES
        assert kinds["plan_overdue"] == 2 * PILOTS
        assert {n.attempts for n in notices} == {1}

        # and the logs agree: each timer's action logged once, by one daemon or the other
        logs = {"a": a.lines, "b": b.lines}
        closed = {k: sum("closed the batch" in line for line in v) for k, v in logs.items()}
        overdue = {k: sum("sent plan_overdue" in line for line in v) for k, v in logs.items()}
        print(f"\nMEASURED split of the work: batches closed {closed}, plans overdue {overdue}")
        assert sum(closed.values()) == BATCHES
        assert sum(overdue.values()) == PILOTS
        for name, lines in logs.items():
            assert not [line for line in lines if " error " in line], (name, lines)
        assert engine.verify_audit().ok


@pytest.mark.postgres
def test_a_daemon_started_before_its_database_waits_for_it_and_stops_on_sigterm(
    postgres_admin: sa.Engine, daemons: Callable[..., Daemon]
) -> None:
    name = f"peakpilot_test_late_{os.getpid()}_{time.monotonic_ns()}"
    url = postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    waiting = daemons(url)
    gives_up = daemons(url, name="stopped-while-waiting")
    wait_for("the daemons to retry", lambda: "database unavailable" in gives_up.log, 20)
    assert gives_up.terminate()[0] == 0  # a signal while waiting is a clean stop
    # prepared under another name, then renamed: the daemon never sees it half-initialised
    staging = postgres_admin.url.set(database=f"{name}_staging")
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}_staging"')
    try:
        prepare(staging.render_as_string(hide_password=False)).close()
        with postgres_admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}_staging" RENAME TO "{name}"')
        waiting.wait_started(timeout=30)
        assert "database unavailable, retrying" in waiting.log
        code, seconds = waiting.terminate()
        assert (code, seconds < 10) == (0, True), waiting.log
    finally:
        waiting.cleanup()
        with postgres_admin.connect() as connection:
            for database in (name, f"{name}_staging"):
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def status(url: str) -> tuple[int, dict[str, Any]]:
    """``peakpilot status --json`` with the daemons' sweep period: exit code, document."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "peakpilot", "--db", url, "status", "--json"],
        capture_output=True,
        text=True,
        env={**environment, "PEAKPILOT_SWEEP_SECONDS": SWEEP_SECONDS},
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.postgres
def test_status_lists_each_daemon_and_finds_a_dead_one(
    postgres_url: str, daemons: Callable[..., Daemon]
) -> None:
    prepare(postgres_url).close()
    first, second = daemons(postgres_url, name="first"), daemons(postgres_url, name="second")
    first.wait_started()
    second.wait_started()
    code, document = status(postgres_url)
    assert (code, document["healthy"], document["problems"]) == (0, True, [])
    pids = {d["pid"] for d in document["daemons"]}
    assert pids == {first.process.pid, second.process.pid}
    assert {d["host"] for d in document["daemons"]} == {socket.gethostname()}
    assert {"started_at", "last_seen"} <= document["daemons"][0].keys()

    first.kill()  # no clean stop: its entry goes silent
    time.sleep(4 * float(SWEEP_SECONDS) + 0.5)
    code, document = status(postgres_url)
    assert code == 8 and document["healthy"] is False
    [problem] = document["problems"]
    assert problem.startswith(f"daemon {socket.gethostname()}:{first.process.pid} has been silent")
    assert second.terminate()[0] == 0  # a clean stop leaves the registry
    code, document = status(postgres_url)
    assert [d["pid"] for d in document["daemons"]] == [first.process.pid]
    restarted = daemons(postgres_url, name="restarted")
    restarted.wait_started()
    code, document = status(postgres_url)  # it replaced the dead one's entry
    assert (code, [d["pid"] for d in document["daemons"]]) == (0, [restarted.process.pid])


def get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in:\n{text}")


UNIT = Path(__file__).parents[2] / "deploy" / "peakpilot.service"


def unit_arguments(port: int) -> list[str]:
    """The arguments the unit file's ExecStart gives peakpilot, on ``port``."""
    [line] = [x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart=")]
    arguments = line.removeprefix("ExecStart=").split()[1:]
    return [re.sub(r":\d+$", f":{port}", a) if a.startswith("127.0.0.1:") else a for a in arguments]


@pytest.mark.slow
def test_a_daemon_is_scraped_while_it_works_through_its_timers(
    sqlite_url: str, daemons: Callable[..., Daemon], full_run: bool
) -> None:
    """The unit file's command line (deploy/peakpilot.service, on a free port): /metrics
    and /healthz answer while the daemon works through a backlog of due milestone timers
    (10,000 in the full run)."""
    import sqlite3

    from benchmarks import seed
    from benchmarks.workload import sqlite_stamp
    from peakpilot.workflow.ids import new_id

    count = 10_000 if full_run else 1_000
    prepare(sqlite_url).close()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    owners = seed.sqlite_nominations(path, 100, keep=True)
    due = sqlite_stamp(datetime.now(UTC) - timedelta(minutes=1))
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO timers (id, unique_key, kind, due_at, batch_id, province, "
            "nomination_id, payload, status, created_at) VALUES (?, ?, 'milestone', ?, "
            "'2023-first', ?, ?, '{\"year\": 2025}', 'pending', ?)",
            [
                (new_id(), f"{o.id}/backlog/{i}", due, o.province, o.id, due)
                for i in range(count)
                for o in [owners[i % len(owners)]]
            ],
        )
    port = free_port()
    worker = daemons(sqlite_url, *unit_arguments(port))
    worker.wait_started()
    base = f"http://127.0.0.1:{port}"
    code, body = get(f"{base}/healthz")
    assert code in (200, 503) and "timers" in json.loads(body)
    seen_pending = []
    limit = time.monotonic() + (600 if full_run else 120)
    while True:
        code, text = get(f"{base}/metrics")
        assert code == 200
        seen_pending.append(metric(text, "peakpilot_timers_pending"))
        if seen_pending[-1] == 0 and metric(text, 'peakpilot_notices{status="pending"}') == 0:
            break
        assert time.monotonic() < limit, f"still {seen_pending[-1]} timers pending"
        time.sleep(0.2)
    assert max(seen_pending) > 0  # scraped while it worked, not only after
    assert metric(text, "peakpilot_tick_seconds_count") >= 1
    assert metric(text, "peakpilot_dispatch_seconds_count") >= 1
    assert metric(text, "peakpilot_daemons") == 1
    assert metric(text, 'peakpilot_transitions_total{event="nominate"}') >= 100
    code, body = get(f"{base}/healthz")
    assert (code, json.loads(body)["healthy"]) == (200, True), body
    assert get(f"{base}/nothing")[0] == 404
    assert worker.terminate()[0] == 0


class Inbox:
    """An aiosmtpd handler that keeps every message's envelope recipients and headers."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str, str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        import email
        import email.policy

        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(
            (list(envelope.rcpt_tos), str(parsed["Message-ID"]), str(parsed["X-Peakpilot-Actor"]))
        )
        return "250 OK"


def test_a_notice_made_without_contacts_is_delivered_by_the_daemon_once_they_are_fixed(
    sqlite_url: str, daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    """Made by a clerk's process with no contacts; the daemon's file lacks the actor, so
    it fails and is retried; the file is fixed, the operator retries it, and the daemon
    delivers it to the SMTP server, once, to every address."""
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("ndrc:\n  email: [climate@ndrc.example.cn]\n", encoding="utf-8")
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with prepare(sqlite_url) as engine:
            open_soon(engine, 3600, batch="later")
            n = walk(engine, "保定市", "provincial_approval", batch="later")
            [notice] = [x for x in engine.notices() if x.nomination == n.id]
            assert notice.recipient == "gov:hebei"
            daemon = daemons(
                sqlite_url,
                env={
                    "PEAKPILOT_CONTACTS": str(contacts),
                    "PEAKPILOT_NOTIFY_CHANNEL": "smtp",
                    "PEAKPILOT_SMTP_HOST": "127.0.0.1",
                    "PEAKPILOT_SMTP_PORT": str(port),
                },
            )
            daemon.wait_started()
            assert "no address for" in daemon.log  # the start's warning
            wait_for(
                "the notice to fail for want of an address",
                lambda: engine.notice(notice.id).notice.status == "failed",
                20,
            )
            assert engine.notice(notice.id).notice.last_error == "no address for gov:hebei"
            contacts.write_text(
                "ndrc:\n  email: [climate@ndrc.example.cn]\n"
                "gov:hebei:\n  email: [office@hebei.example.cn, duty@hebei.example.cn]\n",
                encoding="utf-8",
            )
            engine.retry_notice(notice.id)  # the operator's `notices retry ID`
            wait_for(
                "the notice to be sent",
                lambda: engine.notice(notice.id).notice.status == "sent",
                20,
            )
            time.sleep(4 * float(SWEEP_SECONDS))  # further rounds send it no more
            assert daemon.terminate()[0] == 0
    finally:
        controller.stop()
    mine = [m for m in inbox.messages if m[1] == f"<{notice.id}@peakpilot>"]
    assert mine == [
        (
            ["office@hebei.example.cn", "duty@hebei.example.cn"],
            f"<{notice.id}@peakpilot>",
            "gov:hebei",
        )
    ]


def test_json_and_plain_log_lines_together_are_a_usage_error(sqlite_url: str) -> None:
    from tests.acceptance.test_cli import fails

    prepare(sqlite_url).close()
    proc = fails(2, "daemon", "--json", "--log-format", "plain", db=sqlite_url, now=None)
    assert "--json logs JSON lines" in proc.stderr
