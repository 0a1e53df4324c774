"""The fine-tuning recipe, supervised, DPO or reinforcement: one job from its JobSpec to the
final adapter.

    result = train(spec, Progress(StdoutChannel()))

Setup (data, model, optimiser, resume: a `trainer.run.Run`), then steps of `batch_size`
examples (a supervised job's through `trainer.supervised`: packed into rows on CUDA, one row
each on the CPU), with evaluation, metrics, checkpoints and stop requests between steps, then
the final adapter and the metrics CSV (`trainer.metrics_csv`).
A DPO job (`method.type == "dpo"`) trains on preference pairs through `trainer.dpo`
(`Run.prefs`: its reference, loss and evaluation), in the same steps, checkpoints (which
keep the reference log-probs), resume and stop requests; its metrics are its loss, reward
margin and reward accuracy.
A reinforcement job (`method.type == "reinforcement"`) samples, grades and trains on
reinforcement prompts through `trainer.reinforce` (`Run.rl`), in the same steps; its metrics
are its loss and rewards.
Heartbeats run from before setup to after the final upload, so a slow model load or a slow
finish keeps the attempt's lease; `log` messages say what setup and finish are doing.
Plain functions; nothing hides in a framework trainer.
"""

from __future__ import annotations

import math
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from contracts import layout
from contracts import spec as spec_defaults
from contracts.chat import ChatTokenizer, EncodedExample
from contracts.messages import Checkpoint, Finished, Metrics, Started, StepMetrics
from contracts.spec import JobSpec
from contracts.store_url import open_store
from trainer import supervised
from trainer.checkpoints import (
    Position,
    fetch_adapter,
    fetch_checkpoint,
    kept_checkpoints,
    prune,
    save_checkpoint,
    set_rng_state,
)
from trainer.data import DataError, epoch_batches, load_numbered_examples
from trainer.dpo import load_numbered_pairs
from trainer.dpo import start as start_dpo
from trainer.grpo import prompt_loader
from trainer.metrics_csv import csv_columns, csv_row, metrics_csv
from trainer.model import UnknownTargetModules, load_model, pick_device
from trainer.outliers import example_losses, top_losses
from trainer.progress import Progress
from trainer.reinforce import start as start_reinforcement
from trainer.run import Result, Run, Status
from trainer.wandb_log import start_wandb

