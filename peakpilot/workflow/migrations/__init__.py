"""Alembic migrations of peakpilot's schema; ``init`` runs them to head."""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

HERE = resources.files(__name__)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for the packaged scripts; no alembic.ini is needed."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: sa.Connection) -> None:
    """Bring the schema to the newest revision inside the caller's transaction."""
    command.upgrade(alembic_config(connection), "head")
