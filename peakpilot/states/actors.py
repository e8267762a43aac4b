"""Who acts: ``ndrc``, ``system``, ``drc:<province>`` or ``gov:<province>``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peakpilot.errors import InvalidInput
from peakpilot.vocabulary import SYSTEM

if TYPE_CHECKING:
    from peakpilot.config.program import Program

_ACTOR = re.compile(r"^([a-z][a-z_]{0,31})(?::([A-Za-z0-9_]{1,32}))?$")


@dataclass(frozen=True, slots=True)
class Actor:
    """An actor: a role, and the province it acts for when the role is provincial."""

    role: str
    province: str | None = None

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Parse ``role`` or ``role:province`` (any case); the programme resolves it further."""
        match = _ACTOR.match(text.strip().lower()) if isinstance(text, str) else None
        if match is None:
            raise InvalidInput(
                f"cannot read actor {text!r}: write ndrc, drc:PROVINCE or gov:PROVINCE "
                "(e.g. drc:hebei or gov:130000)"
            )
        return cls(role=match.group(1), province=match.group(2))

    def __str__(self) -> str:
        return self.role if self.province is None else f"{self.role}:{self.province}"


SYSTEM_ACTOR = Actor(SYSTEM)  # the scheduler acting on its own


def resolve_actor(actor: Actor, program: Program) -> Actor:
    """The canonical form of ``actor`` under ``program``: a declared role, a province slug.

    A provincial role needs a province and a national one must not have one; a GB/T 2260
    code becomes the slug, so that ``drc:130000`` and ``drc:hebei`` are the same actor.
    """
    role = program.roles.get(actor.role)
    if role is None:
        raise InvalidInput(
            f"unknown role {actor.role!r} in actor {actor}: use one of {', '.join(program.roles)}"
        )
    if role.scope == "province":
        if actor.province is None:
            raise InvalidInput(f"actor {actor} needs a province: write {actor.role}:PROVINCE")
        return Actor(actor.role, program.province(actor.province).slug)
    if actor.province is not None:
        raise InvalidInput(f"actor {actor}: the {actor.role} role takes no province")
    return actor


def read_scope(actor: Actor, program: Program) -> str | None:
    """The one province ``actor`` (resolved) may read, or None when it reads them all.

    Reads are scoped like writes (DESIGN 4): a provincial role (drc:P, gov:P) reads its
    own province only, both roles alike, as it acts on its own province's nominations
    only; a national role (ndrc, the system) reads every province.
    """
    return actor.province if program.roles[actor.role].scope == "province" else None


def sees_province(actor: Actor, province: str, program: Program) -> bool:
    """Whether ``actor`` (resolved) may read a province's nominations, their history
    and their materials (see :func:`read_scope`)."""
    scope = read_scope(actor, program)
    return scope is None or scope == province


def notice_province(addressee: str, about: str | None, program: Program) -> str | None:
    """The province a notice belongs to, for reading it: the province of the nomination
    it is about (``about``), whoever it is addressed to; else the province of the actor
    it is addressed to (a batch's reminder, shortfall or opening letter to drc:P); else
    none (the deadline summary to ndrc), and then only a national reader sees it.

    So a province reads the letters to any of its actors and every letter about its
    nominations, the NDRC's copy included (it says what the nomination's history says),
    and never a letter about another province or a national round-up.
    """
    if about is not None:
        return about
    role, _, province = addressee.partition(":")
    declared = program.roles.get(role)
    if declared is None or declared.scope != "province" or not province:
        return None
    return province


def sees_notice(actor: Actor, addressee: str, about: str | None, program: Program) -> bool:
    """Whether ``actor`` (resolved) may read a notice addressed to ``addressee`` about a
    nomination of province ``about`` (None: about no nomination); see
    :func:`notice_province`."""
    scope = read_scope(actor, program)
    return scope is None or scope == notice_province(addressee, about, program)


def province_actors(province: str, program: Program) -> tuple[str, ...]:
    """The actors of ``province``, as notices are addressed (``drc:hebei``, ``gov:hebei``):
    what a query of the notices of a province's reader matches (:func:`notice_province`)."""
    return tuple(
        f"{name}:{province}" for name, role in program.roles.items() if role.scope == "province"
    )


class ActorResolver:
    """Resolves actors under one programme, keeping the resolved form of each text: every
    command resolves one, and a process meets few (parsing and resolving again cost a
    transition about 3% on SQLite)."""

    KEPT = 1024  # actor texts whose resolution is kept

    def __init__(self, program: Program) -> None:
        self.program = program
        self._resolved: dict[str, Actor] = {}

    def __call__(self, actor: Actor | str) -> Actor:
        """``actor`` in its canonical form (see :func:`resolve_actor`)."""
        if not isinstance(actor, str):
            return resolve_actor(actor, self.program)
        resolved = self._resolved.get(actor)
        if resolved is None:
            resolved = resolve_actor(Actor.parse(actor), self.program)
            if len(self._resolved) < self.KEPT:
                self._resolved[actor] = resolved
        return resolved
