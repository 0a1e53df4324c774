"""The supervised fine-tuning recipe: one job from its JobSpec to the final adapter.

    result = train(spec, Progress(StdoutChannel()))

Setup (data, model, optimiser, resume), then steps of `batch_size` examples (packed into
rows on CUDA, one row each on the CPU: `trainer.data`), with evaluation, metrics,
checkpoints and stop requests between steps, then the final adapter and the metrics CSV.
Heartbeats run from before setup to after the final upload, so a slow model load or a slow
finish keeps the attempt's lease; `log` messages say what setup and finish are doing.
Plain functions; nothing hides in a framework trainer.
"""

from __future__ import annotations

import csv
import io
import math
import random
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from contracts import layout
from contracts import spec as spec_defaults
from contracts.chat import ChatTokenizer, Encoded
from contracts.messages import Checkpoint, Finished, Metrics, Started, StepMetrics
from contracts.spec import JobSpec
from contracts.store import ObjectStore, open_store
from trainer.checkpoints import (
    Position,
    fetch_adapter,
    fetch_checkpoint,
    prune,
    save_checkpoint,
    set_rng_state,
)
from trainer.data import Batch, DataError, epoch_batches, load_examples, micro_batches
from trainer.model import LossSums, load_model, loss_sums, pick_device
from trainer.progress import Progress
from trainer.wandb_log import start_wandb

EVAL_EXAMPLES = 64


@dataclass
class Result:
    status: str  # succeeded | cancelled | paused
    step: int
    total_steps: int
    trained_tokens: int
    seconds: float
    tokens_per_second: float
    peak_memory_mb: float
    train_loss: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    adapter_key: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """Everything one attempt holds while it trains."""

    spec: JobSpec
    progress: Progress
    store: ObjectStore
    device: torch.device
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train: list[Encoded]
    valid: list[Encoded]
    pad_id: int
    position: Position
    total_steps: int
    micro_batch_tokens: int
    last: StepMetrics = field(default_factory=StepMetrics)  # of the latest step
    learning_rate: float = 0.0  # of the latest step


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
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
    train = load_examples(spec.training_file, chat, max_len, "training_file", endpoint_url)
    progress.log(f"Tokenized {_count(train, 'training')}")
    valid = []
    if spec.validation_file:
        valid = load_examples(spec.validation_file, chat, max_len, "validation_file", endpoint_url)
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
    optimizer = torch.optim.AdamW(
        params, lr=hp.peak_learning_rate, weight_decay=spec_defaults.WEIGHT_DECAY
    )
    scheduler = make_scheduler(optimizer, total_steps)
    position = Position()
    if restored:
        optimizer.load_state_dict(restored.training_state["optimizer"])
        scheduler.load_state_dict(restored.training_state["scheduler"])
        set_rng_state(restored.training_state["rng"])
        position = restored.position
    pad_id = chat.tokenizer.token_to_id(chat.special.get("pad_token", "")) or 0
    return Run(
        spec, progress, open_store(spec.output, endpoint_url), device, model, optimizer,
        scheduler, train, valid, pad_id, position, total_steps, micro_batch_tokens,
    )  # fmt: skip


def _count(examples: list[Encoded], kind: str) -> str:
    tokens = sum(len(e) for e in examples)
    return f"{len(examples)} {kind} example{'s' if len(examples) != 1 else ''} ({tokens:,} tokens)"


def load_model_or_fail(spec: JobSpec, device: torch.device, adapter_dir: str | None) -> Any:
    """`load_model`, with target modules the model does not have as a bad-input error."""
    try:
        return load_model(spec, device, adapter_dir)
    except ValueError as e:
        if "Target modules" not in str(e):
            raise
        modules = spec.lora.target_modules
        raise DataError(
            f"lora.target_modules {modules}: base model {spec.base_model.name} has no such module",
            "invalid_lora_target_modules",
            "lora.target_modules",
        ) from e


def evaluate(run: Run, examples: list[Encoded]) -> tuple[float, float]:
    """Mean loss and token accuracy over `examples` (no gradients, no RNG used)."""
    run.model.eval()
    total = LossSums(torch.zeros(()), 0, 0)
    with torch.no_grad():
        for batch in batches_of(run, examples, list(range(len(examples)))):
            sums = loss_sums(run.model, batch.to(run.device))
            total = LossSums(total.loss + sums.loss.cpu(), total.correct + sums.correct,
                             total.tokens + sums.tokens)  # fmt: skip
    run.model.train()
    return float(total.loss) / max(1, total.tokens), total.correct / max(1, total.tokens)


def batches_of(run: Run, examples: list[Encoded], indices: list[int]) -> list[Batch]:
    """Micro-batches of `indices`: packed rows on CUDA, one example each on the CPU."""
    return micro_batches(
        examples, indices, run.spec.base_model.max_seq_len, run.pad_id,
        run.micro_batch_tokens, packed=run.device.type == "cuda",
    )  # fmt: skip


