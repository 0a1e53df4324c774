"""ORM tables (SQLAlchemy 2, typed). Wire schemas live in the domain folders (`schemas.py`),
not here.

Every change here comes with an Alembic revision in `service/db/migrations/versions/`.
Times are Unix seconds (`int`), as the API reports them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A tenant: every object belongs to exactly one project."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # Archived (Admin API): its keys are refused, nothing else of it changes.
    archived_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ApiKey(Base):
    """An API key, stored only as its SHA-256 hex digest; `prefix` helps people tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)


class AdminApiKey(Base):
    """An organization-level key (`sk-admin-...`) for the Admin API: projects, their keys,
    checkpoint permissions. Tied to no project; stored as its SHA-256 hex digest."""

    __tablename__ = "admin_api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)


class File(Base):
    """An uploaded (or result) file; its bytes live in the object store at `files/{id}`."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_created", "project_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="processed")
    format: Mapped[str | None] = mapped_column(String(16), default=None)
    lines: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)


class FineTuningJob(Base):
    """A fine-tuning job. `status` follows `service.fine_tuning.status`; the columns after
    `estimated_finish` belong to the scheduler (attempts, leases, the executor's handle)."""

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (
        Index("ix_fine_tuning_jobs_project_created", "project_id", "created_at", "id"),
        Index("ix_fine_tuning_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))
    # What was asked: `model` as given (a base model or, for continued training, a fine-tuned
    # model of the project, then `parent_model`); `base_model` is the registry's base.
    model: Mapped[str] = mapped_column(String(255))
    base_model: Mapped[str] = mapped_column(String(64))
    parent_model: Mapped[str | None] = mapped_column(String(255), default=None)
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), default=None)
    method: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Whetstone extensions: the LoRA settings (`contracts.spec.LoraConfig`, complete) and the
    # request's own learning rate (null: the multiplier's). A null `lora` means the defaults.
    lora: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    learning_rate: Mapped[float | None] = mapped_column(Float, default=None)
    suffix: Mapped[str | None] = mapped_column(String(64), default=None)
    seed: Mapped[int] = mapped_column(BigInteger)
    job_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON, default=None)
    integrations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # The name the model gets on success (also the stem of checkpoint names).
    output_model: Mapped[str] = mapped_column(String(255))
    # Outcome
    fine_tuned_model: Mapped[str | None] = mapped_column(String(255), default=None)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    result_files: Mapped[list[str]] = mapped_column(JSON, default=list)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    error_param: Mapped[str | None] = mapped_column(String(64), default=None)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Scheduler
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    attempt_token_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    executor_handle: Mapped[str | None] = mapped_column(String(512), default=None)
    spec: Mapped[str | None] = mapped_column(Text, default=None)  # the JobSpec JSON, verbatim
    resume_from: Mapped[str | None] = mapped_column(String(512), default=None)  # checkpoint key
    requested_action: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    # Evaluation report (`service.scheduler.evaluation`): null while one is owed (a succeeded
    # job), then `running` (under a lease), `done`, `failed` or `skipped`.
    evaluation: Mapped[str | None] = mapped_column(String(16), default=None)
    evaluation_lease_expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Whetstone extension: epoch checkpoints kept (null: the JobSpec's default, OpenAI's 3).
    keep_checkpoints: Mapped[int | None] = mapped_column(Integer, default=None)


class FineTuningJobMetadata(Base):
    """One `metadata` pair of a job, so that `metadata[k]=v` filters run in SQL."""

    __tablename__ = "fine_tuning_job_metadata"
    __table_args__ = (Index("ix_fine_tuning_job_metadata_key_value", "key", "value"),)

    job_id: Mapped[str] = mapped_column(
        ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))


class FineTuningJobEvent(Base):
    """A job's event; `seq` orders events (several share a second), `id` is public."""

    __tablename__ = "fine_tuning_job_events"
    __table_args__ = (Index("ix_fine_tuning_job_events_job_seq", "job_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class FineTuningJobCheckpoint(Base):
    """A checkpoint the trainer completed; its adapter is also a model (`FineTunedModel`)."""

    __tablename__ = "fine_tuning_job_checkpoints"
    __table_args__ = (
        UniqueConstraint("job_id", "step_number", name="uq_fine_tuning_job_checkpoints_step"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    step_number: Mapped[int] = mapped_column(BigInteger)
    fine_tuned_model_checkpoint: Mapped[str] = mapped_column(String(255), unique=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    store_key: Mapped[str] = mapped_column(String(512))  # the checkpoint's folder in the store


class FineTunedModel(Base):
    """A model a job made: its final model (`kind` "final") or a checkpoint ("checkpoint").
    Deleting one sets `deleted_at`; the name is never reused."""

    __tablename__ = "fine_tuned_models"
    __table_args__ = (Index("ix_fine_tuned_models_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the model name
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(
        ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(64))
    adapter_prefix: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class WebhookEndpoint(Base):
    """A URL of a project's that is told when its jobs end (`service.webhooks`); `secret`
    (`whsec_...`) signs every delivery, so it is kept as is, and shown only at creation."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written in the transaction that ended the job,
    POSTed by the scheduler's deliverer until it is `delivered` or `failed` (gave up). `id` is
    the `webhook-id` header, the same on every attempt; `payload` is the body, verbatim."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; while one is on its way, when it counts as lost.
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class Upload(Base):
    """An Upload (OpenAI's Uploads API): a file sent in parts, one `File` once completed.

    `status` is `pending`, `completed`, `cancelled` or `expired`. `file_id` is taken when a
    completion starts (the upload stays `pending` until its File row is committed), so a
    second completion, or a part added meanwhile, is refused.
    """

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_status_expires", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)  # as announced at creation
    mime_type: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[str | None] = mapped_column(String(64), default=None)
    completing_since: Mapped[int | None] = mapped_column(BigInteger, default=None)


class UploadPart(Base):
    """One part of an Upload; its bytes live in the store at `uploads/{upload_id}/parts/{id}`
    until the upload is completed, cancelled or expired."""

    __tablename__ = "upload_parts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class CheckpointPermission(Base):
    """A grant: project `project_id` may use the fine-tuned (or checkpoint) model `model` of
    another project: chat with it, see it in `/v1/models`, and train on top of it."""

    __tablename__ = "checkpoint_permissions"
    __table_args__ = (
        UniqueConstraint("model", "project_id", name="uq_checkpoint_permissions_model_project"),
        Index("ix_checkpoint_permissions_project", "project_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(ForeignKey("fine_tuned_models.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)


class ModelAlias(Base):
    """Another name a project gives a model it may use (`service.models.aliases`): `name`
    answers as `model` for this project's keys only. `model` is a base model of the registry
    or a fine-tuned or checkpoint model name; it is checked when the alias is set and again
    at each use, so an alias of a deleted model answers 404."""

    __tablename__ = "model_aliases"
    __table_args__ = (Index("ix_model_aliases_project_created", "project_id", "created_at"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
