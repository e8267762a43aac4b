"""A channel's failure is a :class:`~peakpilot.errors.DeliveryError`, part of the one
hierarchy (an embedding backend that catches ``PeakpilotError`` catches it too), exit
code 1, and says whether a retry can help."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from peakpilot.errors import DeliveryError, PeakpilotError
from peakpilot.notifications.channels import Envelope, FileChannel, SmtpChannel

SENDER = "peakpilot@ndrc.example.cn"


def envelope(*addresses: str, actor: str = "gov:hebei") -> Envelope:
    return Envelope(
        notice_id="n-1",
        actor=actor,
        addresses=addresses,
        subject="【国家碳达峰试点建设】唐山市申报已批准",
        text="正文\n",
        html="<p>正文</p>\n",
        created_at=datetime(2023, 11, 2, 2, 30, tzinfo=UTC),
    )


def test_an_actor_without_an_address_is_a_failure_worth_retrying() -> None:
    """A contacts file fixed later delivers it: no address is not the end of it."""
    channel = SmtpChannel("127.0.0.1", 1, SENDER)  # refused before any connection
    with pytest.raises(PeakpilotError) as caught:
        channel.send(envelope())
    error = caught.value
    assert isinstance(error, DeliveryError)
    assert not error.permanent and error.exit_code == 1
    assert str(error) == "no address for gov:hebei"


def test_a_folder_that_cannot_be_written_is_a_failure_worth_retrying(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    with pytest.raises(DeliveryError) as caught:
        FileChannel(blocked / "outbox", SENDER).send(envelope("drc@hebei.example.cn"))
    assert not caught.value.permanent
    assert isinstance(caught.value.__cause__, OSError)
    assert str(caught.value).startswith(f"cannot write to {blocked / 'outbox'}: ")
