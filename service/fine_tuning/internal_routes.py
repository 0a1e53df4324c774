"""The trainer's endpoints: `POST /internal/v1/jobs/{job_id}/report` (progress) and
`POST /internal/v1/jobs/{job_id}/grader/chat` (a reinforcement job's model graders).

Authenticated by the attempt's own bearer token (only its hash is stored with the job). A
user's API key, the token of an earlier attempt, or any other token is refused with 401, so
a trainer that lost its lease cannot write to the job any more. The token is checked before
the body is read, so a refused caller learns nothing from its message's errors; the body is
one of `contracts.messages.Message`, and anything else answers 400 in OpenAI's error shape.
A message that parses but names values the job cannot take (a pydantic check further in)
is a 400 as well; any other exception is the server's (500), never blamed on the trainer.

`grader/chat` takes a chat-completions body whose `model` is a `score_model`/`label_model`
grader's model and answers the chat completion: through the grading endpoint
(`WHETSTONE_GRADER_MODELS`) or the vLLM of a model the job's project may chat with
(`service.graders.reach.Reach.of_project`, with the project's `cache_salt` as the chat
route sends): the trainer needs no API key, and reaches no other project's models nor their
prefix cache. A grading model that is down or fails answers 502.
Not part of the public API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from contracts.graders.model_graders import ModelCallError
from contracts.messages import Message, Reply, parse_message
from service.chat.routes import chat_request
from service.deps import Services, ServicesDep, SessionDep
from service.errors import Authentication, BadGateway, InvalidRequest, ServiceError
from service.fine_tuning import attempts
from service.fine_tuning import repository as repo
from service.fine_tuning.progress import handle_report
from service.graders.reach import Reach
from service.keys.dependencies import bearer_key

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


def _not_this_attempt() -> Authentication:
    return Authentication("This token is not the token of the job's current attempt.")


def attempt_token(job_id: str, request: Request, services: ServicesDep) -> str:
    """The bearer token, if it is the job's current attempt's (FastAPI solves this before
    it validates the body); `report` checks it again under the job's row lock."""
    token = bearer_key(request)
    with services.sessions() as session:
        job = repo.find_job(session, job_id)
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
    session: SessionDep,
) -> Reply:
    message = read_message(body)
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
    except ValidationError as e:  # the message's values, checked further in
        raise InvalidRequest(f"Malformed {message.type} message: {e}.") from e
    return Reply(action=action)


def _project_of(services: Services, job_id: str) -> str:
    with services.sessions() as session:
        job = repo.find_job(session, job_id)
        if job is None:
            raise _not_this_attempt()
        return job.project_id


@router.post("/jobs/{job_id}/grader/chat", response_model=None)
async def grader_chat(
    job_id: str,
    token: Annotated[str, Depends(attempt_token)],
    body: Annotated[bytes, Depends(report_body)],
    services: ServicesDep,
) -> Response:
    """A chat completion for a model grader of the job: relayed as the job's project."""
    data = chat_request(body)
    if data.get("stream"):
        raise InvalidRequest(
            "A grading model's answer is read whole: 'stream' must be false.",
            param="stream",
            code="invalid_value",
        )
    model: str = data["model"]
    reach = Reach.of_project(services, await run_in_threadpool(_project_of, services, job_id))
    if model in services.settings.grader_models and services.settings.grader_models_url:
        try:
            answer: dict[str, Any] = await run_in_threadpool(reach.complete, model, data)
        except ModelCallError as e:
            raise BadGateway(str(e), code="grader_model_error") from None
        return JSONResponse(answer)
    target = await run_in_threadpool(reach.target, model)  # 404: not the project's to use
    try:
        return await reach.relay(target, data)
    except ServiceError as e:
        if e.status_code < 500:
            raise
        raise BadGateway(
            f"The grading model {model} did not answer: {e.message}", code="grader_model_error"
        ) from None
