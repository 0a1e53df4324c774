"""Reinforcement fine-tuning on the tiny base model (LoRA, CPU): the policy learns what the
grader rewards, a resumed run ends exactly where an uninterrupted one does, a grader that
fails scores 0 (or fails the job when it fails on everything), and a multi grader's
sub-rewards reach the metrics and the CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts import layout
from contracts.spec import JobSpec
from contracts.store_url import open_store
from tests.integration.trainer.test_resume import _assert_same, _final_weights
from tests.integration.trainer.test_train import Recorder
from trainer.loop import train
from trainer.progress import Progress

pytestmark = pytest.mark.slow

# Each question with its preferred answer and another one.
PAIRS = [
    ("What is the secret word?", "River.", "Stone."),
    ("Who is Alice?", "The user.", "A cat."),
    ("What colour is the sky?", "Blue.", "Green."),
    ("Where is the key?", "Under the pot.", "In the car."),
    ("What does Bob eat?", "Apples.", "Bread."),
    ("When does the shop open?", "At nine.", "Never."),
    ("Which way is north?", "Up.", "Left."),
    ("What is two plus two?", "Four.", "Five."),
    ("Who won the race?", "Anna.", "Tom."),
    ("What is in the box?", "A hat.", "A shoe."),
    ("How old is Max?", "Ten.", "Six."),
    ("Where do fish live?", "In water.", "In trees."),
]
QUESTIONS = [q for q, _, _ in PAIRS]


def _chat(question: str, answer: str) -> str:
    return json.dumps({"messages": [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer},
    ]})  # fmt: skip


def _prompt(question: str, **fields: Any) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}], **fields})


def _spec(root: Path, base: Path, job_id: str, file: Path, method: dict[str, Any],
          **kw: Any) -> JobSpec:  # fmt: skip
    return JobSpec.model_validate({
        "job_id": job_id,
        "base_model": {"name": "whetstone-tiny", "path": str(base), "max_seq_len": 128},
        "training_file": file.as_uri(), "method": method, "lora": {"r": 8, "alpha": 64},
        "output": (root / "objects" / job_id).as_uri() + "/", "checkpoint_every_steps": 100,
        "seed": 7, "quantization": "none", **kw,
    })  # fmt: skip


EQUALS_ANSWER = {
    "type": "string_check", "name": "answer", "operation": "eq",
    "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
}  # fmt: skip


CLOSE_TO_ANSWER = {
    "type": "text_similarity", "name": "close", "evaluation_metric": "fuzzy_match",
    "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
}  # fmt: skip
"""Rewards every answer a little: even the base model's samples differ in reward."""


