"""One contender's run, in its own process: Whetstone's trainer or TRL's `SFTTrainer`.

Each run trains one epoch on the same JSONL with the same model folder, LoRA settings
(r=16, alpha=32, all linear layers, dropout 0), quantisation, learning rate and schedule,
and writes a JSON result: wall time, peak RSS, per-step losses, and the loss of its final
adapter on a held-out set, measured by the same code for every contender.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contracts import spec as spec_defaults
from contracts.chat import ChatTokenizer
from trainer import basemodel

CONTENDERS = ("whetstone", "trl", "trl-packing")


@dataclass(frozen=True)
class Setup:
    """What every contender trains on; written by the parent as JSON."""

    model_dir: str
    train_file: str
    eval_file: str
    max_seq_len: int
    batch_size: int
    quantization: str  # nf4 | none
    seed: int
    work: str


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bnb_config() -> Any:
    """The NF4 settings Whetstone uses on the CPU (trainer.model.load_base)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
        bnb_4bit_quant_storage=torch.float32,
    )


def load_base(setup: Setup) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32, "attn_implementation": "sdpa"}
    if setup.quantization == "nf4":
        kwargs["quantization_config"] = bnb_config()
        kwargs["device_map"] = {"": "cpu"}
    return AutoModelForCausalLM.from_pretrained(setup.model_dir, **kwargs)


# --- Whetstone --------------------------------------------------------------------------


class _Recorder:
    """A progress channel that keeps the messages and always answers `continue`."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: Any) -> str:  # a `contracts.messages.Message`
        self.messages.append(message.model_dump(mode="json"))
        return "continue"


def run_whetstone(setup: Setup) -> tuple[list[float], Path]:
    from contracts.spec import JobSpec
    from trainer.loop import train
    from trainer.progress import Progress

    out = Path(setup.work) / "whetstone-out"
    spec = JobSpec.model_validate({
        "job_id": "ftjob-bench",
        "base_model": {"name": "bench", "path": setup.model_dir, "max_seq_len": setup.max_seq_len},
        "training_file": Path(setup.train_file).resolve().as_uri(),
        "method": {"type": "supervised", "supervised": {
            "n_epochs": 1, "batch_size": setup.batch_size, "learning_rate_multiplier": 1.0}},
        "quantization": setup.quantization,
        "seed": setup.seed,
        "output": out.resolve().as_uri() + "/",
        "checkpoint_every_steps": 10**9,
    })  # fmt: skip
    recorder = _Recorder()
    result = train(spec, Progress(recorder))  # type: ignore[arg-type]
    if result.status != "succeeded":
        raise RuntimeError(f"whetstone run ended {result.status}")
    losses = [float(m["train_loss"]) for m in result.metrics]
    return losses, out / "final" / "adapter"


# --- TRL --------------------------------------------------------------------------------


def training_template() -> str:
    """Whetstone's chat template with TRL's `{% generation %}` markers around what an
    assistant message adds (content, tool calls, end token): the same tokens Whetstone
    trains on. It renders the same text."""
    head = "{{- '<|assistant|>' + text -}}"
    tail = "{%- endfor -%}{{- '<|end|>' -}}{%- elif m['role'] == 'tool' -%}"
    template = basemodel.CHAT_TEMPLATE
    assert template.count(head) == 1 and template.count(tail) == 1
    template = template.replace(head, "{{- '<|assistant|>' -}}{% generation %}{{- text -}}")
    return template.replace(tail, tail.replace("{%- elif", "{% endgeneration %}{%- elif"))


def trl_steps(setup: Setup, packing: bool, n_examples: int, tokens: int) -> tuple[int, int]:
    """(per-device batch, optimiser steps): examples per step without packing; with packing,
    as many packed rows per step as gives about the same tokens per step."""
    whetstone_steps = -(-n_examples // setup.batch_size)
    if not packing:
        return setup.batch_size, whetstone_steps
    rows = -(-tokens // setup.max_seq_len)  # about what best-fit-decreasing packing yields
    per_step = max(1, round(rows / whetstone_steps))
    return per_step, -(-rows // per_step)


def run_trl(setup: Setup, packing: bool, n_examples: int, tokens: int) -> tuple[list[float], Path]:
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(setup.model_dir)
    tokenizer.chat_template = training_template()
    dataset = load_dataset("json", data_files=setup.train_file, split="train")
    batch, steps = trl_steps(setup, packing, n_examples, tokens)
    out = Path(setup.work) / ("trl-packing-out" if packing else "trl-out")
    config = SFTConfig(
        output_dir=str(out),
        num_train_epochs=1,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        learning_rate=spec_defaults.BASE_LEARNING_RATE,
        lr_scheduler_type="linear",
        warmup_steps=max(1, round(spec_defaults.WARMUP_FRACTION * steps)),
        weight_decay=spec_defaults.WEIGHT_DECAY,
        max_grad_norm=spec_defaults.MAX_GRAD_NORM,
        max_length=setup.max_seq_len,
        packing=packing,
        assistant_only_loss=True,
        bf16=False,  # fp32 compute on the CPU, as Whetstone
        gradient_checkpointing=False,  # Whetstone does not recompute on the CPU either
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=setup.seed,
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=load_base(setup),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return losses, out / "adapter"


# --- shared measurement -----------------------------------------------------------------


def heldout_loss(setup: Setup, adapter_dir: Path) -> float:
    """Mean loss on the assistant tokens of the held-out file, each example alone."""
    import torch.nn.functional as F
    from peft import PeftModel

    chat = ChatTokenizer.from_folder(setup.model_dir)
    # Train mode on purpose (nothing here drops out): in eval mode bitsandbytes repacks NF4
    # weights for its CPU inference kernel, which refuses widths that are not a multiple of 64.
    model = PeftModel.from_pretrained(load_base(setup), str(adapter_dir)).train()
    total, count = 0.0, 0
    with torch.no_grad():
        for line in Path(setup.eval_file).read_text(encoding="utf-8").splitlines():
            for encoded in chat.encode(json.loads(line)).sequences:
                ids = torch.tensor([encoded.input_ids])
                targets = torch.tensor(encoded.input_ids[1:])
                mask = torch.tensor(encoded.loss_mask[1:])
                logits = model(input_ids=ids).logits[0, :-1].float()
                losses = F.cross_entropy(logits, targets, reduction="none")
                total += float(losses[mask].sum())
                count += int(mask.sum())
    return total / max(1, count)


def run_contender(name: str, setup: Setup, n_examples: int, tokens: int) -> dict[str, Any]:
    """Train, time it, and measure; the result the parent tabulates."""
    torch.manual_seed(setup.seed)
    started = time.perf_counter()
    if name == "whetstone":
        losses, adapter = run_whetstone(setup)
    else:
        losses, adapter = run_trl(setup, name == "trl-packing", n_examples, tokens)
    seconds = time.perf_counter() - started
    rss = peak_rss_mb()
    return {
        "name": name,
        "seconds": seconds,
        "peak_rss_mb": rss,
        "tokens": tokens,
        "tokens_per_second": tokens / seconds,
        "losses": losses,
        "heldout_loss": heldout_loss(setup, adapter),
        "threads": torch.get_num_threads(),
    }