def train_step(run: Run, indices: list[int]) -> tuple[float, float, int]:
    """One optimiser step on the examples `indices`: (loss, token accuracy, tokens seen)."""
    batches = batches_of(run, run.train, indices)
    trained = sum(b.trained_tokens for b in batches)
    loss_sum, correct, tokens = 0.0, 0, 0
    for batch in batches:
        sums = loss_sums(run.model, batch.to(run.device))
        (sums.loss / trained).backward()
        loss_sum += float(sums.loss.detach())
        correct += sums.correct
        tokens += batch.tokens
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, spec_defaults.MAX_GRAD_NORM)
    run.optimizer.step()
    run.learning_rate = float(run.optimizer.param_groups[0]["lr"])
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss_sum / trained, correct / trained, tokens


def checkpoint(run: Run, kind: Literal["epoch", "step"]) -> None:
    folder = save_checkpoint(run.store, run.model, run.optimizer, run.scheduler, run.position, kind)
    prune(run.store, keep_step=run.position.step)
    run.progress.send(Checkpoint(
        step=run.position.step, epoch=run.position.epoch_number, kind=kind,
        key=layout.job_prefix(run.spec.job_id) + folder, url=run.store.key_url(folder),
        metrics=run.last,
    ))  # fmt: skip


def metrics_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=layout.METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in layout.METRICS_COLUMNS})
    return out.getvalue().encode()


def record_step(run: Run, loss: float, accuracy: float, tokens_per_second: float) -> None:
    spec, step = run.spec, run.position.step
    valid_loss = valid_accuracy = None
    if run.valid and (step % spec.eval_every_steps == 0):
        valid_loss, valid_accuracy = evaluate(run, run.valid[:EVAL_EXAMPLES])
    run.last = StepMetrics(
        train_loss=loss, train_mean_token_accuracy=accuracy,
        valid_loss=valid_loss, valid_mean_token_accuracy=valid_accuracy,
    )  # fmt: skip
    run.position.metrics_rows.append({
        "step": step, "train_loss": round(loss, 6), "train_accuracy": round(accuracy, 6),
        "valid_loss": None if valid_loss is None else round(valid_loss, 6),
        "valid_mean_token_accuracy": None if valid_accuracy is None else round(valid_accuracy, 6),
    })  # fmt: skip
    if step % spec.metrics_every_steps == 0 or valid_loss is not None:
        run.progress.send(Metrics(
            step=step, total_steps=run.total_steps, **run.last.metric_values(),
            tokens_per_second=round(tokens_per_second, 1),
            peak_memory_mb=round(peak_memory_mb(run.device), 1),
            learning_rate=run.learning_rate,
        ))  # fmt: skip


def train_epochs(run: Run) -> str:
    """Train from the current position to the end; `succeeded`, `cancelled` or `paused`."""
    spec, position, hp = run.spec, run.position, run.spec.hyperparameters
    while position.epoch < hp.n_epochs:
        batches = epoch_batches(len(run.train), hp.batch_size, spec.seed, position.epoch)
        while position.batch < len(batches):
            started = time.perf_counter()
            loss, accuracy, tokens = train_step(run, batches[position.batch])
            position.batch += 1
            position.step += 1
            position.trained_tokens += tokens
            run.progress.step = position.step
            record_step(run, loss, accuracy, tokens / max(1e-9, time.perf_counter() - started))
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
            if run.progress.action == "pause":
                return "paused"
            if run.progress.action == "cancel":
                return "cancelled"
            if epoch_end:
                break
    return "succeeded"


def finish(run: Run, result: Result) -> None:
    """Final adapter, metrics CSV, full validation, and the `finished` message."""
    if run.valid:
        run.progress.log(f"Evaluating the final model on {_count(run.valid, 'validation')}")
        loss, accuracy = evaluate(run, run.valid)
        result.full_valid_loss, result.full_valid_mean_token_accuracy = loss, accuracy
    run.progress.log("Saving the final adapter")
    with tempfile.TemporaryDirectory(prefix="whetstone-final-") as tmp:
        run.model.save_pretrained(tmp)
        run.store.delete_prefix(layout.FINAL_ADAPTER)
        run.store.upload_dir(Path(tmp), layout.FINAL_ADAPTER)
    run.store.put_bytes(layout.METRICS, metrics_csv(run.position.metrics_rows))
    result.adapter_key = layout.final_adapter_prefix(run.spec.job_id)
    run.progress.send(Finished(
        trained_tokens=run.position.trained_tokens, adapter_key=result.adapter_key,
        metrics_key=layout.metrics_key(run.spec.job_id), full_valid_loss=result.full_valid_loss,
        full_valid_mean_token_accuracy=result.full_valid_mean_token_accuracy,
    ))  # fmt: skip


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
