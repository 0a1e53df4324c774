"""The trainer's progress endpoint: `POST /internal/v1/jobs/{job_id}/report`.

Authenticated by the attempt's own bearer token (only its hash is stored with the job). A
user's API key, the token of an earlier attempt, or any other token is refused with 401, so
a trainer that lost its lease cannot write to the job any more. Not part of the public API.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel
from sqlalchemy import select

from service.auth import bearer_key
from service.db.tables import FineTuningJob
from service.deps import ServicesDep
from service.errors import Authentication, InvalidRequest
from service.jobs.status import JobStatus
from service.scheduler.context import token_matches
from service.scheduler.progress import handle_report

router = APIRouter(prefix="/internal/v1", include_in_schema=False)
MESSAGE_TYPES = {"started", "metrics", "checkpoint", "heartbeat", "log", "finished", "failed"}


class ReportReply(BaseModel):
    action: Literal["continue", "cancel", "pause"]


@router.post("/jobs/{job_id}/report", response_model=ReportReply)
def report(
    job_id: str,
    request: Request,
    services: ServicesDep,
    message: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's way to take a JSON object
) -> ReportReply:
    token = bearer_key(request)
    if message.get("type") not in MESSAGE_TYPES:
        raise InvalidRequest(
            f"Unknown progress message type: {message.get('type')!r}.", param="type"
        )
    with services.sessions() as session:
        stmt = select(FineTuningJob).where(FineTuningJob.id == job_id)
        job = session.scalars(stmt.with_for_update()).first()
        if job is None or not token_matches(token, job.attempt_token_hash):
            raise Authentication("This token is not the token of the job's current attempt.")
        try:
            action = handle_report(
                session, services.store, job, message, services.settings.scheduler_lease_seconds
            )
        except (KeyError, TypeError, ValueError) as e:
            session.rollback()
            raise InvalidRequest(f"Malformed {message['type']} message: {e!r}.") from e
        session.commit()
        succeeded = message["type"] == "finished" and job.status == JobStatus.SUCCEEDED.value
        model, base = job.fine_tuned_model, job.base_model
    if succeeded and model:
        services.adapters.warm_start_later(model, base)
    return ReportReply(action=action)
