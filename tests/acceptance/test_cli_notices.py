"""Acceptance tests of the ``notices`` commands and the contacts file (DESIGN.md section 4).

``python -m peakpilot`` runs as a real subprocess against a real database (an SQLite file;
a fresh PostgreSQL database too for the tests that take ``db_url``), with the contacts file
given by ``PEAKPILOT_CONTACTS``; SMTP delivery goes to a real aiosmtpd server on loopback.
Checked is what a script or a clerk sees: exit codes, one JSON document with ``--json``
(nothing on failure), a one-line error, the outbox's rows and the messages delivered.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

BEFORE = "2023-10-20T09:00:00+08:00"
AN_HOUR_LATER = "2023-10-20T10:00:00+08:00"
EIGHT_HOURS = timedelta(hours=8)
NOTICE_FIELDS = {
    "id",
    "kind",
    "recipient",
    "locale",
    "subject",
    "status",
    "attempts",
    "created_at",
    "sent_at",
}

# gov:hebei and drc:guangdong have no entry: their notices are in zh-CN, and no address
# is found for them when they are dispatched.
CONTACTS = """\
# who receives the programme's notices
ndrc:
  email: [climate@ndrc.example.cn]
  locale: en
drc:hebei:
  email: [drc@hebei.example.cn, deputy@hebei.example.cn]
gov:440000:
  email: [office@gd.example.cn]
  locale: en
"""
HEBEI = "唐山市"
GUANGDONG = "深圳市"
# (kind, recipient, locale) of the notices of Hebei's submit_for_approval, approve, submit
# (one notice per actor: the recipient is the actor, its addresses the dispatcher's)
HEBEI_NOTICES = [
    ("sent_for_approval", "gov:hebei", "zh-CN"),
    ("approved", "drc:hebei", "zh-CN"),
    ("submitted", "ndrc", "en"),
]
# ... and of Guangdong's submit_for_approval
GUANGDONG_NOTICES = [("sent_for_approval", "gov:guangdong", "en")]
ADDRESSES = {
    "ndrc": ["climate@ndrc.example.cn"],
    "drc:hebei": ["drc@hebei.example.cn", "deputy@hebei.example.cn"],
    "gov:guangdong": ["office@gd.example.cn"],
}


# -- helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A database with notices, and the environment its commands run in."""

    url: str
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    hebei: str = ""
    guangdong: str = ""
    notices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outbox(self) -> Path:
        return Path(self.env["PEAKPILOT_OUTBOX_DIR"])


