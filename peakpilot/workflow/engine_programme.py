"""The Engine's programme methods: ``init``, a change of programme and its versions.

A part of :class:`~peakpilot.workflow.engine.Engine` kept in its own module (the facade
would otherwise hold every method of every part); the work is in
:mod:`peakpilot.workflow.initialise`, :mod:`peakpilot.workflow.versions` and the queries.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peakpilot.config.program import Program, parse_program
from peakpilot.states.actors import Actor
from peakpilot.vocabulary import SYSTEM
from peakpilot.workflow.snapshots import ProgramVersion

if TYPE_CHECKING:
    from peakpilot.workflow.change_report import ProgramChange
    from peakpilot.workflow.queries import Queries
    from peakpilot.workflow.runtime import Runtime


class ProgrammeMethods:
    """The programme's side of the Engine."""

    _runtime: Runtime
    _queries: Queries
    _stale_after: timedelta

    @property
    def program(self) -> Program:
        """The programme stored in the database (loaded once)."""
        return self._runtime.program

    @property
    def program_version(self) -> int:
        """The number of the stored version :attr:`program` is."""
        return self._runtime.program_version

    def init(
        self,
        program: Program | str | Path | None = None,
        *,
        migrate: Mapping[str, str] | str | Path | None = None,
        dry_run: bool = False,
        actor: Actor | str = SYSTEM,
    ) -> dict[str, Any]:
        """Create or upgrade the schema and load a programme; repeating it changes nothing.

        ``program`` is a validated :class:`Program` or a path to a programme file. Without
        one, a database that holds a programme keeps it (``init`` never reverts to the
        shipped one), and a new database gets the shipped 2023 programme. A programme
        that differs from the one in force is a change (:meth:`change_program`, whose
        ``migrate``, ``dry_run`` and ``actor`` these are). Returns what was done, with
        the change under ``change``.
        """
        from peakpilot.workflow.initialise import initialise

        return initialise(
            self._runtime,
            program,
            migrate=migrate,
            dry_run=dry_run,
            actor=actor,
            stale_after=self._stale_after,
        )

    def address_warnings(self) -> builtins.list[str]:
        """What ``init`` and the daemon's start say when an actor that notices go to has
        no address in the contacts: its notices fail until one is given."""
        from peakpilot.workflow.initialise import address_warnings

        return address_warnings(self._runtime)

    def change_program(
        self,
        text: str | Path | Program,
        migrate: Mapping[str, str] | str | Path | None = None,
        dry_run: bool = False,
        *,
        actor: Actor | str = SYSTEM,
    ) -> ProgramChange:
        """Put a new version of the programme in force, or say why it is not safe.

        ``text`` is the programme file's text (a ``str``), its path, or a :class:`Program`.
        ``migrate`` maps the states the new version removes (``{"old": "new"}``), or is
        the path of a migration file (``states: {old: new}``). A change that strands
        nominations or places raises :class:`Refused` naming each problem (its
        ``change`` attribute holds the report); with ``dry_run`` the report is returned,
        problems included, and nothing is written. The same text as the one in force
        changes nothing (``outcome`` ``unchanged``).
        """
        if isinstance(text, str):
            text = parse_program(text, "the programme text")
        result = self.init(text, migrate=migrate, dry_run=dry_run, actor=actor)
        change: ProgramChange = result["change"]
        return change

    def program_versions(self) -> builtins.list[ProgramVersion]:
        """Every programme version the database loaded, oldest first."""
        return self._queries.program_versions()

    def program_text(self, version: int | None = None) -> str:
        """The text of programme version ``version`` (the one in force by default)."""
        return self._queries.program_text(version)

    def program_diff(self, from_version: int, to_version: int) -> ProgramChange:
        """What changed from one stored version to another (no database facts: the
        differences only)."""
        return self._queries.program_diff(from_version, to_version)


__all__ = ["ProgrammeMethods"]
