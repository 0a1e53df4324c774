"""The playground in headless chromium against a real vLLM (the session's `vllm_server`):
one streamed chat with a tuned model, picked from its job's "chat with this"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import log_in, new_page
from tests.e2e.conftest import Server
from tests.serving_stack import TunedModel, create_job, start_chat_server, succeed_job
from tests.vllm_fixture import VllmServer, make_lora_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def chat_server(
    vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with start_chat_server(vllm_server, tmp_path_factory.mktemp("ui-chat")) as server:
        yield server


@pytest.fixture(scope="module")
def tuned(
    chat_server: Server, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> TunedModel:
    tmp = tmp_path_factory.mktemp("ui-tuned")
    job_id = create_job(chat_server.client(), ["Yes.", "No."], tmp, suffix="ui")
    adapter = make_lora_adapter(vllm_server.base_model_dir, tmp / "adapter", seed=7)
    return succeed_job(chat_server, vllm_server, job_id, adapter, step=10)


def test_chat_with_the_tuned_model_streams_its_answer(
    browser: Any, chat_server: Server, tuned: TunedModel
) -> None:
    page = new_page(browser)
    try:
        log_in(page, chat_server.url, chat_server.key_a, f"ui/#/jobs/{tuned.job_id}")
        page.click("#job-summary a.chat-link")  # the fine-tuned model's "chat with this"
        page.wait_for_selector(f"#model-a option[value='{tuned.name}']:checked", state="attached")
        page.uncheck("#compare")  # one chat: the tuned model alone
        page.fill("#system-prompt", "You answer briefly.")
        page.fill("#max-tokens", "12")
        page.fill("#prompt", "What is the capital of Veloria?")
        with page.expect_request("**/v1/chat/completions") as request:
            page.click("#send")
        body = json.loads(request.value.post_data or "{}")
        assert body["stream"] is True and body["model"] == tuned.name
        assert body["temperature"] == 0
        assert body["messages"][0] == {"role": "system", "content": "You answer briefly."}
        assert "text/event-stream" in request.value.headers.get("accept", "")
        done = page.wait_for_selector("#transcript-a .msg.assistant[data-done]", timeout=90_000)
        assert done.get_attribute("data-done") in ("stop", "length"), done.inner_text()
        assert page.inner_text("#transcript-a .msg.assistant .answer").strip() != ""
    finally:
        page.context.close()
