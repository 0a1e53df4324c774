"""The Admin API: organization-level admin keys, archived projects, and checkpoint
permissions (a project granted the use of another project's fine-tuned model).

Revision ID: 0005_admin
Revises: 0006_eval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_admin"
down_revision = "0006_eval"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("archived_at", sa.BigInteger, nullable=True))
    op.create_table(
        "admin_api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "checkpoint_permissions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "model",
            sa.String(255),
            sa.ForeignKey("fine_tuned_models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("model", "project_id", name="uq_checkpoint_permissions_model_project"),
    )
    op.create_index("ix_checkpoint_permissions_project", "checkpoint_permissions", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_checkpoint_permissions_project", "checkpoint_permissions")
    op.drop_table("checkpoint_permissions")
    op.drop_table("admin_api_keys")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("archived_at")
