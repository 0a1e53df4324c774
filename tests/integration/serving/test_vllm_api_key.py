"""vLLM's port answers only the service: every `/v1` route wants the supervisor's API key,
and the key is in vLLM's environment, not on its command line (readable by any local user)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.vllm_fixture import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_a_local_process_without_the_key_can_neither_chat_nor_load_adapters(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    url = vllm_server.base_url
    chat = {"model": vllm_server.base_model, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(url + "/v1/chat/completions", json=chat, timeout=30).status_code == 401
    load = {"lora_name": "ft:stolen", "lora_path": str(tmp_path)}
    assert httpx.post(url + "/v1/load_lora_adapter", json=load, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert httpx.get(url + "/v1/models", headers=wrong, timeout=30).status_code == 401

    assert vllm_server.chat(vllm_server.base_model, max_tokens=2).status_code == 200  # the key


def test_the_key_is_not_on_vllms_command_line(vllm_server: VllmServer) -> None:
    pid = vllm_server.supervisor.status(vllm_server.base_model).pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert vllm_server.supervisor.api_key not in cmdline
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
    assert f"VLLM_API_KEY={vllm_server.supervisor.api_key}" in environ
