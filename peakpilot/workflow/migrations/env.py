"""Alembic environment: runs on the connection ``init`` hands over, inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from peakpilot.workflow import tables  # noqa: F401  (registers the tables' metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("peakpilot's migrations run through `peakpilot init` (Engine.init)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
