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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from peakpilot.config.construction import DataField, MaterialRule, PilotTimers
from peakpilot.errors import InvalidInput

RoleScope = Literal["national", "province", "system"]


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
    """One row of the workflow table: ``event`` moves ``sources`` to ``dest`` (``None``:
    the state is unchanged, an event such as a progress report that is audited and
    notified like any other). ``data`` declares what the event carries; ``needs_material``
    a document it needs."""

    event: str
    sources: tuple[str, ...]
    dest: str | None
    roles: tuple[str, ...]
    guards: tuple[str, ...]
    notice: NoticeSpec | None = None
    data: Mapping[str, DataField] = field(default_factory=dict)
    needs_material: MaterialRule | None = None

    def dest_from(self, source: str) -> str:
        """The state this move leaves a nomination in that was in ``source``."""
        return source if self.dest is None else self.dest


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
    # After confirmation (DESIGN 2b): who may attach materials, their kinds, the states
    # in which a place counts as piloted (and may not be nominated again), the timers.
    attach_roles: tuple[str, ...] = ()
    material_kinds: Mapping[str, Names] = field(default_factory=dict)
    piloted_states: tuple[str, ...] = ()
    pilot_timers: PilotTimers = field(default_factory=PilotTimers)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the source text: tells whether a stored programme changed."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    @cached_property
    def events(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.event for t in self.transitions))

    @cached_property
    def pilot_states(self) -> tuple[str, ...]:
        """The states of the ``pilots`` view: the piloted states and every state they
        lead to (a revoked pilot included), in the programme's order."""
        reached = set(self.piloted_states)
        frontier = list(reached)
        while frontier:
            state = frontier.pop()
            for row in self.transitions:
                dest = row.dest_from(state)
                if state in row.sources and dest not in reached:
                    reached.add(dest)
                    frontier.append(dest)
        return tuple(state for state in self.states if state in reached)

    @cached_property
    def notice_kinds(self) -> tuple[str, ...]:
        """Every notice kind the programme declares (their templates must exist)."""
        kinds = [t.notice.kind for t in self.transitions if t.notice is not None]
        return tuple(dict.fromkeys([*kinds, *self.timer_notices]))

    @cached_property
    def notified_actors(self) -> tuple[str, ...]:
        """Every actor a notice of the programme may go to: each national role, and each
        provincial role of every province (who needs an address in the contacts)."""
        roles = [role for t in self.transitions if t.notice for role in t.notice.to]
        roles += [role for to in self.timer_notices.values() for role in to]
        actors: list[str] = []
        for role in dict.fromkeys(roles):
            if self.roles[role].scope == "province":
                actors += [f"{role}:{province}" for province in self.provinces]
            else:
                actors.append(role)
        return tuple(actors)

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

    def material_kind(self, text: str) -> str:
        if text not in self.material_kinds:
            raise InvalidInput(
                f"unknown material kind {text!r}: use one of {', '.join(self.material_kinds)}"
            )
        return text

    def state(self, text: str) -> str:
        if text not in self.states:
            raise InvalidInput(f"unknown state {text!r}: use one of {', '.join(self.states)}")
        return text

    def to_compiled(self) -> str:
        """This programme as JSON that :meth:`from_compiled` turns back into an equal one
        (see :mod:`peakpilot.config.compiled`)."""
        from peakpilot.config import compiled

        return compiled.dump(self)

    @classmethod
    def from_compiled(cls, text: str) -> Program:
        """The programme that :meth:`to_compiled` wrote, rebuilt without validation."""
        from peakpilot.config import compiled

        return compiled.load(text)


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


def rebuild_program(source: str, compiled: str | None, where: str) -> Program:
    """A stored programme: rebuilt from its compiled form when this peakpilot reads that
    form, else validated again from its text (a programme stored before compiled forms
    were kept, or in the format of an older peakpilot)."""
    from peakpilot.errors import ConfigError

    if compiled is not None:
        try:
            return Program.from_compiled(compiled)
        except ConfigError:
            pass
    return parse_program(source, where)


__all__ = [
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
    "rebuild_program",
]
