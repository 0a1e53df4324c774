"""One error root in OpenAI's shape, and the handlers that render every failure with it.

Raise a `ServiceError` subclass anywhere below a route; the handler turns it into
`{"error": {"message", "type", "param", "code"}}` with its status. FastAPI's own 404/405,
request validation errors (as 400 `invalid_request_error` naming the field) and unexpected
exceptions (500, no stack trace in the body) take the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sql_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.db.pagination import CursorNotFound

log = logging.getLogger(__name__)

MAX_DETAIL = 300


def describe(error: BaseException) -> str:
    """`Type: message`, one line, short enough for an event and a job's error (the scheduler
    and the job's file checks tell a job's owner what went wrong with it)."""
    cause = error.orig if isinstance(error, sql_errors.DBAPIError) else error
    text = " ".join(str(cause).split()) or repr(cause)
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 3] + "..."
    return f"{type(cause).__name__}: {text}"


class ServiceError(Exception):
    """Root of every error the API answers with; subclasses fix status and type."""

    status_code = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequest(ServiceError):
    status_code = 400
    type = "invalid_request_error"


class Authentication(ServiceError):
    status_code = 401
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "invalid_api_key")


class PermissionDenied(ServiceError):
    status_code = 403
    type = "invalid_request_error"


class NotFound(ServiceError):
    status_code = 404
    type = "invalid_request_error"


class MethodNotAllowed(ServiceError):
    status_code = 405
    type = "invalid_request_error"


class Conflict(ServiceError):
    status_code = 409
    type = "invalid_request_error"


class PayloadTooLarge(ServiceError):
    status_code = 413
    type = "invalid_request_error"


class RateLimited(ServiceError):
    status_code = 429
    type = "rate_limit_error"


class Unavailable(ServiceError):
    status_code = 503
    type = "server_error"


class BadGateway(ServiceError):
    """A model server (vLLM) failed while answering."""

    status_code = 502
    type = "server_error"


class GatewayTimeout(ServiceError):
    """A model server (vLLM) did not answer in time."""

    status_code = 504
    type = "server_error"


class UpstreamError(ServiceError):
    """An error a model server (vLLM) answered with, in OpenAI's shape and with a status the
    API may use."""

    def __init__(self, status_code: int, message: str, param: str | None, code: str | None):
        super().__init__(message, param=param, code=code)
        self.status_code = status_code
        self.type = "invalid_request_error" if status_code < 500 else "server_error"


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def not_found(kind: str, object_id: str, param: str | None = None) -> NotFound:
    """The one message for a missing id, also used for another project's ids."""
    return NotFound(f"No such {kind}: {object_id}", param=param, code=f"{kind}_not_found")


def _field_name(loc: Sequence[Any], body: Any = None) -> str | None:
    """`("body", "method", "type")` -> `"method.type"`; list indexes become `[i]`. With the
    request's `body`, a tagged union's member that pydantic names by its tag (a grader's
    `type`: `grader.string_check.operation`) is left out, as OpenAI names the field
    (`grader.operation`)."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    name = ""
    node = body
    for p in parts:
        if isinstance(node, dict) and p not in node and node.get("type") == p:
            continue  # the tag, not a field of the object
        name += f"[{p}]" if isinstance(p, int) else (f".{p}" if name else str(p))
        node = _child(node, p)
    return name or None


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        code: str | None = "unknown_url"
    elif exc.status_code == 405:
        message = f"Method {request.method} not allowed for {request.url.path}."
        code = "method_not_allowed"
        headers["Allow"] = ", ".join(_allowed_methods(request))
    else:
        message, code = str(exc.detail), None
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        error_body(message, type_, None, code), status_code=exc.status_code, headers=headers
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at this path (Starlette's 405 names only the
    first route that matched the path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        message = "We could not parse the JSON body of your request: it is not valid JSON."
        body = error_body(message, "invalid_request_error", None, "invalid_json")
        return JSONResponse(body, status_code=400)
    loc = first.get("loc", ())
    param = _field_name(loc, exc.body if loc[:1] == ("body",) else None)
    if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        # A discriminated union (the trainer's messages): the field is the discriminator.
        tag = str(first.get("ctx", {}).get("discriminator", "")).strip("'")
        param = f"{param}.{tag}" if param else tag or None
    message, code = _described(str(first.get("type", "")), param, first.get("msg", "invalid"))
    return JSONResponse(error_body(message, "invalid_request_error", param, code), status_code=400)


def _described(kind: str, param: str | None, reason: str) -> tuple[str, str]:
    """(message, code) of one pydantic error, in OpenAI's words: a missing field is
    `missing_required_parameter`, an unknown one `unknown_parameter`, a value of the wrong
    JSON type `invalid_type`, anything else `invalid_value`."""
    if param is None:
        return f"Invalid request: {reason}.", "invalid_value"
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", "missing_required_parameter"
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}", "unknown_parameter"
    if kind.endswith(("_type", "_parsing")) or kind in ("model_attributes_type", "dict_type"):
        return f"Invalid type for '{param}': {reason}.", "invalid_type"
    return f"Invalid value for '{param}': {reason}.", "invalid_value"


async def _cursor_not_found(request: Request, exc: Exception) -> JSONResponse:
    error = InvalidRequest(f"No object with id '{exc.args[0]}' to page after.", param="after")
    return JSONResponse(error.body(), status_code=error.status_code)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(
            "The server had an error while processing your request.", "server_error", None, None
        ),
        status_code=500,
        # Rendered outside the request-id middleware: the header is added here.
        headers=_request_id_header(request),
    )


def _request_id_header(request: Request) -> dict[str, str] | None:
    request_id = getattr(request.state, "request_id", None)
    return {"x-request-id": request_id} if request_id else None


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(CursorNotFound, _cursor_not_found)
    app.add_exception_handler(Exception, _unexpected_error)
