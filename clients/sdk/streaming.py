"""Server-sent events: chat completion chunks parsed as they arrive.

The stream ends at `data: [DONE]` (or when the server closes it); an `error` object in the
stream raises `APIError` with its fields.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import httpx
from pydantic import BaseModel

from .errors import APIError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ServerSentEvent:
    event: str | None
    data: str
    id: str | None = None


class SSEDecoder:
    """Turns lines of an event stream into events (the WHATWG rules that matter here)."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its newline); return an event when a blank line ends one."""
        if not line:
            if not self._data and self._event is None:
                return None
            event = ServerSentEvent(self._event, "\n".join(self._data), self._id)
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None

    def flush(self) -> ServerSentEvent | None:
        """The last event when the stream ends without a blank line."""
        return self.feed("")


def _decode(event: ServerSentEvent, model: type[M]) -> M | None:
    """The chunk an event carries; None at `[DONE]`; raises on an error event."""
    if event.data.startswith("[DONE]"):
        return None
    try:
        payload = json.loads(event.data)
    except json.JSONDecodeError as exc:
        raise APIError(f"malformed event in stream: {event.data[:200]!r}") from exc
    error = payload.get("error") if isinstance(payload, dict) else None
    if event.event == "error" or isinstance(error, dict):
        fields = error if isinstance(error, dict) else {}
        raise APIError(
            str(fields.get("message") or "error in stream"),
            body=payload,
            type=fields.get("type"),
            param=fields.get("param"),
            code=None if fields.get("code") is None else str(fields.get("code")),
        )
    return model.model_validate(payload)


class Stream(Generic[M]):
    """Iterator of typed chunks over a streamed response; closes it when done."""

    def __init__(self, response: httpx.Response, model: type[M]) -> None:
        self.response = response
        self._model = model
        self._iterator = self._chunks()

    def _chunks(self) -> Iterator[M]:
        decoder = SSEDecoder()
        try:
            for line in self.response.iter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                chunk = _decode(event, self._model)
                if chunk is None:
                    return
                yield chunk
            last = decoder.flush()
            chunk = _decode(last, self._model) if last is not None else None
            if chunk is not None:
                yield chunk
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[M]:
        return self._iterator

    def __next__(self) -> M:
        return next(self._iterator)

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Stream[M]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(Generic[M]):
    """Async iterator of typed chunks over a streamed response; closes it when done."""

    def __init__(self, response: httpx.Response, model: type[M]) -> None:
        self.response = response
        self._model = model
        self._iterator = self._chunks()

    async def _chunks(self) -> AsyncIterator[M]:
        decoder = SSEDecoder()
        try:
            async for line in self.response.aiter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                chunk = _decode(event, self._model)
                if chunk is None:
                    return
                yield chunk
            last = decoder.flush()
            chunk = _decode(last, self._model) if last is not None else None
            if chunk is not None:
                yield chunk
        finally:
            await self.response.aclose()

    def __aiter__(self) -> AsyncIterator[M]:
        return self._iterator

    async def __anext__(self) -> M:
        return await self._iterator.__anext__()

    async def close(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream[M]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
