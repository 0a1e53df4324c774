"""The evaluation report of a succeeded job: where its evaluation stands (`evaluation`, null
while one is owed) and the lease of the scheduler running it. Jobs that succeeded before this
revision are marked `skipped`: no report is made for them.

Revision ID: 0006_eval
Revises: 0006_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_eval"
down_revision = "0006_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fine_tuning_jobs", sa.Column("evaluation", sa.String(16), nullable=True))
    op.add_column(
        "fine_tuning_jobs", sa.Column("evaluation_lease_expires_at", sa.BigInteger, nullable=True)
    )
    op.execute("UPDATE fine_tuning_jobs SET evaluation = 'skipped' WHERE status = 'succeeded'")


def downgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs") as batch:
        batch.drop_column("evaluation_lease_expires_at")
        batch.drop_column("evaluation")
