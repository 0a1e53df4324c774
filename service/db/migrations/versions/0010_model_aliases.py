"""Model aliases: a project's other names for its models (`service.models.aliases`).

Revision ID: 0010_aliases
Revises: 0004_parity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_aliases"
down_revision = "0004_parity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_model_aliases_project_created", "model_aliases", ["project_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("model_aliases")
