"""The programme definition: validated once, then immutable, stored compiled.

Everything the engine enforces (states, events, roles, guards, provinces, quotas, the
deadline) comes from a programme file, so a follow-up batch or another programme is a new
file rather than new code. A file is validated when it is loaded
(:mod:`peakpilot.config.program_file`, with pydantic and PyYAML); ``init`` then stores the
result as JSON (:meth:`Program.to_compiled`), which every other process rebuilds without
validating it again (:meth:`Program.from_compiled`). This module imports neither pydantic
nor PyYAML, so a short read-only command does not pay for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from peakpilot.errors import ConfigError, InvalidInput

RoleScope = Literal["national", "province", "system"]
# The version of the JSON written by Program.to_compiled: a stored programme in another
# format is refused, never half-read.
COMPILED_FORMAT = 1


@dataclass(frozen=True)
class Names:
    """A thing's name in each locale the notices use."""

    zh_cn: str
    en: str

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.zh_cn


@dataclass(frozen=True)
class Province:
    slug: str
    code: str
    names: Names


@dataclass(frozen=True)
class Kind:
    slug: str
    names: Names
    rule: str
    levels: Mapping[str, bool]  # level -> eligible


@dataclass(frozen=True)
class Role:
    slug: str
    scope: RoleScope
    names: Names


@dataclass(frozen=True)
class NoticeSpec:
    """A notice of ``kind`` to the roles in ``to`` (provincial roles: of the province)."""

    kind: str
    to: tuple[str, ...]


@dataclass(frozen=True)
class Transition:
    """One row of the workflow table: ``event`` moves ``sources`` to ``dest``."""

    event: str
    sources: tuple[str, ...]
    dest: str
    roles: tuple[str, ...]
    guards: tuple[str, ...]
    notice: NoticeSpec | None = None


@dataclass(frozen=True)
class BatchSpec:
    id: str
    deadline_at: datetime
    reminder_days: tuple[int, ...]
    quotas: Mapping[str, int]


@dataclass(frozen=True)
class Milestone:
    """A progress objective; confirming a nomination starts a timer ``notice_before`` it."""

    year: int
    at: datetime
    notice_before: timedelta
    objective: Names


