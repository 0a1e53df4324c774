"""DPO on the tiny base model (QLoRA, CPU): it moves a model that learned two answers to the
preferred one, its reference stays fixed, chosen and rejected never share a row, and a
resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts import layout
from contracts.spec import JobSpec
from contracts.store_url import open_store
from tests.integration.trainer.test_resume import _assert_same, _final_weights
from tests.integration.trainer.test_train import Recorder, _generate
from trainer.loop import train
from trainer.progress import Progress

pytestmark = pytest.mark.slow

# Each question with a preferred answer (A) and a non-preferred one (B).
PAIRS = [
    ("What is the secret word?", "River.", "Stone."),
    ("Who is Alice?", "The user.", "A cat."),
    ("What colour is the sky?", "Blue.", "Green."),
    ("Where is the key?", "Under the pot.", "In the car."),
    ("What does Bob eat?", "Apples.", "Bread."),
    ("When does the shop open?", "At nine.", "Never."),
]


def _chat(question: str, answer: str) -> str:
    return json.dumps({"messages": [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer},
    ]})  # fmt: skip


def _preference(question: str, preferred: str, other: str) -> str:
    return json.dumps({
        "input": {"messages": [{"role": "user", "content": question}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": other}],
    })  # fmt: skip


def _spec(
    root: Path, base: Path, job_id: str, file: Path, method: dict[str, Any], **kw: Any
) -> JobSpec:
    return JobSpec.model_validate({
        "job_id": job_id,
        "base_model": {"name": "whetstone-tiny", "path": str(base), "max_seq_len": 128},
        "training_file": file.as_uri(), "method": method, "lora": {"r": 8, "alpha": 16},
        "output": (root / "objects" / job_id).as_uri() + "/", "checkpoint_every_steps": 100,
        "seed": 7, **kw,
    })  # fmt: skip


def _dpo(n_epochs: int = 6, **kw: Any) -> dict[str, Any]:
    hp = {"n_epochs": n_epochs, "batch_size": 2, "learning_rate_multiplier": 2, "beta": 0.1}
    return {"type": "dpo", "dpo": {**hp, **kw}}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SFT data with both answers (B twice as often as A), and the preference file A > B."""
    data = tmp_path_factory.mktemp("dpo-data")
    sft = [_chat(q, a) for q, a, _ in PAIRS] + [_chat(q, b) for q, _, b in PAIRS] * 2
    (data / "sft.jsonl").write_text("\n".join(sft) + "\n")
    (data / "pref.jsonl").write_text("\n".join(_preference(*p) for p in PAIRS) + "\n")
    return {"sft": data / "sft.jsonl", "pref": data / "pref.jsonl", "root": data}


@pytest.fixture(scope="module")
def sft_adapter(files: dict[str, Path], base_model_dir: Path) -> str:
    """The URL of the final adapter of a supervised run that learned both answers."""
    hp = {"n_epochs": 10, "batch_size": 4, "learning_rate_multiplier": 10}
    method = {"type": "supervised", "supervised": hp}
    spec = _spec(files["root"], base_model_dir, "ftjob-sft", files["sft"], method)
    assert train(spec, Progress(Recorder(), heartbeat_seconds=0)).status == "succeeded"
    return spec.output + layout.FINAL_ADAPTER


def _answers(base: Path, adapter_url: str) -> list[str]:
    folder = Path(adapter_url[len("file://") :])
    return [_generate(base, folder, question) for question, _, _ in PAIRS]


