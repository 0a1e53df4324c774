"""`validating_files -> queued`: check the job's files with its base model's tokenizer, then
record the resolved hyperparameters (`failed` with the file's error otherwise).

Each job is validated in its own transaction, its row locked (`SKIP LOCKED` on Postgres). An
exception rolls back that job's changes only; then the job fails (`model_not_available` for
a base model that cannot be loaded, `server_error` for anything unexpected), or, after a
transient error of the database or the object store, it is tried again later (a `warn`
event; `failures.TRIES` tries in all), and the next job goes on.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from service.db.tables import FineTuningJob
from service.errors import describe
from service.files.repository import file_key
from service.fine_tuning import attempts
from service.fine_tuning import repository as repo
from service.fine_tuning import service as jobs
from service.fine_tuning.auto_hyperparameters import resolve, resolve_reinforcement
from service.fine_tuning.hyperparameters import FineTuneMethod
from service.fine_tuning.validation import (
    BaseModelError,
    FileStats,
    FileValidationError,
    check_chat_file,
    check_preference_file,
    check_reinforcement_file,
    load_chat_tokenizer,
)
from service.logs import log_context
from service.scheduler.context import SchedulerContext
from service.scheduler.failures import SERVER_ERROR, TRIES, is_transient, retry_delay

log = logging.getLogger(__name__)
BATCH = 8


def validate_pending(ctx: SchedulerContext) -> int:
    """Validate up to `BATCH` jobs waiting in `validating_files`, oldest first; returns how
    many were validated or failed (a job put off to a later try is not counted)."""
    with ctx.sessions() as session:
        ids = repo.validating_job_ids(session, BATCH)
    return sum(_validate_one(ctx, job_id) for job_id in ids)


def _validate_one(ctx: SchedulerContext, job_id: str) -> bool:
    """One job in its own transaction; an exception is recorded in another one."""
    with log_context(job=job_id), ctx.sessions() as session:
        try:
            job = _lock(ctx, session, job_id)
            if job is None:
                return False  # another scheduler has it, or it was cancelled
            validate_job(ctx, session, job)
            session.commit()
            return True
        except Exception as e:
            session.rollback()
            error = e
        try:
            job = _lock(ctx, session, job_id)
            if job is None:
                return False
            done = validation_failed(ctx, session, job, error)
            session.commit()
            return done
        except Exception:
            session.rollback()
            log.exception("cannot record the validation failure of %s", job_id)
            return False


def _lock(ctx: SchedulerContext, session: Session, job_id: str) -> FineTuningJob | None:
    return repo.lock_validating(session, job_id, skip_locked=ctx.on_postgres)


def validation_failed(
    ctx: SchedulerContext, session: Session, job: FineTuningJob, error: Exception
) -> bool:
    """After `validate_job` raised: fail the job, or put it off to a later try (returns
    False then). `job.attempt` counts the tries while the job is `validating_files`."""
    if is_transient(error):
        log.warning("validation of %s failed: %s", job.id, describe(error))
        tries = job.attempt + 1
        if tries < TRIES:
            delay = retry_delay(tries)
            attempts.retry_later(
                session, job, tries, delay,
                f"The files could not be validated yet ({describe(error)}); trying again in "
                f"{delay} s (try {tries + 1} of {TRIES})",
            )  # fmt: skip
            return False
        message = (
            f"The files could not be validated: the server failed {tries} times, the last "
            f"time with {describe(error)}. Your files were not the problem; create the job "
            "again later."
        )
    else:
        log.error("validation of %s failed", job.id, exc_info=error)
        message = (
            f"The files could not be validated because of an error on the server "
            f"({describe(error)}). Create the job again; if it fails the same way, tell the "
            "server's operator."
        )
    attempts.fail(session, job, SERVER_ERROR, message)
    return True


def validate_job(ctx: SchedulerContext, session: Session, job: FineTuningJob) -> None:
    """Check the job's files and queue it, or fail it with the reason; unexpected errors
    (the database, the store, a bug) raise."""
    method = FineTuneMethod.model_validate(job.method)
    entry = ctx.registry.get(job.base_model)
    if entry is None:
        jobs.mark_failed(
            session, job, "model_not_available",
            f"Base model {job.base_model} is not in this server's registry.", "model",
        )  # fmt: skip
        return
    try:
        tokenizer = load_chat_tokenizer(entry.name, entry.path)
    except BaseModelError as e:
        log.warning("cannot load the tokenizer of %s: %s", entry.name, e, exc_info=e.__cause__)
        jobs.mark_failed(session, job, "model_not_available", str(e), "model")
        return
    check_file = {
        "supervised": check_chat_file,
        "dpo": check_preference_file,
        "reinforcement": check_reinforcement_file,
    }[method.type]
    try:
        stats = check_file(
            ctx.store, file_key(job.training_file), file_id=job.training_file,
            param="training_file", tokenizer=tokenizer, max_seq_len=entry.max_seq_len,
        )  # fmt: skip
        valid = None
        if job.validation_file:
            valid = check_file(
                ctx.store, file_key(job.validation_file), file_id=job.validation_file,
                param="validation_file", tokenizer=tokenizer, max_seq_len=entry.max_seq_len,
            )  # fmt: skip
    except FileValidationError as e:
        jobs.mark_failed(session, job, e.code, e.message, e.param)
        return
    for field, found in (("Training file", stats), ("Validation file", valid)):
        if found is not None and found.sequences > found.examples:
            jobs.add_event(session, job, sequences_message(field, found, entry.name))
    given = method.hyperparameters.model_dump(mode="json")
    if method.type == "reinforcement":
        values = resolve_reinforcement(given, stats.examples, entry.auto)
    else:
        values = resolve(given, stats.examples, entry.auto).as_dict()
    jobs.record_hyperparameters(job, values)
    attempts.queue_validated(session, job, ctx.settings.scheduler_max_attempts)


def sequences_message(field: str, stats: FileStats, model: str) -> str:
    """The event of a file whose examples became more sequences than examples."""
    return (
        f"{field}: {stats.examples} examples became {stats.sequences} sequences. The chat "
        f"template of {model} renders earlier assistant turns differently once later ones "
        "follow (as templates that drop earlier turns' reasoning do), so each such trained "
        "turn is trained in a sequence of its own: the conversation up to it, as the model sees it"
    )
