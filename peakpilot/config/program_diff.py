"""What changes between two versions of a programme, item by item.

Both versions are compared through their compiled form (:mod:`peakpilot.config.compiled`),
the one description of everything a programme declares, cut into the sections people
review a change by: states, events, transitions, guards, roles, notice kinds, timers,
provinces, the first batch's quotas and the other rules. What a quota change does to
the batches still open, and what they used, only the database knows
(:mod:`peakpilot.states.program_change`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from peakpilot.config.program import Program

Change = Literal["added", "removed", "changed"]

SECTIONS = (
    "states",
    "events",
    "transitions",
    "guards",
    "roles",
    "notice_kinds",
    "timers",
    "provinces",
    "quotas",
    "rules",
)


@dataclass(frozen=True, slots=True)
class Difference:
    """One item of a section added, removed or changed; ``before`` and ``after`` are
    JSON values (None for an item that is only present or absent, such as a state)."""

    section: str
    item: str
    change: Change
    before: Any = None
    after: Any = None


def compare(old: Program, new: Program) -> tuple[Difference, ...]:
    """Every difference from ``old`` to ``new``, section by section, items in the order
    the newer version declares them (removed ones in the older version's order)."""
    before, after = _sections(old), _sections(new)
    found: list[Difference] = []
    for section in SECTIONS:
        was, now = before[section], after[section]
        for item, value in now.items():
            if item not in was:
                found.append(Difference(section, item, "added", None, value))
            elif was[item] != value:
                found.append(Difference(section, item, "changed", was[item], value))
        found += [
            Difference(section, item, "removed", value, None)
            for item, value in was.items()
            if item not in now
        ]
    return tuple(found)


def _sections(program: Program) -> dict[str, dict[str, Any]]:
    compiled = json.loads(program.to_compiled())
    transitions = compiled["transitions"]
    return {
        "states": _present(compiled["states"]),
        "events": _present(row["event"] for row in transitions),
        "transitions": {
            f"{row['event']} from {source}": _transition(row)
            for row in transitions
            for source in row["sources"]
        },
        "guards": _present(
            [*compiled["nominate_guards"], *(g for row in transitions for g in row["guards"])]
        ),
        "roles": compiled["roles"],
        "notice_kinds": _notice_kinds(compiled),
        "timers": _timers(compiled),
        "provinces": compiled["provinces"],
        "quotas": compiled["first_batch"]["quotas"],
        "rules": {
            key: compiled[key]
            for key in (
                "title",
                "timezone",
                "initial_state",
                "final_states",
                "quota_counts",
                "piloted_states",
                "kinds",
                "nominate_roles",
                "nominate_guards",
                "open_batch_roles",
                "attach_roles",
                "material_kinds",
            )
        }
        | {"first_batch": compiled["first_batch"]["id"]},
    }


def _present(items: Iterable[str]) -> dict[str, None]:
    return dict.fromkeys(items)


def _transition(row: dict[str, Any]) -> dict[str, Any]:
    described = {"to": row["dest"], "who": row["roles"], "guards": row["guards"]}
    for key in ("notice", "data", "needs_material"):
        if row[key]:
            described[key] = row[key]
    return described


def _notice_kinds(compiled: dict[str, Any]) -> dict[str, Any]:
    """Each kind with the roles it goes to."""
    kinds: dict[str, Any] = {}
    for row in compiled["transitions"]:
        if row["notice"]:
            kinds.setdefault(row["notice"]["kind"], row["notice"]["to"])
    kinds.update(compiled["timer_notices"])
    return kinds


def _timers(compiled: dict[str, Any]) -> dict[str, Any]:
    batch = compiled["first_batch"]
    timers: dict[str, Any] = {
        "deadline": batch["deadline_at"],
        "reminder_days": batch["reminder_days"],
        "milestones_start_on": compiled["milestone_event"],
    }
    for milestone in compiled["milestones"]:
        timers[f"milestone {milestone['year']}"] = {
            "at": milestone["at"],
            "notice_days_before": milestone["notice_before"]["days"],
            "objective": milestone["objective"],
        }
    for family, settings in compiled["pilot_timers"].items():
        timers[family] = settings
    return timers


__all__ = ["SECTIONS", "Change", "Difference", "compare"]
