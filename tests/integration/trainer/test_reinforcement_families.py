"""Reinforcement fine-tuning on the real architectures and templates, not only the tiny model:
Qwen 3 (a `<think>` template with its `enable_thinking` switch, which `reasoning_effort`
sets), Llama 3.2 (128k vocabulary, tied embeddings) and Gemma 3 (262k vocabulary). Each job
samples with the family's own generation prompt and end-of-turn, grades, trains and reports
its rewards to the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from contracts import layout
from contracts.store_url import open_store
from tests.integration.trainer.test_reinforcement import (
    CLOSE_TO_ANSWER,
    PAIRS,
    _prompt,
    _rft,
    _spec,
)
from tests.integration.trainer.test_train import Recorder
from trainer.loop import train
from trainer.progress import Progress

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("family", "effort"), [("qwen3", "low"), ("llama3.2", "default"), ("gemma3", "default")]
)
def test_a_reinforcement_job_trains_each_family_to_the_end(
    family_dir: Callable[..., Path], tmp_path: Path, family: str, effort: str
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(_prompt(q, answer=a) + "\n" for q, a, _ in PAIRS[:4]))
    method = _rft(CLOSE_TO_ANSWER, max_completion_tokens=6, reasoning_effort=effort)
    spec = _spec(tmp_path, family_dir(family), f"ftjob-rft-{family}", prompts, method)
    recorder = Recorder()
    result = train(spec, Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded" and result.step == 1, recorder.messages[-3:]
    (metrics,) = recorder.of_type("metrics")
    assert 0.0 <= metrics["train_reward_mean"] <= 1.0
    assert metrics["train_loss"] is not None
    store = open_store(spec.output)
    rows = store.get_bytes(layout.METRICS).decode().splitlines()
    assert rows[0] == ",".join(layout.REINFORCEMENT_METRICS_COLUMNS) and len(rows) == 2
    assert store.exists(layout.FINAL_ADAPTER + "adapter_model.safetensors")
