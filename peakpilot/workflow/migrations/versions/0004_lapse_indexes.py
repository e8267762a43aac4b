"""indexes for a deadline's lapse in chunks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 02:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A deadline's lapse takes a batch's unsubmitted nominations 5,000 at a time, in
    # creation order; its notices list every nomination it lapsed, read back from the
    # records of its event in its batch.
    with op.batch_alter_table("nominations", schema=None) as batch_op:
        batch_op.create_index("ix_nominations_batch_state", ["batch_id", "state"], unique=False)
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_records_batch_event", ["batch_id", "event"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_records_batch_event")
    with op.batch_alter_table("nominations", schema=None) as batch_op:
        batch_op.drop_index("ix_nominations_batch_state")
