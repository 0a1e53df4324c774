"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, pause, resume; events; checkpoints."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from service import limits
from service.db.tables import FineTuningJob as JobRow
from service.deps import ServicesDep, SessionDep
from service.errors import InvalidRequest, not_found
from service.fine_tuning import repository as repo
from service.fine_tuning import service
from service.fine_tuning.create import create_job
from service.fine_tuning.schemas import (
    CreateFineTuningJobRequest,
    FineTuningJob,
    ListFineTuningJobCheckpointsResponse,
    ListFineTuningJobEventsResponse,
    ListPaginatedFineTuningJobsResponse,
)
from service.graders.reach import Reach
from service.keys.dependencies import ProjectDep
from service.schemas.params import After, Limit

router = APIRouter(tags=["Fine-tuning"])

JOBS = "/fine_tuning/jobs"
JOB = JOBS + "/{fine_tuning_job_id}"
_METADATA_PARAM = re.compile(r"^metadata\[(.+)\]$")
# `metadata[k]=v` pairs are read from the raw query string; this documents them.
_METADATA_FILTER: dict[str, Any] = {
    "parameters": [
        {
            "in": "query",
            "name": "metadata",
            "required": False,
            "style": "deepObject",
            "explode": True,
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
            "description": "Keep jobs whose metadata has every `metadata[k]=v` pair; "
            "`metadata=null` keeps jobs without metadata.",
        }
    ]
}


_LIST_PARAMS = frozenset({"after", "limit", "metadata"})
METADATA_KEY_MAX = 64


def _metadata_filter(request: Request) -> dict[str, str]:
    """The `metadata[k]=v` pairs of a jobs list. A parameter the list does not know (a typo
    such as `metdata[team]`) or a key no job can have (empty, over 64 characters) is a 400: a
    filter silently dropped would list every job to a script that means to act on a few."""
    pairs = {}
    for name, value in request.query_params.multi_items():
        match = _METADATA_PARAM.match(name)
        if match is None:
            if name not in _LIST_PARAMS:
                raise InvalidRequest(
                    f"Unrecognized request argument supplied: {name}",
                    param=name,
                    code="unknown_parameter",
                )
            continue
        key = match[1]
        if len(key) > METADATA_KEY_MAX or "[" in key or "]" in key:
            raise InvalidRequest(
                f"Invalid metadata filter {name!r}: a metadata key is 1 to {METADATA_KEY_MAX} "
                "characters, without brackets.",
                param=name,
                code="invalid_value",
            )
        pairs[key] = value
    return pairs


def _job(session: Session, project_id: str, job_id: str, *, for_update: bool = False) -> JobRow:
    row = repo.get_job(session, project_id, job_id, for_update=for_update)
    if row is None:
        raise not_found("fine_tuning_job", job_id, param="fine_tuning_job_id")
    return row


@router.post(JOBS, operation_id="createFineTuningJob", response_model=FineTuningJob)
def create(
    body: CreateFineTuningJobRequest,
    project: ProjectDep,
    session: SessionDep,
    services: ServicesDep,
) -> FineTuningJob:
    """Create a job; it starts in `validating_files`."""
    limits.check_queued_jobs(session, project.id, services.settings.quota_queued_jobs)
    reach = Reach.of_project(services, project.id)
    return FineTuningJob.of(create_job(session, services.registry, project, body, reach))


@router.get(
    JOBS,
    operation_id="listPaginatedFineTuningJobs",
    response_model=ListPaginatedFineTuningJobsResponse,
    openapi_extra=_METADATA_FILTER,
)
def list_(
    request: Request,
    project: ProjectDep,
    session: SessionDep,
    after: After = None,
    limit: Limit = 20,
) -> ListPaginatedFineTuningJobsResponse:
    """The project's jobs, newest first."""
    pairs = _metadata_filter(request)
    none = request.query_params.get("metadata") == "null"
    page = repo.list_jobs(
        session, project.id, after=after, limit=limit, metadata=pairs, without_metadata=none
    )
    return ListPaginatedFineTuningJobsResponse.of(page.items, page.has_more)


@router.get(JOB, operation_id="retrieveFineTuningJob", response_model=FineTuningJob)
def retrieve(fine_tuning_job_id: str, project: ProjectDep, session: SessionDep) -> FineTuningJob:
    return FineTuningJob.of(_job(session, project.id, fine_tuning_job_id))


def _act(
    session: Session, project_id: str, job_id: str, action: Callable[[Session, JobRow], None]
) -> FineTuningJob:
    row = _job(session, project_id, job_id, for_update=True)
    action(session, row)
    return FineTuningJob.of(row)


@router.post(JOB + "/cancel", operation_id="cancelFineTuningJob", response_model=FineTuningJob)
def cancel(fine_tuning_job_id: str, project: ProjectDep, session: SessionDep) -> FineTuningJob:
    """Cancel a job that has not finished; a running attempt is told to stop."""
    return _act(session, project.id, fine_tuning_job_id, service.cancel)


@router.post(JOB + "/pause", operation_id="pauseFineTuningJob", response_model=FineTuningJob)
def pause(fine_tuning_job_id: str, project: ProjectDep, session: SessionDep) -> FineTuningJob:
    """Pause a running job: it checkpoints and stops; status `paused` (as Azure OpenAI)."""
    return _act(session, project.id, fine_tuning_job_id, service.pause)


@router.post(JOB + "/resume", operation_id="resumeFineTuningJob", response_model=FineTuningJob)
def resume(fine_tuning_job_id: str, project: ProjectDep, session: SessionDep) -> FineTuningJob:
    """Resume a paused job: it is queued again and continues from its last checkpoint."""
    return _act(session, project.id, fine_tuning_job_id, service.resume)


@router.get(
    JOB + "/events",
    operation_id="listFineTuningEvents",
    response_model=ListFineTuningJobEventsResponse,
)
def list_events(
    fine_tuning_job_id: str,
    project: ProjectDep,
    session: SessionDep,
    after: After = None,
    limit: Limit = 20,
) -> ListFineTuningJobEventsResponse:
    """The job's events, newest first."""
    job = _job(session, project.id, fine_tuning_job_id)
    page = repo.list_events(session, job.id, after=after, limit=limit)
    return ListFineTuningJobEventsResponse.of(page.items, page.has_more)


@router.get(
    JOB + "/checkpoints",
    operation_id="listFineTuningJobCheckpoints",
    response_model=ListFineTuningJobCheckpointsResponse,
)
def list_checkpoints(
    fine_tuning_job_id: str,
    project: ProjectDep,
    session: SessionDep,
    after: After = None,
    limit: Limit = 10,
) -> ListFineTuningJobCheckpointsResponse:
    """The job's checkpoints, latest step first."""
    job = _job(session, project.id, fine_tuning_job_id)
    page = repo.list_checkpoints(session, job.id, after=after, limit=limit)
    return ListFineTuningJobCheckpointsResponse.of(page.items, page.has_more)
