"""A job through the official `openai` package, trained for real on the CPU by the small base
model: `validating_files -> queued -> running -> succeeded`, and what the API then shows
matches what the trainer did. The API and the scheduler run as separate processes."""

from __future__ import annotations

import csv
import io
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.corpus.malformed import PREF_GOOD
from tests.e2e.lifecycle_stack import (
    FINAL,
    Stack,
    create_job,
    dataset,
    events,
    start_stack,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path
) -> Iterator[Stack]:
    # A database of its own: the stack's scheduler acts on every job in its database.
    database_url = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_databases")()
    with start_stack(tmp_path_factory.mktemp("lifecycle"), base_model_dir, database_url) as s:
        yield s


def test_job_succeeds_and_reads_back(stack: Stack, base_model_dir: Path) -> None:
    client = stack.client()
    job_id = create_job(client, n_epochs=2, batch_size=2)  # 12 examples: 6 steps per epoch
    job = wait_for(client, job_id, ("succeeded", "failed", "cancelled"))
    assert job.status == "succeeded", stack.logs()
    model = job.fine_tuned_model
    assert model and model.startswith("ft:whetstone-tiny:alpha::")
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.finished_at and job.finished_at >= job.created_at
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 2

    log = events(client, job_id)
    messages = [e.message for e in log]
    assert messages[0] == f"Created fine-tuning job: {job_id}"
    for expected in ("Files validated, moving job to queued state", "Fine-tuning job started",
                     f"New fine-tuned model created: {model}",
                     "The job has successfully completed"):  # fmt: skip
        assert expected in messages
    assert messages.index("Fine-tuning job started") < messages.index(
        f"New fine-tuned model created: {model}"
    )
    metrics = [e for e in log if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(1, 13))  # type: ignore[index]
    # The trainer's `log` messages say what it does before the first step, in order.
    setup = messages[messages.index("Fine-tuning job started") + 1 : messages.index(
        metrics[0].message)]  # fmt: skip
    assert setup[0].startswith("Tokenized 12 training examples ("), setup
    assert setup[-2].startswith("Loading base model whetstone-tiny ("), setup
    assert setup[-1].startswith("Loaded base model whetstone-tiny in "), setup
    assert "Saving the final adapter" in messages[messages.index(metrics[-1].message) :]
    first = metrics[0]
    assert first.data["total_steps"] == 12  # type: ignore[index]
    assert first.message.startswith("Step 1/12: training loss=")
    assert {"step", "total_steps", "train_loss", "valid_loss", "full_valid_loss",
            "train_mean_token_accuracy", "valid_mean_token_accuracy",
            "full_valid_mean_token_accuracy"} <= set(first.data)  # type: ignore[arg-type]  # fmt: skip
    assert all(e.data["tokens_per_second"] > 0 for e in metrics)  # type: ignore[index]
    rates = [e.data["learning_rate"] for e in metrics]  # type: ignore[index]
    # 2e-4 x multiplier 5 from the first step (warmup is 1 step of 12), then linear decay.
    assert rates[0] == pytest.approx(1e-3)
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]

    # The result file is the trainer's CSV: one row per step, the same losses as the events.
    assert len(job.result_files) == 1
    result = client.files.retrieve(job.result_files[0])
    assert result.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(result.id).text)))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    for row, event in zip(rows, metrics, strict=True):
        assert float(row["train_loss"]) == pytest.approx(event.data["train_loss"], abs=1e-5)  # type: ignore[index]

    # Checkpoints are made every 3 steps and at each epoch's end; those kept are the epochs'
    # (OpenAI's last 3), each a model name of its own; the step ones were pruned and are gone.
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job_id))
    steps = sorted(c.step_number for c in checkpoints)
    assert steps == [6, 12]
    listed = {m.id for m in client.models.list()}
    assert f"{model}:ckpt-step-3" not in listed and f"{model}:ckpt-step-6" in listed
    assert "Checkpoint created at step 3 with Snapshot ID: " in "\n".join(messages)
    for c in checkpoints:
        assert c.fine_tuned_model_checkpoint == f"{model}:ckpt-step-{c.step_number}"
        assert c.metrics.step == c.step_number
        assert f"Checkpoint created at step {c.step_number} with Snapshot ID: " \
               f"{c.fine_tuned_model_checkpoint}" in messages  # fmt: skip

    # The published model points at the final adapter, and that adapter loads with peft.
    objects = stack.data_dir / "objects"
    assert (objects / "models" / (urllib.parse.quote(model, safe="") + ".json")).is_file()
    last = f"{model}:ckpt-step-12"
    assert (objects / "models" / (urllib.parse.quote(last, safe="") + ".json")).is_file()
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    base = transformers.AutoModelForCausalLM.from_pretrained(base_model_dir)
    tuned = peft.PeftModel.from_pretrained(base, objects / "jobs" / job_id / "final" / "adapter")
    assert any("lora_A" in name for name, _ in tuned.named_parameters())


