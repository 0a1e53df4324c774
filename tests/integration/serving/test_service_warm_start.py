"""The service's warm start and unload (`service.models.warm_start.AdapterControl`) against the real
vLLM: through the local supervisor (`whetstone up`) and through a configured URL (Kubernetes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.models.vllms import VllmRoutes
from service.models.warm_start import AdapterControl
from tests.vllm_fixture import VllmServer, make_lora_adapter, publish_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _publish(server: VllmServer, tmp_path: Path, seed: int) -> str:
    name = f"ft:{server.base_model}:proj-w:warm:{seed:08d}"
    adapter = make_lora_adapter(server.base_model_dir, tmp_path / f"adapter-{seed}", seed)
    publish_adapter(server.store, adapter, name, job_id=f"ftjob-w{seed}")
    return name


def _loaded(server: VllmServer) -> set[str]:
    with server.http() as http:
        answer = http.get("/v1/models")
    return {m["id"] for m in answer.json()["data"]}


def _first_token_seconds(server: VllmServer, model: str) -> float:
    started = time.perf_counter()
    assert server.answer(model, max_tokens=1) is not None
    return time.perf_counter() - started


@pytest.mark.parametrize("route", ["supervisor", "url"])
def test_warm_start_loads_before_the_first_request_and_unload_removes(
    vllm_server: VllmServer, tmp_path: Path, route: str
) -> None:
    seed = 1301 if route == "supervisor" else 1302
    name = _publish(vllm_server, tmp_path, seed)
    if route == "supervisor":
        routes = VllmRoutes({}, vllm_server.supervisor)
    else:
        routes = VllmRoutes(
            {vllm_server.base_model: vllm_server.address},
            api_key=vllm_server.supervisor.api_key,  # as WHETSTONE_VLLM_API_KEY gives it
        )
    control = AdapterControl(routes)
    try:
        assert name not in _loaded(vllm_server)
        started = time.perf_counter()
        assert control.warm_start_later(name, vllm_server.base_model).result(timeout=120)
        assert name in _loaded(vllm_server)
        first = _first_token_seconds(vllm_server, name)
        assert time.perf_counter() - started < 2.0  # job success -> first token
        assert first < 1.0

        assert control.unload_deleted(name) is True
        assert name not in _loaded(vllm_server)
        assert control.unload(name, vllm_server.base_model) is False  # already gone
    finally:
        control.close()


def test_warm_start_of_an_unknown_model_is_harmless(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    control = AdapterControl(VllmRoutes({}, vllm_server.supervisor))
    try:
        assert control.warm_start("ft:whetstone-tiny:proj-w::nosuch00", "whetstone-tiny") is False
        assert control.warm_start("ft:other:proj-w::x", "not-served") is False
        assert vllm_server.answer(vllm_server.base_model, max_tokens=1) is not None
    finally:
        control.close()
