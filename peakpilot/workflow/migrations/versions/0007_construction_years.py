"""the construction years: event data in the audit trail, and materials

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.Text(), nullable=True))
    op.create_table(
        "material_blobs",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "materials",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("nomination_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("doc_number", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("attached_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["nomination_id"], ["nominations.id"]),
        sa.ForeignKeyConstraint(["sha256"], ["material_blobs.sha256"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_materials_nomination_id", "materials", ["nomination_id"])


def downgrade() -> None:
    op.drop_index("ix_materials_nomination_id", table_name="materials")
    op.drop_table("materials")
    op.drop_table("material_blobs")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("data")
