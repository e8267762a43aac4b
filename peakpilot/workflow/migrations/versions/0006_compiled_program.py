"""the whole programme compiled beside its text, instead of a few of its facts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by `init` (which runs right after this upgrade) from the validated programme;
    # until then a process falls back to validating the stored text.
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("compiled", sa.Text(), nullable=True))
        batch_op.drop_column("facts")


def downgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))
        batch_op.drop_column("compiled")
