"""The fp32 matmul floor of the benchmark's work: what no trainer of it can go below here.

Training LoRA on every linear layer of a frozen fp32 base, any trainer must, for every
trained token, multiply by each base weight twice: the forward `x @ W.T`, and the backward's
input gradient `dy @ W` (except in the first layer's q, k, v, gate and up projections, whose
input needs no gradient). `floor_seconds` times exactly those matmuls, on random tensors of
the real shapes, in the layout that is fastest here (one sequence per call, or every
sequence of a step in one call), in a process of its own with the threads training gets.
Nothing else a step needs is counted: attention, the output layer and loss, the adapters'
own matmuls, norms, activations, the optimiser. So a contender's wall time divided by the
floor bounds how much faster than it any trainer could be on this machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from contracts.chat import ChatTokenizer


def linear_shapes(config: Any) -> list[tuple[str, int, int]]:
    """(name, in, out) of one decoder layer's linear layers."""
    hidden = int(config.hidden_size)
    head_dim = int(getattr(config, "head_dim", None) or hidden // config.num_attention_heads)
    q = head_dim * int(config.num_attention_heads)
    kv = head_dim * int(config.num_key_value_heads)
    inter = int(config.intermediate_size)
    return [
        ("q", hidden, q), ("k", hidden, kv), ("v", hidden, kv), ("o", q, hidden),
        ("gate", hidden, inter), ("up", hidden, inter), ("down", inter, hidden),
    ]  # fmt: skip


FIRST_LAYER_NO_INPUT_GRADIENT = {"q", "k", "v", "gate", "up"}


def sequence_lengths(model_dir: str, train_file: str, max_seq_len: int) -> list[int]:
    chat = ChatTokenizer.from_folder(model_dir)
    return [
        len(sequence)
        for line in Path(train_file).read_text(encoding="utf-8").splitlines()
        if line.strip()
        for sequence in chat.check(json.loads(line), max_seq_len).sequences
    ]


def _matmuls(config: Any, rows: list[int]) -> float:
    """Seconds for the forward and input-gradient matmuls of every layer, a call per row."""
    shapes = linear_shapes(config)
    weights = {name: torch.randn(out, inp) for name, inp, out in shapes}
    started = time.perf_counter()
    for n in rows:
        inputs = {size: torch.randn(n, size) for _, size, _ in shapes}
        grads = {size: torch.randn(n, size) for _, _, size in shapes}
        for layer in range(int(config.num_hidden_layers)):
            for name, inp, out in shapes:
                torch.mm(inputs[inp], weights[name].t())
                if layer or name not in FIRST_LAYER_NO_INPUT_GRADIENT:
                    torch.mm(grads[out], weights[name])
    return time.perf_counter() - started


def floor_seconds(model_dir: str, train_file: str, max_seq_len: int, batch_size: int) -> float:
    """The fewer seconds of the two layouts: a call per sequence, or a call per step."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    config = getattr(config, "text_config", config)
    lengths = sequence_lengths(model_dir, train_file, max_seq_len)
    steps = [sum(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)]
    _matmuls(config, lengths[:batch_size])  # warm-up: the math library's first calls
    return min(_matmuls(config, lengths), _matmuls(config, steps))
