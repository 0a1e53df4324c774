"""`/v1/chat/completions`: a base model, or one of the caller's fine-tuned or checkpoint
models, answered by the vLLM of its base model.

The body is parsed once and forwarded as it came, but for `model` and `cache_salt`: a model
alias's name (`service.models.aliases`) becomes the alias's target, and `cache_salt` becomes
the project's own (`service.hashing.cache_salt`). `model` is read here, to check that the
caller may use it and to find its base model. The answer is vLLM's, relayed as JSON or as SSE
chunk by chunk (`service.chat.serving_client`).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from service.chat.schemas import ChatCompletion, CreateChatCompletionRequest
from service.deps import get_services
from service.errors import InvalidRequest, NotFound
from service.hashing import cache_salt
from service.keys.dependencies import bearer_key
from service.limits import mark_verified
from service.schemas.common import ErrorResponse

router = APIRouter(tags=["Chat"])

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": CreateChatCompletionRequest.model_json_schema()}
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ChatCompletion,
        "description": "The completion; with `stream: true`, `chat.completion.chunk` events "
        "(server-sent events) ending with `data: [DONE]`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    502: {"model": ErrorResponse, "description": "The model server failed during the request."},
    503: {"model": ErrorResponse, "description": "The model server is down or starting."},
}


@router.post(
    "/chat/completions",
    operation_id="createChatCompletion",
    response_model=None,
    responses=_RESPONSES,
    openapi_extra=_BODY,
)
async def create_chat_completion(request: Request) -> Response:
    """Create a chat completion with a base model or one of this project's models."""
    services = get_services(request)
    access = services.chat_access
    key = bearer_key(request)
    body = await request.body()  # capped, and the key known, before (service.body_limits)
    try:
        data = chat_request(body)
    except InvalidRequest:
        with suppress(NotFound):  # an unknown key is a 401 whatever the body
            await run_in_threadpool(access.target, key, "")
        raise
    model = data["model"]
    # This route is on the path of every token a user waits for: a recent answer spares
    # the database and the worker thread.
    target = access.recent(key, model)
    if target is None:
        target = await run_in_threadpool(access.target, key, model)
    mark_verified(request, key)  # the rate limiter counts this key on its own from now on
    data["model"] = target.model
    data["cache_salt"] = cache_salt(target.project_id, caller_salt(data.get("cache_salt")))
    return await services.serving.chat(target.base_model, target.model, orjson.dumps(data))


def caller_salt(asked: object) -> str | None:
    """The caller's own `cache_salt`, if any (folded into the project's: `cache_salt`)."""
    if asked is not None and (not isinstance(asked, str) or not asked):
        raise InvalidRequest(
            "Parameter 'cache_salt' must be a non-empty string if provided.",
            param="cache_salt",
            code="invalid_value",
        )
    return asked


def chat_request(body: bytes) -> dict[str, Any]:
    """A chat request body as a JSON object with a `model` and `messages`; 400 otherwise."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request: it is not valid JSON.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_value")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    check_messages(data.get("messages"), "messages" in data)
    return data


def check_messages(messages: object, given: bool) -> None:
    """OpenAI's answers for `messages` missing, not an array, or empty (vLLM's own would be a
    raw validation dump without `param` or `code`)."""
    if not given:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise InvalidRequest(
            "Invalid type for 'messages': expected an array of objects.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
