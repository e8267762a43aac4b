"""The named rules a programme file may attach to a transition.

Each guard is a pure function of the nomination and a :class:`DecisionContext` that the
engine assembled (the time, the batch, the quota); it returns ``None`` when the rule holds,
or the reason it does not, phrased for the clerk who must act on it. Guards must be free
of side effects: ``transitions`` may evaluate them more than once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from peakpilot.vocabulary import ATTACH_EVENT


class NominationFacts(Protocol):
    """What a guard may know of a nomination (a snapshot satisfies it)."""

    @property
    def id(self) -> str: ...
    @property
    def province(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """A batch as the rules see it: its deadline and whether its deadline work has run."""

    id: str
    deadline_at: datetime
    is_open: bool


@dataclass(frozen=True, slots=True)
class QuotaFacts:
    """A province's places in a batch: ``used`` counts submitted and confirmed nominations."""

    quota: int
    used: int


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """The batch a ``carry_over`` would move a nomination into (the newest open one)."""

    batch: BatchFacts | None
    quota: int | None
    name_taken: bool


@dataclass(frozen=True, slots=True)
class TrailEntry:
    """One record of a nomination's audit trail, as the rules read it."""

    event: str
    from_state: str | None
    to_state: str
    at: datetime
    data: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class TrailFacts:
    """What happened to a nomination so far (its audit trail, oldest first): the rules of
    the construction years depend on it (a report per year, the midterm once, a document
    attached since a moment)."""

    entries: tuple[TrailEntry, ...]

    def entered_state(self, state: str) -> int | None:
        """The position of the record by which the nomination last moved into ``state``
        from another state. (Positions, not times: records written at one instant, as on
        a frozen clock, keep their order.)"""
        for index in range(len(self.entries) - 1, -1, -1):
            entry = self.entries[index]
            if entry.to_state == state and entry.from_state != state:
                return index
        return None

    def last(self, event: str) -> int | None:
        """The position of the event's newest record."""
        for index in range(len(self.entries) - 1, -1, -1):
            if self.entries[index].event == event:
                return index
        return None

    def values(self, event: str, key: str) -> list[Any]:
        """Each value of ``key`` in the data of the event's records."""
        return [e.data[key] for e in self.entries if e.event == event and e.data and key in e.data]

    def has_material(self, kind: str, after: int | None) -> bool:
        """Whether a material of ``kind`` was attached after position ``after`` (ever,
        when it is None)."""
        start = 0 if after is None else after + 1
        return any(
            e.event == ATTACH_EVENT and e.data is not None and e.data.get("kind") == kind
            for e in self.entries[start:]
        )


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Everything beyond the nomination that a rule may depend on.

    ``quota``, ``target`` and ``trail`` are filled only when a rule of the transition
    needs them (see :attr:`Guard.needs`), since each costs the engine a query. ``data`` is
    the event's data: as given until the machine has checked it, then as stored.
    """

    now: datetime
    batch: BatchFacts
    province_name: str
    reason: str | None = None
    quota: QuotaFacts | None = None
    target: TargetFacts | None = None
    event: str | None = None
    data: Mapping[str, Any] | None = None
    trail: TrailFacts | None = None


Check = Callable[[NominationFacts, DecisionContext], "str | None"]


@dataclass(frozen=True, slots=True)
class Guard:
    """A named rule. ``needs`` names the context parts it reads; ``on_input`` marks a rule
    about the command's own input (a reason), which "what could this actor do" ignores."""

    name: str
    check: Check
    needs: frozenset[str] = frozenset()
    on_input: bool = False


def _batch_open(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    if ctx.batch.is_open:
        return None
    return f"batch {ctx.batch.id} is closed"


def _before_deadline(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    if ctx.now < ctx.batch.deadline_at:
        return None
    return f"the deadline of batch {ctx.batch.id} ({ctx.batch.deadline_at.isoformat()}) has passed"


def _deadline_reached(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    if ctx.now >= ctx.batch.deadline_at:
        return None
    return f"the deadline of batch {ctx.batch.id} ({ctx.batch.deadline_at.isoformat()}) is ahead"


def _quota_available(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    assert ctx.quota is not None, "quota_available needs the quota in the context"
    if ctx.quota.used < ctx.quota.quota:
        return None
    return (
        f"{ctx.province_name} has used {ctx.quota.used} of {ctx.quota.quota} places "
        f"in batch {ctx.batch.id}"
    )


def _batch_gives_quota(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    if ctx.quota is not None and ctx.quota.quota > 0:
        return None
    return f"batch {ctx.batch.id} gives {ctx.province_name} no quota"


def _reason_given(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    if ctx.reason is not None and ctx.reason.strip():
        return None
    return "a reason is required: say why"


def _target_batch_open(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    if ctx.target is not None and ctx.target.batch is not None and ctx.target.batch.is_open:
        return None
    return "no follow-up batch is open"


def _target_batch_gives_quota(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    assert ctx.target is not None and ctx.target.batch is not None
    if ctx.target.quota:
        return None
    return f"batch {ctx.target.batch.id} gives {ctx.province_name} no quota"


def _target_batch_name_free(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    assert ctx.target is not None and ctx.target.batch is not None
    if not ctx.target.name_taken:
        return None
    return (
        f"batch {ctx.target.batch.id} already has a {nomination.kind} named "
        f"{nomination.name!r} from {ctx.province_name}"
    )


def _period_begun(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    period = (ctx.data or {}).get("period")
    if period is None or period <= ctx.now.year:
        return None
    return f"the period {period} has not begun: a year is reported once it has begun"


def _period_unreported(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    assert ctx.trail is not None and ctx.event is not None
    period = (ctx.data or {}).get("period")
    if period is None or period not in ctx.trail.values(ctx.event, "period"):
        return None
    return f"the progress of {period} was already reported"


def _first_time(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    assert ctx.trail is not None and ctx.event is not None
    done = ctx.trail.last(ctx.event)
    if done is None:
        return None
    when = ctx.trail.entries[done].at.date().isoformat()
    return f"{ctx.event} happens once, and it happened on {when}"


def _midterm_passed(nomination: NominationFacts, ctx: DecisionContext) -> str | None:
    assert ctx.trail is not None
    if ctx.trail.last("pass_midterm") is not None:
        return None
    return "the mid-term evaluation must be passed first"


TRAIL = frozenset({"trail"})

GUARDS: dict[str, Guard] = {
    guard.name: guard
    for guard in (
        Guard("batch_open", _batch_open),
        Guard("before_deadline", _before_deadline),
        Guard("deadline_reached", _deadline_reached),
        Guard("quota_available", _quota_available, needs=frozenset({"quota"})),
        Guard("batch_gives_quota", _batch_gives_quota, needs=frozenset({"quota"})),
        Guard("reason_given", _reason_given, on_input=True),
        Guard("target_batch_open", _target_batch_open, needs=frozenset({"target"})),
        Guard("target_batch_gives_quota", _target_batch_gives_quota, needs=frozenset({"target"})),
        Guard("target_batch_name_free", _target_batch_name_free, needs=frozenset({"target"})),
        Guard("period_begun", _period_begun, on_input=True),
        Guard("period_unreported", _period_unreported, needs=TRAIL, on_input=True),
        Guard("first_time", _first_time, needs=TRAIL),
        Guard("midterm_passed", _midterm_passed, needs=TRAIL),
    )
}
