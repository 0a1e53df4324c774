"""`client.chat.completions`: chat completions, whole or streamed as typed chunks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

from .._core import Call, parsed
from .._http import AsyncAPI, SyncAPI
from .._resource import Resource
from ..streaming import AsyncStream, Stream
from ..types.chat import ChatCompletion, ChatCompletionChunk

Message = Mapping[str, Any]


def _call(
    model: str, messages: Iterable[Message], stream: bool, params: Mapping[str, Any]
) -> Call[ChatCompletion]:
    """The request of both clients' `create` (its answer read whole unless streamed)."""
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    body.update({k: v for k, v in params.items() if v is not None})
    if stream:
        body["stream"] = True
    return Call("POST", "chat/completions", parsed(ChatCompletion), json=body)


class Completions(Resource[SyncAPI]):
    """The sync `create`: its overloads type a streamed answer as a `Stream`."""

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
        call = _call(model, messages, stream, params)
        if not stream:
            return self._api.run(call)
        return Stream(self._api.send(call, stream=True), ChatCompletionChunk)


class AsyncCompletions(Resource[AsyncAPI]):
    """The async `create`: its overloads type a streamed answer as an `AsyncStream`."""

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
        call = _call(model, messages, stream, params)
        if not stream:
            return await self._api.run(call)
        return AsyncStream(await self._api.send(call, stream=True), ChatCompletionChunk)


class Chat:
    def __init__(self, api: SyncAPI) -> None:
        self.completions = Completions(api)


class AsyncChat:
    def __init__(self, api: AsyncAPI) -> None:
        self.completions = AsyncCompletions(api)