@dataclass(frozen=True)
class Program:
    """A validated programme. Build one with :func:`load_program` or :func:`parse_program`
    from a file, or with :meth:`from_compiled` from what ``init`` stored."""

    id: str
    title: Names
    timezone: ZoneInfo
    first_batch: BatchSpec
    provinces: Mapping[str, Province]
    kinds: Mapping[str, Kind]
    roles: Mapping[str, Role]
    nominate_roles: tuple[str, ...]
    nominate_guards: tuple[str, ...]
    open_batch_roles: tuple[str, ...]
    timer_notices: Mapping[str, tuple[str, ...]]
    milestone_event: str | None
    milestones: tuple[Milestone, ...]
    quota_counts: tuple[str, ...]
    states: tuple[str, ...]
    initial_state: str
    final_states: frozenset[str]
    transitions: tuple[Transition, ...]
    source: str = field(repr=False)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the source text: tells whether a stored programme changed."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    @cached_property
    def events(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.event for t in self.transitions))

    @cached_property
    def notice_kinds(self) -> tuple[str, ...]:
        """Every notice kind the programme declares (their templates must exist)."""
        kinds = [t.notice.kind for t in self.transitions if t.notice is not None]
        return tuple(dict.fromkeys([*kinds, *self.timer_notices]))

    @cached_property
    def _province_lookup(self) -> dict[str, Province]:
        lookup: dict[str, Province] = {}
        for province in self.provinces.values():
            lookup[province.slug] = province
            lookup[province.code] = province
        return lookup

    def province(self, text: str) -> Province:
        """The province named by ``text``: its slug (any case) or its GB/T 2260 code."""
        found = self._province_lookup.get(text.strip().lower())
        if found is None:
            raise InvalidInput(
                f"unknown province {text!r}: use a slug such as hebei or a GB/T 2260 code "
                f"such as 130000 ({', '.join(self.provinces)})"
            )
        return found

    def kind(self, text: str) -> Kind:
        found = self.kinds.get(text)
        if found is None:
            raise InvalidInput(f"unknown kind {text!r}: use one of {', '.join(self.kinds)}")
        return found

    def state(self, text: str) -> str:
        if text not in self.states:
            raise InvalidInput(f"unknown state {text!r}: use one of {', '.join(self.states)}")
        return text

    def to_compiled(self) -> str:
        """This programme as JSON that :meth:`from_compiled` turns back into an equal one.

        ``init`` stores it, so that later processes skip parsing and validating the file.
        The output is deterministic (the same programme gives the same text) and keeps
        the programme's order of provinces, states and transitions, the UTC offsets its
        instants were written with, and the source text with its digest.
        """
        batch = self.first_batch
        document = {
            "format": COMPILED_FORMAT,
            "id": self.id,
            "title": _names_out(self.title),
            "timezone": self.timezone.key,
            "first_batch": {
                "id": batch.id,
                "deadline_at": batch.deadline_at.isoformat(),
                "reminder_days": list(batch.reminder_days),
                "quotas": dict(batch.quotas),
            },
            "provinces": {
                slug: {"code": p.code, "names": _names_out(p.names)}
                for slug, p in self.provinces.items()
            },
            "kinds": {
                slug: {"names": _names_out(k.names), "rule": k.rule, "levels": dict(k.levels)}
                for slug, k in self.kinds.items()
            },
            "roles": {
                slug: {"scope": r.scope, "names": _names_out(r.names)}
                for slug, r in self.roles.items()
            },
            "nominate_roles": list(self.nominate_roles),
            "nominate_guards": list(self.nominate_guards),
            "open_batch_roles": list(self.open_batch_roles),
            "timer_notices": {kind: list(roles) for kind, roles in self.timer_notices.items()},
            "milestone_event": self.milestone_event,
            "milestones": [
                {
                    "year": m.year,
                    "at": m.at.isoformat(),
                    "notice_before": _duration_out(m.notice_before),
                    "objective": _names_out(m.objective),
                }
                for m in self.milestones
            ],
            "quota_counts": list(self.quota_counts),
            "states": list(self.states),
            "initial_state": self.initial_state,
            "final_states": sorted(self.final_states),
            "transitions": [
                {
                    "event": t.event,
                    "sources": list(t.sources),
                    "dest": t.dest,
                    "roles": list(t.roles),
                    "guards": list(t.guards),
                    "notice": None
                    if t.notice is None
                    else {"kind": t.notice.kind, "to": list(t.notice.to)},
                }
                for t in self.transitions
            ],
            "sha256": self.digest,
            "source": self.source,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_compiled(cls, text: str) -> Program:
        """The programme that :meth:`to_compiled` wrote, rebuilt without validation.

        The text is derived data written by ``init`` after the file was validated, so it
        is trusted: checking it again would need pydantic, the cost this form avoids. Only
        its format and its digest are checked, which tells an unknown format, or a text
        edited or cut short in the database, from a programme.
        """
        try:
            data = json.loads(text)
            found = data.get("format")
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"the stored programme is not a compiled programme ({exc}): run init again"
            ) from exc
        if found != COMPILED_FORMAT or isinstance(found, bool):
            raise ConfigError(
                f"the stored programme is in compiled format {found!r}, and this peakpilot "
                f"reads format {COMPILED_FORMAT}: run init again with this version"
            )
        try:
            program = cls._from_document(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"the stored programme is damaged ({type(exc).__name__}: {exc}): run init again"
            ) from exc
        if program.digest != data.get("sha256"):
            raise ConfigError("the stored programme does not match its digest: run init again")
        return program

    @classmethod
    def _from_document(cls, data: dict[str, Any]) -> Program:
        batch = data["first_batch"]
        return cls(
            id=data["id"],
            title=_names_in(data["title"]),
            timezone=ZoneInfo(data["timezone"]),
            first_batch=BatchSpec(
                id=batch["id"],
                deadline_at=datetime.fromisoformat(batch["deadline_at"]),
                reminder_days=tuple(batch["reminder_days"]),
                quotas=dict(batch["quotas"]),
            ),
            provinces={
                slug: Province(slug=slug, code=p["code"], names=_names_in(p["names"]))
                for slug, p in data["provinces"].items()
            },
            kinds={
                slug: Kind(
                    slug=slug, names=_names_in(k["names"]), rule=k["rule"], levels=dict(k["levels"])
                )
                for slug, k in data["kinds"].items()
            },
            roles={
                slug: Role(slug=slug, scope=r["scope"], names=_names_in(r["names"]))
                for slug, r in data["roles"].items()
            },
            nominate_roles=tuple(data["nominate_roles"]),
            nominate_guards=tuple(data["nominate_guards"]),
            open_batch_roles=tuple(data["open_batch_roles"]),
            timer_notices={kind: tuple(roles) for kind, roles in data["timer_notices"].items()},
            milestone_event=data["milestone_event"],
            milestones=tuple(
                Milestone(
                    year=m["year"],
                    at=datetime.fromisoformat(m["at"]),
                    notice_before=timedelta(**m["notice_before"]),
                    objective=_names_in(m["objective"]),
                )
                for m in data["milestones"]
            ),
            quota_counts=tuple(data["quota_counts"]),
            states=tuple(data["states"]),
            initial_state=data["initial_state"],
            final_states=frozenset(data["final_states"]),
            transitions=tuple(
                Transition(
                    event=t["event"],
                    sources=tuple(t["sources"]),
                    dest=t["dest"],
                    roles=tuple(t["roles"]),
                    guards=tuple(t["guards"]),
                    notice=None
                    if t["notice"] is None
                    else NoticeSpec(kind=t["notice"]["kind"], to=tuple(t["notice"]["to"])),
                )
                for t in data["transitions"]
            ),
            source=data["source"],
        )


def _names_out(names: Names) -> dict[str, str]:
    return {"zh_cn": names.zh_cn, "en": names.en}


def _names_in(data: dict[str, str]) -> Names:
    return Names(zh_cn=data["zh_cn"], en=data["en"])


def _duration_out(delta: timedelta) -> dict[str, int]:
    """A timedelta by its own normalised parts, so that it comes back exactly."""
    return {"days": delta.days, "seconds": delta.seconds, "microseconds": delta.microseconds}


def load_program(path: str | Path | None = None) -> Program:
    """Load and validate a programme file; ``None`` loads the shipped 2023 programme.

    The validator (pydantic, PyYAML) is imported here, on first use, so that importing
    this module stays cheap for the processes that only rebuild a stored programme.
    """
    from peakpilot.config import program_file

    return program_file.load(path)


def parse_program(source: str, where: str = "<programme>") -> Program:
    """Validate programme text; raise :class:`ConfigError` naming the item and its line."""
    from peakpilot.config import program_file

    return program_file.parse(source, where)


__all__ = [
    "COMPILED_FORMAT",
    "BatchSpec",
    "Kind",
    "Milestone",
    "Names",
    "NoticeSpec",
    "Program",
    "Province",
    "Role",
    "RoleScope",
    "Transition",
    "load_program",
    "parse_program",
]
