"""The benchmark's model folder and chat dataset, built in code and deterministic.

The model reuses the tokenizer and chat template of `trainer.basemodel` (a byte-level BPE
with a 2k vocabulary) and, for `30m`, replaces the tiny weights with a Llama-shaped model of
about 30M parameters (head_dim 64, random init from a fixed seed).

The dataset is OpenAI chat JSONL with a heavy-tailed length mix: target lengths are drawn
from a lognormal (median ~150 tokens) and clipped to `max_seq_len`, so most examples are
short and a few are close to the limit. Text comes from a word-bigram chain over the
trainer's built-in corpus, so there is something to learn and the loss goes down.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from contracts.chat import ChatTokenizer
from trainer import basemodel

SEED = 20260
MEDIAN_TOKENS = 150
SIGMA = 1.0
MIN_TOKENS = 24

MODEL_SIZES: dict[str, dict[str, int] | None] = {
    "tiny": None,  # trainer.basemodel's own config: hidden 128, 2 layers
    "30m": {
        "hidden_size": 512,
        "intermediate_size": 1408,
        "num_hidden_layers": 9,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
    },
}


def make_model(path: Path, size: str, max_seq_len: int) -> int:
    """Write the model folder for `size` at `path`; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    basemodel.make_base_model(path)
    config = LlamaConfig.from_pretrained(path)
    shape = MODEL_SIZES[size]
    if shape is not None:
        for key, value in shape.items():
            setattr(config, key, value)
    config.max_position_embeddings = max(config.max_position_embeddings, max_seq_len)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.do_sample = False
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


class _Words:
    """A word-bigram chain over the built-in corpus."""

    def __init__(self, rng: random.Random) -> None:
        text = basemodel.CORPUS.read_text(encoding="utf-8")
        words = re.findall(r"[A-Za-z']+|[.,!?]", text)
        self.rng = rng
        self.next: dict[str, list[str]] = defaultdict(list)
        for a, b in zip(words, words[1:], strict=False):
            self.next[a].append(b)
        self.starts = [b for a, b in zip(words, words[1:], strict=False) if a == "."]

    def text(self, n_words: int) -> str:
        word = self.rng.choice(self.starts)
        out = [word]
        for _ in range(n_words - 1):
            word = self.rng.choice(self.next.get(word) or self.starts)
            out.append(word)
        return re.sub(r" ([.,!?])", r"\1", " ".join(out))


def _example(words: _Words, rng: random.Random, target: int) -> dict[str, Any]:
    """One conversation of roughly `target` tokens (about 1.05 tokens per word here)."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": words.text(rng.randint(5, 15))})
    turns = 1 if target < 300 or rng.random() < 0.5 else rng.randint(2, 3)
    budget = max(8, int(target / 1.05) - 6 * turns)
    for _ in range(turns):
        user = max(3, int(budget / turns * rng.uniform(0.15, 0.4)))
        answer = max(3, budget // turns - user)
        messages.append({"role": "user", "content": words.text(user)})
        messages.append({"role": "assistant", "content": words.text(answer)})
    return {"messages": messages}


def _fit(chat: ChatTokenizer, example: dict[str, Any], max_seq_len: int) -> dict[str, Any]:
    """Shorten the last answer until the whole example fits in `max_seq_len` tokens."""
    while chat.count_tokens(example) > max_seq_len:
        last = example["messages"][-1]
        words = last["content"].split(" ")
        over = chat.count_tokens(example) - max_seq_len
        last["content"] = " ".join(words[: max(1, len(words) - max(1, int(over / 1.0)))])
    return example


def make_dataset(
    path: Path, model_dir: Path, n_examples: int, max_seq_len: int, seed: int = SEED
) -> dict[str, float]:
    """Write `n_examples` chat lines to `path`; returns token statistics of the file."""
    rng = random.Random(seed)
    words = _Words(rng)
    chat = ChatTokenizer.from_folder(model_dir)
    lengths = []
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n_examples):
            target = int(rng.lognormvariate(math.log(MEDIAN_TOKENS), SIGMA))
            target = min(max(target, MIN_TOKENS), max_seq_len - 8)
            example = _fit(chat, _example(words, rng, target), max_seq_len)
            lengths.append(chat.count_tokens(example))
            f.write(json.dumps(example) + "\n")
    lengths.sort()
    return {
        "examples": len(lengths),
        "tokens": sum(lengths),
        "mean": sum(lengths) / len(lengths),
        "median": lengths[len(lengths) // 2],
        "p95": lengths[int(len(lengths) * 0.95)],
        "max": lengths[-1],
        "near_max": sum(1 for n in lengths if n > 0.75 * max_seq_len),
    }
