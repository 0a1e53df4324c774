"""Heartbeats cover setup and finish, not only the epochs, and `log` messages say what the
trainer does between `started` and the first step; per-job LoRA settings reach peft."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

import trainer.loop
from contracts import layout
from contracts.spec import JobSpec
from contracts.store_url import open_store
from tests.integration.trainer.test_train import Recorder
from trainer.data import DataError
from trainer.loop import make_scheduler, train
from trainer.progress import Progress

BEAT = 0.1


def _after_heartbeats(
    recorder: Recorder, count: int, function: Callable[..., Any]
) -> Callable[..., Any]:
    """`function`, made slow: it runs once `count` more heartbeats were sent (a step that
    heartbeats do not cover fails here, at the deadline)."""

    def slow(*args: Any, **kwargs: Any) -> Any:
        wanted = len(recorder.of_type("heartbeat")) + count
        deadline = time.monotonic() + 30
        while len(recorder.of_type("heartbeat")) < wanted:
            assert time.monotonic() < deadline, f"no {count} heartbeats while {function} ran"
            time.sleep(0.01)
        return function(*args, **kwargs)

    return slow


def _spec(
    make_spec: Callable[..., dict[str, Any]], files: dict[str, str], lr: float | None = None,
    **kw: Any,
) -> JobSpec:  # fmt: skip
    hp = {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1, "learning_rate": lr}
    method = {"type": "supervised", "supervised": hp}
    return JobSpec.model_validate(make_spec(**files, method=method, quantization="none", **kw))


def _label(message: dict[str, Any]) -> str:
    if message["type"] == "log":
        return "log: " + message["message"].split(" (")[0].split(" in ")[0]
    return message["type"]


def test_heartbeats_while_the_model_loads_and_the_adapter_uploads(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(
        trainer.loop, "load_model", _after_heartbeats(recorder, 3, trainer.loop.load_model)
    )
    monkeypatch.setattr(
        trainer.loop, "metrics_csv", _after_heartbeats(recorder, 3, trainer.loop.metrics_csv)
    )
    progress = Progress(recorder, heartbeat_seconds=BEAT)
    result = train(_spec(make_spec, qa_files), progress)
    assert result.status == "succeeded" and result.step == 4

    labels = [_label(m) for m in recorder.messages]
    setup = [label for label in labels[: labels.index("started")] if label != "heartbeat"]
    assert setup == [
        "log: Tokenized 16 training examples",
        "log: Tokenized 4 validation examples",
        "log: Loading base model whetstone-tiny",
        "log: Loaded base model whetstone-tiny",
    ]
    loading = labels[labels.index(setup[2]) : labels.index(setup[3])]
    assert loading.count("heartbeat") >= 3, labels  # sent while load_model slept
    assert labels.index("started") < labels.index("metrics")
    saving = labels[labels.index("log: Saving the final adapter") : labels.index("finished")]
    assert saving.count("heartbeat") >= 3, labels  # and while the final upload ran
    assert labels.index("log: Evaluating the final model on 4 validation examples") < (
        labels.index("log: Saving the final adapter")
    )
    loaded = next(m for m in recorder.messages if _label(m) == setup[3])
    assert loaded["level"] == "info" and "trainable LoRA parameters" in loaded["message"]
    assert "16 training examples (" in recorder.messages[0]["message"]
    assert progress._thread is not None and not progress._thread.is_alive()  # none after the end
    assert labels == [_label(m) for m in recorder.messages]


def test_a_cancel_heard_while_the_model_loads_stops_before_the_first_step(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder(lambda m: "cancel" if m["type"] == "heartbeat" else "continue")
    monkeypatch.setattr(
        trainer.loop, "load_model", _after_heartbeats(recorder, 1, trainer.loop.load_model)
    )
    result = train(_spec(make_spec, qa_files), Progress(recorder, heartbeat_seconds=BEAT))
    assert result.status == "cancelled" and result.step == 0
    assert recorder.of_type("metrics") == [] and recorder.of_type("finished") == []


def test_lora_settings_and_learning_rate_of_the_spec_are_used(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rates: list[float] = []

    def scheduler(optimizer: Any, total_steps: int) -> Any:
        rates.append(optimizer.param_groups[0]["lr"])
        return make_scheduler(optimizer, total_steps)

    monkeypatch.setattr(trainer.loop, "make_scheduler", scheduler)
    lora = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
    spec = _spec(make_spec, qa_files, lr=1e-3, lora=lora)
    assert train(spec, Progress(Recorder(), heartbeat_seconds=0)).status == "succeeded"
    assert rates == [1e-3]  # the spec's own rate, not 2e-4 x 1
    adapter_config = layout.FINAL_ADAPTER + "adapter_config.json"
    config = json.loads(open_store(spec.output).get_bytes(adapter_config))
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.1)
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]

    wrong = _spec(make_spec, qa_files, lora={"target_modules": ["no_such_proj"]})
    with pytest.raises(DataError) as info:
        train(wrong, Progress(Recorder(), heartbeat_seconds=0))
    assert (info.value.code, info.value.param) == (
        "invalid_lora_target_modules", "lora.target_modules",
    )  # fmt: skip
