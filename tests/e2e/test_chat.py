"""Chat completions through the Whetstone server and the official `openai` package, answered
by the session's real vLLM (CPU) with LoRA adapters resolved from the object store.

The tuned models are LoRAs trained here with peft on question/answer pairs the base model
cannot know, recorded as the scheduler records a succeeded job (checkpoint, final model,
pointers in the store).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from service.chat.serving_client import KEEP_ALIVE_SECONDS
from tests.e2e.conftest import Server
from tests.serving_stack import (
    ANSWERS_A,
    ANSWERS_B,
    QUESTIONS,
    TunedModel,
    create_job,
    start_chat_server,
    succeed_job,
    train_qa_adapter,
)
from tests.vllm_fixture import VllmServer, make_lora_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BASE = "whetstone-tiny"


@pytest.fixture(scope="module")
def chat_server(
    vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with start_chat_server(vllm_server, tmp_path_factory.mktemp("chat-server")) as server:
        yield server


@pytest.fixture(scope="module")
def tuned(
    chat_server: Server, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, TunedModel]:
    """Two models from two jobs of project `alpha`: one learnt `ANSWERS_A`, one `ANSWERS_B`."""
    tmp = tmp_path_factory.mktemp("tuned")
    client = chat_server.client()
    models = {}
    for label, answers in (("a", ANSWERS_A), ("b", ANSWERS_B)):
        job_id = create_job(client, answers, tmp, suffix=f"qa-{label}")
        adapter = train_qa_adapter(vllm_server.base_model_dir, answers, tmp / label)
        models[label] = succeed_job(chat_server, vllm_server, job_id, adapter, step=80)
    return models


def ask(client: openai.OpenAI, model: str, question: str, max_tokens: int = 24) -> str:
    response = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=max_tokens,
        temperature=0,
    )
    assert response.model == model
    return response.choices[0].message.content or ""


def test_base_model_answers(chat_server: Server) -> None:
    response = chat_server.client().chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": QUESTIONS[0]}], max_tokens=8
    )
    assert response.model == BASE
    assert response.object == "chat.completion"
    assert response.usage is not None and response.usage.completion_tokens > 0
    assert isinstance(response.choices[0].message.content, str)


def test_tuned_model_and_its_checkpoint_give_the_trained_answers(
    chat_server: Server, tuned: dict[str, TunedModel]
) -> None:
    client = chat_server.client()
    a = tuned["a"]
    for question, answer in zip(QUESTIONS, ANSWERS_A, strict=True):
        assert ask(client, a.name, question) == answer
        assert ask(client, a.checkpoint, question) == answer
        assert ask(client, BASE, question) != answer


def test_streaming_and_non_streaming_agree_at_temperature_zero(
    chat_server: Server, tuned: dict[str, TunedModel]
) -> None:
    client = chat_server.client()
    for model in (BASE, tuned["a"].name):
        messages = [{"role": "user", "content": QUESTIONS[1]}]
        whole = client.chat.completions.create(
            model=model, messages=messages, max_tokens=24, temperature=0
        )
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=24,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert len(chunks) > 2 and all(c.model == model for c in chunks)
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == whole.choices[0].message.content
        assert chunks[-1].usage is not None and whole.usage is not None
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_two_tuned_models_answer_differently_interleaved(
    chat_server: Server, tuned: dict[str, TunedModel]
) -> None:
    client = chat_server.client()
    for _ in range(2):
        for i, question in enumerate(QUESTIONS):
            assert ask(client, tuned["a"].name, question) == ANSWERS_A[i]
            assert ask(client, tuned["b"].name, question) == ANSWERS_B[i]


def test_another_projects_model_and_unknown_models_are_404(
    chat_server: Server, tuned: dict[str, TunedModel]
) -> None:
    other = chat_server.client(chat_server.key_b)
    for model in (tuned["a"].name, tuned["a"].checkpoint, "ft:whetstone-tiny:alpha::nosuch00"):
        with pytest.raises(openai.NotFoundError) as caught:
            other.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        assert caught.value.code == "model_not_found"
        assert caught.value.body["param"] == "model"  # type: ignore[index]
    assert ask(other, BASE, "hi", max_tokens=4) is not None  # base models are everyone's


def test_deleted_model_is_404_and_unloaded_from_vllm(
    chat_server: Server, vllm_server: VllmServer, tmp_path: Path
) -> None:
    client = chat_server.client()
    job_id = create_job(client, ANSWERS_A, tmp_path, suffix="gone")
    adapter = make_lora_adapter(vllm_server.base_model_dir, tmp_path / "adapter", seed=901)
    model = succeed_job(chat_server, vllm_server, job_id, adapter, step=10)
    ask(client, model.name, "hi", max_tokens=4)
    assert model.name in _vllm_models(vllm_server)

    assert client.models.delete(model.name).deleted is True
    with pytest.raises(openai.NotFoundError):
        ask(client, model.name, "hi", max_tokens=4)
    assert model.name not in _vllm_models(vllm_server)
    with pytest.raises(openai.NotFoundError):  # its checkpoint model went with it
        ask(client, model.checkpoint, "hi", max_tokens=4)
    assert model.checkpoint not in {m.id for m in client.models.list()}


def test_invalid_requests_answer_400_in_openai_shape(chat_server: Server) -> None:
    client = chat_server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=BASE, messages=[], max_tokens=4)
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=BASE, messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
        )
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]


LONG = {
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 450,
    "n": 8,
    "extra_body": {"ignore_eos": True},
}


def _long_request_seconds(client: openai.OpenAI) -> float:
    """How long `LONG` takes here and now. vLLM's CPU engine can starve its own HTTP loop, so
    that chunks and metrics arrive late: the tests below act on time, not on what arrived."""
    started = time.monotonic()
    client.chat.completions.create(model=BASE, **LONG)  # type: ignore[call-overload]
    return time.monotonic() - started


def test_client_disconnect_closes_the_request_to_vllm(
    chat_server: Server, vllm_server: VllmServer
) -> None:
    """A caller that goes away mid-stream makes the server close its connection to vLLM (which
    is how vLLM learns to abort), instead of reading the answer to its end and keeping the
    connection for the next request.

    Observed on the server's own sockets, since vLLM's CPU engine can starve vLLM's HTTP loop
    here (its counters may tell an abort only after the whole answer was generated)."""
    client = chat_server.client()
    took = _long_request_seconds(client)
    port = str(vllm_server.supervisor.socket_path(BASE))
    # Idle connections that earlier requests left in the pool go after KEEP_ALIVE_SECONDS.
    before = _connections(chat_server.proc.pid, port)
    _wait_closed(chat_server.proc.pid, port, before, KEEP_ALIVE_SECONDS * 2 + 2, "idle connections")
    # Eight times LONG (n=64, 8 at a time): the answer is far from done when the headers are back.
    stream = client.chat.completions.create(model=BASE, stream=True, **{**LONG, "n": 64})  # type: ignore[call-overload]
    streams = _connections(chat_server.proc.pid, port)
    assert len(streams) == 1, f"expected the stream's connection alone, found {streams}"
    stream.close()
    # Read to its end instead, the connection would live on for most of the answer (about 8
    # times `took`), then idle in the pool until idle connections are dropped
    # (KEEP_ALIVE_SECONDS): the deadline stays far short of that.
    _wait_closed(chat_server.proc.pid, port, streams, took * 2 + KEEP_ALIVE_SECONDS, "the stream")


def test_vllm_killed_mid_request_gives_a_clear_error_then_recovers(
    chat_server: Server, vllm_server: VllmServer, tuned: dict[str, TunedModel]
) -> None:
    """Runs last in this module: it restarts the session's vLLM."""
    client = chat_server.client()
    supervisor = vllm_server.supervisor
    old = supervisor.status(BASE)
    assert old.pid is not None
    # 256 sequences of 450 tokens each (8 at a time): many seconds of work even when the small
    # model is fast (with 64, an idle machine sometimes finished the stream before the kill).
    longer = {**LONG, "n": 256}
    errors: dict[str, openai.APIError] = {}

    def stream() -> None:
        try:
            for _ in client.chat.completions.create(model=BASE, stream=True, **longer):  # type: ignore[call-overload]
                pass
        except openai.APIError as e:
            errors["stream"] = e

    def whole() -> None:
        try:
            client.chat.completions.create(model=tuned["a"].name, **longer)  # type: ignore[call-overload]
        except openai.APIError as e:
            errors["whole"] = e

    threads = [threading.Thread(target=stream), threading.Thread(target=whole)]
    # The kill comes from another process: reading a fast stream, this one may hold on to
    # its interpreter lock far longer than the delay.
    # 1.5 s: well inside both answers (each many seconds); one that has not reached vLLM
    # yet is a 503, which the assertions below accept.
    killer = subprocess.Popen(["sh", "-c", f"sleep 1.5 && kill -9 {old.pid}"])
    for t in threads:
        t.start()
    try:
        assert killer.wait(60) == 0  # both in the middle of their generation when it kills
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)  # an error, not a hang
        # Each caller got a clear error in OpenAI's shape: the stream an error event (or a
        # 502 when nothing had been sent yet), the whole answer a 502; a request that had
        # not reached vLLM before the kill, a 503.
        assert set(errors) == {"stream", "whole"}, str(errors)
        messages = [errors["stream"].message, errors["whole"].message]
        assert any("stopped while answering" in m for m in messages), messages
        assert all("stopped while answering" in m or "not ready" in m for m in messages)
        assert isinstance(errors["whole"], openai.APIStatusError)
        assert errors["whole"].status_code in (502, 503)

        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as down:
            ask(client, BASE, "hi", max_tokens=4)
        assert down.value.status_code == 503 and time.monotonic() - started < 5
        assert down.value.code == "model_not_ready"
    finally:
        deadline = time.monotonic() + 60
        while supervisor.status(BASE).starts == old.starts and time.monotonic() < deadline:
            time.sleep(0.1)  # the supervisor notices the death, then starts a new vLLM
        supervisor.wait_ready(BASE, timeout=300)
    assert supervisor.status(BASE).starts == old.starts + 1
    assert ask(client, tuned["a"].name, QUESTIONS[0]) == ANSWERS_A[0]


