"""The one setting a read-only command needs, told without loading the settings model.

:class:`~peakpilot.config.settings.Settings` (pydantic-settings) costs a short process
a third of its start-up. ``peakpilot board`` needs only the database URL, which the
command line or the environment usually gives; when a TOML file could give it instead
(``PEAKPILOT_CONFIG``), or the environment is ambiguous, the answer is left to the model.
"""

from __future__ import annotations

import os

DEFAULT_DATABASE_URL = "sqlite:///peakpilot.db"
_VARIABLE = "peakpilot_database_url"  # pydantic-settings matches names in any case


def quick_database_url(flag: str | None) -> str | None:
    """The database URL as the settings model would resolve it, or None when only the
    model can tell (then load it)."""
    if flag is not None:
        return flag
    if os.environ.get("PEAKPILOT_CONFIG"):
        return None
    values = [value for name, value in os.environ.items() if name.lower() == _VARIABLE]
    if len(values) > 1:
        return None
    return values[0] if values else DEFAULT_DATABASE_URL


__all__ = ["DEFAULT_DATABASE_URL", "quick_database_url"]
