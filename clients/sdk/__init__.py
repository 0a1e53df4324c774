"""The Whetstone Python SDK: sync and async clients for Whetstone's OpenAI-shaped API.

from clients.sdk import Whetstone

with Whetstone() as client:   # WHETSTONE_BASE_URL / WHETSTONE_API_KEY
    for job in client.fine_tuning.jobs.list():
        print(job.id, job.status)
"""

from __future__ import annotations

from .client import AsyncWhetstone, Whetstone
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    JobCancelledError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    WaitTimeoutError,
    WhetstoneError,
)
from .pagination import AsyncPage, AsyncPaginator, SyncPage
from .streaming import AsyncStream, Stream

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncPage",
    "AsyncPaginator",
    "AsyncStream",
    "AsyncWhetstone",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "JobCancelledError",
    "JobFailedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Stream",
    "SyncPage",
    "UnprocessableEntityError",
    "WaitTimeoutError",
    "Whetstone",
    "WhetstoneError",
]
