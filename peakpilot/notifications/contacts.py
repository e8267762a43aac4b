"""Who receives notices where: the contacts file (``PEAKPILOT_CONTACTS``).

```yaml
ndrc:
  email: [climate@ndrc.example.cn]
  locale: en            # optional; zh-CN by default
drc:hebei:
  email: [drc@hebei.example.cn, deputy@hebei.example.cn]
```

A notice is addressed to an actor; its language comes from the contacts when it is
rendered (zh-CN without an entry), its addresses when it is dispatched, from the
dispatcher's contacts: a notice for an actor without an address fails and is retried, so
that a contacts file fixed later delivers it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peakpilot.config.program import Program
from peakpilot.config.yaml_lines import line_of, load_yaml
from peakpilot.errors import ConfigError, PeakpilotError
from peakpilot.notifications.render import LOCALES
from peakpilot.states.actors import Actor, resolve_actor

DEFAULT_LOCALE = "zh-CN"
# Deliberately strict: an address ends up in an SMTP envelope and a mail header.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True, slots=True)
class Contact:
    """One actor's addresses (all of them get each notice) and the language it reads."""

    addresses: tuple[str, ...] = ()
    locale: str = DEFAULT_LOCALE


@dataclass(frozen=True)
class Contacts:
    """Actors (canonical ids such as ``gov:hebei``) to their addresses and locale."""

    entries: Mapping[str, Contact] = field(default_factory=dict)

    def for_actor(self, actor: str) -> Contact:
        """The actor's entry; an actor without one reads zh-CN and has no address."""
        return self.entries.get(actor, Contact())

    def locale(self, actor: str) -> str:
        """The language ``actor`` reads (zh-CN without an entry)."""
        return self.for_actor(actor).locale

    def addresses(self, actor: str) -> tuple[str, ...]:
        """Where ``actor``'s notices go: all of them in one message (none: no entry)."""
        return self.for_actor(actor).addresses

    def unaddressed(self, actors: Iterable[str]) -> list[str]:
        """Those of ``actors`` that have no address."""
        return [actor for actor in actors if not self.for_actor(actor).addresses]


def is_address(recipient: str) -> bool:
    """Whether ``recipient`` is a mail address rather than an actor id with no address."""
    return _ADDRESS.fullmatch(recipient) is not None  # fullmatch: no trailing newline


def load_contacts(path: str | Path, program: Program) -> Contacts:
    """Load and validate a contacts file; errors name the entry and its line."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"cannot read contacts file {path}: {exc}") from exc
    return parse_contacts(source, program, str(path))


def parse_contacts(source: str, program: Program, where: str = "<contacts>") -> Contacts:
    """Validate the text of a contacts file; ``where`` names it in errors.

    Raises:
        ConfigError: an entry is invalid; the message names it and its line.
    """
    document, root = load_yaml(source, where, what="contacts")
    if document is None:
        return Contacts()
    if not isinstance(document, dict):
        raise ConfigError(
            f"{where}{line_of(root, ())}: a contacts file maps actors (ndrc, drc:hebei, ...) "
            "to entries"
        )
    entries: dict[str, Contact] = {}
    for key, entry in document.items():

        def fail(message: str, *loc: str | int, _key: Any = key) -> ConfigError:
            return ConfigError(f"{where}{line_of(root, (str(_key), *loc))}: {_key}: {message}")

        try:
            actor = str(resolve_actor(Actor.parse(str(key)), program))
        except PeakpilotError as exc:
            raise fail(str(exc)) from None
        if actor in entries:
            raise fail(f"{actor} is given twice")
        if not isinstance(entry, dict) or set(entry) - {"email", "locale"}:
            raise fail("an entry has `email` (a list of addresses) and optionally `locale`")
        addresses = entry.get("email", [])
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, list) or not addresses:
            raise fail("`email` must list at least one address", "email")
        for index, address in enumerate(addresses):
            if not isinstance(address, str) or not is_address(address):
                raise fail(f"{address!r} is not an e-mail address", "email", index)
        locale = entry.get("locale", DEFAULT_LOCALE)
        if locale not in LOCALES:
            raise fail(f"locale {locale!r} is not one of {', '.join(LOCALES)}", "locale")
        entries[actor] = Contact(addresses=tuple(dict.fromkeys(addresses)), locale=locale)
    return Contacts(entries)
