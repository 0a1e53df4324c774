"""Big-vocabulary model folders for the memory benchmark, built in code.

Gemma-3-shaped (`Gemma3TextConfig`, 262,144-token vocabulary) and Qwen-3-shaped
(`Qwen3Config`, 151,936-token vocabulary) tiny models: a few small layers under the real
vocabulary, so the output layer and its logits dominate memory as they do in the real small
models of these families. The tokenizer and chat template are `trainer.basemodel`'s (its
2k ids are valid ids of the larger vocabulary); weights random from a fixed seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer import basemodel

SEED = 20261

SHAPES: dict[str, dict[str, Any]] = {
    "gemma3": {
        "vocab_size": 262_144,
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 64,
        "sliding_window": 512,
    },
    "qwen3": {
        "vocab_size": 151_936,
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "tie_word_embeddings": True,
    },
}
LABELS = {"gemma3": "Gemma-3-shaped (262k vocab)", "qwen3": "Qwen-3-shaped (152k vocab)"}


def make_shaped_model(path: Path, family: str, max_seq_len: int) -> int:
    """Write a `family`-shaped model folder at `path`; returns its parameter count."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Qwen3Config, Qwen3ForCausalLM

    basemodel.make_base_model(path)
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        (path / name).unlink(missing_ok=True)
    special = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}  # basemodel's order
    common = {**SHAPES[family], **special, "max_position_embeddings": max(1024, max_seq_len)}
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        if family == "gemma3":
            model: Any = Gemma3ForCausalLM(Gemma3TextConfig(**common))
        else:
            model = Qwen3ForCausalLM(Qwen3Config(**common))
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.do_sample = False
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())
