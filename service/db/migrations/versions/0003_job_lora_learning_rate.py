"""Per-job LoRA settings and learning rate (Whetstone's `lora` and `learning_rate` extension
fields of a fine-tuning job); null in jobs made before them (the JobSpec's defaults).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fine_tuning_jobs", sa.Column("lora", sa.JSON, nullable=True))
    op.add_column("fine_tuning_jobs", sa.Column("learning_rate", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs") as batch:
        batch.drop_column("learning_rate")
        batch.drop_column("lora")
