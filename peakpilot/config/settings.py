"""Settings from the environment (``PEAKPILOT_*``) or an optional TOML file.

The CLI's flags override these; an embedding backend passes its own values to
:class:`peakpilot.Engine` and need not use this module at all.

One resolution path, standard library only: every command reads its settings, so they
must cost next to nothing to import (built on pydantic-settings, importing this module
took about four fifths of the time of ``import sqlalchemy``). Each field of
:class:`Settings` carries the converter that turns text from the environment, a value
from the TOML file or an override into its type and checks it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from peakpilot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///peakpilot.db"
_CONFIG_VARIABLE = "PEAKPILOT_CONFIG"
_PREFIX = "peakpilot_"  # environment names are matched in any case, as pydantic-settings did
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})

_Convert = Callable[[object], Any]


@dataclass(frozen=True, slots=True)
class Secret:
    """A value kept out of reprs and logs (the SMTP password): ask for it by name."""

    _value: str

    def get_secret_value(self) -> str:
        """The value itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"


# --- converters: a value from the environment (text), the TOML file or a caller -------
# Each returns the field's type or raises ValueError with what was wrong.


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not text")
    return value


def _path(value: object) -> Path:
    return value if isinstance(value, Path) else Path(_text(value))


def _secret(value: object) -> Secret:
    return value if isinstance(value, Secret) else Secret(_text(value))


def _whole(low: int, high: int) -> _Convert:
    def convert(value: object) -> int:
        number = value
        if isinstance(value, str) and value.isascii():  # int() also reads other digits
            with suppress(ValueError):
                number = int(value)
        if type(number) is not int or not low <= number <= high:
            raise ValueError(f"{_shown(value)} is not a whole number from {low} to {high}")
        return number

    return convert


def _seconds(value: object) -> float:
    number = value
    if isinstance(value, str) and value.isascii():
        with suppress(ValueError):
            number = float(value)
    if type(number) is int:
        number = float(number)
    if type(number) is not float or not 0 < number <= 3600:  # NaN fails both comparisons
        raise ValueError(f"{_shown(value)} is not a number of seconds above 0 and up to 3600")
    return number


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if type(value) is int and value in (0, 1):
        return value == 1
    raise ValueError(f"{_shown(value)} is not a yes or no: use true/false, 1/0, yes/no or on/off")


def _one_of(*choices: str) -> _Convert:
    def convert(value: object) -> str:
        if value not in choices:
            raise ValueError(f"{_shown(value)} is not one of {', '.join(choices)}")
        return str(value)

    return convert


def _instant(value: object) -> datetime:
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 time such as 2023-11-01T09:00:00+08:00"
            ) from None
    elif isinstance(value, date | time):  # a TOML date or time of day
        raise ValueError(f"{value} is not an instant: write it like 2023-11-01T09:00:00+08:00")
    else:
        raise ValueError(f"{_shown(value)} is not an ISO 8601 time")
    if at.utcoffset() is None:
        raise ValueError(f"{_shown(value)} has no UTC offset: add one, e.g. +08:00")
    return at


def _check(convert: _Convert) -> dict[str, _Convert]:
    """A field's metadata: the converter that reads and checks its value."""
    return {"convert": convert}


