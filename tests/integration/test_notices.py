"""Notices: rendered in the event's transaction, delivered at least once, visible when not.

Runs on an SQLite file and on PostgreSQL; SMTP delivery goes to a real aiosmtpd server on
a loopback port.
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from peakpilot import Engine, FrozenClock, NotFound, Refused
from peakpilot.notifications.channels import Envelope, FileChannel, SmtpChannel

SENDER = "peakpilot <noreply@peakpilot.test>"
CONTACTS = """
ndrc:
  email: [climate@ndrc.example.cn]
  locale: en
drc:hebei:
  email: [drc@hebei.example.cn, deputy@hebei.example.cn]
gov:130000:
  email: [office@hebei.example.cn]
"""


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[attr-defined]
        self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[attr-defined]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_port() -> int:
    return free_port()


def start_smtp(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


@pytest.fixture
def smtp(smtp_port: int) -> Iterator[Inbox]:
    controller, inbox = start_smtp(smtp_port)
    yield inbox
    controller.stop()


@pytest.fixture
def engine(db_url: str, clock: FrozenClock, tmp_path: Path) -> Iterator[Engine]:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(CONTACTS, encoding="utf-8")
    with Engine(db_url, clock=clock, contacts=contacts) as engine:
        engine.init()
        yield engine


def submitted(engine: Engine, name: str = "唐山市") -> str:
    n = engine.nominate("drc:hebei", province="hebei", kind="city", name=name, level="prefecture")
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    engine.fire(n.id, "approve", "gov:hebei")
    engine.fire(n.id, "submit", "drc:hebei")
    return n.id


def test_each_event_notifies_the_declared_recipients_in_their_locale(engine: Engine) -> None:
    nomination = submitted(engine)
    engine.fire(nomination, "confirm", "ndrc")
    sent = [(n.kind, n.recipient, n.locale) for n in engine.notices()]
    # one notice per actor, addressed to the actor; its addresses are the dispatcher's
    assert sent == [
        ("sent_for_approval", "gov:hebei", "zh-CN"),
        ("approved", "drc:hebei", "zh-CN"),
        ("submitted", "ndrc", "en"),
        ("confirmed", "drc:hebei", "zh-CN"),
        ("confirmed", "gov:hebei", "zh-CN"),
    ]
    assert all(n.status == "pending" and n.nomination == nomination for n in engine.notices())


def test_an_actor_without_contact_is_addressed_by_its_id_in_chinese(engine: Engine) -> None:
    n = engine.nominate(
        "drc:shanxi", province="shanxi", kind="city", name="太原市", level="prefecture"
    )
    engine.fire(n.id, "submit_for_approval", "drc:shanxi")
    (notice,) = engine.notices()
    assert (notice.recipient, notice.actor, notice.locale) == ("gov:shanxi", "gov:shanxi", "zh-CN")
    assert "太原市" in engine.notice(notice.id).text


def test_withdrawal_from_submitted_also_tells_the_ndrc(engine: Engine) -> None:
    nomination = submitted(engine)
    before = len(engine.notices())
    engine.fire(nomination, "withdraw", "drc:hebei")
    assert {n.actor for n in engine.notices()[before:]} == {"gov:hebei", "ndrc"}


def test_notices_commit_and_roll_back_with_their_event(engine: Engine) -> None:
    nomination = submitted(engine)
    before = engine.notices()
    with pytest.raises(Refused):
        engine.fire(nomination, "reject", "ndrc")  # no reason
    assert engine.notices() == before
    engine.fire(nomination, "reject", "ndrc", reason="材料不全\n请补充", idempotency_key="r1")
    after = engine.notices()
    engine.fire(nomination, "reject", "ndrc", reason="材料不全\n请补充", idempotency_key="r1")
    assert engine.notices() == after  # the replay created no second notice
    rejected = [n for n in after if n.kind == "rejected"]
    assert len(rejected) == 2  # drc:hebei, gov:hebei
    assert "材料不全" in engine.notice(rejected[0].id).text


def test_the_file_channel_writes_one_eml_per_notice(engine: Engine, tmp_path: Path) -> None:
    submitted(engine)
    report = engine.dispatch_notices(FileChannel(tmp_path, SENDER))
    assert (report.sent, report.failed, report.dead) == (3, 0, 0)
    files = sorted(tmp_path.glob("*.eml"))
    assert [f.stem for f in files] == sorted(n.id for n in engine.notices())
    assert not list(tmp_path.glob("*.tmp"))
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["Message-ID"] == f"<{files[0].stem}@peakpilot>"
    assert {n.status for n in engine.notices()} == {"sent"}
    assert engine.dispatch_notices(FileChannel(tmp_path, SENDER)).sent == 0


def test_smtp_delivers_multipart_utf8_with_a_stable_message_id(
    engine: Engine, smtp: Inbox, smtp_port: int
) -> None:
    nomination = submitted(engine, "<script>alert(1)</script>")
    engine.fire(nomination, "reject", "ndrc", reason="名称不合规")
    channel = SmtpChannel("127.0.0.1", smtp_port, SENDER)
    report = engine.dispatch_notices(channel)
    assert report.sent == len(engine.notices()) == 5
    by_id = {m["Message-ID"]: (rcpt, m) for rcpt, m in smtp.messages}
    addresses = {
        "drc:hebei": ["drc@hebei.example.cn", "deputy@hebei.example.cn"],
        "gov:hebei": ["office@hebei.example.cn"],
        "ndrc": ["climate@ndrc.example.cn"],
    }
    for notice in engine.notices():
        rcpt, message = by_id[f"<{notice.id}@peakpilot>"]
        assert rcpt == addresses[notice.actor]  # every address in one message
        assert message["Subject"] == notice.subject
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "<script>alert(1)</script>" in text
        assert "&lt;script&gt;" in html and "<script>" not in html
    assert engine.notices()[0].sent_at is not None


def test_a_subject_cannot_add_a_header(engine: Engine, smtp: Inbox, smtp_port: int) -> None:
    engine.nominate("drc:hebei", province="hebei", kind="city", name="甲市", level="prefecture")
    envelope = Envelope(
        "0123456789abcdef",
        "gov:hebei",
        ("office@hebei.example.cn",),
        "Subject\r\nBcc: spy@evil.example",
        "text",
        "<p>html</p>",
        engine.clock.now(),
    )
    from peakpilot.notifications.render import one_line

    safe = Envelope(
        envelope.notice_id,
        envelope.actor,
        envelope.addresses,
        one_line(envelope.subject),
        envelope.text,
        envelope.html,
        envelope.created_at,
    )
    SmtpChannel("127.0.0.1", smtp_port, SENDER).send(safe)
    ((rcpt, message),) = smtp.messages
    assert rcpt == ["office@hebei.example.cn"]
    assert message["Bcc"] is None
    assert message["Subject"] == "Subject Bcc: spy@evil.example"


def test_server_down_then_up_ends_sent_exactly_once(
    engine: Engine, clock: FrozenClock, smtp_port: int
) -> None:
    n = engine.nominate("drc:hebei", province="hebei", kind="city", name="甲市", level="prefecture")
    engine.fire(n.id, "submit_for_approval", "drc:hebei")  # one notice, to gov:hebei
    channel = SmtpChannel("127.0.0.1", smtp_port, SENDER, timeout=5)
    down = engine.dispatch_notices(channel)
    assert (down.sent, down.failed) == (0, 1)
    (failed,) = engine.notices()
    assert failed.status == "failed" and failed.attempts == 1 and failed.last_error
    first_retry = failed.next_attempt_at - clock.now()
    assert timedelta(0) < first_retry <= timedelta(hours=1)
    assert engine.dispatch_notices(channel).failed == 0  # not due yet: nothing tried
    controller, inbox = start_smtp(smtp_port)
    try:
        clock.advance(first_retry)
        assert engine.dispatch_notices(channel).sent == 1
        assert engine.dispatch_notices(channel).sent == 0
    finally:
        controller.stop()
    (notice,) = engine.notices()
    assert (notice.status, notice.attempts) == ("sent", 2)
    assert len(inbox.messages) == 1


def test_a_crash_between_sending_and_recording_resends_the_same_message(
    engine: Engine, clock: FrozenClock, smtp: Inbox, smtp_port: int
) -> None:
    n = engine.nominate("drc:hebei", province="hebei", kind="city", name="甲市", level="prefecture")
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    real = SmtpChannel("127.0.0.1", smtp_port, SENDER)

    class DiesAfterSending:
        def send(self, envelope: Envelope) -> None:
            real.send(envelope)
            raise SystemExit("killed before recording")  # what SIGKILL leaves behind

    with pytest.raises(SystemExit):
        engine.dispatch_notices(DiesAfterSending())
    assert engine.notices()[0].status == "pending"
    assert engine.dispatch_notices(real).sent == 0  # still leased to the dead dispatcher
    clock.advance(timedelta(minutes=6))
    assert engine.dispatch_notices(real).sent == 1
    ids = [message["Message-ID"] for _, message in smtp.messages]
    assert len(ids) == 2 and ids[0] == ids[1] == f"<{engine.notices()[0].id}@peakpilot>"


def test_failures_back_off_and_end_dead_then_retry_revives(
    engine: Engine, clock: FrozenClock, smtp_port: int
) -> None:
    n = engine.nominate("drc:hebei", province="hebei", kind="city", name="甲市", level="prefecture")
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    channel = SmtpChannel("127.0.0.1", smtp_port, SENDER, timeout=5)  # nobody listens
    waits = []
    for _ in range(3):
        engine.dispatch_notices(channel, max_attempts=3)
        notice = engine.notices()[0]
        waits.append(notice.next_attempt_at - clock.now())
        clock.advance(timedelta(hours=13))
    assert notice.status == "dead" and notice.attempts == 3
    assert waits[1] > timedelta(minutes=5)  # the second wait is longer than the first can be
    sent = _sent_notice(engine)
    with pytest.raises(Refused, match="only a failed or dead notice"):
        engine.retry_notice(sent)
    revived = engine.retry_notice(notice.id)
    assert (revived.status, revived.attempts) == ("pending", 0)
    with pytest.raises(NotFound):
        engine.retry_notice("nope")


def _sent_notice(engine: Engine) -> str:
    """A notice marked sent directly (no channel needed)."""
    n = engine.nominate("drc:hebei", province="hebei", kind="city", name="乙市", level="prefecture")
    engine.fire(n.id, "submit_for_approval", "drc:hebei")
    newest = engine.notices()[-1].id
    with engine.database.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE notices SET status = 'sent' WHERE id = :id"), {"id": newest}
        )
    return newest


def test_smtp_retries_an_actor_without_address_and_gives_up_after_the_last_attempt(
    engine: Engine, clock: FrozenClock, smtp: Inbox, smtp_port: int
) -> None:
    n = engine.nominate(
        "drc:shanxi", province="shanxi", kind="city", name="太原市", level="prefecture"
    )
    engine.fire(n.id, "submit_for_approval", "drc:shanxi")
    channel = SmtpChannel("127.0.0.1", smtp_port, SENDER)
    report = engine.dispatch_notices(channel, max_attempts=2)
    assert (report.failed, report.dead) == (1, 0)
    (notice,) = engine.notices(status="failed")
    assert notice.last_error == "no address for gov:shanxi"
    clock.advance(timedelta(hours=1))
    assert engine.dispatch_notices(channel, max_attempts=2).dead == 1
    assert smtp.messages == []


# -- addressing at dispatch (issue 13, point 5) ------------------------------------------


def test_a_notice_without_an_address_is_delivered_once_the_contacts_are_fixed(
    db_url: str, clock: FrozenClock, tmp_path: Path, smtp: Inbox, smtp_port: int
) -> None:
    """Made by a process with no contacts, failed (not dead) for want of an address,
    delivered to every address in one message by a dispatcher that has them, once."""
    channel = SmtpChannel("127.0.0.1", smtp_port, "peakpilot <noreply@ndrc.example.cn>")
    with Engine(db_url, clock=clock) as clerk:
        clerk.init()
        n = clerk.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        )
        clerk.fire(n.id, "submit_for_approval", "drc:hebei")
        [notice] = clerk.notices()
        assert (notice.recipient, notice.actor, notice.locale) == ("gov:hebei",) * 2 + ("zh-CN",)
        report = clerk.dispatch_notices(channel)
        assert (report.sent, report.failed, report.dead) == (0, 1, 0)
        [failed] = clerk.notices("failed")
        assert failed.last_error == "no address for gov:hebei"
    assert smtp.messages == []
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        "gov:hebei:\n  email: [office@hebei.example.cn, duty@hebei.example.cn]\n", "utf-8"
    )
    clock.advance(timedelta(hours=1))  # past the first retry
    with Engine(db_url, clock=clock, contacts=contacts) as dispatcher:
        assert dispatcher.dispatch_notices(channel).sent == 1
        assert dispatcher.dispatch_notices(channel).sent == 0  # once
        [sent] = dispatcher.notices("sent")
    [(rcpt, message)] = smtp.messages
    assert rcpt == ["office@hebei.example.cn", "duty@hebei.example.cn"]
    assert message["To"] == "office@hebei.example.cn, duty@hebei.example.cn"
    assert message["X-Peakpilot-Actor"] == "gov:hebei"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].endswith("+0800")  # the programme's zone
    assert message["Message-ID"] == f"<{sent.id}@peakpilot>"


def test_the_file_channel_writes_a_notice_without_an_address_with_no_to(
    db_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    with Engine(db_url, clock=clock) as engine:
        engine.init()
        n = engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        )
        engine.fire(n.id, "submit_for_approval", "drc:hebei")
        assert engine.dispatch_notices(FileChannel(tmp_path / "out", "p <p@x.cn>")).sent == 1
        assert any("no address for 31 of the 31 actors" in w for w in engine.init()["warnings"])
    [written] = (tmp_path / "out").iterdir()
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert message["To"] is None and message["X-Peakpilot-Actor"] == "gov:hebei"
