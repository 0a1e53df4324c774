"""Per-job checkpoint retention (Whetstone's `keep_checkpoints` extension field of a
fine-tuning job); null in jobs made before it (the JobSpec's default, the last 3 epochs).

Revision ID: 0004_parity
Revises: 0005_admin
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_parity"
down_revision = "0005_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fine_tuning_jobs", sa.Column("keep_checkpoints", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs") as batch:
        batch.drop_column("keep_checkpoints")
