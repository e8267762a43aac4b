"""Composing notices: who receives what, in which words, for an event or a deadline.

Pure apart from rendering: the engine calls it inside the event's transaction and stores
what it returns, so that what is sent is exactly what happened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from peakpilot.config.program import NoticeSpec, Program
from peakpilot.notifications.contacts import Contacts
from peakpilot.notifications.render import LOCALES, RenderedNotice, Renderer
from peakpilot.notifications.variables import ActorText, BatchText, NominationText, ProvinceText

# How a letter to several actors lists them: 河北省发展改革委、河北省人民政府
_LIST_SEPARATOR = {"zh-CN": "、", "en": ", "}
_DEADLINES_KEPT = 256  # formatted batch deadlines a Notifier keeps


class NominationLike(Protocol):
    """What a notice needs of a nomination: a snapshot and a row both have it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def province(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A rendered notice for one actor (``recipient`` is the actor id), ready for the
    outbox."""

    dedupe_key: str
    kind: str
    actor: str
    recipient: str
    locale: str
    subject: str
    text: str
    html: str
    nomination_id: str | None
    batch_id: str | None


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """The batch a notice is sent in: its id and its submission deadline."""

    id: str
    deadline_at: datetime


def format_instant(value: datetime, program: Program) -> str:
    """An instant as a clerk reads it: local time with its offset, e.g.
    ``2023-11-15 00:00 (UTC+08:00)``."""
    local = value.astimezone(program.timezone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


class Notifier:
    """Renders the notices a programme declares, for the recipients in the contacts.

    Templates compile when a notice first needs them, so that a process that sends one
    notice compiles its few templates, not all of them: call :meth:`check_templates`
    where a broken template must be found before any notice is due.
    """

    def __init__(self, program: Program, renderer: Renderer, contacts: Contacts) -> None:
        self.program = program
        self.renderer = renderer
        self.contacts = contacts
        self._deadlines: dict[datetime, str] = {}

    def check_templates(self) -> None:
        """Compile every template the programme's notices can need (and every layout or
        macro file beside them), in every locale.

        Raises:
            ConfigError: a template is missing or does not compile; the message names it.
        """
        self.renderer.check(self.program.notice_kinds)

    def format(self, value: datetime) -> str:
        """``value`` as notices show an instant, in the programme's time zone."""
        return format_instant(value, self.program)

    def timer_recipients(self, kind: str, province: str | None) -> list[str]:
        """The actors the programme sends a scheduler notice ``kind`` to; provincial
        roles are those of ``province`` (a notice about no province skips them)."""
        actors = []
        for role in self.program.timer_notices.get(kind, ()):
            if self.program.roles[role].scope == "province":
                if province is not None:
                    actors.append(f"{role}:{province}")
            else:
                actors.append(role)
        return actors

    def actor_name(self, actor: str, locale: str) -> str:
        """An actor as a letter names it (河北省人民政府), or its id when the programme
        does not know its role."""
        role, _, province = actor.partition(":")
        spec = self.program.roles.get(role)
        if spec is None:
            return actor
        province_name = self.program.provinces[province].names.get(locale) if province else ""
        return spec.names.get(locale).replace("{province}", province_name)

    def for_event(
        self,
        nomination: NominationLike,
        notice: NoticeSpec | None,
        *,
        seq: int,
        event: str,
        actor: str,
        from_state: str,
        to_state: str,
        reason: str | None,
        at: datetime,
        batch: BatchInfo,
        from_batch: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> list[Outgoing]:
        """The notices ``notice`` (the transition's declaration, if any) asks for.
        ``data`` is the event's stored data; templates read its values as text."""
        if notice is None:
            return []
        recipients = [self._actor_for(role, nomination.province) for role in notice.to]
        shown = None if data is None else {key: str(value) for key, value in data.items()}

        def context(locale: str) -> dict[str, Any]:
            return {
                "nomination": self.nomination_context(nomination, to_state, locale),
                "actor": ActorText(actor, self.actor_name(actor, locale)),
                "event": event,
                "from_state": from_state,
                "to_state": to_state,
                "reason": reason,
                "from_batch": from_batch,  # the batch a carry-over left; None otherwise
                "data": shown,
            }

        return self.compose(
            notice.kind,
            recipients,
            context,
            at=at,
            batch=batch,
            dedupe=(nomination.id, str(seq)),
            nomination_id=nomination.id,
        )

    def nomination_context(
        self, nomination: NominationLike, state: str, locale: str
    ) -> NominationText:
        """The ``nomination`` variable of a notice about ``nomination``, now in ``state``."""
        province = self.program.provinces[nomination.province]
        return NominationText(
            id=nomination.id,
            name=nomination.name,
            kind=self.program.kinds[nomination.kind].names.get(locale),
            level=nomination.level,
            state=state,
            province=ProvinceText(province.slug, province.names.get(locale)),
        )

    def compose(
        self,
        kind: str,
        actors: Iterable[str],
        context: Any,
        *,
        at: datetime,
        batch: BatchInfo,
        dedupe: Sequence[str],
        nomination_id: str | None = None,
        jointly: bool = False,
    ) -> list[Outgoing]:
        """Render ``kind`` for every actor, one notice each in the language the actor
        reads (``context(locale)`` gives the kind's own variables); ``dedupe`` identifies
        the occasion. The addresses are the dispatcher's to look up.

        ``jointly`` addresses one letter to all the actors together (a province's DRC
        and government both receive its shortfall notice, whose list of lapsed
        nominations may run to thousands of lines): rendered once per locale. Each actor
        still gets its own notice and dedupe key.
        """
        actors = list(dict.fromkeys(actors))
        variables: dict[str, Mapping[str, Any]] = {}  # the kind's variables, per locale
        rendered: dict[tuple[tuple[str, ...], str], RenderedNotice] = {}
        outgoing = []
        for actor in actors:
            addressees = tuple(actors) if jointly else (actor,)
            locale = self.contacts.locale(actor)
            notice = rendered.get((addressees, locale))
            if notice is None:
                if locale not in variables:
                    variables[locale] = context(locale)
                notice = rendered[(addressees, locale)] = self.renderer.render(
                    kind,
                    locale,
                    {
                        "program_title": self.program.title.get(locale),
                        "batch": BatchText(batch.id, self._deadline_text(batch)),
                        "recipient": self._addressee(addressees, locale),
                        "sent_at": format_instant(at, self.program),
                        **variables[locale],
                    },
                )
            key = "\x1f".join((*dedupe, kind, actor))
            outgoing.append(
                Outgoing(
                    dedupe_key=hashlib.sha256(key.encode()).hexdigest(),
                    kind=kind,
                    actor=actor,
                    recipient=actor,
                    locale=locale,
                    subject=notice.subject,
                    text=notice.text,
                    html=notice.html,
                    nomination_id=nomination_id,
                    batch_id=batch.id,
                )
            )
        return outgoing

    def _deadline_text(self, batch: BatchInfo) -> str:
        """The batch's deadline as notices show it: the same few instants again and again,
        formatted once each."""
        text = self._deadlines.get(batch.deadline_at)
        if text is None:
            text = format_instant(batch.deadline_at, self.program)
            if len(self._deadlines) < _DEADLINES_KEPT:
                self._deadlines[batch.deadline_at] = text
        return text

    def _addressee(self, actors: tuple[str, ...], locale: str) -> ActorText:
        """The ``recipient`` variable: the actor a letter is addressed to, or the actors,
        listed as the language lists them."""
        return ActorText(
            ", ".join(actors),
            _LIST_SEPARATOR.get(locale, ", ").join(
                self.actor_name(actor, locale) for actor in actors
            ),
        )

    def _actor_for(self, role: str, province: str) -> str:
        scope = self.program.roles[role].scope
        return f"{role}:{province}" if scope == "province" else role


__all__ = ["LOCALES", "BatchInfo", "Notifier", "Outgoing", "format_instant"]
