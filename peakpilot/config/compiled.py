"""The compiled form of a programme: the JSON ``init`` stores beside the file's text.

Every process but the one loading a file rebuilds its :class:`Program` from this form,
without pydantic or PyYAML (the validation they do was done when the file was loaded).
The output is deterministic (the same programme gives the same text) and keeps the
programme's order of provinces, states and transitions, the UTC offsets its instants
were written with, and the source text with its digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from peakpilot.config.construction import (
    DataField,
    MaterialRule,
    PilotTimers,
    PlanTimers,
    RectificationTimers,
    ReportTimers,
)
from peakpilot.config.program import (
    BatchSpec,
    Kind,
    Milestone,
    Names,
    NoticeSpec,
    Program,
    Province,
    Role,
    Transition,
)
from peakpilot.errors import ConfigError

# The version of the JSON written by dump: a stored programme in another format is
# refused, never half-read. 2 added the construction years (event data, materials,
# pilot timers).
COMPILED_FORMAT = 2


def dump(program: Program) -> str:
    """``program`` as JSON that :func:`load` turns back into an equal programme."""
    batch = program.first_batch
    timers = program.pilot_timers
    document = {
        "format": COMPILED_FORMAT,
        "id": program.id,
        "title": _names_out(program.title),
        "timezone": program.timezone.key,
        "first_batch": {
            "id": batch.id,
            "deadline_at": batch.deadline_at.isoformat(),
            "reminder_days": list(batch.reminder_days),
            "quotas": dict(batch.quotas),
        },
        "provinces": {
            slug: {"code": p.code, "names": _names_out(p.names)}
            for slug, p in program.provinces.items()
        },
        "kinds": {
            slug: {"names": _names_out(k.names), "rule": k.rule, "levels": dict(k.levels)}
            for slug, k in program.kinds.items()
        },
        "roles": {
            slug: {"scope": r.scope, "names": _names_out(r.names)}
            for slug, r in program.roles.items()
        },
        "nominate_roles": list(program.nominate_roles),
        "nominate_guards": list(program.nominate_guards),
        "open_batch_roles": list(program.open_batch_roles),
        "timer_notices": {kind: list(roles) for kind, roles in program.timer_notices.items()},
        "milestone_event": program.milestone_event,
        "milestones": [
            {
                "year": m.year,
                "at": m.at.isoformat(),
                "notice_before": _duration_out(m.notice_before),
                "objective": _names_out(m.objective),
            }
            for m in program.milestones
        ],
        "quota_counts": list(program.quota_counts),
        "states": list(program.states),
        "initial_state": program.initial_state,
        "final_states": sorted(program.final_states),
        "transitions": [_transition_out(t) for t in program.transitions],
        "attach_roles": list(program.attach_roles),
        "material_kinds": {k: _names_out(n) for k, n in program.material_kinds.items()},
        "piloted_states": list(program.piloted_states),
        "pilot_timers": {
            "plan": None if timers.plan is None else _plain(timers.plan),
            "report": None if timers.report is None else _plain(timers.report),
            "rectification": None if timers.rectification is None else _plain(timers.rectification),
        },
        "sha256": program.digest,
        "source": program.source,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def load(text: str) -> Program:
    """The programme that :func:`dump` wrote, rebuilt without validation.

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
        program = _program_in(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"the stored programme is damaged ({type(exc).__name__}: {exc}): run init again"
        ) from exc
    if program.digest != data.get("sha256"):
        raise ConfigError("the stored programme does not match its digest: run init again")
    return program


def _program_in(data: dict[str, Any]) -> Program:
    batch = data["first_batch"]
    timers = data["pilot_timers"]
    return Program(
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
        transitions=tuple(_transition_in(t) for t in data["transitions"]),
        source=data["source"],
        attach_roles=tuple(data["attach_roles"]),
        material_kinds={k: _names_in(n) for k, n in data["material_kinds"].items()},
        piloted_states=tuple(data["piloted_states"]),
        pilot_timers=PilotTimers(
            plan=None if timers["plan"] is None else PlanTimers(**_tuples(timers["plan"])),
            report=None if timers["report"] is None else ReportTimers(**_tuples(timers["report"])),
            rectification=None
            if timers["rectification"] is None
            else RectificationTimers(**_tuples(timers["rectification"])),
        ),
    )


def _transition_out(t: Transition) -> dict[str, Any]:
    return {
        "event": t.event,
        "sources": list(t.sources),
        "dest": t.dest,
        "roles": list(t.roles),
        "guards": list(t.guards),
        "notice": None if t.notice is None else {"kind": t.notice.kind, "to": list(t.notice.to)},
        "data": {name: _plain(spec) for name, spec in t.data.items()},
        "needs_material": None if t.needs_material is None else _plain(t.needs_material),
    }


def _transition_in(t: dict[str, Any]) -> Transition:
    notice, material = t["notice"], t["needs_material"]
    return Transition(
        event=t["event"],
        sources=tuple(t["sources"]),
        dest=t["dest"],
        roles=tuple(t["roles"]),
        guards=tuple(t["guards"]),
        notice=None if notice is None else NoticeSpec(kind=notice["kind"], to=tuple(notice["to"])),
        data={name: DataField(**_tuples(spec)) for name, spec in t["data"].items()},
        needs_material=None if material is None else MaterialRule(**material),
    )


def _plain(record: Any) -> dict[str, Any]:
    """A flat record of the construction module as JSON data (tuples become lists)."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in ((n, getattr(record, n)) for n in record.__dataclass_fields__)
    }


def _tuples(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _names_out(names: Names) -> dict[str, str]:
    return {"zh_cn": names.zh_cn, "en": names.en}


def _names_in(data: dict[str, str]) -> Names:
    return Names(zh_cn=data["zh_cn"], en=data["en"])


def _duration_out(delta: timedelta) -> dict[str, int]:
    """A timedelta by its own normalised parts, so that it comes back exactly."""
    return {"days": delta.days, "seconds": delta.seconds, "microseconds": delta.microseconds}


__all__ = ["COMPILED_FORMAT", "dump", "load"]
