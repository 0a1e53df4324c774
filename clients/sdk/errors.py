"""Exceptions: one class per HTTP error status, as the `openai` package names them.

Every API error carries OpenAI's error fields (`message`, `type`, `param`, `code`), the
status code and the response.
"""

from __future__ import annotations

from typing import Any

import httpx

from .types.fine_tuning import FineTuningJob

__all__ = [
    "WhetstoneError",
    "APIError",
    "APIStatusError",
    "APIConnectionError",
    "APITimeoutError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "JobFailedError",
    "JobCancelledError",
    "WaitTimeoutError",
]


class WhetstoneError(Exception):
    """Root of every exception the SDK raises."""


class APIError(WhetstoneError):
    """An error answered by (or on the way to) the API."""

    message: str
    type: str | None
    param: str | None
    code: str | None
    body: object | None

    def __init__(
        self,
        message: str,
        *,
        body: object | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.type = type
        self.param = param
        self.code = code


class APIStatusError(APIError):
    """The API answered with a 4xx or 5xx status."""

    def __init__(self, message: str, *, response: httpx.Response, body: object | None) -> None:
        error = _error_fields(body)
        super().__init__(
            message,
            body=body,
            type=_str_or_none(error.get("type")),
            param=_str_or_none(error.get("param")),
            code=_str_or_none(error.get("code")),
        )
        self.response = response
        self.status_code = response.status_code

    def __str__(self) -> str:
        return f"Error code: {self.status_code} - {self.message}"


class APIConnectionError(APIError):
    """The request never got an answer: refused connection, reset, DNS failure."""

    def __init__(self, message: str = "Connection error.") -> None:
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The request timed out."""

    def __init__(self) -> None:
        super().__init__("Request timed out.")


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: no such object (or not one of this project's)."""


class ConflictError(APIStatusError):
    """409."""


class UnprocessableEntityError(APIStatusError):
    """422."""


class RateLimitError(APIStatusError):
    """429."""


class InternalServerError(APIStatusError):
    """5xx."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(response: httpx.Response, body: object | None) -> APIStatusError:
    """The exception for an error response, its message taken from OpenAI's error shape."""
    error = _error_fields(body)
    message = _str_or_none(error.get("message"))
    if message is None:
        message = body if isinstance(body, str) and body else response.reason_phrase
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(str(message), response=response, body=body)


class JobError(WhetstoneError):
    """A fine-tuning job ended without a model."""

    def __init__(self, message: str, job: FineTuningJob) -> None:
        super().__init__(message)
        self.job = job


class JobFailedError(JobError):
    """The job failed; `code`, `message` and `param` are the job's own `error` fields."""

    def __init__(self, job: FineTuningJob) -> None:
        error = job.error
        self.code: str | None = error.code if error else None
        self.param: str | None = error.param if error else None
        self.message: str = error.message if error else "the job failed"
        detail = f"{self.message} (code: {self.code}" + (
            f", param: {self.param})" if self.param else ")"
        )
        super().__init__(f"fine-tuning job {job.id} failed: {detail}", job)


class JobCancelledError(JobError):
    """The job was cancelled before it produced a model."""

    def __init__(self, job: FineTuningJob) -> None:
        super().__init__(f"fine-tuning job {job.id} was cancelled", job)


class WaitTimeoutError(WhetstoneError, TimeoutError):
    """`jobs.wait` gave up before the job finished."""

    def __init__(self, job: FineTuningJob, timeout: float) -> None:
        super().__init__(f"fine-tuning job {job.id} still {job.status} after {timeout:g}s")
        self.job = job


def _error_fields(body: object | None) -> dict[str, Any]:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return error
    return {}


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
