"""What a name, a reason and an idempotency key may contain.

They end up in official notices, e-mail subjects and a terminal, so control characters
(and text that is not valid Unicode) are refused rather than silently cleaned: what is
stored is exactly what the clerk typed, or nothing.
"""

from __future__ import annotations

import re
import unicodedata

from peakpilot.errors import InvalidInput

MAX_NAME_LENGTH = 200
MAX_REASON_LENGTH = 4000
_LINE_BREAKS = frozenset("\n\r\u2028\u2029")
_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _first_bad_character(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    for char in text:
        if char not in allowed and unicodedata.category(char) in _BAD_CATEGORIES:
            return char
    return None


def _describe(char: str) -> str:
    if unicodedata.category(char) == "Cs":
        return "text that is not valid UTF-8"
    return f"the control character U+{ord(char):04X}"


def check_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid nomination name, else refuse it."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("the name is empty: give the city's or park's name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"the name is {len(name)} characters long: at most {MAX_NAME_LENGTH} are allowed"
        )
    if name != name.strip():
        raise InvalidInput("the name starts or ends with spaces: remove them")
    bad = _first_bad_character(name)
    if bad is not None:
        raise InvalidInput(f"the name contains {_describe(bad)}: remove it")
    return name


def check_label(what: str, text: str | None, longest: int) -> str | None:
    """A material's title or document number (``None`` stays ``None``): one line of at
    most ``longest`` characters, as clean as a name."""
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"the {what} is empty: leave it out or give one")
    if len(text) > longest:
        raise InvalidInput(
            f"the {what} is {len(text)} characters long: at most {longest} are allowed"
        )
    bad = _first_bad_character(text)
    if bad is not None:
        raise InvalidInput(f"the {what} contains {_describe(bad)}: remove it")
    return text


def check_reason(reason: str | None) -> str | None:
    """Return ``reason`` unchanged (``None`` stays ``None``) if valid, else refuse it.

    A reason may span lines; nothing else invisible is allowed.
    """
    if reason is None:
        return None
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"the reason is {len(reason)} characters long: at most {MAX_REASON_LENGTH} are allowed"
        )
    bad = _first_bad_character(reason, allowed=_LINE_BREAKS)
    if bad is not None:
        raise InvalidInput(f"the reason contains {_describe(bad)}: remove it")
    return reason


MAX_IDEMPOTENCY_KEY_LENGTH = 200
_IDEMPOTENCY_KEY = re.compile(rf"[!-~]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}")


def check_idempotency_key(key: str) -> str:
    """A key is printable ASCII, so that it survives every shell and log unchanged."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput(
            f"an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters"
        )
    return key