def _wait_closed(pid: int, socket_path: str, inodes: set[str], seconds: float, what: str) -> None:
    """Wait until none of `inodes` is among `pid`'s connections to vLLM, failing if one is
    seen open `seconds` from now. A look counts from when it began: on a loaded machine one
    was seen to take seconds."""
    deadline = time.monotonic() + seconds
    while True:
        looked_at = time.monotonic()
        still_open = inodes & _connections(pid, socket_path)
        if not still_open:
            return
        assert looked_at < deadline, f"{what}: the server kept {still_open} open to vLLM"
        time.sleep(0.05)


def _connections(pid: int, socket_path: str) -> set[str]:
    """Socket inodes of process `pid`'s connections to vLLM's Unix socket at `socket_path`
    (`ss -x`: vLLM's accepted sockets bear the path, and name their peer's inode)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    if shutil.which("ss") is None:
        pytest.skip("needs `ss` (iproute2) to see Unix socket peers")
    listing = subprocess.run(["ss", "-xH"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "ESTAB" and fields[4] == socket_path:
            if fields[7] in inodes:
                found.add(fields[7])
    return found


def _vllm_models(vllm: VllmServer) -> set[str]:
    with vllm.http() as http:
        answer = http.get("/v1/models")
    return {m["id"] for m in answer.json()["data"]}
