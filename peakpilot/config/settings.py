"""Settings from the environment (``PEAKPILOT_*``) or an optional TOML file.

The CLI's flags override these; an embedding backend passes its own values to
:class:`peakpilot.Engine` and need not use this module at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from peakpilot.config.quick import DEFAULT_DATABASE_URL
from peakpilot.errors import ConfigError


class Settings(BaseSettings):
    """Where the database is, what time it is (``now`` set freezes the clock), and how
    notices are addressed, rendered and delivered."""

    model_config = SettingsConfigDict(env_prefix="PEAKPILOT_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    now: AwareDatetime | None = None
    contacts: Path | None = None
    templates_dir: Path | None = None
    notify_channel: Literal["file", "smtp"] = "file"
    notify_from: str = "peakpilot <noreply@peakpilot.invalid>"
    notify_max_attempts: int = Field(default=8, ge=1, le=100)
    outbox_dir: Path = Path("outbox")
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    sweep_seconds: float = Field(default=5.0, gt=0, le=3600)

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
