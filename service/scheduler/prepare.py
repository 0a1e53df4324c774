"""`validating_files -> queued`: check the job's files with its base model's tokenizer, then
record the resolved hyperparameters (`failed` with the file's error otherwise)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.repositories.files import file_key
from service.db.tables import FineTuningJob
from service.jobs import service as jobs
from service.jobs.hyperparameters import FineTuneMethod
from service.jobs.status import JobStatus
from service.scheduler.context import SchedulerContext, skip_locked
from service.scheduler.hyperparameters import resolve
from service.scheduler.validation import FileValidationError, chat_tokenizer, check_chat_file

log = logging.getLogger(__name__)
BATCH = 8


def validate_pending(ctx: SchedulerContext) -> int:
    """Validate up to `BATCH` jobs waiting in `validating_files`; returns how many."""
    done = 0
    with ctx.sessions() as session:
        stmt = (
            select(FineTuningJob)
            .where(FineTuningJob.status == JobStatus.VALIDATING_FILES.value)
            .order_by(FineTuningJob.created_at, FineTuningJob.id)
            .limit(BATCH)
        )
        for job in session.scalars(skip_locked(stmt, ctx.on_postgres)).all():
            validate_job(ctx, session, job)
            session.commit()
            done += 1
    return done


def validate_job(ctx: SchedulerContext, session: Session, job: FineTuningJob) -> None:
    method = FineTuneMethod.model_validate(job.method)
    entry = ctx.registry.get(job.base_model)
    if entry is None:
        jobs.mark_failed(
            session, job, "model_not_available",
            f"Base model {job.base_model} is not in this server's registry.", "model",
        )  # fmt: skip
        return
    if method.type != "supervised":
        jobs.mark_failed(
            session, job, "unsupported_method",
            f"The {method.type} method is not supported by the trainer yet.", "method.type",
        )  # fmt: skip
        return
    try:
        tokenizer = chat_tokenizer(entry.path)
    except (OSError, ValueError) as e:
        log.exception("cannot load the tokenizer of %s", entry.name)
        jobs.mark_failed(
            session, job, "model_not_available",
            f"The tokenizer of base model {entry.name} cannot be loaded: {e}", "model",
        )  # fmt: skip
        return
    try:
        stats = check_chat_file(
            ctx.store, file_key(job.training_file), file_id=job.training_file,
            param="training_file", tokenizer=tokenizer, max_seq_len=entry.max_seq_len,
        )  # fmt: skip
        if job.validation_file:
            check_chat_file(
                ctx.store, file_key(job.validation_file), file_id=job.validation_file,
                param="validation_file", tokenizer=tokenizer, max_seq_len=entry.max_seq_len,
            )  # fmt: skip
    except FileValidationError as e:
        jobs.mark_failed(session, job, e.code, e.message, e.param)
        return
    given = method.hyperparameters.model_dump(mode="json")
    jobs.record_hyperparameters(job, resolve(given, stats.examples).as_dict())
    job.max_attempts = ctx.settings.scheduler_max_attempts
    jobs.transition(session, job, JobStatus.QUEUED)