EVAL_EXAMPLES = 64


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, round(spec_defaults.WARMUP_FRACTION * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def setup(
    spec: JobSpec, progress: Progress, endpoint_url: str | None, micro_batch_tokens: int, work: Path
) -> Run:
    """Read the data, build the model and optimiser, and restore a checkpoint if asked."""
    max_len = spec.base_model.max_seq_len
    chat = ChatTokenizer.from_folder(spec.base_model.path)
    load: Any = {"dpo": load_numbered_pairs, "supervised": load_numbered_examples}.get(
        spec.method.type
    ) or prompt_loader(spec)
    held_out = frozenset(spec.held_out_lines)
    numbered = load(
        spec.training_file, chat, max_len, "training_file", endpoint_url, skip_lines=held_out
    )
    train_lines, train = [n for n, _ in numbered], [e for _, e in numbered]
    progress.log(f"Tokenized {_count(train, 'training')}")
    if held_out:
        progress.log(f"{len(held_out)} lines of the training file held out for evaluation")
    valid: list[Any] = []
    if spec.validation_file:
        numbered = load(spec.validation_file, chat, max_len, "validation_file", endpoint_url)
        valid = [e for _, e in numbered]
        progress.log(f"Tokenized {_count(valid, 'validation')}")
    hp = spec.hyperparameters
    total_steps = hp.n_epochs * math.ceil(len(train) / hp.batch_size)
    restored, adapter_dir = None, None
    if spec.resume_from:
        restored = fetch_checkpoint(spec.resume_from, work / "resume", endpoint_url)
        adapter_dir = restored.adapter_dir
    elif spec.init_adapter:
        adapter_dir = fetch_adapter(spec.init_adapter, work / "init", endpoint_url)
    seed_everything(spec.seed)
    device = pick_device()
    weights = "4-bit NF4" if spec.quantization == "nf4" else "full precision"
    progress.log(f"Loading base model {spec.base_model.name} ({weights}, on {device.type})")
    loading = time.perf_counter()
    model = load_model_or_fail(spec, device, str(adapter_dir) if adapter_dir else None)
    params = [p for p in model.parameters() if p.requires_grad]
    progress.log(
        f"Loaded base model {spec.base_model.name} in {time.perf_counter() - loading:.1f} s; "
        f"{sum(p.numel() for p in params):,} trainable LoRA parameters"
    )
    optimizer = torch.optim.AdamW(params, lr=hp.peak_learning_rate, weight_decay=hp.weight_decay)
    scheduler = make_scheduler(optimizer, total_steps)
    position = Position()
    if restored:
        optimizer.load_state_dict(restored.training_state["optimizer"])
        scheduler.load_state_dict(restored.training_state["scheduler"])
        set_rng_state(restored.training_state["rng"])
        position = restored.position
    pad_id = chat.tokenizer.token_to_id(chat.special.get("pad_token", "")) or 0
    run = Run(
        spec, progress, open_store(spec.output, endpoint_url), device, model, optimizer,
        scheduler, train, valid, pad_id, position, total_steps, micro_batch_tokens, train_lines,
    )  # fmt: skip
    if spec.method.type == "dpo":
        run.prefs = start_dpo(run, restored.training_state if restored else None)
    if spec.method.type == "reinforcement":
        run.rl = start_reinforcement(run, chat, restored.training_state if restored else None)
    return run


def _count(examples: list[Any], kind: str) -> str:
    tokens = sum(len(e) for e in examples)
    count = f"{len(examples)} {kind} example{'s' if len(examples) != 1 else ''}"
    sequences = sum(len(e.sequences) for e in examples if isinstance(e, EncodedExample))
    if sequences > len(examples):  # a chat template that is not prefix-stable
        return f"{count} ({sequences} sequences, {tokens:,} tokens)"
    return f"{count} ({tokens:,} tokens)"


def load_model_or_fail(spec: JobSpec, device: torch.device, adapter_dir: str | None) -> Any:
    """`load_model`, with target modules the model does not have as a bad-input error."""
    try:
        return load_model(spec, device, adapter_dir)
    except UnknownTargetModules as e:
        modules = spec.lora.target_modules
        raise DataError(
            f"lora.target_modules {modules}: base model {spec.base_model.name} has no such module",
            "invalid_lora_target_modules",
            "lora.target_modules",
        ) from e


def evaluate(run: Run, examples: list[Any]) -> dict[str, float]:
    """`valid_*` metrics over `examples` (no gradients, no RNG used): mean loss and token
    accuracy; for DPO, mean loss, reward margin and reward accuracy."""
    if run.prefs is not None:
        return run.prefs.evaluate(run, examples)
    return supervised.evaluate(run, examples)


def train_step(run: Run, indices: list[int]) -> tuple[dict[str, float], int]:
    """One optimiser step on the examples `indices`: its `train_*` metrics, tokens seen."""
    if run.prefs is not None:
        values, tokens = run.prefs.gradients(run, indices)
    elif run.rl is not None:
        values, tokens = run.rl.gradients(run, indices)
    else:
        values, tokens = supervised.gradients(run, indices)
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, spec_defaults.MAX_GRAD_NORM)
    run.optimizer.step()
    run.learning_rate = float(run.optimizer.param_groups[0]["lr"])
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return values, tokens


