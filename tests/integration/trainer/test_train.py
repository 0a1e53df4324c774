"""Training the tiny base model end to end on the CPU: QLoRA learns, checkpoints land in the
store (a local folder and a real S3 server), and stop requests behave as the contract says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts import layout
from contracts.messages import Action, Message
from contracts.spec import JobSpec
from contracts.store_url import open_store
from tests.integration.trainer.conftest import FACTS
from trainer.loop import train
from trainer.progress import Progress


class Recorder:
    """A progress channel that keeps every message as the wire carries it (JSON) and answers
    `reply(message)`."""

    def __init__(self, reply: Callable[[dict[str, Any]], Action] = lambda m: "continue") -> None:
        self.messages: list[dict[str, Any]] = []
        self.reply = reply

    def send(self, message: Message) -> Action:
        data = message.model_dump(mode="json")
        self.messages.append(data)
        return self.reply(data)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


def _generate(base_model_dir: Path, adapter_dir: Path, question: str) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.model import load_base

    tok = AutoTokenizer.from_pretrained(base_model_dir)
    model = PeftModel.from_pretrained(
        load_base(str(base_model_dir), "nf4", torch.device("cpu")), adapter_dir
    )
    model.eval()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_dict=False
    )
    out = model.generate(
        input_ids=torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    return str(tok.decode(out[0, len(prompt) :], skip_special_tokens=True))


@pytest.mark.slow
def test_qlora_lowers_the_loss_and_the_adapter_answers(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]], base_model_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    hp = {"n_epochs": 8, "batch_size": 4, "learning_rate_multiplier": 10}
    method = {"type": "supervised", "supervised": hp}
    spec = JobSpec.model_validate(make_spec(**qa_files, method=method, checkpoint_every_steps=100))
    recorder = Recorder()
    result = train(spec, Progress(recorder, heartbeat_seconds=0))

    assert result.status == "succeeded" and result.step == result.total_steps == 32
    metrics = recorder.of_type("metrics")
    assert [m["step"] for m in metrics] == list(range(1, 33))
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"] / 3
    assert result.full_valid_loss is not None and result.full_valid_loss < 1.0
    assert result.full_valid_mean_token_accuracy is not None
    assert result.full_valid_mean_token_accuracy > 0.9
    finished = recorder.of_type("finished")[0]
    assert finished["adapter_key"] == "jobs/ftjob-test/final/adapter/"
    assert finished["trained_tokens"] == result.trained_tokens > 0

    store = open_store(spec.output)
    adapter = tmp_path / "adapter"
    store.download_dir(layout.FINAL_ADAPTER, adapter)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in adapter.iterdir()
    }
    for question, answer in FACTS:
        assert _generate(base_model_dir, adapter, question) == answer

    rows = store.get_bytes(layout.METRICS).decode().splitlines()
    assert rows[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    assert len(rows) == 33 and rows[4].count(",") == 4 and rows[4].split(",")[3] != ""


def test_the_jobs_weight_decay_is_the_optimisers(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from trainer.loop import setup

    for asked, used in (({"weight_decay": 0.1}, 0.1), ({}, 0.0)):  # left out: the default
        method = {"type": "supervised", "supervised": {"n_epochs": 1, **asked}}
        spec = JobSpec.model_validate(make_spec(**qa_files, method=method, quantization="none"))
        run = setup(spec, Progress(Recorder(), 0), None, spec.micro_batch_tokens, tmp_path / "w")
        assert [group["weight_decay"] for group in run.optimizer.param_groups] == [used]


def _check_checkpoints(store: Any) -> None:
    complete = layout.complete_checkpoints(store)
    # 3 epochs of 4 steps, a step checkpoint every 3 steps: epochs at 4, 8, 12; steps 3, 6, 9.
    # The last 3 epochs stay; the step checkpoint 9 went once the epoch at 12 was newer.
    assert [(c.step, c.kind) for c in complete] == [(4, "epoch"), (8, "epoch"), (12, "epoch")]
    assert [c.epoch for c in complete] == [1, 2, 3]
    for c in complete:
        folder = layout.checkpoint_dir(c.step)
        keys = set(store.list(folder))
        names = ["adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "state/training_state.safetensors", "state/training_state.json",
                 "state/position.json"]  # fmt: skip
        assert {folder + name for name in names} <= keys
    assert store.exists(layout.FINAL_ADAPTER + "adapter_model.safetensors")
    assert store.exists(layout.METRICS)


def _three_epochs(
    make_spec: Callable[..., dict[str, Any]], files: dict[str, str], **kw: Any
) -> JobSpec:
    hp = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 5}
    return JobSpec.model_validate(
        make_spec(**files, method={"type": "supervised", "supervised": hp}, **kw)
    )


def test_checkpoints_in_a_local_folder(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = _three_epochs(
        make_spec, {"training_file": qa_files["training_file"]}, quantization="none"
    )
    recorder = Recorder()
    train(spec, Progress(recorder, heartbeat_seconds=0))
    _check_checkpoints(open_store(spec.output))
    keys = [m["key"] for m in recorder.of_type("checkpoint")]
    assert keys == [f"jobs/ftjob-test/checkpoints/step-{n:08d}/" for n in (3, 4, 6, 8, 9, 12)]
    # Each report says what is left on the store, so the service lists only those.
    kept = [m["kept_steps"] for m in recorder.of_type("checkpoint")]
    assert kept == [[3], [4], [4, 6], [4, 8], [4, 8, 9], [4, 8, 12]]


@pytest.mark.slow
def test_a_checkpoint_is_reported_before_the_one_before_it_is_deleted(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]
) -> None:
    """The service resumes a killed trainer from the latest checkpoint it was told of: that
    one is still complete on the store whenever the next report arrives (a trainer killed
    between pruning and reporting used to leave the service a deleted checkpoint)."""
    spec = _three_epochs(
        make_spec, {"training_file": qa_files["training_file"]}, quantization="none"
    )
    store = open_store(spec.output)
    reported: list[int] = []
    missing: list[tuple[int, int]] = []

    def check(message: dict[str, Any]) -> Action:
        if message["type"] == "checkpoint":
            if reported and not store.exists(layout.checkpoint_dir(reported[-1]) + layout.COMPLETE):
                missing.append((reported[-1], message["step"]))
            reported.append(message["step"])
        return "continue"

    train(spec, Progress(Recorder(check), heartbeat_seconds=0))
    assert reported == [3, 4, 6, 8, 9, 12]
    assert missing == [], "checkpoints deleted before the next one was reported"


@pytest.mark.slow
def test_checkpoints_in_s3(
    s3_bucket: str,
    s3_endpoint: str,
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
) -> None:
    store = open_store(s3_bucket, s3_endpoint)
    store.put_bytes("files/train.jsonl", Path(qa_files["training_file"][7:]).read_bytes())
    spec = _three_epochs(
        make_spec, {"training_file": store.key_url("files/train.jsonl")},
        output=store.key_url("jobs/ftjob-test") + "/",
    )  # fmt: skip
    result = train(spec, Progress(Recorder(), heartbeat_seconds=0), endpoint_url=s3_endpoint)
    assert result.status == "succeeded"
    _check_checkpoints(open_store(spec.output, s3_endpoint))


def test_cancel_stops_without_a_checkpoint(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = JobSpec.model_validate(make_spec(**qa_files, quantization="none"))
    recorder = Recorder(lambda m: "cancel" if m.get("step") == 2 else "continue")
    result = train(spec, Progress(recorder, heartbeat_seconds=0))
    assert result.status == "cancelled" and result.step == 2
    assert recorder.of_type("checkpoint") == [] and recorder.of_type("finished") == []
    assert open_store(spec.output).list("") == []


def test_pause_checkpoints_then_stops(
    qa_files: dict[str, str], make_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = JobSpec.model_validate(
        make_spec(**qa_files, quantization="none", checkpoint_every_steps=50)
    )
    recorder = Recorder(lambda m: "pause" if m.get("step") == 2 else "continue")
    result = train(spec, Progress(recorder, heartbeat_seconds=0))
    assert result.status == "paused" and result.step == 2
    assert [(m["step"], m["key"]) for m in recorder.of_type("checkpoint")] == [
        (2, "jobs/ftjob-test/checkpoints/step-00000002/")
    ]
    assert [c.step for c in layout.complete_checkpoints(open_store(spec.output))] == [2]
