"""Fine-tuning jobs (with the scheduler's columns), their metadata, events and checkpoints,
and fine-tuned models.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _job_fk() -> sa.ForeignKey:
    return sa.ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE")


def _project_fk() -> sa.ForeignKey:
    return sa.ForeignKey("projects.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), _project_fk(), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("base_model", sa.String(64), nullable=False),
        sa.Column("parent_model", sa.String(255), nullable=True),
        sa.Column("training_file", sa.String(64), nullable=False),
        sa.Column("validation_file", sa.String(64), nullable=True),
        sa.Column("method", sa.JSON, nullable=False),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("integrations", sa.JSON, nullable=True),
        sa.Column("output_model", sa.String(255), nullable=False),
        sa.Column("fine_tuned_model", sa.String(255), nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("trained_tokens", sa.BigInteger, nullable=True),
        sa.Column("result_files", sa.JSON, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("error_param", sa.String(64), nullable=True),
        sa.Column("estimated_finish", sa.BigInteger, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
        sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
        sa.Column("attempt_token_hash", sa.String(64), nullable=True),
        sa.Column("executor_handle", sa.String(512), nullable=True),
        sa.Column("spec", sa.Text, nullable=True),
        sa.Column("resume_from", sa.String(512), nullable=True),
        sa.Column("requested_action", sa.String(16), nullable=False, server_default="none"),
    )
    op.create_index(
        "ix_fine_tuning_jobs_project_created",
        "fine_tuning_jobs",
        ["project_id", "created_at", "id"],
    )
    op.create_index(
        "ix_fine_tuning_jobs_status_created", "fine_tuning_jobs", ["status", "created_at"]
    )
    op.create_table(
        "fine_tuning_job_metadata",
        sa.Column("job_id", sa.String(64), _job_fk(), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(512), nullable=False),
    )
    op.create_index(
        "ix_fine_tuning_job_metadata_key_value", "fine_tuning_job_metadata", ["key", "value"]
    )
    op.create_table(
        "fine_tuning_job_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("job_id", sa.String(64), _job_fk(), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
    )
    op.create_index(
        "ix_fine_tuning_job_events_job_seq", "fine_tuning_job_events", ["job_id", "seq"]
    )
    op.create_table(
        "fine_tuning_job_checkpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(64), _job_fk(), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("step_number", sa.BigInteger, nullable=False),
        sa.Column("fine_tuned_model_checkpoint", sa.String(255), nullable=False, unique=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("store_key", sa.String(512), nullable=False),
        sa.UniqueConstraint("job_id", "step_number", name="uq_fine_tuning_job_checkpoints_step"),
    )
    op.create_table(
        "fine_tuned_models",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("project_id", sa.String(64), _project_fk(), nullable=False),
        sa.Column("job_id", sa.String(64), _job_fk(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("base_model", sa.String(64), nullable=False),
        sa.Column("adapter_prefix", sa.String(512), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_fine_tuned_models_project_created", "fine_tuned_models", ["project_id", "created_at"]
    )
    op.create_index("ix_fine_tuned_models_job_id", "fine_tuned_models", ["job_id"])


def downgrade() -> None:
    op.drop_table("fine_tuned_models")
    op.drop_table("fine_tuning_job_checkpoints")
    op.drop_table("fine_tuning_job_events")
    op.drop_table("fine_tuning_job_metadata")
    op.drop_table("fine_tuning_jobs")
