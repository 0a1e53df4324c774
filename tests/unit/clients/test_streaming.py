"""Chat completions, whole and streamed (SSE), against the in-process stand-in (`standin.py`)."""

from __future__ import annotations

import asyncio
import json

import pytest

from clients.sdk import APIError, AsyncWhetstone, Whetstone
from clients.sdk.streaming import SSEDecoder

from .standin import Reply, StandIn


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def test_stream_yields_typed_chunks_until_done(standin: StandIn) -> None:
    chunks = [b": keep-alive\n\n", _chunk("Velo"), _chunk("ria"), _chunk(None, "stop"),
              b"data: [DONE]\n\n", _chunk("never")]  # fmt: skip
    standin.script("POST", "/chat/completions", Reply(200, chunks=chunks))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=8
        )
        got = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in got) == "Veloria"
    assert got[-1].choices[0].finish_reason == "stop"
    body = standin.requests[0].json()
    assert body["stream"] is True and body["max_tokens"] == 8


def test_stream_split_across_writes_is_reassembled(standin: StandIn) -> None:
    whole = _chunk("ab") + _chunk("cd")
    parts = [whole[i : i + 7] for i in range(0, len(whole), 7)] + [b"data: [DONE]\n\n"]
    standin.script("POST", "/chat/completions", Reply(200, chunks=parts))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
        assert [c.choices[0].delta.content for c in stream] == ["ab", "cd"]


def test_error_in_stream_raises_with_its_fields(standin: StandIn) -> None:
    error = {"error": {"message": "model unloaded", "type": "server_error", "param": None,
                       "code": "model_unavailable"}}  # fmt: skip
    chunks = [_chunk("a"), f"data: {json.dumps(error)}\n\n".encode()]
    standin.script("POST", "/chat/completions", Reply(200, chunks=chunks))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
        with pytest.raises(APIError, match="model unloaded") as info:
            list(stream)
    assert info.value.code == "model_unavailable"


def test_non_streaming_returns_a_chat_completion(standin: StandIn) -> None:
    body = {"id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Veloria"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip
    standin.script("POST", "/chat/completions", Reply(200, body))
    with Whetstone(base_url=standin.url, api_key="k", http_client=standin.http()) as client:
        done = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "?"}]
        )
    assert done.choices[0].message.content == "Veloria"
    assert done.usage is not None and done.usage.total_tokens == 5
    assert "stream" not in standin.requests[0].json()


def test_async_stream(standin: StandIn) -> None:
    chunks = [_chunk("x"), _chunk("y"), b"data: [DONE]\n\n"]
    standin.script("POST", "/chat/completions", Reply(200, chunks=chunks))

    async def go() -> list[str | None]:
        async with AsyncWhetstone(
            base_url=standin.url, api_key="k", http_client=standin.async_http()
        ) as client:
            stream = await client.chat.completions.create(model="m", messages=[], stream=True)
            return [c.choices[0].delta.content async for c in stream]

    assert asyncio.run(go()) == ["x", "y"]


def test_decoder_joins_multiline_data_and_ignores_comments() -> None:
    decoder = SSEDecoder()
    events = [decoder.feed(line) for line in [": hi", "event: e", "data: a", "data:b", ""]]
    last = events[-1]
    assert events[:-1] == [None] * 4
    assert last is not None and (last.event, last.data) == ("e", "a\nb")
