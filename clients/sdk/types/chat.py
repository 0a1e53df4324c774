"""Chat completion objects and streamed chunks (`/v1/chat/completions`)."""

from __future__ import annotations

from typing import Any, Literal

from ._base import APIObject


class CompletionUsage(APIObject):
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0


class FunctionCall(APIObject):
    name: str | None = None
    arguments: str | None = None


class ToolCall(APIObject):
    id: str | None = None
    type: str | None = None
    index: int | None = None
    function: FunctionCall | None = None


class ChatCompletionMessage(APIObject):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(APIObject):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(APIObject):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class ChoiceDelta(APIObject):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChunkChoice(APIObject):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(APIObject):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
