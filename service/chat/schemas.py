"""Chat completions as OpenAI's spec has them, for the API's schema.

The service does not parse requests or answers with these: it forwards the body to vLLM and
relays vLLM's answer (see `service.chat.serving_client`). They document the contract; every
field OpenAI and vLLM accept is passed through, listed here or not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class CreateChatCompletionRequest(BaseModel):
    """Flat on purpose (messages are `{"role", "content", ...}` objects): its schema is
    inlined in the operation, since no parameter of the route is parsed with it."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]]
    stream: bool | None = False
    stream_options: dict[str, bool] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    user: str | None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"]
    content: str | None


class ChatCompletionChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int
    message: ChatCompletionMessage
    finish_reason: str | None


class ChatCompletion(BaseModel):
    """The answer; with `stream: true`, `chat.completion.chunk` events instead (SSE)."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage | None = None
