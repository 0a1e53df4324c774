"""The model: a base in 4-bit NF4 (bitsandbytes) or full precision, plus a LoRA adapter (peft).

The loss runs the decoder once and the output layer only on the positions that carry loss,
so no full `[rows, length, vocabulary]` logits tensor is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trainer.data import IGNORE, Batch
from trainer.spec import JobSpec


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_base(path: str, quantization: str, device: torch.device) -> Any:
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = compute_dtype(device)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
    if quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype,
        )
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization != "nf4":
        model.to(device)
    model.config.use_cache = False
    for module in model.modules():
        # bitsandbytes repacks 4-bit weights in place for CPU inference the first time a module
        # runs in eval mode; evaluation between steps must leave the weights as training sees them.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_model(spec: JobSpec, device: torch.device, adapter_dir: str | None = None) -> Any:
    """The base model with a trainable LoRA adapter (fresh, or loaded from `adapter_dir`)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    base = load_base(spec.base_model.path, spec.quantization, device)
    if device.type == "cuda":
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    else:
        config = LoraConfig(
            r=spec.lora.r,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=spec.lora.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, config)
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.data = param.data.float()  # adapter weights train in fp32 whatever the base
    return model


@dataclass
class LossSums:
    """Summed over the tokens that carry loss, so batches and micro-batches add up exactly."""

    loss: torch.Tensor
    correct: int
    tokens: int


def loss_sums(model: Any, batch: Batch) -> LossSums:
    """Cross-entropy summed over the trained tokens of a batch, and how many were right."""
    base = model.get_base_model()
    hidden = base.get_decoder()(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
    ).last_hidden_state
    selected = batch.targets != IGNORE
    targets = batch.targets[selected]
    logits = base.get_output_embeddings()(hidden[selected]).float()
    loss = F.cross_entropy(logits, targets, reduction="sum")
    correct = int((logits.detach().argmax(-1) == targets).sum())
    return LossSums(loss, correct, int(targets.numel()))


def per_token_losses(model: Any, batch: Batch) -> torch.Tensor:
    """Per-position loss `[rows, length]` (0 where no target); for tests and diagnostics."""
    base = model.get_base_model()
    hidden = base.get_decoder()(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
    ).last_hidden_state
    logits = base.get_output_embeddings()(hidden).float()
    losses = F.cross_entropy(
        logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE, reduction="none"
    )
    return losses.view(batch.targets.shape)
