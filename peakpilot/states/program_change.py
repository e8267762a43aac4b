"""The rules of a programme change: what loading a new version does to the nominations
and quotas the database holds, and what makes it unsafe.

A change may not strand anything: a nomination in a state the new version removes (unless
the migration maps that state to one the new version declares), a nomination of a
province it removes, or an open batch whose new quota is below the places already used.
Closed batches keep their quotas; the first batch, while open, takes the quotas the new
text declares. Pure: the caller counts the nominations (:class:`Census`) and applies the
plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from peakpilot.config.program import Program
from peakpilot.errors import NotPermitted
from peakpilot.states.actors import Actor


@dataclass(frozen=True, slots=True)
class Census:
    """What the database holds, as a change needs it."""

    counts: Mapping[tuple[str, str, str], int]  # (batch, province, state) -> nominations
    open_quotas: Mapping[str, Mapping[str, int]]  # open batch -> province -> quota


@dataclass(frozen=True, slots=True)
class StateMove:
    from_state: str
    to_state: str
    nominations: int


@dataclass(frozen=True, slots=True)
class QuotaChange:
    """A province's quota in an open batch: ``after`` None when the province is removed."""

    batch: str
    province: str
    before: int | None
    after: int | None
    used: int


@dataclass(frozen=True, slots=True)
class ChangePlan:
    moves: tuple[StateMove, ...]
    quotas: tuple[QuotaChange, ...]
    problems: tuple[str, ...]  # empty: the change is safe to apply


def plan_change(
    old: Program, new: Program, census: Census, mapping: Mapping[str, str]
) -> ChangePlan:
    """What applying ``new`` over ``old`` does, and every reason it may not."""
    problems = _mapping_problems(old, new, mapping)
    if new.first_batch.id != old.first_batch.id:
        problems.append(
            f"the first batch changes from {old.first_batch.id} to {new.first_batch.id}: a "
            "programme keeps its first batch; open another with `peakpilot batch open`"
        )
    by_state: dict[str, int] = {}
    by_province: dict[str, int] = {}
    for (_, province, state), count in census.counts.items():
        by_state[state] = by_state.get(state, 0) + count
        by_province[province] = by_province.get(province, 0) + count
    for state in old.states:
        held = by_state.get(state, 0)
        if state not in new.states and held and state not in mapping:
            problems.append(
                f"state {state} is removed but holds {_nominations(held)}: map it to a "
                f"state of the new programme in a --migrate file (states: {{{state}: ...}})"
            )
    for province, held in by_province.items():
        if province not in new.provinces:
            problems.append(f"province {province} is removed but has {_nominations(held)}")
    moves = tuple(
        StateMove(source, target, by_state[source])
        for source, target in mapping.items()
        if source != target and by_state.get(source)
    )
    quotas = _quota_changes(new, census, mapping)
    problems += [
        f"the quota of {q.province} in batch {q.batch} "
        f"{'is removed' if q.after is None else f'falls to {q.after}'} but {q.used} "
        f"place{'' if q.used == 1 else 's'} {'is' if q.used == 1 else 'are'} used"
        for q in quotas
        if q.used > (q.after or 0)
    ]
    return ChangePlan(moves, quotas, tuple(problems))


def check_loader(actor: Actor) -> None:
    """Who loads a programme: the system (an operator's ``init``) or a national actor
    (the NDRC); a province's DRC or government changes the rules of no one."""
    if actor.province is not None:
        raise NotPermitted(f"{actor} may not load a programme: only the system or the NDRC does")


def _mapping_problems(old: Program, new: Program, mapping: Mapping[str, str]) -> list[str]:
    problems = []
    for source, target in mapping.items():
        if source not in old.states:
            problems.append(
                f"the migration maps state {source}, which the programme in force does not "
                f"declare ({', '.join(old.states)})"
            )
        if target not in new.states:
            problems.append(
                f"the migration maps {source} to {target}, which the new programme does not "
                f"declare ({', '.join(new.states)})"
            )
    return problems


def _quota_changes(
    new: Program, census: Census, mapping: Mapping[str, str]
) -> tuple[QuotaChange, ...]:
    """The open batches' quotas that change: the first batch's to the new text's, and a
    removed province's anywhere; ``used`` counted by the new rules after the moves."""
    counting = set(new.quota_counts)
    used: dict[tuple[str, str], int] = {}
    for (batch, province, state), count in census.counts.items():
        if mapping.get(state, state) in counting:
            used[batch, province] = used.get((batch, province), 0) + count
    changes = []
    for batch, quotas in census.open_quotas.items():
        declared = new.first_batch.quotas if batch == new.first_batch.id else None
        for province in dict.fromkeys([*quotas, *(declared or {})]):
            before = quotas.get(province)
            if province not in new.provinces:
                after = None
            elif declared is not None:
                after = declared.get(province)
            else:
                after = before
            if after != before:
                changes.append(
                    QuotaChange(batch, province, before, after, used.get((batch, province), 0))
                )
    return tuple(changes)


def _nominations(count: int) -> str:
    return f"{count} nomination{'' if count == 1 else 's'}"


__all__ = ["Census", "ChangePlan", "QuotaChange", "StateMove", "check_loader", "plan_change"]
