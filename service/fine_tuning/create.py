"""`POST /v1/fine_tuning/jobs`: check a request against the registry and the project's
files and models, then record the job as `validating_files` with its first events.

References in the body (`model`, `training_file`, `validation_file`) that are missing or
belong to another project answer the same 400 naming the field: nothing tells them apart.

A reinforcement job's grader is checked here as `/v1/fine_tuning/alpha/graders/validate`
checks one (`contracts.graders.schema.check`, then what this server can run:
`check_available` with the project's `Reach`): a 400 whose `param` names the field under
`method.reinforcement.grader`.

The job keeps its complete LoRA settings (`lora`: the request's, the JobSpec's defaults for
the rest; for continued training the parent job's, which the request may not change) and the
request's `learning_rate`, if any (the method then reports the multiplier it means).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.orm import Session

from contracts.graders import schema
from contracts.graders.errors import GraderError
from contracts.graders.run import Context, check_available
from contracts.names import fine_tuned_model_name, project_segment
from service.db.tables import FineTuningJob, Project
from service.errors import InvalidRequest
from service.files import repository as files_repo
from service.files.schemas import FINE_TUNE
from service.fine_tuning import repository as repo
from service.fine_tuning.extensions import LoraOptions, LoraSettings
from service.fine_tuning.hyperparameters import (
    METHOD_FORMAT,
    FineTuneMethod,
    normalize_method,
    with_learning_rate,
)
from service.fine_tuning.schemas import MAX_SEED, CreateFineTuningJobRequest
from service.fine_tuning.service import add_event
from service.fine_tuning.status import JobStatus
from service.graders.reach import Reach
from service.ids import new_id, now
from service.models import aliases
from service.models import repository as models_repo
from service.registry import BaseModelEntry


def base_of(
    session: Session, registry: dict[str, BaseModelEntry], project_id: str, model: str
) -> tuple[str, str | None]:
    """`(base model, parent fine-tuned model or None)` for a job on `model`: a registered
    base model, or a live fine-tuned model the project owns or was granted."""
    if model in registry:
        return model, None
    parent = models_repo.get_usable_model(session, project_id, model)
    if parent is None:
        raise InvalidRequest(
            f"Model {model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    return parent.base_model, parent.id


def check_file(
    session: Session, project_id: str, file_id: str, param: str, method: FineTuneMethod
) -> None:
    """The file exists in this project, has purpose `fine-tune` and the method's format."""
    row = files_repo.get_file(session, project_id, file_id)
    if row is None:
        raise InvalidRequest(f"invalid {param}: {file_id}", param=param, code="invalid_file_id")
    if row.purpose != FINE_TUNE:
        raise InvalidRequest(
            f"File {file_id} has purpose '{row.purpose}'; {param} needs a file uploaded with "
            f"purpose '{FINE_TUNE}'.",
            param=param,
            code="invalid_file_purpose",
        )
    wanted = METHOD_FORMAT[method.type]
    if row.format != wanted:
        raise InvalidRequest(
            f"File {file_id} holds {row.format or 'unknown'}-format examples; the "
            f"{method.type} method trains on {wanted}-format examples.",
            param=param,
            code="invalid_file_format",
        )


GRADER_PARAM = "method.reinforcement.grader"


def check_grader(method: FineTuneMethod, reach: Reach | None) -> None:
    """A reinforcement method's grader can run here, or a 400 naming its field; without
    `reach`, no model grader can."""
    if method.reinforcement is None:
        return
    grader = method.reinforcement.grader
    ctx = reach.context() if reach is not None else Context()
    serves = reach.serves if reach is not None else lambda _model: False
    try:
        schema.check(grader, GRADER_PARAM)
        check_available(grader, ctx, serves, GRADER_PARAM)
    except GraderError as e:
        raise InvalidRequest(e.message, param=e.param, code="invalid_grader") from None


def lora_of(
    session: Session,
    registry: dict[str, BaseModelEntry],
    base_model: str,
    parent: str | None,
    requested: LoraOptions | None,
) -> dict[str, Any]:
    """The job's complete LoRA settings, checked against what its base model's vLLM serves."""
    if parent is not None:
        if requested is not None:
            raise InvalidRequest(
                f"Model {parent} is a fine-tuned model: continued training keeps its LoRA "
                "settings, so 'lora' cannot be given.",
                param="lora",
                code="invalid_value",
            )
        model = models_repo.find_model(session, parent)
        job = repo.find_job(session, model.job_id) if model is not None else None
        return LoraSettings.of(job.lora if job is not None else None).model_dump()
    lora = (requested or LoraOptions()).resolved()
    served = registry[base_model].serving.max_lora_rank
    if lora.r > served:
        raise InvalidRequest(
            f"LoRA rank {lora.r} is above {served}, the largest rank base model {base_model} "
            "is served with (its registry entry's `serving.max_lora_rank`).",
            param="lora.r",
            code="invalid_value",
        )
    return lora.model_dump()


def create_job(
    session: Session,
    registry: dict[str, BaseModelEntry],
    project: Project,
    request: CreateFineTuningJobRequest,
    reach: Reach | None = None,
) -> FineTuningJob:
    """`reach`: the models the project's grader may use (`Reach.of_project`)."""
    model = aliases.resolve(session, registry, project.id, request.model)
    base_model, parent = base_of(session, registry, project.id, model)
    method = with_learning_rate(
        normalize_method(request.method, request.hyperparameters), request.learning_rate
    )
    check_grader(method, reach)
    lora = lora_of(session, registry, base_model, parent, request.lora)
    check_file(session, project.id, request.training_file, "training_file", method)
    if request.validation_file is not None:
        check_file(session, project.id, request.validation_file, "validation_file", method)
    job_id = new_id("ftjob")
    created = now()
    job = repo.add_job(
        session,
        FineTuningJob(
            id=job_id,
            project_id=project.id,
            created_at=created,
            updated_at=created,
            status=JobStatus.VALIDATING_FILES.value,
            model=model,
            base_model=base_model,
            parent_model=parent,
            training_file=request.training_file,
            validation_file=request.validation_file,
            method=method.model_dump(mode="json"),
            lora=lora,
            learning_rate=request.learning_rate,
            keep_checkpoints=request.keep_checkpoints,
            suffix=request.suffix,
            seed=request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1),
            job_metadata=request.metadata,
            integrations=[i.model_dump(mode="json") for i in request.integrations]
            if request.integrations is not None
            else None,
            output_model=fine_tuned_model_name(
                base_model, project_segment(project.id, project.name), request.suffix, job_id
            ),
            result_files=[],
        ),
    )
    add_event(session, job, f"Created fine-tuning job: {job.id}")
    validating = f"Validating training file: {job.training_file}"
    if job.validation_file is not None:
        validating += f" and validation file: {job.validation_file}"
    add_event(session, job, validating)
    return job