def run(
    setup: Setup,
    *args: str,
    now: str | None = BEFORE,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m peakpilot --db URL [--now NOW] ARGS...`` with only our PEAKPILOT_* vars."""
    command = [sys.executable, "-m", "peakpilot", "--db", setup.url]
    if now is not None:
        command += ["--now", now]
    command += list(args)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    environment.update(setup.env)
    environment.update(env or {})
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=environment,
        cwd=cwd or setup.folder,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"\n$ {' '.join(map(repr, proc.args[3:]))}\nexit {proc.returncode}\n"
        f"stdout: {proc.stdout[:2000]!r}\nstderr: {proc.stderr[:2000]!r}"
    )


def ok(setup: Setup, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = run(setup, *args, **kwargs)
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc


def doc(setup: Setup, *args: str, after: bool = False, **kwargs: Any) -> Any:
    """Run with ``--json`` (before or after the command); stdout must be one document."""
    argv = (*args, "--json") if after else ("--json", *args)
    proc = ok(setup, *argv, **kwargs)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"stdout is not one JSON document ({error}){describe(proc)}") from None


def fails(code: int, setup: Setup, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command that must fail with ``code``: one line on stderr, no traceback, and
    (with ``--json``) nothing on stdout."""
    proc = run(setup, *args, **kwargs)
    assert proc.returncode == code, f"expected exit {code}{describe(proc)}"
    assert "Traceback" not in proc.stderr, describe(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, (
        f"an error must be exactly one line on stderr{describe(proc)}"
    )
    if "--json" in proc.args:
        assert proc.stdout == "", f"with --json, stdout must be empty on failure{describe(proc)}"
    return proc


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


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == EIGHT_HOURS, f"{text!r} is not shown in Beijing time"
    return value


def nominate(setup: Setup, name: str, province: str, level: str, actor: str) -> str:
    document = doc(
        setup,
        "nominate",
        "--province",
        province,
        "--kind",
        "city",
        "--name",
        name,
        "--level",
        level,
        "--as",
        actor,
    )
    return str(document["id"])


def fire(setup: Setup, nomination: str, event: str, actor: str) -> None:
    ok(setup, "fire", nomination, event, "--as", actor)


def prepare(url: str, folder: Path, *, guangdong: bool) -> Setup:
    """``init``, then Hebei's 唐山市 through submit_for_approval, approve and submit (four
    notices) and, with ``guangdong``, Guangdong's 深圳市 sent for approval (one more)."""
    folder.mkdir(parents=True, exist_ok=True)
    contacts = folder / "contacts.yaml"
    contacts.write_text(CONTACTS, encoding="utf-8")
    setup = Setup(
        url,
        folder,
        {"PEAKPILOT_CONTACTS": str(contacts), "PEAKPILOT_OUTBOX_DIR": str(folder / "outbox")},
    )
    ok(setup, "init")
    hebei = nominate(setup, HEBEI, "hebei", "prefecture", "drc:hebei")
    fire(setup, hebei, "submit_for_approval", "drc:hebei")
    fire(setup, hebei, "approve", "gov:130000")
    fire(setup, hebei, "submit", "drc:hebei")
    setup = replace(setup, hebei=hebei)
    if guangdong:
        shenzhen = nominate(setup, GUANGDONG, "440000", "sub_provincial", "drc:guangdong")
        fire(setup, shenzhen, "submit_for_approval", "drc:guangdong")
        setup = replace(setup, guangdong=shenzhen)
    return setup


def by_recipient(notices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n["recipient"]: n for n in notices}


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain text and the HTML of a multipart/alternative message."""
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None, "both a text and an HTML part are expected"
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8", part["Content-Type"]
    return str(plain.get_content()), str(html.get_content())


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


# -- a shared, read-mostly database ----------------------------------------------------


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """An SQLite database with five pending notices (HEBEI_NOTICES + GUANGDONG_NOTICES).
    Only read-only and failing commands may run against it."""
    folder = tmp_path_factory.mktemp("outbox")
    setup = prepare(f"sqlite:///{folder / 'peakpilot.db'}", folder, guangdong=True)
    return replace(setup, notices=doc(setup, "notices"))


@pytest.fixture
def copy(outbox: Setup, tmp_path: Path) -> Setup:
    """A private copy of the shared database, to change."""
    for file in outbox.folder.glob("peakpilot.db*"):
        shutil.copy2(file, tmp_path / file.name)
    return replace(
        outbox,
        url=f"sqlite:///{tmp_path / 'peakpilot.db'}",
        folder=tmp_path,
        env={**outbox.env, "PEAKPILOT_OUTBOX_DIR": str(tmp_path / "outbox")},
    )


# -- listing and showing ---------------------------------------------------------------


def test_notices_json_is_the_outbox_in_creation_order(outbox: Setup) -> None:
    notices = outbox.notices
    assert isinstance(notices, list), f"`notices --json` must print a bare array: {notices}"
    for notice in notices:
        assert isinstance(notice, dict) and notice.keys() >= NOTICE_FIELDS, notice
    assert [(n["kind"], n["recipient"], n["locale"]) for n in notices] == (
        HEBEI_NOTICES + GUANGDONG_NOTICES
    )
    assert len({n["id"] for n in notices}) == len(notices), "notice ids must be unique"
    for notice in notices:
        assert notice["status"] == "pending" and notice["attempts"] == 0, notice
        assert notice["sent_at"] is None, notice
        assert instant(notice["created_at"]) == instant(BEFORE), notice
        assert "\n" not in notice["subject"], notice
    for notice in notices[: len(HEBEI_NOTICES)]:
        assert HEBEI in notice["subject"], notice
    assert GUANGDONG in notices[-1]["subject"], notices[-1]
    assert doc(outbox, "notices", after=True) == notices, "--json after the command differs"


def test_notices_status_filter(outbox: Setup) -> None:
    assert doc(outbox, "notices", "--status", "pending") == outbox.notices
    assert doc(outbox, "notices", "--status", "sent", after=True) == []
    fails(2, outbox, "--json", "notices", "--status", "bogus")


def test_notices_human_table(outbox: Setup) -> None:
    proc = ok(outbox, "notices")
    for notice in outbox.notices:
        assert notice["id"] in proc.stdout, describe(proc)
    assert "pending" in proc.stdout and "gov:guangdong" in proc.stdout, describe(proc)


def test_notices_show_prints_the_rendered_notice(outbox: Setup) -> None:
    approved = by_recipient(outbox.notices)["drc:hebei"]
    proc = ok(outbox, "notices", "show", approved["id"])
    for expected in (approved["subject"], HEBEI, "2023-first", outbox.hebei):
        assert expected in proc.stdout, f"{expected!r} missing{describe(proc)}"

    detail = doc(outbox, "notices", "show", approved["id"], after=True)
    assert isinstance(detail, dict), detail
    assert {k: detail[k] for k in NOTICE_FIELDS} == {k: approved[k] for k in NOTICE_FIELDS}
    for expected in (HEBEI, "2023-first", outbox.hebei):
        assert expected in detail["text"], f"{expected!r} missing from the text"
        assert expected in detail["html"], f"{expected!r} missing from the HTML"
    assert "<html" in detail["html"].lower()


def test_unknown_notice_ids_are_not_found(outbox: Setup) -> None:
    rows = db_rows(outbox.url)
    fails(3, outbox, "notices", "show", "nope")
    fails(3, outbox, "--json", "notices", "show", "0" * 16)
    fails(3, outbox, "notices", "retry", "nope", "--json")
    pending = outbox.notices[0]
    proc = fails(5, outbox, "notices", "retry", pending["id"], "--json")
    assert "pending" in proc.stderr, describe(proc)
    assert db_rows(outbox.url) == rows, "a failed command wrote to the database"


# -- what creates no notice ------------------------------------------------------------


def test_a_refused_fire_creates_no_notice(outbox: Setup) -> None:
    rows = db_rows(outbox.url)
    # send_back needs a reason
    fails(5, outbox, "--json", "fire", outbox.hebei, "send_back", "--as", "ndrc")
    # another province's government
    fails(4, outbox, "fire", outbox.guangdong, "approve", "--as", "gov:hebei")
    assert db_rows(outbox.url) == rows, "a refused fire wrote to the database"


def test_an_invalid_contacts_file_refuses_fire_and_writes_nothing(
    outbox: Setup, tmp_path: Path
) -> None:
    bad = tmp_path / "bad-contacts.yaml"
    bad.write_text(
        CONTACTS + "drc:atlantis:\n  email: [drc@atlantis.example.cn]\n", encoding="utf-8"
    )
    atlantis_line = CONTACTS.count("\n") + 1
    rows = db_rows(outbox.url)
    proc = fails(
        5,
        outbox,
        "--json",
        "fire",
        outbox.guangdong,
        "approve",
        "--as",
        "gov:guangdong",
        env={"PEAKPILOT_CONTACTS": str(bad)},
    )
    assert f"{bad}:{atlantis_line}:" in proc.stderr, describe(proc)
    assert "atlantis" in proc.stderr, describe(proc)

    missing = tmp_path / "no-such-contacts.yaml"
    proc = fails(
        5,
        outbox,
        "fire",
        outbox.guangdong,
        "approve",
        "--as",
        "gov:guangdong",
        env={"PEAKPILOT_CONTACTS": str(missing)},
    )
    assert str(missing) in proc.stderr, describe(proc)
    assert db_rows(outbox.url) == rows, "a fire refused for its contacts file wrote"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param("drc:hebei:\n  email: [drc@hebei.example.cn]\x00\n", id="nul-character"),
        pytest.param("2023-02-30:\n  email: [drc@hebei.example.cn]\n", id="impossible-date"),
    ],
)
def test_an_unreadable_contacts_file_is_refused_not_a_crash(
    outbox: Setup, tmp_path: Path, broken: str
) -> None:
    """DESIGN §4: an invalid contacts file is refused (5), never an unexpected error (1)."""
    bad = tmp_path / "contacts.yaml"
    bad.write_text(broken, encoding="utf-8")
    rows = db_rows(outbox.url)
    proc = fails(
        5,
        outbox,
        "--json",
        "fire",
        outbox.guangdong,
        "approve",
        "--as",
        "gov:guangdong",
        env={"PEAKPILOT_CONTACTS": str(bad)},
    )
    assert str(bad) in proc.stderr, describe(proc)
    assert db_rows(outbox.url) == rows, "a fire refused for its contacts file wrote"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PEAKPILOT_NOTIFY_MAX_ATTEMPTS", "0"), ("PEAKPILOT_NOTIFY_CHANNEL", "pigeon")],
)
def test_invalid_notify_settings_are_refused(
    outbox: Setup, tmp_path: Path, variable: str, value: str
) -> None:
    rows = db_rows(outbox.url)
    folder = tmp_path / "outbox"
    proc = fails(
        5,
        outbox,
        "notices",
        "dispatch",
        "--json",
        env={variable: value, "PEAKPILOT_OUTBOX_DIR": str(folder)},
    )
    assert variable in proc.stderr, describe(proc)
    assert not folder.exists(), "a refused dispatch wrote messages"
    assert db_rows(outbox.url) == rows, "a refused dispatch wrote to the database"


# -- delivery --------------------------------------------------------------------------


def test_file_dispatch_writes_one_eml_per_notice_once(copy: Setup) -> None:
    notices = copy.notices
    report = doc(copy, "notices", "dispatch")
    assert report == {"sent": len(notices), "failed": 0, "dead": 0}, report

    files = sorted(copy.outbox.iterdir())
    # one file per notice, named by its id, and no half-written leftovers
    assert {f.name for f in files} == {f"{n['id']}.eml" for n in notices}, files
    for notice in notices:
        message = read_eml(copy.outbox / f"{notice['id']}.eml")
        assert message["Message-ID"] == f"<{notice['id']}@peakpilot>"
        assert str(message["Subject"]) == notice["subject"]
        text, html = parts(message)
        expected_name = GUANGDONG if notice["recipient"] == "gov:guangdong" else HEBEI
        assert expected_name in text and expected_name in html, notice
        assert message["X-Peakpilot-Actor"] == notice["actor"]
        # every address of the actor in one message; none written for an actor without
        assert message["To"] == (", ".join(ADDRESSES.get(notice["actor"], [])) or None)
    ndrc = by_recipient(notices)["ndrc"]
    message = read_eml(copy.outbox / f"{ndrc['id']}.eml")
    assert message["To"] == "climate@ndrc.example.cn"
    # the Chinese subject survives the trip through an RFC 2047 header
    assert HEBEI in str(message["Subject"])

    written = {f.name: f.read_bytes() for f in files}
    again = doc(copy, "notices", "dispatch", after=True)
    assert again == {"sent": 0, "failed": 0, "dead": 0}, again
    assert {f.name: f.read_bytes() for f in copy.outbox.iterdir()} == written

    for notice in doc(copy, "notices"):
        assert (notice["status"], notice["attempts"]) == ("sent", 1), notice
        assert instant(notice["sent_at"]) == instant(BEFORE), notice


def test_html_is_escaped_and_text_is_intact(copy: Setup) -> None:
    name = "<script>alert(1)</script>"
    nomination = nominate(copy, name, "hebei", "prefecture", "drc:hebei")
    fire(copy, nomination, "submit_for_approval", "drc:hebei")
    # the default channel writes into ./outbox
    env = {k: v for k, v in copy.env.items() if k != "PEAKPILOT_OUTBOX_DIR"}
    report = doc(replace(copy, env=env), "notices", "dispatch")
    assert report["sent"] == len(HEBEI_NOTICES + GUANGDONG_NOTICES) + 1, report

    folder = copy.folder / "outbox"
    found = [m for m in map(read_eml, folder.glob("*.eml")) if name in str(m["Subject"])]
    assert len(found) == 1, f"expected one message about {name}, found {len(found)}"
    text, html = parts(found[0])
    assert name in text, text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, html
    assert "<script" not in html.lower(), "the nomination's name reached the HTML unescaped"


def test_smtp_dispatch_retries_and_dead_letters(db_url: str, tmp_path: Path) -> None:
    setup = prepare(db_url, tmp_path, guangdong=False)
    port = closed_port()
    smtp = {
        "PEAKPILOT_NOTIFY_CHANNEL": "smtp",
        "PEAKPILOT_SMTP_HOST": "127.0.0.1",
        "PEAKPILOT_SMTP_PORT": str(port),
    }
    setup = replace(setup, env={**setup.env, **smtp})
    notices = doc(setup, "notices")
    assert [(n["kind"], n["recipient"], n["locale"]) for n in notices] == HEBEI_NOTICES
    for notice in notices:
        assert instant(notice["created_at"]) == instant(BEFORE), notice
    addressed = [n["id"] for n in notices if n["recipient"] != "gov:hebei"]
    (bare,) = (n["id"] for n in notices if n["recipient"] == "gov:hebei")

    # nothing listens: delivery fails, the command does not; no address is a failure too
    report = doc(setup, "notices", "dispatch")
    assert report == {"sent": 0, "failed": len(notices), "dead": 0}, report
    after = {n["id"]: n for n in doc(setup, "notices")}
    for notice_id in addressed:
        notice = after[notice_id]
        assert (notice["status"], notice["attempts"]) == ("failed", 1), notice
        assert notice["sent_at"] is None, notice
        if "next_attempt_at" in notice:  # DESIGN: the first retry falls due within an hour
            due = instant(notice["next_attempt_at"])
            assert instant(BEFORE) < due <= instant(AN_HOUR_LATER), notice
    assert (after[bare]["status"], after[bare]["attempts"]) == ("failed", 1), after[bare]
    proc = ok(setup, "notices", "show", bare)
    assert "no address for gov:hebei" in proc.stdout, describe(proc)

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        report = doc(setup, "notices", "dispatch", now=AN_HOUR_LATER)
        assert report == {"sent": len(addressed), "failed": 1, "dead": 0}, report
        again = doc(setup, "notices", "dispatch", now=AN_HOUR_LATER, after=True)
        assert again == {"sent": 0, "failed": 0, "dead": 0}, again
    finally:
        controller.stop()

    received = sorted(str(message["Message-ID"]) for _, message in inbox.messages)
    assert received == sorted(f"<{i}@peakpilot>" for i in addressed), received
    recipients = sorted(r for rcpt_tos, _ in inbox.messages for r in rcpt_tos)
    wanted = [a for i in addressed for a in ADDRESSES[after[i]["actor"]]]
    assert recipients == sorted(wanted), recipients
    for _, message in inbox.messages:
        notice_id = str(message["Message-ID"]).strip("<>").removesuffix("@peakpilot")
        assert str(message["Subject"]) == after[notice_id]["subject"]
        parts(message)

    final = {n["id"]: n for n in doc(setup, "notices")}
    for notice_id in addressed:
        notice = final[notice_id]
        assert (notice["status"], notice["attempts"]) == ("sent", 2), notice
        assert instant(notice["sent_at"]) == instant(AN_HOUR_LATER), notice
    assert (final[bare]["status"], final[bare]["attempts"]) == ("failed", 2), final[bare]

    retried = doc(setup, "notices", "retry", bare, now=AN_HOUR_LATER)
    assert (retried["id"], retried["status"], retried["attempts"]) == (bare, "pending", 0)
    rows = db_rows(db_url)
    proc = fails(5, setup, "notices", "retry", addressed[0], "--json", now=AN_HOUR_LATER)
    assert "sent" in proc.stderr, describe(proc)
    assert db_rows(db_url) == rows, "a refused retry wrote to the database"
