"""the programme's facts beside its text, for reads that do not load the programme

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by `init` (which runs right after this upgrade) from the validated programme;
    # until then a read that needs it falls back to parsing the stored text.
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("facts")
