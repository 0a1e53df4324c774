"""`build_spec`: the job's resolved hyperparameters, LoRA settings, own learning rate and the
trainer settings go into the JobSpec its attempt reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from contracts import spec as trainer_spec
from contracts.spec import JobSpec, LoraConfig, WandbRun
from contracts.store import open_store
from service.db.tables import FineTuningJob
from service.scheduler.claim import build_spec, trainer_env, trainer_secrets
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
        "lora": None, "learning_rate": None, **columns,
    }  # fmt: skip
    return FineTuningJob(**values)


def _spec(ctx: SchedulerContext, job: FineTuningJob) -> JobSpec:
    return JobSpec.model_validate_json(build_spec(ctx, None, job, 1))  # type: ignore[arg-type]


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


def test_micro_batch_tokens_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, trainer_micro_batch_tokens=2048)
    assert _spec(ctx, _job()).micro_batch_tokens == 2048
    monkeypatch.setenv("WHETSTONE_TRAINER_MICRO_BATCH_TOKENS", "4096")
    assert Settings().trainer_micro_batch_tokens == 4096


WANDB = {"project": "tuning", "name": None, "entity": "team", "tags": ["exp-1"]}


def test_a_wandb_integration_reaches_the_jobspec_and_the_key_only_the_environment(
    tmp_path: Path,
) -> None:
    ctx = _context(
        tmp_path, wandb_api_key="wandb-secret-key", wandb_base_url="https://wandb.example.com"
    )
    job = _job(integrations=[{"type": "wandb", "wandb": WANDB}])
    text = build_spec(ctx, None, job, 1)  # type: ignore[arg-type]
    spec = JobSpec.model_validate_json(text)
    assert spec.wandb == WandbRun(project="tuning", entity="team", tags=["exp-1"])
    assert "wandb-secret-key" not in text
    assert trainer_secrets(ctx, wandb=True) == {"WANDB_API_KEY": "wandb-secret-key"}
    env = trainer_env(ctx, wandb=True)
    assert env["WANDB_BASE_URL"] == "https://wandb.example.com"
    assert "wandb-secret-key" not in env.values()
    assert env["WHETSTONE_TRAINER_REPORT_MAX_WAIT_SECONDS"] == "600"


def test_a_job_without_wandb_gets_neither_the_run_nor_the_key(tmp_path: Path) -> None:
    ctx = _context(tmp_path, wandb_api_key="wandb-secret-key")
    assert _spec(ctx, _job()).wandb is None
    assert trainer_secrets(ctx, wandb=False) == {}
    assert "WANDB_BASE_URL" not in trainer_env(ctx, wandb=False)
