"""The data an event carries (``--data period=2024``), checked against what the
programme declares for it and turned into the values that are stored and hashed.

Pure: ``today`` is the caller's, in the programme's time zone. Values may come typed (the
Python API: ``data={"period": 2024}``) or as the text a command line gives; either way
the result is the same, so a record reads the same whoever fired it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from peakpilot.config.construction import DataField
from peakpilot.errors import InvalidInput

# What a stored value may be: a year as an int, a choice or a day (YYYY-MM-DD) as text.
DataValue = int | str
_YEAR = re.compile(r"\d{4}")
_MIN_YEAR, _MAX_YEAR = 2000, 2100


def check_event_data(
    event: str,
    fields: Mapping[str, DataField],
    given: Mapping[str, Any] | None,
    today: date,
) -> dict[str, DataValue] | None:
    """The event's data as it is stored, or ``None`` for an event that carries none.

    Raises:
        InvalidInput: a key the event does not declare, a required one missing, or a value
            of the wrong form (naming the key and the form it takes).
    """
    given = dict(given or {})
    unknown = [key for key in given if key not in fields]
    if unknown:
        takes = f"it takes {_forms(fields)}" if fields else "it takes no data"
        raise InvalidInput(f"{event} does not take {', '.join(map(repr, unknown))}: {takes}")
    missing = [name for name, spec in fields.items() if spec.required and name not in given]
    if missing:
        raise InvalidInput(
            f"{event} needs {_forms({name: fields[name] for name in missing})}: "
            "give it with --data KEY=VALUE"
        )
    if not fields:
        return None
    return {name: _value(event, fields[name], value, today) for name, value in given.items()}


def _value(event: str, spec: DataField, value: Any, today: date) -> DataValue:
    if spec.type == "year":
        text = str(value).strip() if isinstance(value, int | str) else ""
        if isinstance(value, bool) or not _YEAR.fullmatch(text):
            raise InvalidInput(f"{spec.name} of {event} is a year like 2024, not {value!r}")
        year = int(text)
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise InvalidInput(
                f"{spec.name} of {event} must be a year from {_MIN_YEAR} to {_MAX_YEAR}"
            )
        return year
    if spec.type == "choice":
        if value not in spec.choices:
            raise InvalidInput(
                f"{spec.name} of {event} is one of {', '.join(spec.choices)}, not {value!r}"
            )
        return str(value)
    day = _day(event, spec, value)
    if spec.future and day <= today:
        raise InvalidInput(
            f"{spec.name} of {event} must lie in the future: {day.isoformat()} is not after "
            f"today ({today.isoformat()})"
        )
    return day.isoformat()


def _day(event: str, spec: DataField, value: Any) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    try:
        if isinstance(value, str) and len(value.strip()) == 10:
            return date.fromisoformat(value.strip())
    except ValueError:
        pass
    raise InvalidInput(f"{spec.name} of {event} is a day like 2025-06-30, not {value!r}")


def _forms(fields: Mapping[str, DataField]) -> str:
    forms = {"year": "YYYY", "date": "YYYY-MM-DD"}
    return ", ".join(
        f"{name}={forms.get(spec.type) or '|'.join(spec.choices)}" for name, spec in fields.items()
    )


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` items of a command line as a mapping; a key given twice is refused."""
    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"--data takes KEY=VALUE, not {pair!r}")
        if key in data:
            raise InvalidInput(f"--data {key} is given twice")
        data[key] = value
    return data


__all__ = ["DataValue", "check_event_data", "parse_pairs"]
