"""`build_spec`: the job's resolved hyperparameters, LoRA settings, own learning rate and the
trainer settings go into the JobSpec its attempt reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from contracts import spec as trainer_spec
from contracts.spec import JobSpec, LoraConfig, WandbRun
from contracts.store_url import open_store
from service.db.tables import File, FineTuningJob
from service.fine_tuning.auto_hyperparameters import resolve
from service.fine_tuning.hyperparameters import normalize_method, with_resolved
from service.fine_tuning.schemas import CreateFineTuningJobRequest
from service.fine_tuning.spec import build_spec
from service.scheduler.claim import trainer_env, trainer_secrets
from service.scheduler.context import SchedulerContext
from service.settings import Settings
from serving.launcher import BaseModelEntry

LORA = {"r": 32, "alpha": 64, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def _context(tmp_path: Path, **settings: Any) -> SchedulerContext:
    entry = BaseModelEntry(name="whetstone-tiny", path=str(tmp_path / "tiny"), max_seq_len=256)
    return SchedulerContext(
        settings=Settings(data_dir=tmp_path, **settings),
        sessions=sessionmaker(),
        store=open_store((tmp_path / "objects").as_uri()),
        registry={entry.name: entry},
        executor=None,  # type: ignore[arg-type]  # build_spec launches nothing
    )


def _job(**columns: Any) -> FineTuningJob:
    hp = {"n_epochs": 4, "batch_size": 2, "learning_rate_multiplier": 0.5}
    values: dict[str, Any] = {
        "id": "ftjob-abc", "base_model": "whetstone-tiny", "training_file": "file-train",
        "validation_file": None, "parent_model": None, "resume_from": None, "seed": 7,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
        "lora": None, "learning_rate": None, "keep_checkpoints": None, **columns,
    }  # fmt: skip
    return FineTuningJob(**values)


class _Files:
    """Stands in for the session: `build_spec` reads only the training file's row."""

    def __init__(self, lines: int = 12) -> None:
        self.lines = lines

    def get(self, table: type, key: str) -> File:
        return File(id=key, lines=self.lines)


def _spec(ctx: SchedulerContext, job: FineTuningJob, lines: int = 12) -> JobSpec:
    return JobSpec.model_validate_json(build_spec(ctx, _Files(lines), job, 1))  # type: ignore[arg-type]


def test_a_job_without_validation_file_holds_training_lines_out(tmp_path: Path) -> None:
    spec = _spec(_context(tmp_path), _job(), lines=200)
    assert len(spec.held_out_lines) == 20 and set(spec.held_out_lines) <= set(range(1, 201))
    assert _spec(_context(tmp_path), _job(), lines=200).held_out_lines == spec.held_out_lines
    assert _spec(_context(tmp_path), _job(), lines=12).held_out_lines == []  # too few to spare
    with_validation = _job(validation_file="file-valid")
    assert _spec(_context(tmp_path), with_validation, lines=200).held_out_lines == []
    off = _context(tmp_path, eval_holdout_fraction=0)
    assert _spec(off, _job(), lines=200).held_out_lines == []


def test_lora_and_learning_rate_of_the_job_reach_the_jobspec(tmp_path: Path) -> None:
    spec = _spec(_context(tmp_path), _job(lora=LORA, learning_rate=1e-4))
    assert spec.lora == LoraConfig(**LORA)
    hp = spec.hyperparameters
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (4, 2, 0.5)
    assert hp.learning_rate == 1e-4 and hp.peak_learning_rate == 1e-4


def test_older_jobs_get_the_defaults(tmp_path: Path) -> None:
    spec = _spec(_context(tmp_path), _job())
    assert spec.lora == LoraConfig()
    assert spec.hyperparameters.learning_rate is None
    assert spec.hyperparameters.peak_learning_rate == trainer_spec.BASE_LEARNING_RATE * 0.5
    assert spec.micro_batch_tokens == trainer_spec.MICRO_BATCH_TOKENS == 8192
    assert spec.keep_checkpoints == trainer_spec.KEEP_CHECKPOINTS == 3  # OpenAI's last 3 epochs


def test_the_jobs_keep_checkpoints_reaches_the_trainers_retention(tmp_path: Path) -> None:
    assert _spec(_context(tmp_path), _job(keep_checkpoints=10)).keep_checkpoints == 10


def test_micro_batch_tokens_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, trainer_micro_batch_tokens=2048)
    assert _spec(ctx, _job()).micro_batch_tokens == 2048
    monkeypatch.setenv("WHETSTONE_TRAINER_MICRO_BATCH_TOKENS", "4096")
    assert Settings().trainer_micro_batch_tokens == 4096