def test_bad_files_fail_the_job_with_line_and_reason(stack: Stack) -> None:
    client = stack.client()
    lines = dataset().decode().splitlines()
    lines[2] = lines[2].replace("code word number 2", "code word <|end|> number 2")
    with_token = client.files.create(
        file=("t.jsonl", "\n".join(lines).encode()), purpose="fine-tune"
    )
    too_few = client.files.create(
        file=("f.jsonl", "\n".join(lines[3:9]).encode()), purpose="fine-tune"
    )
    good = client.files.create(file=("g.jsonl", dataset()), purpose="fine-tune")

    job = client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=with_token.id)
    job = wait_for(client, job.id, FINAL, timeout=60)
    assert job.status == "failed" and job.error is not None
    assert (job.error.code, job.error.param) == ("invalid_training_file", "training_file")
    assert "line 3" in job.error.message and "<|end|>" in job.error.message

    job = client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=too_few.id)
    job = wait_for(client, job.id, FINAL, timeout=60)
    assert job.error is not None and "has 6 examples" in job.error.message

    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny", training_file=good.id, validation_file=with_token.id
    )
    job = wait_for(client, job.id, FINAL, timeout=60)
    assert job.error is not None
    assert (job.error.code, job.error.param) == ("invalid_validation_file", "validation_file")


def test_auto_hyperparameters_are_recorded(stack: Stack) -> None:
    client = stack.client()
    good = client.files.create(file=("g.jsonl", dataset()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="whetstone-tiny", training_file=good.id)
    job = wait_for(client, job.id, ("queued", "running", *FINAL), timeout=60)
    client.fine_tuning.jobs.cancel(job.id)
    hp = job.method.supervised.hyperparameters  # type: ignore[union-attr]
    # 12 examples: 3 * 12 < 100, so min(25, 100 // 12) = 8 epochs; batch 1; multiplier 1.
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (8, 1, 1.0)
    assert job.hyperparameters.n_epochs == 8
    assert wait_for(client, job.id, FINAL, timeout=60).status == "cancelled"


def test_a_dpo_jobs_auto_hyperparameters_count_its_pairs_and_it_cancels(stack: Stack) -> None:
    client = stack.client()
    prefs = client.files.create(file=("p.jsonl", PREF_GOOD * 12), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny", training_file=prefs.id, method={"type": "dpo"}
    )
    job = wait_for(client, job.id, ("queued", "running", *FINAL), timeout=60)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    hp = job.method.dpo.hyperparameters  # type: ignore[union-attr]
    # 12 preference pairs are 12 examples: 8 epochs, batch 1, multiplier 1; beta 0.1.
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier, hp.beta) == (8, 1, 1.0, 0.1)
    assert cancelled.status == "cancelled"
    done = wait_for(client, job.id, FINAL, timeout=60)
    assert done.status == "cancelled" and done.fine_tuned_model is None


def test_continued_training_starts_from_the_parent_adapter(stack: Stack) -> None:
    client = stack.client()
    parent = wait_for(client, create_job(client, n_epochs=4, batch_size=2), FINAL)
    assert parent.status == "succeeded" and parent.fine_tuned_model, stack.logs()
    file = client.files.create(file=("qa.jsonl", dataset()), purpose="fine-tune")
    child = client.fine_tuning.jobs.create(
        model=parent.fine_tuned_model, training_file=file.id, suffix="more",
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 5}}},
    )  # fmt: skip
    assert child.model == parent.fine_tuned_model
    child = wait_for(client, child.id, FINAL)
    assert child.status == "succeeded", stack.logs()
    assert child.fine_tuned_model and child.fine_tuned_model.startswith(
        "ft:whetstone-tiny:alpha:more:"
    )

    def losses(job_id: str) -> list[float]:
        return [e.data["train_loss"] for e in events(client, job_id) if e.type == "metrics"]  # type: ignore[index]

    # The child's first steps start where the parent ended, far below a fresh adapter's.
    parent_losses, child_losses = losses(parent.id), losses(child.id)
    assert child_losses[0] < 0.5 * parent_losses[0], (parent_losses, child_losses)
    assert child_losses[0] < 1.5 * parent_losses[-1], (parent_losses, child_losses)
