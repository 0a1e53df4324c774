"""The supervisor brings back a vLLM killed in the middle of a request."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.vllm_fixture import VllmServer, make_lora_adapter, publish_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _stream_until_error(server: VllmServer, first_chunk: threading.Event) -> BaseException | None:
    body = {
        "model": server.base_model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 400,
        "n": 256,  # many seconds of work even for the small model: the kill lands mid-stream
        "ignore_eos": True,
        "stream": True,
    }
    try:
        with (
            server.http(timeout=30) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            for _ in response.iter_lines():
                first_chunk.set()
    except httpx.HTTPError as e:
        return e
    return None


def test_killed_vllm_fails_the_request_then_is_restarted(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    supervisor, base = vllm_server.supervisor, vllm_server.base_model
    name = "ft:whetstone-tiny:proj-a:restart:00000701"
    adapter = make_lora_adapter(vllm_server.base_model_dir, tmp_path / "adapter", seed=701)
    publish_adapter(vllm_server.store, adapter, name, job_id="ftjob-restart")
    before = (vllm_server.answer(base), vllm_server.answer(name))
    old = supervisor.status(base)
    assert old.pid is not None

    first_chunk, outcome = threading.Event(), []
    thread = threading.Thread(
        target=lambda: outcome.append(_stream_until_error(vllm_server, first_chunk))
    )
    thread.start()
    assert first_chunk.wait(60)
    os.kill(old.pid, signal.SIGKILL)
    thread.join(35)
    assert not thread.is_alive()
    assert isinstance(outcome[0], httpx.HTTPError)  # the caller sees an error, not a hang

    started = time.monotonic()
    while supervisor.status(base).starts == old.starts:  # noticed, then started again
        assert time.monotonic() - started < 30
        time.sleep(0.1)
    supervisor.wait_ready(base, timeout=300)
    new = supervisor.status(base)
    took = time.monotonic() - started
    print(f"\nback in {took:.1f}s after the kill (vLLM startup {new.startup_seconds:.1f}s)")
    assert new.starts == old.starts + 1 and new.pid != old.pid
    with pytest.raises(ProcessLookupError):  # nothing left of the killed vLLM's processes
        os.killpg(old.pid, 0)
    # The same answers as before: base model and the adapter, resolved again after restart.
    assert (vllm_server.answer(base), vllm_server.answer(name)) == before
