"""The values the notice templates read, as objects whose attributes Jinja finds at once.

A template reads ``nomination.name``; Jinja looks for an attribute first and a key second,
so on a plain dict every such read first fails an attribute lookup (an ``AttributeError``
raised and caught), dozens of times per notice. These frozen records answer the first
lookup, and are the same values whatever the template.

Each record is also a read-only mapping, like the dicts the templates used to get, so
that an operator's template written against those (``nomination["name"]``,
``nomination.items()``, ``"name" in nomination``) renders as it did.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class _Record(Mapping[str, Any]):
    """A frozen dataclass read as a mapping of its fields."""

    __slots__ = ()
    __match_args__: tuple[str, ...]  # the fields, in order (set by @dataclass)

    def __getitem__(self, key: str) -> Any:
        if key not in self.__match_args__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__match_args__)

    def __len__(self) -> int:
        return len(self.__match_args__)


@dataclass(frozen=True, slots=True)
class ActorText(_Record):
    """``actor`` and ``recipient``: an actor id (or ids, comma-separated) and its name."""

    actor: str
    name: str


@dataclass(frozen=True, slots=True)
class ProvinceText(_Record):
    """A province: its slug and its name in the notice's language."""

    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class BatchText(_Record):
    """``batch``: its id and its deadline as a clerk reads it."""

    id: str
    deadline: str


@dataclass(frozen=True, slots=True)
class NominationText(_Record):
    """``nomination``: ``kind`` is the kind's name in the notice's language; ``level`` and
    ``state`` are codes, which the templates label."""

    id: str
    name: str
    kind: str
    level: str
    state: str
    province: ProvinceText


__all__ = ["ActorText", "BatchText", "NominationText", "ProvinceText"]