def checkpoint(run: Run, kind: Literal["epoch", "step"]) -> None:
    method = run.prefs if run.prefs is not None else run.rl  # what DPO or RL adds to resume
    folder = save_checkpoint(
        run.store, run.model, run.optimizer, run.scheduler, run.position, kind,
        extra=method.state() if method is not None else None,
    )  # fmt: skip
    step, keep_epochs = run.position.step, run.spec.keep_checkpoints
    kept = kept_checkpoints(run.store, keep_step=step, keep_epochs=keep_epochs)
    # Reported before older ones are deleted: a trainer killed in between leaves the service's
    # latest checkpoint (the one it resumes from) on the store.
    run.progress.send(Checkpoint(
        step=step, epoch=run.position.epoch_number, kind=kind,
        key=layout.job_prefix(run.spec.job_id) + folder, url=run.store.key_url(folder),
        metrics=run.last, kept_steps=tuple(kept),
    ))  # fmt: skip
    prune(run.store, keep_step=step, keep_epochs=keep_epochs)


def record_step(run: Run, train_values: dict[str, float], tokens_per_second: float) -> None:
    spec, step = run.spec, run.position.step
    valid: dict[str, float] = {}
    if run.rl is not None:  # its validation samples every `eval_interval` steps
        run.last = run.rl.step_metrics(run, train_values)
    else:
        if run.valid and (step % spec.eval_every_steps == 0):
            valid = evaluate(run, run.valid[:EVAL_EXAMPLES])
        run.last = StepMetrics(**train_values, **valid)
    run.position.metrics_rows.append(csv_row(spec, step, run.last))
    if step % spec.metrics_every_steps == 0 or valid or run.last.valid_reward_mean is not None:
        run.progress.send(Metrics(
            step=step, total_steps=run.total_steps, **run.last.model_dump(),
            tokens_per_second=round(tokens_per_second, 1),
            peak_memory_mb=round(peak_memory_mb(run.device), 1),
            learning_rate=run.learning_rate,
        ))  # fmt: skip


def train_epochs(run: Run) -> Status:
    """Train from the current position to the end; `succeeded`, `cancelled` or `paused`."""
    spec, position, hp = run.spec, run.position, run.spec.hyperparameters
    while position.epoch < hp.n_epochs:
        batches = epoch_batches(len(run.train), hp.batch_size, spec.seed, position.epoch)
        while position.batch < len(batches):
            started = time.perf_counter()
            values, tokens = train_step(run, batches[position.batch])
            position.batch += 1
            position.step += 1
            position.trained_tokens += tokens
            run.progress.step = position.step
            record_step(run, values, tokens / max(1e-9, time.perf_counter() - started))
            if run.progress.action == "cancel":
                return "cancelled"
            epoch_end = position.batch == len(batches)
            if epoch_end:
                position.epoch += 1
                position.batch = 0
            if epoch_end or position.step % spec.checkpoint_every_steps == 0:
                checkpoint(run, "epoch" if epoch_end else "step")
            elif run.progress.action == "pause":
                checkpoint(run, "step")
            if (stopped := stop_requested(run.progress)) is not None:
                return stopped
            if epoch_end:
                break
    return "succeeded"


def stop_requested(progress: Progress) -> Literal["paused", "cancelled"] | None:
    """How a stop request ends the run, read afresh: the checkpoint's report, or a heartbeat
    while it was written, may have brought one since the step's own check."""
    if progress.action == "pause":
        return "paused"
    if progress.action == "cancel":
        return "cancelled"
    return None