DEFAULT_MAX_MATERIAL_BYTES = 25 * 1024 * 1024  # 25 MiB
DEFAULT_STALE_AFTER = timedelta(days=7)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dhms]?)")
_UNITS = {"d": "days", "": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _duration(value: object) -> timedelta:
    """A span: a number of days, or with a unit, ``7d``, ``12h``, ``30m``, ``90s``."""
    text = str(value) if isinstance(value, str | int | float) else ""
    match = _DURATION.fullmatch(text) if not isinstance(value, bool) else None
    if match is None:
        raise ValueError(f"{_shown(value)} is not a span such as 7d, 12h, 30m or 90s")
    span = timedelta(**{_UNITS[match[2]]: float(match[1])})
    if not timedelta(0) < span <= timedelta(days=3650):
        raise ValueError(f"{_shown(value)} must be above 0 and at most 3650 days")
    return span


@dataclass(frozen=True)
class Settings:
    """Where the database is, what time it is (``now`` set freezes the clock), and how
    notices are addressed, rendered and delivered."""

    database_url: str = field(default=DEFAULT_DATABASE_URL, metadata=_check(_text))
    now: datetime | None = field(default=None, metadata=_check(_instant))
    contacts: Path | None = field(default=None, metadata=_check(_path))
    templates_dir: Path | None = field(default=None, metadata=_check(_path))
    # where compiled templates are kept between processes (none: compiled in memory)
    template_cache_dir: Path | None = field(default=None, metadata=_check(_path))
    notify_channel: Literal["file", "smtp"] = field(
        default="file", metadata=_check(_one_of("file", "smtp"))
    )
    notify_from: str = field(
        default="peakpilot <noreply@peakpilot.invalid>", metadata=_check(_text)
    )
    notify_max_attempts: int = field(default=8, metadata=_check(_whole(1, 100)))
    outbox_dir: Path = field(default=Path("outbox"), metadata=_check(_path))
    smtp_host: str = field(default="localhost", metadata=_check(_text))
    smtp_port: int = field(default=25, metadata=_check(_whole(1, 65535)))
    smtp_user: str | None = field(default=None, metadata=_check(_text))
    smtp_password: Secret | None = field(default=None, metadata=_check(_secret))
    smtp_starttls: bool = field(default=False, metadata=_check(_flag))
    sweep_seconds: float = field(default=5.0, metadata=_check(_seconds))
    # where the daemon serves /healthz and /metrics: PORT (loopback) or HOST:PORT; none
    http: str | None = field(default=None, metadata=_check(_text))
    # the largest document `attach` stores (25 MiB)
    max_material_bytes: int = field(
        default=DEFAULT_MAX_MATERIAL_BYTES, metadata=_check(_whole(1, 2**31))
    )
    # a batch's deadline work done later than this after its deadline stores its notices
    # suppressed (kept, never sent): letters about a deadline long gone are not news
    stale_after: timedelta = field(default=DEFAULT_STALE_AFTER, metadata=_check(_duration))


_CONVERTERS: dict[str, _Convert] = {f.name: f.metadata["convert"] for f in fields(Settings)}


def load_settings(**overrides: object) -> Settings:
    """Resolve the settings: ``overrides`` (the CLI's flags; None means not given), then
    the environment (``PEAKPILOT_<FIELD>``, any case), then the TOML file named by
    ``PEAKPILOT_CONFIG``, then the defaults.

    Raises:
        ConfigError: on one line, naming the variable, or the file and its key or line,
            and what is wrong with it.
        TypeError: an override names no setting (a mistake in the calling code).
    """
    unknown = sorted(set(overrides) - set(_CONVERTERS))
    if unknown:
        raise TypeError(f"load_settings() got unknown settings: {', '.join(unknown)}")
    given: dict[str, tuple[str, object]] = {}  # field -> (where it was given, value)
    config = os.environ.get(_CONFIG_VARIABLE)
    if config:
        given.update(_from_toml(Path(config)))
    given.update(_from_environment())
    given.update({name: (name, value) for name, value in overrides.items() if value is not None})
    values: dict[str, Any] = {}
    for name, (where, value) in given.items():
        try:
            values[name] = _CONVERTERS[name](value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return Settings(**values)


def _from_environment() -> dict[str, tuple[str, object]]:
    found: dict[str, tuple[str, object]] = {}
    for variable, value in os.environ.items():
        lowered = variable.lower()
        name = lowered.removeprefix(_PREFIX)
        if not lowered.startswith(_PREFIX) or name not in _CONVERTERS:
            continue
        if name in found:  # the same setting in two spellings: which one was meant?
            raise ConfigError(f"{found[name][0]} and {variable} are both set: keep one")
        found[name] = (variable, value)
    return found


def _from_toml(path: Path) -> dict[str, tuple[str, object]]:
    import tomllib  # only when a file is named

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the path
        # an OSError's strerror, not its str(), which repeats the path after an errno
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(
            f"{_CONFIG_VARIABLE}: cannot read settings file {path}: {problem}"
        ) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib tells the place only in its message: "... (at line 3, column 9)"
        match = re.fullmatch(r"(.*) \(at line (\d+), column \d+\)", str(exc))
        place, problem = (f":{match[2]}", match[1]) if match else ("", str(exc))
        raise ConfigError(f"{path}{place}: invalid TOML in settings file: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: the settings file is nested too deeply") from None
    for key in document:
        if key not in _CONVERTERS:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(_CONVERTERS)})")
    return {key: (f"{path}: {key}", value) for key, value in document.items()}


__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_MAX_MATERIAL_BYTES",
    "DEFAULT_STALE_AFTER",
    "Secret",
    "Settings",
    "load_settings",
]
