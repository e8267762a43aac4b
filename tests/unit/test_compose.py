"""Composing notices (peakpilot/notifications/compose.py): the variables a Notifier gives
the templates are records whose attributes Jinja finds at once; they render exactly what
the same values as plain dicts render, still read as mappings in an operator's template,
and stay inside the sandbox. A Notifier compiles only the templates it renders; its
``check_templates`` finds a broken one before any notice is due."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from peakpilot.config.program import Program, Transition, load_program
from peakpilot.errors import ConfigError
from peakpilot.notifications.compose import BatchInfo, Notifier, Outgoing
from peakpilot.notifications.contacts import Contact, Contacts
from peakpilot.notifications.render import LOCALES, RenderedNotice, Renderer
from peakpilot.notifications.variables import ActorText, BatchText, NominationText

AT = datetime(2023, 11, 2, 2, 30, tzinfo=UTC)
BATCH = BatchInfo("2023-first", datetime(2023, 11, 14, 16, 0, tzinfo=UTC))


@dataclass(frozen=True)
class Nomination:
    id: str = "nom-0003"
    name: str = "唐山市"
    kind: str = "city"
    level: str = "prefecture"
    province: str = "hebei"


@cache
def shipped_program() -> Program:
    return load_program()


def transitions_with_notices() -> list[Transition]:
    return [t for t in shipped_program().transitions if t.notice is not None]


class RecordingRenderer(Renderer):
    """A renderer that keeps the variables of every notice it renders."""

    def __init__(self, override_dir: Path | None = None) -> None:
        super().__init__(override_dir)
        self.contexts: list[Mapping[str, Any]] = []

    def render(self, kind: str, locale: str, context: Mapping[str, Any]) -> RenderedNotice:
        self.contexts.append(context)
        return super().render(kind, locale, context)


def notifier(renderer: Renderer, locale: str) -> Notifier:
    """Every actor of Hebei and the NDRC reading ``locale``."""
    actors = ("ndrc", "drc:hebei", "gov:hebei")
    contacts = Contacts({actor: Contact((f"{actor[:3]}@example.cn",), locale) for actor in actors})
    return Notifier(shipped_program(), renderer, contacts)


def fire(notifier: Notifier, transition: Transition, reason: str | None = None) -> list[Outgoing]:
    return notifier.for_event(
        Nomination(),
        transition.notice,
        seq=3,
        event=transition.event,
        actor="gov:hebei",
        from_state=transition.sources[0],
        to_state=transition.dest_from(transition.sources[0]),
        reason=reason,
        at=AT,
        batch=BATCH,
        data={name: SAMPLE_DATA[spec.type] for name, spec in transition.data.items()} or None,
    )


# a value of each type of event data, as the engine stores it
SAMPLE_DATA = {"year": 2024, "choice": "good", "date": "2024-06-30"}


def as_dicts(value: Any) -> Any:
    """``value`` with every mapping in it (records included) made a plain dict."""
    if isinstance(value, Mapping):
        return {key: as_dicts(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("sandboxed", [False, True])
@pytest.mark.parametrize("locale", LOCALES)
def test_the_records_render_what_the_same_values_as_dicts_render(
    tmp_path: Path, locale: str, sandboxed: bool
) -> None:
    renderer = RecordingRenderer(tmp_path if sandboxed else None)
    composer = notifier(renderer, locale)
    plain_renderer = Renderer(tmp_path if sandboxed else None)
    for transition in transitions_with_notices():
        for reason in (None, "第一条：<b>数据</b> & 核算\n  'quoted'"):
            renderer.contexts.clear()
            outgoing = fire(composer, transition, reason)  # one address per actor
            assert outgoing and len(renderer.contexts) == len(outgoing), transition.event
            for notice, context in zip(outgoing, renderer.contexts, strict=True):
                assert isinstance(context["nomination"], NominationText)
                assert isinstance(context["actor"], ActorText)
                assert isinstance(context["recipient"], ActorText)
                assert isinstance(context["batch"], BatchText)
                plain = plain_renderer.render(notice.kind, locale, as_dicts(context))
                assert plain == RenderedNotice(notice.subject, notice.text, notice.html), (
                    notice.kind,
                    notice.actor,
                )


def test_an_operators_template_may_read_the_records_as_mappings(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.subject.j2").write_text(
        '{{ nomination["name"] }}|{{ nomination.get("level") }}|{{ "province" in nomination }}'
        "|{{ nomination.province.items()|list|length }}|{{ batch|length }}"
        "|{% for key, value in actor.items() %}{{ key }}={{ value }};{% endfor %}",
        encoding="utf-8",
    )
    composer = notifier(Renderer(tmp_path), "en")
    approve = next(t for t in transitions_with_notices() if t.event == "approve")
    [notice] = fire(composer, approve)
    assert notice.subject == (
        f"唐山市|prefecture|True|2|2|actor=gov:hebei;name={composer.actor_name('gov:hebei', 'en')};"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ nomination.__class__.__init__.__globals__ }}",
        "{{ nomination.province.__match_args__ }}",
        "{{ actor.__getitem__.__globals__ }}",
    ],
)
def test_the_records_stay_inside_the_sandbox(tmp_path: Path, source: str) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "approved.txt.j2").write_text(source, encoding="utf-8")
    composer = notifier(Renderer(tmp_path), "en")
    approve = next(t for t in transitions_with_notices() if t.event == "approve")
    with pytest.raises(ConfigError, match=r"en/approved\.txt\.j2"):
        fire(composer, approve)


def test_a_notifier_compiles_what_it_renders_and_checks_the_rest_when_asked(
    tmp_path: Path,
) -> None:
    """A process that sends one notice does not compile every template (nor refuse to
    start over one it will not use); ``check_templates`` is where a broken one is found."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "rejected.txt.j2").write_text("{% if reason %}\n", encoding="utf-8")
    composer = notifier(Renderer(tmp_path), "en")
    approve = next(t for t in transitions_with_notices() if t.event == "approve")
    assert fire(composer, approve)
    with pytest.raises(ConfigError, match=r"template en/rejected\.txt\.j2:\d+: "):
        composer.check_templates()


def test_check_templates_passes_on_the_shipped_templates() -> None:
    notifier(Renderer(), "zh-CN").check_templates()
