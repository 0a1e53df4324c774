"""Weights & Biases logging of one job (the JobSpec's `wandb`, from the job's integration).

    tracker = start_wandb(spec, progress)   # None when the job has no W&B integration
    ...                                     # every `Metrics` sent through `progress` is logged
    tracker.finish()

The run is named and tagged as OpenAI names its runs: id the job id (a resumed attempt
continues the same run), name the integration's `name` or the job id, tags
`openai/finetune`, `openai/{base model}`, `openai/{job id}` and then the integration's own;
project and entity from the integration. Config: the job id, base model, method, its
hyperparameters, LoRA settings, seed and files. Metrics: every number of each `Metrics`
message (losses, token accuracies, learning rate, tokens per second, peak memory, and
whatever a recipe adds) at its step; the final message's numbers go to the run's summary.

The API key and server are wandb's own environment (`WANDB_API_KEY`, `WANDB_BASE_URL`, set
by the service's executor; `WANDB_MODE=offline` writes the run to `WANDB_DIR` only;
`WANDB_INIT_TIMEOUT` bounds the start). W&B never fails a job: wandb missing, no key, a
server that cannot be reached, or an error while logging is one `warn` event
(`W&B logging disabled: ...`) and the training goes on without it.
"""

from __future__ import annotations

import logging
import netrc
import os
from typing import Any
from urllib.parse import urlparse

from contracts.messages import Finished, Message, Metrics, Started
from contracts.spec import JobSpec
from trainer.progress import Progress

log = logging.getLogger(__name__)
MAX_TAG_LENGTH = 64  # W&B refuses longer tags
NOT_METRICS = {"type", "step", "total_steps"}
INIT_TIMEOUT_SECONDS = 90.0  # wandb's own default; `WANDB_INIT_TIMEOUT` changes it


def run_tags(spec: JobSpec) -> list[str]:
    """OpenAI's default tags, then the integration's own; each once, W&B's length at most."""
    assert spec.wandb is not None
    tags = ["openai/finetune", f"openai/{spec.base_model.name}", f"openai/{spec.job_id}"]
    tags += spec.wandb.tags
    return list(dict.fromkeys(tag[:MAX_TAG_LENGTH] for tag in tags if tag))


def run_config(spec: JobSpec) -> dict[str, Any]:
    """The job's settings as the run's config."""
    block = getattr(spec.method, spec.method.type, None) or spec.hyperparameters
    return {
        "job_id": spec.job_id,
        "base_model": spec.base_model.name,
        "method": spec.method.type,
        "hyperparameters": {**block.model_dump(), "learning_rate": block.peak_learning_rate},
        "lora": spec.lora.model_dump(),
        "quantization": spec.quantization,
        "seed": spec.seed,
        "training_file": spec.training_file,
        "validation_file": spec.validation_file,
        "attempt": spec.attempt,
    }


def numbers(message: Message) -> dict[str, float]:
    """Every numeric field of a message but its step counters."""
    # A metrics message's sub-rewards (a dict) as their own `train_reward/<name>` numbers.
    values = message.event_data() if isinstance(message, Metrics) else message.model_dump()
    values = {k: v for k, v in values.items() if k not in NOT_METRICS}
    return {
        k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


class WandbTracker:
    """Logs what `progress` sends to one W&B run; disables itself on the first error."""

    def __init__(self, run: Any, progress: Progress) -> None:
        self.run: Any = run
        self.progress = progress
        progress.observe(self.observe)

    def observe(self, message: Message) -> None:
        if self.run is None:
            return
        try:
            match message:
                case Metrics():
                    self.run.log(numbers(message), step=message.step)
                case Started(total_steps=total):
                    self.run.config.update({"total_steps": total}, allow_val_change=True)
                case Finished():
                    self.run.summary.update(numbers(message))
        except Exception as e:
            self._disable(e)

    def finish(self, exit_code: int = 0) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as e:
            log.warning("W&B run did not finish cleanly: %s", e)

    def _disable(self, error: Exception) -> None:
        run, self.run = self.run, None
        self.progress.log(f"W&B logging disabled: {_describe(error)}", level="warn")
        try:
            run.finish(exit_code=1)
        except Exception:
            log.debug("W&B run did not finish", exc_info=True)


def start_wandb(spec: JobSpec, progress: Progress) -> WandbTracker | None:
    """Start the job's W&B run; None (and a `warn` event when one was asked for) without."""
    if spec.wandb is None:
        return None
    try:
        import wandb
    except ImportError:
        progress.log(
            "W&B logging disabled: the wandb package is not installed where the trainer runs "
            "(pip install 'whetstone[wandb]')",
            level="warn",
        )
        return None
    mode = os.environ.get("WANDB_MODE") or "online"
    if mode not in ("offline", "disabled", "dryrun") and not _has_api_key(wandb):
        progress.log(
            "W&B logging disabled: no W&B API key on this server (the operator sets "
            "WHETSTONE_WANDB_API_KEY)",
            level="warn",
        )
        return None
    try:
        run = wandb.init(
            project=spec.wandb.project,
            entity=spec.wandb.entity,
            name=spec.wandb.name or spec.job_id,
            id=spec.job_id,
            resume="allow",
            tags=run_tags(spec),
            config=run_config(spec),
            settings=wandb.Settings(**_settings()),
        )
    except Exception as e:
        progress.log(f"W&B logging disabled: {_describe(e)}", level="warn")
        return None
    return WandbTracker(run, progress)


def _settings() -> dict[str, Any]:
    """wandb's variables, read at each start (wandb itself reads them once per process)."""
    env = os.environ
    values: dict[str, Any] = {
        "console": "off",
        "silent": True,
        "mode": env.get("WANDB_MODE") or "online",
        "init_timeout": float(env.get("WANDB_INIT_TIMEOUT") or INIT_TIMEOUT_SECONDS),
    }
    for name, setting in (("WANDB_DIR", "root_dir"), ("WANDB_BASE_URL", "base_url"),
                          ("WANDB_API_KEY", "api_key")):  # fmt: skip
        if env.get(name):
            values[setting] = env[name]
    return values


def _has_api_key(wandb: Any) -> bool:
    """`WANDB_API_KEY`, or a key that `wandb login` saved (`~/.netrc`) for the server."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    base_url = os.environ.get("WANDB_BASE_URL") or wandb.Settings.model_fields["base_url"].default
    try:
        saved = netrc.netrc(os.environ.get("NETRC") or None)
        return saved.authenticators(urlparse(base_url).hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _describe(error: Exception) -> str:
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