def finish(run: Run, result: Result) -> None:
    """Final adapter, metrics CSV, full validation, and the `finished` message."""
    if run.valid and run.rl is None:
        run.progress.log(f"Evaluating the final model on {_count(run.valid, 'validation')}")
        values = evaluate(run, run.valid)
        result.full_valid_loss = values["valid_loss"]
        result.full_valid_mean_token_accuracy = values.get("valid_mean_token_accuracy")
    run.progress.log("Saving the final adapter")
    with tempfile.TemporaryDirectory(prefix="whetstone-final-") as tmp:
        run.model.save_pretrained(tmp)
        run.store.delete_prefix(layout.FINAL_ADAPTER)
        run.store.upload_dir(Path(tmp), layout.FINAL_ADAPTER)
    run.store.put_bytes(
        layout.METRICS, metrics_csv(run.position.metrics_rows, csv_columns(run.spec))
    )
    if run.spec.method.type == "supervised":  # outliers: the supervised examples of highest loss
        run.store.put_bytes(layout.EXAMPLE_LOSSES, top_losses(run.train_lines, final_losses(run)))
    result.adapter_key = layout.final_adapter_prefix(run.spec.job_id)
    run.progress.send(Finished(
        trained_tokens=run.position.trained_tokens, adapter_key=result.adapter_key,
        metrics_key=layout.metrics_key(run.spec.job_id), full_valid_loss=result.full_valid_loss,
        full_valid_mean_token_accuracy=result.full_valid_mean_token_accuracy,
    ))  # fmt: skip


def final_losses(run: Run) -> list[float]:
    """Each training example's loss in the last epoch (`trainer.outliers`); an exact pass
    under the final model for any the epoch has none of (a resume state without them)."""
    known = run.position.example_losses
    missing = [i for i in range(len(run.train)) if str(i) not in known]
    exact: dict[int, float] = {}
    if missing:
        run.progress.log(f"Computing the final loss of {len(missing)} training examples")
        exact = example_losses(
            run.model, run.train, missing, run.device, run.pad_id, run.micro_batch_tokens,
            run.spec.base_model.max_seq_len,
        )  # fmt: skip
    return [exact[i] if i in exact else known[str(i)] for i in range(len(run.train))]


def train(
    spec: JobSpec,
    progress: Progress,
    endpoint_url: str | None = None,
    micro_batch_tokens: int | None = None,
) -> Result:
    """Run one job (or resume it) to the end, a cancel, or a pause. Raises `DataError`.

    `micro_batch_tokens` overrides the JobSpec's. Heartbeats cover setup (reading the data,
    loading the model: minutes for a large one), the epochs and the finish (full validation,
    the final adapter's upload). A job with a W&B integration logs its metrics there too
    (`trainer.wandb_log`); W&B never stops the training."""
    progress.start_heartbeat()
    tracker = start_wandb(spec, progress)
    exit_code = 1
    try:
        result = _train(spec, progress, endpoint_url, micro_batch_tokens or spec.micro_batch_tokens)
        exit_code = 0
        return result
    finally:
        if tracker is not None:
            tracker.finish(exit_code)
        progress.stop_heartbeat()


def _train(
    spec: JobSpec, progress: Progress, endpoint_url: str | None, micro_batch_tokens: int
) -> Result:
    with tempfile.TemporaryDirectory(prefix="whetstone-train-") as work:
        run = setup(spec, progress, endpoint_url, micro_batch_tokens, Path(work))
    resumed = run.position.step if spec.resume_from else None
    progress.send(
        Started(total_steps=run.total_steps, attempt=spec.attempt, resumed_from_step=resumed)
    )
    run.model.train()
    tokens_before, started = run.position.trained_tokens, time.perf_counter()
    # A cancel heard while the model loaded stops before the first step.
    status = "cancelled" if progress.action == "cancel" else train_epochs(run)
    seconds = time.perf_counter() - started
    tokens = run.position.trained_tokens - tokens_before
    result = Result(
        status=status, step=run.position.step, total_steps=run.total_steps,
        trained_tokens=run.position.trained_tokens, seconds=seconds,
        tokens_per_second=tokens / max(seconds, 1e-9), peak_memory_mb=peak_memory_mb(run.device),
        train_loss=run.last.train_loss, metrics=run.position.metrics_rows,
    )  # fmt: skip
    if status == "succeeded":
        finish(run, result)
    return result
