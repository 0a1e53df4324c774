"""The model: a base in 4-bit NF4 (bitsandbytes) or full precision, plus a LoRA adapter (peft).

The loss runs the decoder once and the output layer only on the positions that carry loss,
in chunks of at most `CHUNK_LOGITS` logits (128 positions of a 262k vocabulary), each chunk
checkpointed: with a 152k-262k vocabulary neither the forward nor the backward ever holds
more than one chunk's logits, never the
`[rows, length, vocabulary]` tensor a plain `model(labels=...)` builds. The output layer is
the model's own, logit transforms included (Gemma's final softcapping, Cohere's
`logit_scale`, Granite's `logits_scaling`), so the loss equals the model's own
`forward(labels=...)` loss; `load_model` checks that on a few tokens and refuses an
architecture whose logits it would get wrong, before any training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from contracts.spec import JobSpec
from trainer.data import IGNORE, Batch


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def attention_implementation(config: Any) -> str:
    """SDPA, except with attention-logit softcapping (Gemma 2), which SDPA silently skips:
    eager attention applies it, so training sees the model vLLM serves."""
    if getattr(config, "attn_logit_softcapping", None):
        return "eager"
    return "sdpa"


def load_base(path: str, quantization: str, device: torch.device) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    dtype = compute_dtype(device)
    attention = attention_implementation(AutoConfig.from_pretrained(path))
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attention}
    if quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype,
        )
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization != "nf4":
        # transformers' decorator on `to` hides its signature from the type checker.
        model.to(device)  # type: ignore[arg-type]
    model.config.use_cache = False
    for module in model.modules():
        # bitsandbytes repacks 4-bit weights in place for CPU inference the first time a module
        # runs in eval mode; evaluation between steps must leave the weights as training sees them.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False  # type: ignore[assignment]
    for param in model.parameters():
        param.requires_grad_(False)
    return model


class UnknownTargetModules(ValueError):
    """LoRA target modules of which the base model has none."""


def check_target_modules(model: Any, targets: list[str] | str) -> None:
    """Raise `UnknownTargetModules` when none of `targets` names a module of `model`, by
    peft's rule for a list: a module whose name is the target or ends in `.` + the target
    ("all-linear" is peft's to resolve: every model has linear layers)."""
    if isinstance(targets, str):
        return
    names = [name for name, _ in model.named_modules()]
    if not any(n == t or n.endswith("." + t) for t in targets for n in names):
        raise UnknownTargetModules(f"no module of the base model matches {targets}")


def load_model(spec: JobSpec, device: torch.device, adapter_dir: str | None = None) -> Any:
    """The base model with a trainable LoRA adapter (fresh, or loaded from `adapter_dir`)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    base = load_base(spec.base_model.path, spec.quantization, device)
    if device.type == "cuda":
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    else:
        check_target_modules(base, spec.lora.target_modules)
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
    check_output_head(model)
    return model


CHUNK_LOGITS = 2**25
"""Logits (fp32) held at once by the loss: 128 MiB, so 128 positions of a 262k vocabulary,
16k positions of a 2k one (`chunk_positions`)."""
MIN_CHUNK_POSITIONS = 128


def chunk_positions(vocab: int) -> int:
    """Positions per loss chunk: as many as `CHUNK_LOGITS` logits allow."""
    return max(MIN_CHUNK_POSITIONS, CHUNK_LOGITS // max(1, vocab))


@dataclass
class LossSums:
    """Summed over the tokens that carry loss, so batches and micro-batches add up exactly."""

    loss: torch.Tensor
    correct: int
    tokens: int
    per_token: torch.Tensor | None = None  # each trained token's loss, detached, in row-major order


def output_head(base: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Hidden states `[n, hidden]` -> fp32 logits `[n, vocab]`, as the model's own forward
    makes them after its decoder."""
    head = base.get_output_embeddings()
    config = base.config
    scale = getattr(config, "logit_scale", None)  # Cohere: logits * scale
    divisor = getattr(config, "logits_scaling", None)  # Granite: logits / scaling
    cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2: tanh(logits/cap) * cap

    def logits_of(hidden: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = head(hidden).float()
        if scale is not None:
            logits = logits * scale
        if divisor is not None:
            logits = logits / divisor
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return logits_of


def _decode(model: Any, batch: Batch) -> torch.Tensor:
    base = model.get_base_model()
    return base.get_decoder()(  # type: ignore[no-any-return]
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
    ).last_hidden_state


def _losses(
    logits_of: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits_of(hidden)
    losses = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none")
    return losses, logits.detach().argmax(-1) == targets


def chunked_losses(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    targets: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position cross-entropy `[n]` and whether the argmax was right `[n]`, `chunk`
    positions at a time. When gradients flow each chunk is checkpointed: backward recomputes
    its logits rather than keeping `[n, vocab]` of them alive from forward to backward."""
    save = torch.is_grad_enabled() and hidden.requires_grad
    losses, correct = [], []
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start : start + chunk], targets[start : start + chunk]
        if save:
            loss, right = checkpoint(_losses, logits_of, h, t, use_reentrant=False)
        else:
            loss, right = _losses(logits_of, h, t)
        losses.append(loss)
        correct.append(right)
    if not losses:  # no targets: an empty loss still attached to the graph
        empty = hidden[:0, 0].float()
        return empty, torch.zeros(0, dtype=torch.bool, device=hidden.device)
    return torch.cat(losses), torch.cat(correct)


def _chunk(model: Any, chunk: int | None) -> int:
    vocab = int(model.get_base_model().get_output_embeddings().weight.shape[0])
    return chunk or chunk_positions(vocab)


def loss_sums(model: Any, batch: Batch, chunk: int | None = None) -> LossSums:
    """Cross-entropy summed over the trained tokens of a batch, and how many were right."""
    hidden = _decode(model, batch)
    selected = batch.targets != IGNORE
    targets = batch.targets[selected]
    logits_of = output_head(model.get_base_model())
    losses, correct = chunked_losses(logits_of, hidden[selected], targets, _chunk(model, chunk))
    return LossSums(losses.sum(), int(correct.sum()), int(targets.numel()), losses.detach())


def per_token_losses(model: Any, batch: Batch, chunk: int | None = None) -> torch.Tensor:
    """Per-position loss `[rows, length]` (0 where no target); for tests and diagnostics."""
    hidden = _decode(model, batch)
    logits_of = output_head(model.get_base_model())
    flat, targets = hidden.flatten(0, 1), batch.targets.flatten()
    losses, _ = chunked_losses(logits_of, flat, targets, _chunk(model, chunk))
    return losses.view(batch.targets.shape)


class UnsupportedModel(ValueError):
    """The loss cannot reproduce this architecture's logits; refused before training."""


def check_output_head(model: Any, tokens: int = 8) -> None:
    """Refuse a model whose own logits `output_head` does not reproduce (an architecture
    that transforms its logits in a way this module does not know), on `tokens` tokens."""
    base = model.get_base_model()
    device = next(base.parameters()).device
    vocab = int(base.get_output_embeddings().weight.shape[0])
    generator = torch.Generator().manual_seed(0)  # the global RNG stays untouched
    ids = torch.randint(0, vocab, (1, tokens), generator=generator).to(device)
    was_training = base.training
    base.eval()
    try:
        with torch.no_grad():
            own = base(input_ids=ids, use_cache=False).logits[0].float()
            hidden = base.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state[0]
            ours = output_head(base)(hidden)
    finally:
        base.train(was_training)
    tolerance = 1e-3 + 2e-2 * float(own.abs().max())
    if float((own - ours).abs().max()) > tolerance:
        raise UnsupportedModel(
            f"{type(base).__name__}: the trainer's loss does not reproduce this architecture's "
            "logits (it knows final_logit_softcapping, logit_scale and logits_scaling), so "
            "training would optimise a different model; this architecture is not supported"
        )
