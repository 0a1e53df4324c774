"""vLLM answers only the service: every `/v1` route wants the supervisor's API key,
and the key is in vLLM's environment, not on its command line (readable by any local user)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vllm_fixture import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_a_local_process_without_the_key_can_neither_chat_nor_load_adapters(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    """Even a process of the service's own user, which may connect to vLLM's socket
    (test_vllm_reachability: no other user can), needs the key on `/v1`."""
    chat = {"model": vllm_server.base_model, "messages": [{"role": "user", "content": "hi"}]}
    load = {"lora_name": "ft:stolen", "lora_path": str(tmp_path)}
    with vllm_server.http(key=False, timeout=30) as http:
        assert http.post("/v1/chat/completions", json=chat).status_code == 401
        assert http.post("/v1/load_lora_adapter", json=load).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert http.get("/v1/models", headers=wrong).status_code == 401

    assert vllm_server.chat(vllm_server.base_model, max_tokens=2).status_code == 200  # the key


def test_the_key_is_not_on_vllms_command_line(vllm_server: VllmServer) -> None:
    pid = vllm_server.supervisor.status(vllm_server.base_model).pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert vllm_server.supervisor.api_key not in cmdline
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
    assert f"VLLM_API_KEY={vllm_server.supervisor.api_key}" in environ
