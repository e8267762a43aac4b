"""programme versions: every loaded text kept and numbered, and the version each
nomination last moved under

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOT NULL with a default: existing rows become version 1 without copying the tables
    op.add_column(
        "programs", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column(
        "nominations",
        sa.Column("program_version", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_table(
        "program_versions",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("compiled", sa.Text(), nullable=False),
        sa.Column("loaded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"]),
        sa.PrimaryKeyConstraint("version"),
    )
    # The programme a database already holds becomes its version 1. One stored before
    # compiled forms were kept (none) gets its version row from the next `init`.
    op.execute(
        "INSERT INTO program_versions (version, program_id, sha256, source, compiled, "
        "loaded_at, actor) SELECT 1, id, digest, source, compiled, loaded_at, 'system' "
        "FROM programs WHERE compiled IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("program_versions")
    with op.batch_alter_table("nominations", schema=None) as batch_op:
        batch_op.drop_column("program_version")
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("version")
