"""The HTTP core shared by every resource: options, authentication, retries, errors.

`SyncAPI` and `AsyncAPI` each wrap one httpx client. A request is retried (see `_retry`)
until `max_retries` is spent; an error status becomes the matching exception of `errors`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from ._retry import retry_delay, should_retry
from .errors import APIConnectionError, APITimeoutError, status_error

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2

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


def _error_body(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text


def _rewind(files: Mapping[str, Any] | None) -> None:
    """Seek uploaded file objects back to the start, so a retry sends the whole body."""
    for value in (files or {}).values():
        handle = value[1] if isinstance(value, tuple) else value
        if hasattr(handle, "seek"):
            handle.seek(0)


def _transport_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError()
    return APIConnectionError(f"Connection error: {exc}")


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


class SyncAPI:
    """Synchronous requests with retries; owns (or borrows) an `httpx.Client`."""

    def __init__(self, options: Options, http_client: httpx.Client | None = None) -> None:
        self.options = options
        self._owns_client = http_client is None
        self._http = http_client or httpx.Client(timeout=options.timeout)

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: object | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request, retrying what may be retried; raise the API's error otherwise."""
        url = self.options.base_url + path.lstrip("/")
        retries = self.options.max_retries
        attempt = 0
        while True:
            _rewind(files)
            request = self._http.build_request(
                method,
                url,
                params=_query(params),
                json=json,
                files=files,
                data=data,
                headers=self.options.headers,
                timeout=self.options.timeout,
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                error = _transport_error(exc)
                if attempt < retries:
                    time.sleep(retry_delay(attempt))
                    attempt += 1
                    continue
                raise error from exc
            if not response.is_error:
                return response
            if attempt < retries and should_retry(response):
                response.close()
                time.sleep(retry_delay(attempt, response.headers))
                attempt += 1
                continue
            response.read()
            raise status_error(response, _error_body(response))

    def get(self, path: str, cast_to: type[M], params: Mapping[str, Any] | None = None) -> M:
        return cast_to.model_validate(self.request("GET", path, params=params).json())

    def post(self, path: str, cast_to: type[M], json: object | None = None) -> M:
        return cast_to.model_validate(self.request("POST", path, json=json).json())

    def delete(self, path: str, cast_to: type[M]) -> M:
        return cast_to.model_validate(self.request("DELETE", path).json())


class AsyncAPI:
    """Asynchronous requests with retries; owns (or borrows) an `httpx.AsyncClient`."""

    def __init__(self, options: Options, http_client: httpx.AsyncClient | None = None) -> None:
        self.options = options
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=options.timeout)

    async def close(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: object | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request, retrying what may be retried; raise the API's error otherwise."""
        url = self.options.base_url + path.lstrip("/")
        retries = self.options.max_retries
        attempt = 0
        while True:
            _rewind(files)
            request = self._http.build_request(
                method,
                url,
                params=_query(params),
                json=json,
                files=files,
                data=data,
                headers=self.options.headers,
                timeout=self.options.timeout,
            )
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                error = _transport_error(exc)
                if attempt < retries:
                    await asyncio.sleep(retry_delay(attempt))
                    attempt += 1
                    continue
                raise error from exc
            if not response.is_error:
                return response
            if attempt < retries and should_retry(response):
                await response.aclose()
                await asyncio.sleep(retry_delay(attempt, response.headers))
                attempt += 1
                continue
            await response.aread()
            raise status_error(response, _error_body(response))

    async def get(self, path: str, cast_to: type[M], params: Mapping[str, Any] | None = None) -> M:
        response = await self.request("GET", path, params=params)
        return cast_to.model_validate(response.json())

    async def post(self, path: str, cast_to: type[M], json: object | None = None) -> M:
        response = await self.request("POST", path, json=json)
        return cast_to.model_validate(response.json())

    async def delete(self, path: str, cast_to: type[M]) -> M:
        response = await self.request("DELETE", path)
        return cast_to.model_validate(response.json())
