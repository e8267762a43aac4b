"""A programme file as written: its shape (pydantic), its whole-file rules, its build.

A broken file is refused here with a message that names the offending item and its line,
because the person fixing it is looking at the file. Only a file being loaded comes here
(``init --program``, the tests, an embedding backend's
:func:`~peakpilot.config.program.load_program`); every other process rebuilds the
:class:`~peakpilot.config.program.Program` that ``init`` stored with
:meth:`~peakpilot.config.program.Program.from_compiled`, so that pydantic and PyYAML are
imported where a file is validated and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from peakpilot.config.pilot_file import (
    PILOT_TIMER_NOTICES,
    AttachFile,
    DataFieldFile,
    MaterialRuleFile,
    PilotTimersFile,
    build_data,
    build_material,
    build_timers,
    data_problems,
    material_problems,
    timer_problems,
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
    RoleScope,
    Transition,
)
from peakpilot.config.yaml_lines import line_of, load_yaml
from peakpilot.errors import ConfigError
from peakpilot.states.guards import GUARDS
from peakpilot.vocabulary import BATCH_ID

SHIPPED_PROGRAM = "carbon_peak_2023.yaml"
# The notices the scheduler's work sends; the programme says who receives each.
TIMER_NOTICE_KINDS = (
    "reminder",
    "shortfall",
    "deadline_summary",
    "batch_opened",
    "milestone",
    *(kind for pair in PILOT_TIMER_NOTICES.values() for kind in pair),
)


# --- the file's shape (parsed by pydantic, then checked as a whole) -------------------


def _instant(value: Any) -> Any:
    """An instant needs an offset: YAML turns an unquoted timestamp into a datetime (or a
    bare day into a date), and anything without an offset is ambiguous."""
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(
            f"{value.isoformat()} is a day, not an instant: write it like 2023-11-15T00:00:00+08:00"
        )
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 instant, e.g. 2023-11-15T00:00:00+08:00"
            ) from None
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise ValueError(
            f"{value.isoformat()} has no UTC offset: write it like 2023-11-15T00:00:00+08:00"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Named(_Strict):
    zh_cn: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)


class _ProvinceFile(_Named):
    code: str = Field(pattern=r"^\d{6}$")


class _KindFile(_Named):
    rule: str = Field(min_length=1)
    levels: dict[str, Literal["eligible", "ineligible"]] = Field(min_length=1)


class _RoleFile(_Named):
    scope: RoleScope


class _StateFile(_Strict):
    initial: bool = False
    final: bool = False


class _NoticeFile(_Strict):
    kind: str = Field(pattern=r"^[a-z][a-z_]*$")
    to: list[str] = Field(min_length=1)


class _TransitionFile(_Strict):
    event: str = Field(pattern=r"^[a-z][a-z_]*$")
    sources: list[str] = Field(alias="from", min_length=1)
    dest: str | None = Field(default=None, alias="to")  # absent: the state is unchanged
    roles: list[str] = Field(min_length=1)
    guards: list[str] = []
    notice: _NoticeFile | None = None
    data: dict[str, DataFieldFile] = {}
    needs_material: MaterialRuleFile | None = None


class _MilestoneFile(_Named):
    year: StrictInt
    at: datetime
    notice_days: StrictInt = Field(ge=0)

    _check_at = field_validator("at", mode="before")(lambda cls, v: _instant(v))


class _OpenBatchFile(_Strict):
    roles: list[str] = Field(min_length=1)


class _NominateFile(_Strict):
    roles: list[str] = Field(min_length=1)
    guards: list[str] = []


class _BatchFile(_Strict):
    id: str = Field(pattern=f"^{BATCH_ID.pattern}$")
    deadline: datetime
    reminder_days: list[StrictInt] = [14, 7, 1]
    quotas: dict[str, StrictInt] = Field(min_length=1)

    _check_deadline = field_validator("deadline", mode="before")(lambda cls, v: _instant(v))

    @field_validator("reminder_days")
    @classmethod
    def _positive_days(cls, days: list[int]) -> list[int]:
        if any(day < 1 for day in days):
            raise ValueError("reminder days must be whole days of 1 or more before the deadline")
        return days


class _ProgramFile(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")
    title: _Named
    timezone: str
    first_batch: _BatchFile
    provinces: dict[str, _ProvinceFile] = Field(min_length=1)
    kinds: dict[str, _KindFile] = Field(min_length=1)
    roles: dict[str, _RoleFile] = Field(min_length=1)
    nominate: _NominateFile
    open_batch: _OpenBatchFile
    timer_notices: dict[str, list[str]] = {}
    milestone_event: str | None = None
    milestones: list[_MilestoneFile] = []
    quota_counts: list[str] = Field(min_length=1)
    states: dict[str, _StateFile] = Field(min_length=2)
    transitions: list[_TransitionFile] = Field(min_length=1)
    attach: AttachFile | None = None
    material_kinds: dict[str, _Named] = {}
    piloted_states: list[str] = []
    pilot_timers: PilotTimersFile | None = None


# --- loading: text to a validated programme ------------------------------------------


def load(path: str | Path | None = None) -> Program:
    """Load and validate a programme file; ``None`` loads the shipped 2023 programme."""
    if path is None:
        source = (
            resources.files("peakpilot.config.programs")
            .joinpath(SHIPPED_PROGRAM)
            .read_text(encoding="utf-8")
        )
        return parse(source, SHIPPED_PROGRAM)
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"cannot read programme file {path}: {exc}") from exc
    return parse(source, str(path))


def parse(source: str, where: str = "<programme>") -> Program:
    """Validate programme text; raise :class:`ConfigError` naming the item and its line."""
    document, root = load_yaml(source, where, what="programme")
    try:
        raw = _ProgramFile.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"{where}{line_of(root, loc)}: {_dotted(loc) or 'programme'}: {message}"
        ) from None
    problems = list(_semantic_problems(raw))
    if problems:
        loc, message = problems[0]
        raise ConfigError(f"{where}{line_of(root, loc)}: {_dotted(loc)}: {message}")
    return _build(raw, source)


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _semantic_problems(raw: _ProgramFile) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """Yield (location, problem) for every rule a single field cannot check on its own."""
    try:
        ZoneInfo(raw.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield ("timezone",), f"unknown time zone {raw.timezone!r} (use an IANA name)"

    codes: dict[str, str] = {}
    for slug, province in raw.provinces.items():
        if slug != slug.lower():
            yield ("provinces", slug), "province slugs are lower case"
        if province.code in codes:
            yield (
                ("provinces", slug, "code"),
                f"code {province.code} is also {codes[province.code]}",
            )
        codes[province.code] = slug

    batch = raw.first_batch
    for slug, quota in batch.quotas.items():
        if slug not in raw.provinces:
            yield ("first_batch", "quotas", slug), f"quota for unknown province {slug!r}"
        elif quota < 1:
            yield ("first_batch", "quotas", slug), f"quota {quota} is not a positive number"

    for slug, kind in raw.kinds.items():
        if not any(value == "eligible" for value in kind.levels.values()):
            yield ("kinds", slug, "levels"), "no level is eligible"

    for index, state in enumerate(raw.quota_counts):
        if state not in raw.states:
            yield ("quota_counts", index), f"unknown state {state!r}"

    initial = [name for name, state in raw.states.items() if state.initial]
    if len(initial) != 1:
        yield ("states",), f"exactly one state must be initial, found {len(initial)}"

    yield from _role_and_guard_problems(
        raw.roles, ("nominate",), raw.nominate.roles, raw.nominate.guards
    )
    yield from _role_and_guard_problems(raw.roles, ("open_batch",), raw.open_batch.roles, ())
    known = ", ".join(TIMER_NOTICE_KINDS)
    for notice_kind, roles in raw.timer_notices.items():
        if notice_kind not in TIMER_NOTICE_KINDS:
            yield ("timer_notices", notice_kind), f"unknown timer notice {notice_kind!r} ({known})"
        for role in roles:
            if raw.roles.get(role, _SYSTEM_ROLE).scope == "system":
                yield ("timer_notices", notice_kind), f"{role!r} cannot receive notices"
    if raw.milestones and raw.milestone_event not in {t.event for t in raw.transitions}:
        yield ("milestone_event",), "name the event that starts the milestone timers"
    years = [m.year for m in raw.milestones]
    if len(set(years)) != len(years):
        yield ("milestones",), "a milestone year is given twice"
    seen_pairs: set[tuple[str, str]] = set()
    for index, transition in enumerate(raw.transitions):
        loc: tuple[str | int, ...] = ("transitions", index)
        sides = [*(("from", s) for s in transition.sources), ("to", transition.dest)]
        for side, named in sides:
            if named is not None and named not in raw.states:
                yield (*loc, side), f"unknown state {named!r} in event {transition.event}"
        yield from data_problems(loc, transition.data)
        yield from material_problems(loc, transition.needs_material, raw.material_kinds)
        for source in transition.sources:
            if raw.states.get(source, _StateFile()).final:
                yield (*loc, "from"), f"{source} is final: no event may leave it"
            if (transition.event, source) in seen_pairs:
                yield (*loc, "from"), f"{transition.event} from {source} is declared twice"
            seen_pairs.add((transition.event, source))
        yield from _role_and_guard_problems(raw.roles, loc, transition.roles, transition.guards)
        if transition.notice is not None:
            for role in transition.notice.to:
                if raw.roles.get(role, _SYSTEM_ROLE).scope == "system":
                    yield (*loc, "notice", "to"), f"{role!r} cannot receive notices"

    yield from _pilot_problems(raw)
    declared = all(
        s in raw.states for t in raw.transitions for s in (*t.sources, t.dest) if s is not None
    )
    if len(initial) == 1 and declared:
        yield from _reachability_problems(raw, initial[0])


def _pilot_problems(raw: _ProgramFile) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """The construction years' declarations: who attaches, which states count as piloted,
    the pilot timers and what they send."""
    if raw.attach is not None:
        yield from _role_and_guard_problems(raw.roles, ("attach",), raw.attach.roles, ())
    for index, state in enumerate(raw.piloted_states):
        if state not in raw.states:
            yield ("piloted_states", index), f"unknown state {state!r}"
    if raw.pilot_timers is not None:
        events: dict[str, dict[str, DataFieldFile]] = {}
        for transition in raw.transitions:
            events.setdefault(transition.event, {}).update(transition.data)
        yield from timer_problems(raw.pilot_timers, raw.states, events)


def _role_and_guard_problems(
    roles: Mapping[str, _RoleFile],
    loc: tuple[str | int, ...],
    used_roles: Sequence[str],
    guards: Sequence[str],
) -> Iterable[tuple[tuple[str | int, ...], str]]:
    for role in used_roles:
        if role not in roles:
            yield (*loc, "roles"), f"unknown role {role!r} (declared: {', '.join(roles)})"
    for guard in guards:
        if guard not in GUARDS:
            yield (*loc, "guards"), f"unknown guard {guard!r} (known: {', '.join(GUARDS)})"


def _reachability_problems(
    raw: _ProgramFile, initial: str
) -> Iterable[tuple[tuple[str | int, ...], str]]:
    successors: dict[str, set[str]] = {state: set() for state in raw.states}
    for transition in raw.transitions:
        for source in transition.sources:
            successors[source].add(transition.dest or source)
    reached, frontier = {initial}, [initial]
    while frontier:
        for nxt in successors[frontier.pop()] - reached:
            reached.add(nxt)
            frontier.append(nxt)
    for name, state in raw.states.items():
        if name not in reached:
            yield ("states", name), f"state {name} cannot be reached from {initial}"
        elif not state.final and not successors[name]:
            yield ("states", name), f"state {name} is not final but no event leaves it"


_SYSTEM_ROLE = _RoleFile.model_validate({"zh-CN": "-", "en": "-", "scope": "system"})


def _names(raw: _Named) -> Names:
    return Names(zh_cn=raw.zh_cn, en=raw.en)


def _build(raw: _ProgramFile, source: str) -> Program:
    batch = raw.first_batch
    return Program(
        id=raw.id,
        title=_names(raw.title),
        timezone=ZoneInfo(raw.timezone),
        first_batch=BatchSpec(
            id=batch.id,
            deadline_at=batch.deadline,
            reminder_days=tuple(sorted(set(batch.reminder_days), reverse=True)),
            quotas=dict(batch.quotas),
        ),
        provinces={
            slug: Province(slug=slug, code=p.code, names=_names(p))
            for slug, p in raw.provinces.items()
        },
        kinds={
            slug: Kind(
                slug=slug,
                names=_names(k),
                rule=k.rule,
                levels={level: verdict == "eligible" for level, verdict in k.levels.items()},
            )
            for slug, k in raw.kinds.items()
        },
        roles={
            slug: Role(slug=slug, scope=r.scope, names=_names(r)) for slug, r in raw.roles.items()
        },
        nominate_roles=tuple(raw.nominate.roles),
        nominate_guards=tuple(raw.nominate.guards),
        open_batch_roles=tuple(raw.open_batch.roles),
        timer_notices={kind: tuple(roles) for kind, roles in raw.timer_notices.items()},
        milestone_event=raw.milestone_event,
        milestones=tuple(
            Milestone(
                year=m.year,
                at=m.at,
                notice_before=timedelta(days=m.notice_days),
                objective=_names(m),
            )
            for m in raw.milestones
        ),
        quota_counts=tuple(raw.quota_counts),
        states=tuple(raw.states),
        initial_state=next(name for name, s in raw.states.items() if s.initial),
        final_states=frozenset(name for name, s in raw.states.items() if s.final),
        transitions=tuple(
            Transition(
                event=t.event,
                sources=tuple(t.sources),
                dest=t.dest,
                roles=tuple(t.roles),
                guards=tuple(t.guards),
                notice=None
                if t.notice is None
                else NoticeSpec(kind=t.notice.kind, to=tuple(t.notice.to)),
                data=build_data(t.data),
                needs_material=build_material(t.needs_material),
            )
            for t in raw.transitions
        ),
        source=source,
        attach_roles=() if raw.attach is None else tuple(raw.attach.roles),
        material_kinds={k: _names(n) for k, n in raw.material_kinds.items()},
        piloted_states=tuple(raw.piloted_states),
        pilot_timers=build_timers(raw.pilot_timers),
    )


__all__ = ["SHIPPED_PROGRAM", "TIMER_NOTICE_KINDS", "load", "parse"]