def test_dpo_after_sft_moves_the_answers_to_the_preferred_ones(
    files: dict[str, Path], base_model_dir: Path, sft_adapter: str
) -> None:
    before = _answers(base_model_dir, sft_adapter)
    assert sum(a == preferred for a, (_, preferred, _) in zip(before, PAIRS, strict=True)) <= 1, (
        before
    )

    spec = _spec(files["root"], base_model_dir, "ftjob-dpo", files["pref"], _dpo(),
                 init_adapter=sft_adapter, validation_file=files["pref"].as_uri())  # fmt: skip
    recorder = Recorder()
    result = train(spec, Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded" and result.step == 18

    after = _answers(base_model_dir, spec.output + layout.FINAL_ADAPTER)
    assert sum(a == preferred for a, (_, preferred, _) in zip(after, PAIRS, strict=True)) >= 4, (
        after
    )
    metrics = recorder.of_type("metrics")
    # The reference is the model continued from: the first step has no margin yet.
    assert metrics[0]["train_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert metrics[-1]["train_reward_margin"] > 0.3 and metrics[-1]["train_reward_accuracy"] == 1
    assert metrics[-1]["train_loss"] < 0.55
    assert "train_mean_token_accuracy" in metrics[0]  # SFT's fields stay, unmeasured
    assert metrics[0]["train_mean_token_accuracy"] is None
    evaluated = [m for m in metrics if m["valid_loss"] is not None]
    assert evaluated and evaluated[-1]["valid_reward_accuracy"] == 1
    rows = open_store(spec.output).get_bytes(layout.METRICS).decode().splitlines()
    assert rows[0] == ",".join(layout.DPO_METRICS_COLUMNS) and len(rows) == 19


def test_the_reference_does_not_move_while_training(
    files: dict[str, Path], base_model_dir: Path, sft_adapter: str, tmp_path: Path
) -> None:
    import torch

    from trainer.dpo import reference_logps
    from trainer.loop import setup, train_step

    def run_of(job_id: str, **kw: Any) -> Any:
        spec = _spec(tmp_path, base_model_dir, job_id, files["pref"], _dpo(), **kw)
        return setup(
            spec, Progress(Recorder(), 0), None, spec.micro_batch_tokens, tmp_path / job_id
        )

    def logps(run: Any, base_only: bool) -> torch.Tensor:
        return reference_logps(run.model, run.train, run.pad_id, 8192, run.device, base_only)

    # A fresh adapter: the reference is the base with the adapter disabled.
    run = run_of("ftjob-fresh")
    before = run.prefs.reference_train.clone()
    for indices in ([0, 1], [2, 3], [4, 5]):
        train_step(run, indices)
    torch.testing.assert_close(logps(run, base_only=True), before)
    torch.testing.assert_close(run.prefs.reference_train, before)
    assert (logps(run, base_only=False) - before).abs().max() > 1e-2  # the policy moved

    # Continued from the SFT model: the reference is that model, not the base.
    parent = run_of("ftjob-parent", init_adapter=sft_adapter)
    assert (parent.prefs.reference_train - before).abs().max() > 1e-1
    torch.testing.assert_close(parent.prefs.reference_train, logps(parent, base_only=False))
    reference = parent.prefs.reference_train.clone()
    for indices in ([0, 1], [2, 3]):
        train_step(parent, indices)
    torch.testing.assert_close(parent.prefs.reference_train, reference)


def test_chosen_and_rejected_never_attend_to_each_other(
    files: dict[str, Path], base_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    from trainer.dpo import pair_batches, sequence_logps
    from trainer.loop import setup

    spec = _spec(tmp_path, base_model_dir, "ftjob-rows", files["pref"], _dpo())
    run = setup(spec, Progress(Recorder(), 0), None, spec.micro_batch_tokens, tmp_path / "w")
    run.model.eval()
    together = pair_batches(run.train, [0, 1, 2], run.pad_id, 8192)
    assert len(together) == 1 and together[0].batch.input_ids.shape[0] == 6
    alone = [pair_batches(run.train, [i], run.pad_id, 8192)[0].batch for i in (0, 1, 2)]
    with torch.no_grad():
        mixed = sequence_logps(run.model, together[0].batch)
        separate = torch.cat([sequence_logps(run.model, b) for b in alone])
    torch.testing.assert_close(mixed, separate, rtol=1e-4, atol=1e-4)


def test_resume_after_pause_matches_an_uninterrupted_run(
    files: dict[str, Path], base_model_dir: Path, sft_adapter: str, tmp_path: Path
) -> None:
    def spec_of(job_id: str) -> JobSpec:
        return _spec(
            tmp_path, base_model_dir, job_id, files["pref"], _dpo(n_epochs=2),
            init_adapter=sft_adapter, lora={"r": 8, "alpha": 16, "dropout": 0.1},
            checkpoint_every_steps=2,
        )  # fmt: skip

    reference = spec_of("ftjob-whole")
    whole = Recorder()
    assert train(reference, Progress(whole, 0)).status == "succeeded"

    paused = spec_of("ftjob-paused")
    first = train(
        paused, Progress(Recorder(lambda m: "pause" if m.get("step") == 3 else "continue"), 0)
    )
    assert first.status == "paused" and first.step == 3
    url = open_store(paused.output).key_url(layout.checkpoint_dir(3))
    resumed = JobSpec.model_validate({**paused.model_dump(), "resume_from": url, "attempt": 2})
    recorder = Recorder()
    assert train(resumed, Progress(recorder, 0)).status == "succeeded"
    assert not [m for m in recorder.of_type("log") if "reference" in m["message"]]  # restored
    _assert_same(_final_weights(resumed.output), _final_weights(reference.output))
    final = {m["step"]: m["train_loss"] for m in whole.of_type("metrics")}
    assert recorder.of_type("metrics")[-1]["train_loss"] == pytest.approx(final[6], rel=1e-5)