def test_a_dpo_job_gets_a_dpo_jobspec_with_its_beta(tmp_path: Path) -> None:
    hp = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 1.5, "beta": 0.3}
    spec = _spec(_context(tmp_path), _job(method={"type": "dpo", "dpo": {"hyperparameters": hp}}))
    assert spec.method.type == "dpo" and spec.method.supervised is None
    assert spec.method.dpo is not None and spec.method.dpo.beta == 0.3
    assert (spec.hyperparameters.n_epochs, spec.hyperparameters.batch_size) == (2, 4)
    assert spec.hyperparameters.learning_rate_multiplier == 1.5


@pytest.mark.parametrize(
    ("kind", "asked", "trained"),
    [("supervised", 0.1, 0.1), ("dpo", 0.05, 0.05), ("supervised", "auto", 0.0)],
)
def test_a_requests_weight_decay_is_reported_and_reaches_the_jobspec(
    tmp_path: Path, kind: str, asked: Any, trained: float
) -> None:
    hyperparameters = {"weight_decay": asked}
    body = {"model": "whetstone-tiny", "training_file": "file-train",
            "method": {"type": kind, kind: {"hyperparameters": hyperparameters}}}  # fmt: skip
    method = normalize_method(CreateFineTuningJobRequest.model_validate(body).method, None)
    values = resolve(method.hyperparameters.model_dump(), 16).as_dict()
    reported = with_resolved(method, values).model_dump(mode="json")  # as the job stores it
    assert reported[kind]["hyperparameters"]["weight_decay"] == trained
    assert _spec(_context(tmp_path), _job(method=reported)).hyperparameters.weight_decay == trained


WANDB = {"project": "tuning", "name": None, "entity": "team", "tags": ["exp-1"]}


def test_a_wandb_integration_reaches_the_jobspec_and_the_key_only_the_environment(
    tmp_path: Path,
) -> None:
    ctx = _context(
        tmp_path, wandb_api_key="wandb-secret-key", wandb_base_url="https://wandb.example.com"
    )
    job = _job(integrations=[{"type": "wandb", "wandb": WANDB}])
    text = build_spec(ctx, _Files(12), job, 1)  # type: ignore[arg-type]
    spec = JobSpec.model_validate_json(text)
    assert spec.wandb == WandbRun(project="tuning", entity="team", tags=["exp-1"])
    assert "wandb-secret-key" not in text
    assert trainer_secrets(ctx, wandb=True) == {"WANDB_API_KEY": "wandb-secret-key"}
    env = trainer_env(ctx, wandb=True)
    assert env["WANDB_BASE_URL"] == "https://wandb.example.com"
    assert "wandb-secret-key" not in env.values()
    assert env["WHETSTONE_TRAINER_REPORT_MAX_WAIT_SECONDS"] == "600"
    # four heartbeats a lease (60 s by default): a slow step never loses the attempt
    assert env["WHETSTONE_TRAINER_HEARTBEAT_SECONDS"] == "15"


def test_a_job_without_wandb_gets_neither_the_run_nor_the_key(tmp_path: Path) -> None:
    ctx = _context(tmp_path, wandb_api_key="wandb-secret-key")
    assert _spec(ctx, _job()).wandb is None
    assert trainer_secrets(ctx, wandb=False) == {}
    assert "WANDB_BASE_URL" not in trainer_env(ctx, wandb=False)


GRADER = {"type": "string_check", "name": "exact", "operation": "eq",
          "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}  # fmt: skip


def test_a_reinforcement_job_carries_its_grader_and_the_sandbox_limits(tmp_path: Path) -> None:
    hp = {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 0.25,
          "compute_multiplier": 1.5, "eval_interval": 3, "eval_samples": 2,
          "reasoning_effort": "low"}  # fmt: skip
    method = {"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": hp}}
    ctx = _context(tmp_path, grader_python_wall_seconds=5, grader_python_memory_mb=256)
    spec = _spec(ctx, _job(method=method), lines=200)
    assert spec.method.type == "reinforcement" and spec.method.grader is not None
    assert spec.method.grader.model_dump(exclude_unset=True) == GRADER
    rl = spec.method.reinforcement
    assert rl is not None and spec.hyperparameters is rl
    assert (rl.n_epochs, rl.batch_size, rl.learning_rate_multiplier) == (2, 1, 0.25)
    assert (rl.compute_multiplier, rl.eval_interval, rl.eval_samples) == (1.5, 3, 2)
    assert rl.reasoning_effort == "low" and rl.samples_per_prompt == 6
    assert spec.grader_limits.wall_seconds == 5
    assert spec.grader_limits.memory_bytes == 256 * 1024 * 1024
    assert spec.held_out_lines == []  # its prompts have no reference answer to evaluate
