"""`/v1/fine_tuning/alpha/graders`: run a grader on one sample, or validate it, as OpenAI's
`client.fine_tuning.alpha.graders.run(...)` and `.validate(...)` call them.

A grader that cannot run as given (an unknown template variable, a formula that does not
parse, a Python source without `grade`, a model not served here, `cosine` without an
embedding model) is a 400 naming the field. A grader that fails on this sample is a 200
whose `metadata.errors` says why, with a reward of 0.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from contracts.graders import schema
from contracts.graders.errors import GraderError
from contracts.graders.run import Context, check_available, grade
from service.deps import ServicesDep
from service.errors import InvalidRequest
from service.graders.reach import Reach, context, python_slots
from service.graders.schemas import (
    RunGraderRequest,
    RunGraderResponse,
    ValidateGraderRequest,
    ValidateGraderResponse,
)
from service.keys.dependencies import ProjectDep, bearer_key

router = APIRouter(tags=["Fine-tuning"])


def _checked(grader: schema.GraderType, ctx: Context, reach: Reach) -> None:
    try:
        schema.check(grader)
        check_available(grader, ctx, reach.serves)
    except GraderError as e:
        raise InvalidRequest(e.message, param=e.param, code="invalid_grader") from None


@router.post(
    "/fine_tuning/alpha/graders/run",
    operation_id="runGrader",
    response_model=RunGraderResponse,
)
async def run_grader(
    body: RunGraderRequest, request: Request, project: ProjectDep, services: ServicesDep
) -> RunGraderResponse:
    """Grade `model_sample` against `item`."""
    slots = python_slots(request.app.state, services.settings)
    ctx, reach = context(services, bearer_key(request), slots)
    await run_in_threadpool(_checked, body.grader, ctx, reach)
    result = await run_in_threadpool(grade, body.grader, body.model_sample, body.item, ctx)
    answer = result.to_openai()
    answer["metadata"]["details"] = result.details
    return RunGraderResponse.model_validate(answer)


@router.post(
    "/fine_tuning/alpha/graders/validate",
    operation_id="validateGrader",
    response_model=ValidateGraderResponse,
    response_model_exclude_none=True,
)
async def validate_grader(
    body: ValidateGraderRequest, request: Request, project: ProjectDep, services: ServicesDep
) -> ValidateGraderResponse:
    """Check a grader without running it; the answer is the grader."""
    slots = python_slots(request.app.state, services.settings)
    ctx, reach = context(services, bearer_key(request), slots)
    await run_in_threadpool(_checked, body.grader, ctx, reach)
    return ValidateGraderResponse(grader=body.grader)
