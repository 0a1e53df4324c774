"""The trainer's progress endpoint: `POST /internal/v1/jobs/{job_id}/report`.

Authenticated by the attempt's own bearer token (only its hash is stored with the job). A
user's API key, the token of an earlier attempt, or any other token is refused with 401, so
a trainer that lost its lease cannot write to the job any more. The token is checked before
the body is read, so a refused caller learns nothing from its message's errors; the body is
one of `contracts.messages.Message`, and anything else answers 400 in OpenAI's error shape.
Not part of the public API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from contracts.messages import Message, Reply, parse_message
from service.auth import bearer_key
from service.db.repositories import jobs as repo
from service.db.tables import FineTuningJob
from service.deps import ServicesDep
from service.errors import Authentication, InvalidRequest
from service.jobs import attempts
from service.scheduler.progress import handle_report

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


def _not_this_attempt() -> Authentication:
    return Authentication("This token is not the token of the job's current attempt.")


def attempt_token(job_id: str, request: Request, services: ServicesDep) -> str:
    """The bearer token, if it is the job's current attempt's (FastAPI solves this before
    it validates the body); `report` checks it again under the job's row lock."""
    token = bearer_key(request)
    with services.sessions() as session:
        job = session.get(FineTuningJob, job_id)
        if job is None or not attempts.is_current(job, token):
            raise _not_this_attempt()
    return token


async def report_body(request: Request) -> bytes:
    """The raw body: read only once `attempt_token` has accepted the caller (FastAPI solves
    dependencies in order, and a route without a body parameter parses nothing before)."""
    return await request.body()


def read_message(body: bytes) -> Message:
    """One `Message`; anything else is the 400 every invalid request gets (`param` naming
    the field, `invalid_json` for a body that is not JSON)."""
    try:
        return parse_message(body)
    except ValidationError as e:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in e.errors()]
        raise RequestValidationError(errors) from e


@router.post("/jobs/{job_id}/report", response_model=Reply)
def report(
    job_id: str,
    token: Annotated[str, Depends(attempt_token)],
    body: Annotated[bytes, Depends(report_body)],
    services: ServicesDep,
) -> Reply:
    message = read_message(body)
    with services.sessions() as session:
        job = repo.lock_job(session, job_id)
        if job is None or not attempts.is_current(job, token):
            raise _not_this_attempt()
        try:
            action = handle_report(
                session,
                services.store,
                job,
                message,
                services.settings.scheduler_lease_seconds,
                services.adapters,  # warm-starts a succeeded job's model once committed
                services.chat_access,  # forgets the checkpoint models the trainer pruned
            )
        except (KeyError, TypeError, ValueError) as e:
            session.rollback()
            raise InvalidRequest(f"Malformed {message.type} message: {e!r}.") from e
        session.commit()
    return Reply(action=action)
