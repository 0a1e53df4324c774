"""The SDK's core without I/O, shared by the sync and the async client.

`Options` are what a client was built with. A `Call` describes one request and how its answer
is read. An `Exchange` holds one call's tries: it builds each try's `httpx.Request` and, from
what came back (a response or a transport error), says what to do: return the response,
wait and send again (see `_retry`), or raise the matching exception of `errors`. The
transports in `_http` only send, read, sleep and await.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel

from ._retry import retry_delay, should_retry
from .errors import APIConnectionError, APIStatusError, APITimeoutError, status_error

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Options:
    """Everything a client needs to reach the API, resolved once in its constructor."""

    base_url: str
    api_key: str | None
    timeout: float | httpx.Timeout
    max_retries: int
    headers: dict[str, str] = field(default_factory=dict)


def resolve_options(
    base_url: str | None,
    api_key: str | None,
    timeout: float | httpx.Timeout | None,
    max_retries: int | None,
    default_headers: Mapping[str, str] | None,
) -> Options:
    """Arguments first, then `WHETSTONE_BASE_URL` / `WHETSTONE_API_KEY`, then defaults.

    A base URL without a `/v1` path gets one, so `http://host:8000` and `http://host:8000/v1`
    mean the same.
    """
    url = base_url or os.environ.get("WHETSTONE_BASE_URL") or DEFAULT_BASE_URL
    url = url.rstrip("/")
    if not url.endswith("/v1"):
        url += "/v1"
    key = api_key if api_key is not None else os.environ.get("WHETSTONE_API_KEY")
    headers = {"Accept": "application/json", "User-Agent": "whetstone-python"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    headers.update(default_headers or {})
    return Options(
        base_url=url + "/",
        api_key=key or None,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        headers=headers,
    )


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API (`path` under the base URL) and `read`, which turns its
    successful response into what the caller gets."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: object | None = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None


def parsed(model: type[M]) -> Callable[[httpx.Response], M]:
    """A reader of a JSON body into `model`."""
    return lambda response: model.model_validate(response.json())


def content(response: httpx.Response) -> bytes:
    """A reader of the body's bytes, verbatim."""
    return response.content


@dataclass(frozen=True)
class Retry:
    """Close the response, wait `seconds`, send the call again."""

    seconds: float


Verdict = Retry | Literal["return", "raise"]
"""What to do with a response: retry it, return it, or read its body and raise `error`."""


class Exchange:
    """The tries of one call: what each sends, and what follows from what came back."""

    def __init__(self, options: Options, call: Call[Any]) -> None:
        self._options = options
        self._call = call
        self._retries = 0

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The next try's request (uploaded files rewound, so a retry sends them whole)."""
        call = self._call
        _rewind(call.files)
        return http.build_request(
            call.method,
            self._options.base_url + call.path.lstrip("/"),
            params=_query(call.params),
            json=call.json,
            files=call.files,
            data=call.data,
            headers=self._options.headers,
            timeout=self._options.timeout,
        )

    def after_transport_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before the next try; the SDK's error once no try is left."""
        if self._retries >= self._options.max_retries:
            raise _connection_error(exc) from exc
        return self._retry(retry_delay(self._retries)).seconds

    def judge(self, response: httpx.Response) -> Verdict:
        if not response.is_error:
            return "return"
        if self._retries < self._options.max_retries and should_retry(response):
            return self._retry(retry_delay(self._retries, response.headers))
        return "raise"

    @staticmethod
    def error(response: httpx.Response) -> APIStatusError:
        """The exception for an error response whose body has been read."""
        try:
            body: object = response.json()
        except ValueError:
            body = response.text
        return status_error(response, body)

    def _retry(self, seconds: float) -> Retry:
        self._retries += 1
        return Retry(seconds)


def _rewind(files: Mapping[str, Any] | None) -> None:
    for value in (files or {}).values():
        handle = value[1] if isinstance(value, tuple) else value
        if hasattr(handle, "seek"):
            handle.seek(0)


def _connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError()
    return APIConnectionError(f"Connection error: {exc}")


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
