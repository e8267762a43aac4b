"""Delivery channels: where a notice goes once it is in the outbox.

A channel sends one message, to every address of the notice's actor at once, or raises
:class:`~peakpilot.errors.DeliveryError`; ``permanent`` failures (an address the server
refuses for good) go straight to ``dead`` instead of being retried. An actor without an
address is a failure worth retrying (a contacts file fixed later delivers it), except to
the file channel, which writes the message without a ``To`` header.
The Message-ID is derived from the notice id, so a resend after a crash is recognisable
as the same message.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

# "as": re-exported while workflow/engine.py and tests/faults still import it from here
from peakpilot.errors import DeliveryError
from peakpilot.notifications.contacts import is_address

if TYPE_CHECKING:
    from peakpilot.config.settings import Settings

MESSAGE_ID_DOMAIN = "peakpilot"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a channel needs of a notice: ``addresses`` are the actor's, looked up by the
    dispatcher (none: the actor has no entry in its contacts); ``created_at`` is in the
    programme's time zone, as the ``Date`` header shows it."""

    notice_id: str
    actor: str
    addresses: tuple[str, ...]
    subject: str
    text: str
    html: str
    created_at: datetime


def message_id(notice_id: str) -> str:
    """The Message-ID of a notice: derived from its id, so that a message sent again after
    a crash is recognisable as the same one."""
    return f"<{notice_id}@{MESSAGE_ID_DOMAIN}>"


def build_message(envelope: Envelope, sender: str) -> EmailMessage:
    """A UTF-8 multipart/alternative message: plain text first, HTML preferred."""
    message = EmailMessage()
    message["From"] = sender
    if envelope.addresses:  # never an actor id where an address belongs
        message["To"] = ", ".join(envelope.addresses)
    message["Subject"] = envelope.subject  # already one line; EmailMessage refuses CR/LF
    message["Date"] = format_datetime(envelope.created_at)
    message["Message-ID"] = message_id(envelope.notice_id)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message["X-Peakpilot-Actor"] = envelope.actor
    message.set_content(envelope.text, charset="utf-8")
    message.add_alternative(envelope.html, subtype="html", charset="utf-8")
    return message


class Channel(Protocol):
    """Where notices go: the outbox's dispatcher needs nothing else of a channel."""

    def send(self, envelope: Envelope) -> None:
        """Send one notice, or raise :class:`~peakpilot.errors.DeliveryError`."""


class FileChannel:
    """Writes one ``.eml`` per notice into a folder, atomically (the embedded default)."""

    def __init__(self, folder: str | Path, sender: str) -> None:
        self.folder = Path(folder)
        self.sender = sender

    def send(self, envelope: Envelope) -> None:
        """Write ``NOTICE_ID.eml``; written again, the file is replaced, never doubled."""
        data = bytes(build_message(envelope, self.sender))
        try:
            # Official correspondence: the folder is the owner's, and mkstemp makes each
            # file 0600 (os.replace keeps it).
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.folder / f"{envelope.notice_id}.eml")
        except OSError as error:
            raise DeliveryError(f"cannot write to {self.folder}: {error}") from error


class SmtpChannel:
    """Sends through an SMTP server, with STARTTLS and login when configured."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.starttls = user, password, starttls
        self.timeout = timeout

    def send(self, envelope: Envelope) -> None:
        """Send one message; a 5xx answer or a refused recipient is a permanent failure,
        anything else (a 4xx, a connection that fails) is worth retrying."""
        if not envelope.addresses:
            raise DeliveryError(f"no address for {envelope.actor}")
        for address in envelope.addresses:
            if not is_address(address):
                raise DeliveryError(f"{address!r} is not an e-mail address", permanent=True)
        message = build_message(envelope, self.sender)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.user:
                    client.login(self.user, self.password or "")
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            refused = ", ".join(error.recipients)
            raise DeliveryError(f"{refused} refused: {error}", permanent=True) from error
        except smtplib.SMTPResponseException as error:
            # 5xx: the server will never take this message; 4xx: try again later
            permanent = 500 <= error.smtp_code < 600
            raise DeliveryError(
                f"SMTP {self.host}:{self.port}: {error}", permanent=permanent
            ) from error
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {error}") from error


def channel_from_settings(settings: Settings) -> Channel:
    """The channel ``PEAKPILOT_NOTIFY_CHANNEL`` names, configured from the settings."""
    if settings.notify_channel == "smtp":
        return SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.notify_from,
            user=settings.smtp_user,
            password=None
            if settings.smtp_password is None
            else settings.smtp_password.get_secret_value(),
            starttls=settings.smtp_starttls,
        )
    return FileChannel(settings.outbox_dir, settings.notify_from)