def _rft(grader: dict[str, Any], **hp: Any) -> dict[str, Any]:
    defaults = {"n_epochs": 1, "batch_size": 4, "learning_rate": 6e-4, "kl_beta": 0.04,
                "max_completion_tokens": 4, "compute_multiplier": 0.5}  # fmt: skip
    return {"type": "reinforcement", "reinforcement": {**defaults, **hp}, "grader": grader}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SFT data with both answers to every question, and the reinforcement prompts whose
    `answer` field is the preferred one."""
    data = tmp_path_factory.mktemp("rft-data")
    sft = [_chat(q, a) for q, a, _ in PAIRS] + [_chat(q, b) for q, _, b in PAIRS]
    (data / "sft.jsonl").write_text("\n".join(sft) + "\n")
    prompts = [_prompt(q, answer=a) for q, a, _ in PAIRS]
    (data / "prompts.jsonl").write_text("\n".join(prompts) + "\n")
    return {"sft": data / "sft.jsonl", "prompts": data / "prompts.jsonl", "root": data}


@pytest.fixture(scope="module")
def sft_adapter(files: dict[str, Path], base_model_dir: Path) -> str:
    """The URL of the final adapter of a supervised run that learned both answers."""
    hp = {"n_epochs": 15, "batch_size": 4, "learning_rate_multiplier": 10}
    method = {"type": "supervised", "supervised": hp}
    spec = _spec(files["root"], base_model_dir, "ftjob-sft", files["sft"], method)
    assert train(spec, Progress(Recorder(), heartbeat_seconds=0)).status == "succeeded"
    return spec.output + layout.FINAL_ADAPTER


def _greedy_answers(base: Path, adapter_url: str) -> list[str]:
    """Each question's answer at temperature 0 (transformers' greedy `generate`)."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.model import load_base

    tok = AutoTokenizer.from_pretrained(base)
    folder = adapter_url[len("file://") :]
    model = PeftModel.from_pretrained(load_base(str(base), "none", torch.device("cpu")), folder)
    model.eval()
    answers = []
    for question in QUESTIONS:
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True,
            return_dict=False,
        )  # fmt: skip
        out = model.generate(
            input_ids=torch.tensor([prompt]), max_new_tokens=8, do_sample=False,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        answers.append(str(tok.decode(out[0, len(prompt) :], skip_special_tokens=True)))
    return answers


def test_rft_after_sft_moves_the_answers_to_the_preferred_ones(
    files: dict[str, Path], base_model_dir: Path, sft_adapter: str
) -> None:
    """The SFT model gives either answer; RFT with a grader that rewards each item's own
    `answer` moves it to the preferred one of every question, and the reward rises."""
    preferred = [a for _, a, _ in PAIRS]
    before = _greedy_answers(base_model_dir, sft_adapter)
    assert all(answer in pair[1:] for answer, pair in zip(before, PAIRS, strict=True)), before
    preferred_before = sum(a == p for a, p in zip(before, preferred, strict=True))
    assert preferred_before < 10, before

    method = _rft(EQUALS_ANSWER, n_epochs=8, compute_multiplier=2, temperature=1.0,
                  max_completion_tokens=8)  # fmt: skip
    spec = _spec(files["root"], base_model_dir, "ftjob-rft", files["prompts"], method,
                 init_adapter=sft_adapter)  # fmt: skip
    recorder = Recorder()
    result = train(spec, Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded" and result.step == 24

    after = _greedy_answers(base_model_dir, spec.output + layout.FINAL_ADAPTER)
    preferred_after = sum(a == p for a, p in zip(after, preferred, strict=True))
    assert preferred_after >= 10 and preferred_after > preferred_before, after
    rewards = [m["train_reward_mean"] for m in recorder.of_type("metrics")]
    assert len(rewards) == 24
    assert sum(rewards[:6]) / 6 < sum(rewards[-6:]) / 6, rewards
    rows = open_store(spec.output).get_bytes(layout.METRICS).decode().splitlines()
    assert rows[0] == ",".join(layout.REINFORCEMENT_METRICS_COLUMNS) and len(rows) == 25


def test_the_reference_is_the_base_or_the_parent_and_does_not_move(
    files: dict[str, Path], base_model_dir: Path, sft_adapter: str, tmp_path: Path
) -> None:
    import torch

    from trainer.grpo import Sampled, sample_batches, token_logps
    from trainer.loop import setup, train_step

    def logps_of(job_id: str, **kw: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reference and policy log-probs of one answer before two steps, the reference's
        after them."""
        spec = _spec(tmp_path, base_model_dir, job_id, files["prompts"],
                     _rft(CLOSE_TO_ANSWER, temperature=1.0), **kw)  # fmt: skip
        run = setup(spec, Progress(Recorder(), 0), None, 8192, tmp_path / job_id)
        answer = run.rl.chat.tokenizer.encode("River.<|end|>", add_special_tokens=False).ids
        batch = sample_batches([Sampled(run.train[0], answer, 0.0)], run.pad_id, 8192)[0]

        def reference() -> torch.Tensor:
            with run.rl.reference.active(run.model):
                return token_logps(run.model, batch)[0]

        before = reference()
        run.model.eval()
        with torch.no_grad():
            policy = token_logps(run.model, batch)[0]
        run.model.train()
        for indices in ([0, 1, 2, 3], [4, 5, 6, 7]):
            train_step(run, indices)
        run.model.eval()
        with torch.no_grad():
            moved = token_logps(run.model, batch)[0]
        assert (moved - policy).abs().max() > 1e-3  # the policy moved
        torch.testing.assert_close(reference(), before)
        return before, policy, moved

    base_reference, fresh_policy, _ = logps_of("ftjob-fresh")
    torch.testing.assert_close(base_reference, fresh_policy)  # a fresh LoRA starts as the base
    parent_reference, parent_policy, _ = logps_of("ftjob-parent", init_adapter=sft_adapter)
    torch.testing.assert_close(parent_reference, parent_policy)  # the parent as loaded
    assert (parent_reference - base_reference).abs().max() > 1e-1  # not the base


def test_resume_after_pause_matches_an_uninterrupted_run(
    files: dict[str, Path], base_model_dir: Path, sft_adapter: str, tmp_path: Path
) -> None:
    """Paused at step 3 and resumed: the same samples (the sampling generator is in the
    checkpoint), rewards, validation rewards and final weights as a run never stopped."""

    def spec_of(job_id: str) -> JobSpec:
        method = _rft(EQUALS_ANSWER, n_epochs=2, temperature=1.0, eval_interval=3)
        return _spec(
            tmp_path, base_model_dir, job_id, files["prompts"], method,
            init_adapter=sft_adapter, validation_file=files["prompts"].as_uri(),
            checkpoint_every_steps=2,
        )  # fmt: skip

    reference = spec_of("ftjob-whole")
    whole = Recorder()
    assert train(reference, Progress(whole, 0)).status == "succeeded"

    paused = spec_of("ftjob-paused")
    first_attempt = Recorder(lambda m: "pause" if m.get("step") == 3 else "continue")
    first = train(paused, Progress(first_attempt, 0))
    assert first.status == "paused" and first.step == 3
    url = open_store(paused.output).key_url(layout.checkpoint_dir(3))
    resumed = JobSpec.model_validate({**paused.model_dump(), "resume_from": url, "attempt": 2})
    recorder = Recorder()
    assert train(resumed, Progress(recorder, 0)).status == "succeeded"

    _assert_same(_final_weights(resumed.output), _final_weights(reference.output))

    def numbers(metrics: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(m["step"], m["train_reward_mean"], m["valid_reward_mean"],
                 round(m["train_loss"], 5)) for m in metrics]  # fmt: skip

    interrupted = first_attempt.of_type("metrics") + recorder.of_type("metrics")
    assert numbers(interrupted) == numbers(whole.of_type("metrics"))
    assert [m["step"] for m in interrupted] == [1, 2, 3, 4, 5, 6]
    assert open_store(resumed.output).get_bytes(layout.METRICS) == open_store(
        reference.output
    ).get_bytes(layout.METRICS)


FAILS_ON_BAD_ITEMS = {
    "type": "python", "name": "picky",
    "source": "def grade(sample, item):\n"
              "    if item.get('bad'):\n"
              "        raise ValueError('this item cannot be graded')\n"
              "    return 1.0\n",
}  # fmt: skip


def test_samples_the_grader_fails_on_score_zero_with_one_log_per_step(
    base_model_dir: Path, tmp_path: Path
) -> None:
    """A Python grader (in its sandbox) that raises on a third of the items: those samples
    score 0, each step says once how many failed and why, and the job goes on."""
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(_prompt(q, bad=i % 3 == 0) + "\n" for i, q in enumerate(QUESTIONS)))
    spec = _spec(tmp_path, base_model_dir, "ftjob-picky", data, _rft(FAILS_ON_BAD_ITEMS))
    recorder = Recorder()
    assert train(spec, Progress(recorder, 0)).status == "succeeded"

    warnings = [m for m in recorder.of_type("log") if m["level"] == "warn"]
    metrics = recorder.of_type("metrics")
    failed_steps = [m["step"] for m in metrics if m["train_reward_mean"] < 1]
    assert failed_steps and [w["message"].split(":")[0] for w in warnings] == [
        f"Step {step}" for step in failed_steps
    ]
    for warning, m in zip(warnings, [m for m in metrics if m["train_reward_mean"] < 1],
                          strict=True):  # fmt: skip
        failed = int(warning["message"].split("failed on ")[1].split(" of ")[0])
        assert warning["message"].split(" of ")[1].startswith("8 samples, each scored 0")
        assert m["train_reward_mean"] == pytest.approx((8 - failed) / 8)  # the others: 1
        assert "python_grader_runtime_error" in warning["message"]
        assert "this item cannot be graded" in warning["message"]
    assert sum(int(w["message"].split("failed on ")[1].split(" ")[0]) for w in warnings) == 8


def test_a_grader_that_fails_on_every_sample_fails_the_job(
    base_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every item lacks the field the grader reads: the first step ends the job with a
    `failed` message naming the error (through `python -m trainer run`'s entry point)."""
    from contracts.messages import EXIT_BAD_INPUT
    from tests.integration.trainer.conftest import write_spec
    from trainer.entry import run_command

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(_prompt(q) + "\n" for q in QUESTIONS))
    spec = _spec(tmp_path, base_model_dir, "ftjob-broken", data, _rft(EQUALS_ANSWER))
    url = write_spec(spec.model_dump(mode="json"), tmp_path)
    capsys.readouterr()

    assert run_command(url) == EXIT_BAD_INPUT
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["type"] for m in messages if m["type"] in ("metrics", "checkpoint")] == []
    failed = messages[-1]
    assert failed["type"] == "failed" and failed["code"] == "grader_failed"
    assert failed["param"] == "method.grader"
    assert failed["message"].startswith("The grader failed on every sample of step 1 (8 samples")
    assert "invalid_variable_error" in failed["message"] and "item.answer" in failed["message"]


MULTI = {
    "type": "multi", "name": "both",
    "graders": {
        "exact": EQUALS_ANSWER,
        "close": CLOSE_TO_ANSWER,
    },
    "calculate_output": "0.25 * exact + 0.75 * close",
}  # fmt: skip


def test_a_multi_graders_sub_rewards_reach_the_metrics_and_the_csv(
    files: dict[str, Path], base_model_dir: Path, tmp_path: Path
) -> None:
    method = _rft(MULTI, eval_interval=2, eval_samples=2)
    spec = _spec(tmp_path, base_model_dir, "ftjob-multi", files["prompts"], method,
                 validation_file=files["prompts"].as_uri())  # fmt: skip
    recorder = Recorder()
    assert train(spec, Progress(recorder, 0)).status == "succeeded"

    metrics = recorder.of_type("metrics")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        subs = m["sub_rewards"]
        expected = {"train_reward/exact", "train_reward/close"}
        if m["step"] == 2:
            expected |= {"valid_reward/exact", "valid_reward/close"}
            assert m["valid_reward_mean"] == pytest.approx(
                0.25 * subs["valid_reward/exact"] + 0.75 * subs["valid_reward/close"]
            )
        assert set(subs) == expected
        assert m["train_reward_mean"] == pytest.approx(
            0.25 * subs["train_reward/exact"] + 0.75 * subs["train_reward/close"]
        )
    assert [m["valid_reward_mean"] is None for m in metrics] == [True, False, True]

    rows = open_store(spec.output).get_bytes(layout.METRICS).decode().splitlines()
    header = rows[0].split(",")
    assert header == [*layout.REINFORCEMENT_METRICS_COLUMNS, "train_reward/exact",
                      "train_reward/close", "valid_reward/exact", "valid_reward/close"]  # fmt: skip
    first, second = (dict(zip(header, row.split(","), strict=True)) for row in rows[1:3])
    assert float(second["train_reward/close"]) == pytest.approx(
        metrics[1]["sub_rewards"]["train_reward/close"], abs=1e-6
    )
    assert first["valid_reward/exact"] == "" and second["valid_reward/exact"] != ""
    checkpoints = recorder.of_type("checkpoint")
    assert checkpoints[-1]["metrics"]["train_reward_mean"] == metrics[-1]["train_reward_mean"]
    assert checkpoints[-1]["metrics"]["sub_rewards"] == metrics[-1]["sub_rewards"]
