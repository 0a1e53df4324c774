"""The Whetstone SDK's chat completions against the real server and the session's real vLLM
(CPU): whole and streamed, sync and async, a tuned model and a foreign one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sdk import AsyncWhetstone, Whetstone
from clients.sdk.errors import NotFoundError
from tests.e2e.conftest import Server
from tests.serving_stack import TunedModel, create_job, start_chat_server, succeed_job
from tests.vllm_fixture import VllmServer, make_lora_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BASE = "whetstone-tiny"
MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def chat_server(
    vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with start_chat_server(vllm_server, tmp_path_factory.mktemp("sdk-chat")) as server:
        yield server


@pytest.fixture(scope="module")
def tuned(
    chat_server: Server, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> TunedModel:
    """A model of project `alpha` whose adapter has random weights (answers unlike the base)."""
    tmp = tmp_path_factory.mktemp("sdk-tuned")
    job_id = create_job(chat_server.client(), ["x", "y"], tmp, suffix="sdk")
    adapter = make_lora_adapter(vllm_server.base_model_dir, tmp / "adapter", seed=1201)
    return succeed_job(chat_server, vllm_server, job_id, adapter, step=5)


def sdk(server: Server, key: str | None = None) -> Whetstone:
    return Whetstone(base_url=server.base_url, api_key=key or server.key_a, max_retries=0)


@pytest.mark.parametrize("which", ["base", "tuned"])
def test_whole_and_streamed_agree(chat_server: Server, tuned: TunedModel, which: str) -> None:
    model = BASE if which == "base" else tuned.name
    with sdk(chat_server) as client:
        whole = client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=12, temperature=0
        )
        with client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=12, temperature=0, stream=True,
            stream_options={"include_usage": True},
        ) as stream:  # fmt: skip
            chunks = list(stream)
    assert whole.model == model and whole.usage is not None
    assert all(c.model == model for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_tuned_model_answers_unlike_the_base_and_is_private(
    chat_server: Server, tuned: TunedModel
) -> None:
    def answer(client: Whetstone, model: str) -> str | None:
        response = client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=12, temperature=0
        )
        return response.choices[0].message.content

    with sdk(chat_server) as client:
        assert answer(client, tuned.name) != answer(client, BASE)
        assert answer(client, tuned.checkpoint) == answer(client, tuned.name)  # same weights
    with sdk(chat_server, chat_server.key_b) as other, pytest.raises(NotFoundError) as caught:
        answer(other, tuned.name)
    assert caught.value.code == "model_not_found"


def test_async_client_streams(chat_server: Server, tuned: TunedModel, tmp_path: Path) -> None:
    async def run() -> tuple[str, str | None]:
        async with AsyncWhetstone(
            base_url=chat_server.base_url, api_key=chat_server.key_a, max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model=tuned.name, messages=MESSAGES, max_tokens=12, temperature=0, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            whole = await client.chat.completions.create(
                model=tuned.name, messages=MESSAGES, max_tokens=12, temperature=0
            )
            return "".join(parts), whole.choices[0].message.content

    streamed, whole = asyncio.run(run())
    assert streamed == whole
