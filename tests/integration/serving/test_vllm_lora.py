"""Real vLLM on the CPU serving LoRA adapters through the Whetstone resolver and supervisor."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from contracts.pointers import delete_pointer
from tests.vllm_fixture import (
    MAX_LORAS,
    VllmServer,
    adapter_config,
    make_lora_adapter,
    publish_adapter,
)

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROMPTS = ["hello there", "the quick brown fox"]


def _new_model(server: VllmServer, tmp_path: Path, seed: int, suffix: str) -> str:
    name = f"ft:{server.base_model}:proj-a:{suffix}:{seed:08d}"
    adapter = make_lora_adapter(server.base_model_dir, tmp_path / f"adapter-{seed}", seed)
    publish_adapter(server.store, adapter, name, job_id=f"ftjob-{seed}")
    return name


def _answers(server: VllmServer, model: str) -> list[str]:
    return [server.answer(model, p) for p in PROMPTS]


def _resolutions(server: VllmServer, name: str) -> int:
    return server.log_path.read_text().count(f"Resolved and loaded LoRA adapter '{name}'")


def test_adapter_resolved_by_name_answers_unlike_the_base_model(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    name = _new_model(vllm_server, tmp_path, seed=101, suffix="first")
    base = _answers(vllm_server, vllm_server.base_model)
    tuned = _answers(vllm_server, name)
    assert tuned != base
    assert _answers(vllm_server, name) == tuned  # greedy: the same answer again


def test_checkpoint_name_resolves_with_adapter_trained_elsewhere(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    """An adapter saved on another machine (other base path) is served; its cached config
    names the base model folder this vLLM loaded."""
    name = "ft:whetstone-tiny:proj-a::ckpt0001:ckpt-step-40"
    adapter = make_lora_adapter(vllm_server.base_model_dir, tmp_path / "adapter", seed=102)
    config = adapter_config(adapter)
    config["base_model_name_or_path"] = "/elsewhere/models/whetstone-tiny"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    publish_adapter(vllm_server.store, adapter, name, job_id="ftjob-ckpt0001")

    assert vllm_server.answer(name) != vllm_server.answer(vllm_server.base_model)
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    (cached,) = [
        p for p in vllm_server.cache_dir.iterdir()
        if (p / "adapter_model.safetensors").is_file()
        and (p / "adapter_model.safetensors").read_bytes() == weights
    ]  # fmt: skip
    assert adapter_config(cached)["base_model_name_or_path"] == str(vllm_server.base_model_dir)


def test_two_adapters_interleaved_answer_differently_without_reload(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    a = _new_model(vllm_server, tmp_path, seed=201, suffix="a")
    b = _new_model(vllm_server, tmp_path, seed=202, suffix="b")
    first_a, first_b = vllm_server.answer(a), vllm_server.answer(b)
    assert first_a != first_b
    for _ in range(3):
        assert vllm_server.answer(a) == first_a
        assert vllm_server.answer(b) == first_b
    # Each adapter was resolved (downloaded and added) once, not again between requests.
    assert _resolutions(vllm_server, a) == 1
    assert _resolutions(vllm_server, b) == 1


def test_more_adapters_than_max_loras_all_answer(vllm_server: VllmServer, tmp_path: Path) -> None:
    names = [
        _new_model(vllm_server, tmp_path, seed=300 + i, suffix=f"m{i}")
        for i in range(MAX_LORAS + 1)
    ]
    first = {n: vllm_server.answer(n) for n in names}
    assert len(set(first.values())) == len(names)
    for n in reversed(names):  # vLLM swaps adapters in and out of its slots
        assert vllm_server.answer(n) == first[n]


def test_warm_start_through_the_supervisor(vllm_server: VllmServer, tmp_path: Path) -> None:
    name = _new_model(vllm_server, tmp_path, seed=401, suffix="warm")
    supervisor = vllm_server.supervisor
    started = time.perf_counter()
    supervisor.load_adapter(vllm_server.base_model, name)
    loaded = time.perf_counter()
    answer = vllm_server.answer(name)
    first_token = time.perf_counter()
    print(f"\nwarm start: load {1000 * (loaded - started):.0f} ms, "
          f"first request {1000 * (first_token - loaded):.0f} ms")  # fmt: skip
    assert _resolutions(vllm_server, name) == 0  # loaded before any request needed it
    assert answer != vllm_server.answer(vllm_server.base_model)
    supervisor.load_adapter(vllm_server.base_model, name)  # loading twice is harmless
    assert vllm_server.answer(name) == answer


def test_deleted_model_is_unloaded_and_no_longer_resolves(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    name = _new_model(vllm_server, tmp_path, seed=501, suffix="gone")
    assert vllm_server.chat(name).status_code == 200
    delete_pointer(vllm_server.store, name)
    assert vllm_server.supervisor.unload_adapter(vllm_server.base_model, name) is True
    assert vllm_server.chat(name).status_code == 404
    assert vllm_server.supervisor.unload_adapter(vllm_server.base_model, name) is False


@pytest.mark.parametrize(
    "name", ["ft:whetstone-tiny:proj-a::nosuch00", "ft:../../etc/passwd", "nosuch"]
)
def test_unknown_names_are_404_in_openai_shape(vllm_server: VllmServer, name: str) -> None:
    response = vllm_server.chat(name)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["param"] == "model" and name in error["message"]


def test_adapter_of_another_base_model_is_404(vllm_server: VllmServer, tmp_path: Path) -> None:
    name = "ft:other-base:proj-a::other000"
    adapter = make_lora_adapter(vllm_server.base_model_dir, tmp_path / "other", seed=601)
    publish_adapter(vllm_server.store, adapter, name, job_id="ftjob-other", base_model="other-base")
    assert vllm_server.chat(name).status_code == 404
