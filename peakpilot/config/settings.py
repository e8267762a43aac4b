"""Settings from the environment (``PEAKPILOT_*``) or an optional TOML file.

The CLI's flags override these; an embedding backend passes its own values to
:class:`peakpilot.Engine` and need not use this module at all.
"""

from __future__ import annotations

import os

from pydantic import AwareDatetime, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from peakpilot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///peakpilot.db"


class Settings(BaseSettings):
    """Where the database is and what time it is (``now`` set freezes the clock)."""

    model_config = SettingsConfigDict(env_prefix="PEAKPILOT_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    now: AwareDatetime | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # PEAKPILOT_CONFIG names a TOML file; the environment wins over it.
        toml_file = os.environ.get("PEAKPILOT_CONFIG")
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if toml_file:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml_file),)
        return sources


def load_settings(**overrides: object) -> Settings:
    """Settings with ``overrides`` (the CLI's flags) applied; errors name the variable."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "PEAKPILOT_" + "_".join(str(part) for part in error["loc"]).upper()
        raise ConfigError(f"{name}: {error['msg']}") from None


__all__ = ["DEFAULT_DATABASE_URL", "Settings", "load_settings"]
