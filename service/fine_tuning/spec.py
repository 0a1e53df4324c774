"""The JobSpec of one attempt, built from its job: the resolved hyperparameters in the spec's
classes, the job's LoRA settings, seed and own learning rate, the training lines held out for
the evaluation report, the W&B run, and where the trainer reads and writes in the store. The
scheduler's claim (`service.scheduler.claim`) writes it with the attempt."""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.orm import Session

from contracts import layout
from contracts.holdout import held_out_lines
from contracts.spec import HYPERPARAMETERS, BaseModelRef, JobSpec, Method, WandbRun
from contracts.store import ObjectNotFound, ObjectStore
from service.db.tables import FineTuningJob
from service.evaluation.source_answers import answered_lines
from service.files.repository import file_key, find_file, get_file
from service.fine_tuning.hyperparameters import AUTO, FineTuneMethod
from service.models import repository as models_repo
from service.registry import BaseModelEntry
from service.settings import Settings

log = logging.getLogger(__name__)


class SpecSources(Protocol):
    """What a spec is built from besides the job (the scheduler's context has these)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> ObjectStore: ...
    @property
    def registry(self) -> dict[str, BaseModelEntry]: ...


def build_spec(ctx: SpecSources, session: Session, job: FineTuningJob, number: int) -> str:
    """The JobSpec of attempt `number`, as JSON (stored with the job and in the store)."""
    entry = ctx.registry[job.base_model]
    extra: dict[str, int | str] = {}
    if ctx.settings.scheduler_checkpoint_every_steps is not None:
        extra["checkpoint_every_steps"] = ctx.settings.scheduler_checkpoint_every_steps
    if ctx.settings.trainer_micro_batch_tokens is not None:
        extra["micro_batch_tokens"] = ctx.settings.trainer_micro_batch_tokens
    if job.keep_checkpoints is not None:
        extra["keep_checkpoints"] = job.keep_checkpoints
    if job.parent_model:  # continued training starts from the parent's adapter
        parent = models_repo.find_model(session, job.parent_model)
        if parent is not None:
            extra["init_adapter"] = ctx.store.key_url(parent.adapter_prefix)
    spec = JobSpec(
        job_id=job.id,
        base_model=BaseModelRef(name=entry.name, path=entry.path, max_seq_len=entry.max_seq_len),
        training_file=ctx.store.key_url(file_key(job.training_file)),
        validation_file=(
            ctx.store.key_url(file_key(job.validation_file)) if job.validation_file else None
        ),
        method=_spec_method(FineTuneMethod.model_validate(job.method), job.learning_rate),
        lora=job.lora or {},  # the job's complete `LoraConfig`; none (an older job): defaults
        seed=job.seed,
        output=ctx.store.key_url(layout.job_prefix(job.id)),
        resume_from=ctx.store.key_url(job.resume_from) if job.resume_from else None,
        attempt=number,
        held_out_lines=_held_out(ctx, session, job),
        wandb=wandb_run(job),
        grader_limits=ctx.settings.grader_limits(),
        **extra,
    )
    return spec.model_dump_json(indent=1)


def _spec_method(method: FineTuneMethod, learning_rate: float | None) -> Method:
    """The job's method in the JobSpec's classes: its resolved hyperparameters (an `auto` left,
    as in a job from before the hyperparameter existed: the JobSpec's default), the job's own
    learning rate (which wins over the multiplier's) and a reinforcement job's grader."""
    given = {k: v for k, v in method.hyperparameters.model_dump().items() if v != AUTO}
    block = HYPERPARAMETERS[method.type](**given, learning_rate=learning_rate)
    grader = method.reinforcement.grader if method.reinforcement is not None else None
    return Method.model_validate({"type": method.type, method.type: block, "grader": grader})


def _held_out(ctx: SpecSources, session: Session, job: FineTuningJob) -> list[int]:
    """Without a validation file, the training lines set aside for the evaluation report
    (the same for every attempt: from the seed and the file's line count), or those a
    source model answered (`metadata.source_answers_file` of `{"line": n, ...}`, written by
    `whetstone migrate --evaluate`), so that its answers are compared on the same prompts.
    None for a reinforcement job: its prompts have no reference answer to compare with."""
    settings = ctx.settings
    reinforcement = (job.method or {}).get("type") == "reinforcement"
    if job.validation_file or not settings.eval_enabled or reinforcement:
        return []
    training = find_file(session, job.training_file)
    lines = (training.lines or 0) if training else 0
    answers_id = (job.job_metadata or {}).get("source_answers_file")
    answers = get_file(session, job.project_id, answers_id) if answers_id else None
    if answers is not None:
        try:  # the tenant's file: streamed and capped as the evaluation reads it
            answered = answered_lines(
                ctx.store, file_key(answers.id), lines, settings.eval_max_examples,
                settings.eval_source_answers_max_bytes,
            )  # fmt: skip
        except (ObjectNotFound, ValueError, KeyError, TypeError) as e:
            log.warning("job %s: source answers %s not read (%s)", job.id, answers.id, e)
            answered = []
        if answered:
            return answered
    return held_out_lines(
        lines, job.seed, settings.eval_holdout_fraction,
        settings.eval_max_examples, settings.eval_holdout_min_examples,
    )  # fmt: skip


def wandb_run(job: FineTuningJob) -> WandbRun | None:
    """The job's first `wandb` integration (OpenAI's field) as the JobSpec's W&B run."""
    for integration in job.integrations or []:
        if integration.get("type") == "wandb" and integration.get("wandb"):
            settings = integration["wandb"]
            return WandbRun(
                project=settings["project"],
                name=settings.get("name"),
                entity=settings.get("entity"),
                tags=settings.get("tags") or [],
            )
    return None
