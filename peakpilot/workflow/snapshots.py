"""What the engine hands out: frozen, detached copies, never live ORM objects.

Times are aware datetimes in the programme's time zone (stored in UTC, shown where the
programme lives). :func:`to_jsonable` gives the documents of the CLI's ``--json``.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Nomination:
    id: str
    batch: str
    province: str
    kind: str
    name: str
    level: str
    state: str
    version: int
    created_at: datetime
    updated_at: datetime
    program_version: int  # the programme version it last moved under


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One audit record: ``at`` is when the engine wrote it, by the engine's clock."""

    seq: int
    event: str
    from_state: str | None
    to_state: str
    actor: str
    at: datetime
    reason: str | None
    data: Mapping[str, Any] | None = None  # the event's data, hashed with the record


@dataclasses.dataclass(frozen=True, slots=True)
class Material:
    """A document attached to a nomination; its bytes are fetched separately."""

    id: str
    nomination: str
    kind: str
    sha256: str
    size: int
    media_type: str
    title: str | None
    doc_number: str | None
    actor: str
    attached_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Due:
    """The next thing a pilot owes: a plan, a report or a rectification, and when."""

    kind: str  # plan, progress_report or rectification
    due_at: datetime
    period: int | None = None  # the year a progress report covers


@dataclasses.dataclass(frozen=True, slots=True)
class Pilot:
    """A nomination from ``confirmed`` on, as the ``pilots`` view shows it."""

    id: str
    batch: str
    province: str
    name: str
    kind: str
    state: str
    plan: str  # due, in review, approved (or "-" for a pilot that ended before one)
    last_period: int | None
    next_due: Due | None
    overdue: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Timer:
    id: str
    kind: str
    due_at: datetime
    batch: str
    province: str | None
    nomination: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class TimerOutcome:
    """What one due timer did: for the tick's report and the daemon's log."""

    timer: str
    kind: str
    batch: str
    province: str | None
    nomination: str | None
    action: str
    notices: int = 0
    lapsed: int = 0
    suppressed: bool = False  # its notices kept, not sent: the work ran long after due


@dataclasses.dataclass(frozen=True, slots=True)
class TickReport:
    """Everything one tick did, in due order."""

    now: datetime
    outcomes: tuple[TimerOutcome, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ProgramVersion:
    """One programme text the database loaded (``program versions``)."""

    version: int
    sha256: str
    loaded_at: datetime
    actor: str


@dataclasses.dataclass(frozen=True, slots=True)
class NominationDetail:
    """A nomination with what ``show`` adds: the events the asking actor could fire now,
    its history (oldest first) and its pending timers."""

    nomination: Nomination
    allowed_events: tuple[str, ...]
    history: tuple[HistoryRecord, ...]
    timers: tuple[Timer, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ProvinceBoard:
    province: str
    quota: int
    used: int
    left: int
    states: Mapping[str, int]


@dataclasses.dataclass(frozen=True, slots=True)
class Board:
    batch: str
    deadline: datetime
    status: str
    provinces: tuple[ProvinceBoard, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class BrokenRecord:
    nomination: str
    seq: int
    problem: str


@dataclasses.dataclass(frozen=True, slots=True)
class AuditReport:
    ok: bool
    records: int
    first_broken: BrokenRecord | None


def to_json(value: Any, *, indent: int | None = None) -> str:
    """The JSON document of a snapshot (or of a list of them): what ``--json`` prints.

    Snapshots reach the encoder as they are and :func:`_plain` turns each into plain
    data when the encoder meets it, so the C encoder does the work (``indent`` makes
    the standard library fall back to its Python encoder, several times slower on a
    list of 10,000 nominations)."""
    return json.dumps(value, default=_plain, ensure_ascii=False, indent=indent)


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for a snapshot (or a list of them); datetimes in ISO 8601."""
    return json.loads(to_json(value))


def _plain(value: Any) -> Any:
    """Plain data for one value the encoder cannot write by itself."""
    cls = type(value)
    convert = _CONVERTERS.get(cls)
    if convert is None:
        convert = _CONVERTERS[cls] = _converter(cls)
    return convert(value)


_CONVERTERS: dict[type, Callable[[Any], Any]] = {}


def _converter(cls: type) -> Callable[[Any], Any]:
    """How to turn a value of ``cls`` into plain data, decided once per class rather than
    by a chain of type checks on each of a list's thousands of values."""
    if issubclass(cls, datetime):
        return datetime.isoformat
    if cls is NominationDetail:
        return lambda value: {
            **_plain(value.nomination),
            "allowed_events": value.allowed_events,
            "history": value.history,
            "timers": value.timers,
        }
    if cls is NoticeDetail:
        return lambda value: {**_plain(value.notice), "text": value.text, "html": value.html}
    if dataclasses.is_dataclass(cls):
        return _fields_of(cls)
    if issubclass(cls, Mapping):
        return dict
    raise TypeError(f"{cls.__name__} is not a snapshot")


def _fields_of(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A snapshot's fields as a dict, in their declared order, its instants already in
    ISO 8601: the encoder then calls back once per snapshot instead of once more for
    each of its times."""
    names = tuple(field.name for field in dataclasses.fields(cls))
    hints = typing.get_type_hints(cls)
    times = tuple(name for name in names if hints[name] in (datetime, datetime | None))
    values = operator.attrgetter(*names)
    if len(names) == 1:  # attrgetter of one name gives the value, not a tuple of values
        return lambda value: {names[0]: _plain_if_time(values(value))}

    def plain(value: Any) -> dict[str, Any]:
        data = dict(zip(names, values(value), strict=True))
        for name in times:
            instant = data[name]
            if instant is not None:
                data[name] = instant.isoformat()
        return data

    return plain


def _plain_if_time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclasses.dataclass(frozen=True, slots=True)
class Notice:
    """A notice in the outbox (without its body)."""

    id: str
    kind: str
    recipient: str
    actor: str
    locale: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None
    nomination: str | None
    batch: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class NoticeDetail:
    """A notice with its rendered bodies."""

    notice: Notice
    text: str
    html: str


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one dispatch pass did."""

    sent: int
    failed: int
    dead: int
