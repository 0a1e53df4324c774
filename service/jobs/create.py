"""`POST /v1/fine_tuning/jobs`: check a request against the registry and the project's
files and models, then record the job as `validating_files` with its first events.

References in the body (`model`, `training_file`, `validation_file`) that are missing or
belong to another project answer the same 400 naming the field: nothing tells them apart.
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from service.db.repositories import files as files_repo
from service.db.repositories import jobs as repo
from service.db.repositories import models as models_repo
from service.db.tables import FineTuningJob, Project
from service.errors import InvalidRequest
from service.ids import new_id, now
from service.jobs.hyperparameters import METHOD_FORMAT, FineTuneMethod, normalize_method
from service.jobs.naming import fine_tuned_model_name, project_segment
from service.jobs.service import add_event
from service.jobs.status import JobStatus
from service.registry import BaseModelEntry
from service.schemas.files import FINE_TUNE
from service.schemas.fine_tuning import MAX_SEED, CreateFineTuningJobRequest


def base_of(
    session: Session, registry: dict[str, BaseModelEntry], project_id: str, model: str
) -> tuple[str, str | None]:
    """`(base model, parent fine-tuned model or None)` for a job on `model`."""
    if model in registry:
        return model, None
    parent = models_repo.get_model(session, project_id, model)
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


def create_job(
    session: Session,
    registry: dict[str, BaseModelEntry],
    project: Project,
    request: CreateFineTuningJobRequest,
) -> FineTuningJob:
    base_model, parent = base_of(session, registry, project.id, request.model)
    method = normalize_method(request.method, request.hyperparameters)
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
            model=request.model,
            base_model=base_model,
            parent_model=parent,
            training_file=request.training_file,
            validation_file=request.validation_file,
            method=method.model_dump(mode="json"),
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
