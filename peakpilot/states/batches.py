"""The rules of opening a follow-up batch and of its quotas. Pure: the caller brings the
time and what the database says."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from peakpilot.clock import require_instant
from peakpilot.config.program import Program
from peakpilot.errors import InvalidInput, NotPermitted, Refused
from peakpilot.states.actors import Actor
from peakpilot.vocabulary import BATCH_ID

MAX_QUOTA = 1000  # places one province may be given in one batch


def quota_problem(quota: object) -> str | None:
    """What is wrong with ``quota`` as a province's places in a batch (a predicate for
    "the quota ..."), or None."""
    if isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= MAX_QUOTA:
        return f"must be a whole number from 1 to {MAX_QUOTA}"
    return None


def check_open_batch(
    program: Program,
    actor: Actor,
    batch_id: object,
    *,
    deadline: datetime,
    now: datetime,
    quotas: Mapping[str, object],
    exists: bool,
) -> tuple[datetime, dict[str, int]]:
    """The deadline as an instant and the quotas by province slug, or the refusal:
    only the programme's roles open a batch, under a new well-formed id, with a deadline
    in the future and at least one province given a valid quota."""
    if actor.role not in program.open_batch_roles:
        raise NotPermitted(
            f"{actor} may not open a batch: only {' or '.join(program.open_batch_roles)} may"
        )
    if not isinstance(batch_id, str) or not BATCH_ID.fullmatch(batch_id):
        raise InvalidInput(f"batch id {batch_id!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    deadline_at = require_instant(deadline, "the deadline")
    if deadline_at <= now:
        raise Refused(
            f"cannot open batch {batch_id}: its deadline "
            f"{deadline_at.astimezone(program.timezone).isoformat()} is not in the future"
        )
    resolved: dict[str, int] = {}
    for province, quota in quotas.items():
        slug = program.province(province).slug
        if slug in resolved:
            raise InvalidInput(f"{slug} is given twice")
        problem = quota_problem(quota)
        if problem is not None:
            raise InvalidInput(f"the quota of {slug} {problem}")
        resolved[slug] = quota  # type: ignore[assignment]  # an int, checked above
    if not resolved:
        raise InvalidInput("give at least one province a quota")
    if exists:
        raise Refused(f"cannot open batch {batch_id}: a batch of that id exists")
    return deadline_at, resolved


__all__ = ["MAX_QUOTA", "check_open_batch", "quota_problem"]
