"""`client.chat.completions`: chat completions, whole or streamed as typed chunks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

from .._http import AsyncAPI, SyncAPI
from ..streaming import AsyncStream, Stream
from ..types.chat import ChatCompletion, ChatCompletionChunk

Message = Mapping[str, Any]


def _body(
    model: str, messages: Iterable[Message], stream: bool, params: Mapping[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    body.update({k: v for k, v in params.items() if v is not None})
    if stream:
        body["stream"] = True
    return body


class Completions:
    def __init__(self, api: SyncAPI) -> None:
        self._api = api

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self, *, model: str, messages: Iterable[Message], stream: Literal[True], **params: Any
    ) -> Stream[ChatCompletionChunk]: ...

    @overload
    def create(
        self, *, model: str, messages: Iterable[Message], stream: bool, **params: Any
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...

    def create(
        self, *, model: str, messages: Iterable[Message], stream: bool = False, **params: Any
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """A chat completion; with `stream=True`, an iterator of `ChatCompletionChunk`.

        Other request fields of the API (`max_tokens`, `temperature`, `stop`, `seed`, ...)
        pass through as keyword arguments.
        """
        body = _body(model, messages, stream, params)
        if not stream:
            return self._api.post("chat/completions", ChatCompletion, json=body)
        response = self._api.request("POST", "chat/completions", json=body, stream=True)
        return Stream(response, ChatCompletionChunk)


class AsyncCompletions:
    def __init__(self, api: AsyncAPI) -> None:
        self._api = api

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self, *, model: str, messages: Iterable[Message], stream: Literal[True], **params: Any
    ) -> AsyncStream[ChatCompletionChunk]: ...

    @overload
    async def create(
        self, *, model: str, messages: Iterable[Message], stream: bool, **params: Any
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]: ...

    async def create(
        self, *, model: str, messages: Iterable[Message], stream: bool = False, **params: Any
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """A chat completion; with `stream=True`, an async iterator of `ChatCompletionChunk`."""
        body = _body(model, messages, stream, params)
        if not stream:
            return await self._api.post("chat/completions", ChatCompletion, json=body)
        response = await self._api.request("POST", "chat/completions", json=body, stream=True)
        return AsyncStream(response, ChatCompletionChunk)


class Chat:
    def __init__(self, api: SyncAPI) -> None:
        self.completions = Completions(api)


class AsyncChat:
    def __init__(self, api: AsyncAPI) -> None:
        self.completions = AsyncCompletions(api)
