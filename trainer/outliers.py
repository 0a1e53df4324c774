"""The training examples the model still gets most wrong: each example's mean loss, the
highest first, with its line in the training file.

A mislabelled or unlearnable line shows up here (the evaluation report lists them). The
losses are the ones the last epoch computes anyway: each step's loss is per token before it
is summed, so splitting it by example costs nothing (no second pass over the data). An
example's loss is its mean token loss when the last epoch trained on it (its own step's
forward pass, in training mode, before that step's update); an example of several sequences
(`contracts.chat.EncodedExample`) has the mean over all its trained tokens. The resume state
carries the losses of the epoch so far, so a paused or crashed job reports the same outliers.

`example_losses` is the exact pass (no gradients, under the current model) for examples the
last epoch has no loss of (a resume from a checkpoint written before the losses were
carried): the same micro-batches as training, so no padding, the output layer only on the
trained positions.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from contracts.chat import Encoded, EncodedExample
from trainer.data import micro_batches, pack
from trainer.model import LossSums, loss_sums

TOP = 10
EXACT_CHUNK = 64  # examples laid out (packed on CUDA) together by the exact pass


def row_order(
    examples: list[EncodedExample], indices: list[int], max_seq_len: int, packed: bool
) -> list[tuple[int, Encoded]]:
    """The sequences of the examples `indices`, each with its example's index, in the order
    `trainer.data.micro_batches` lays them out (rows in order, sequences in a row in order):
    the order of the per-token losses of a step."""
    sequences = [(i, s) for i in indices for s in examples[i].sequences]
    if not packed:
        return sequences
    rows = pack({k: len(s) for k, (_, s) in enumerate(sequences)}, max_seq_len)
    return [sequences[k] for row in rows for k in row]


def token_losses(sums: LossSums) -> torch.Tensor:
    assert sums.per_token is not None
    return sums.per_token


def split_means(order: list[tuple[int, Encoded]], losses: torch.Tensor) -> dict[int, float]:
    """Per-example mean of `losses` (the per-token losses of the trained positions of the
    sequences in `order`), keyed by example index."""
    counts = [sum(sequence.loss_mask[1:]) for _, sequence in order]
    if sum(counts) != losses.numel():
        raise ValueError(f"{losses.numel()} token losses for {sum(counts)} trained tokens")
    parts = losses.detach().float().cpu().split(counts)  # type: ignore[no-untyped-call]
    totals: dict[int, float] = {}
    tokens: dict[int, int] = {}
    for (index, _), part, count in zip(order, parts, counts, strict=True):
        totals[index] = totals.get(index, 0.0) + float(part.sum())
        tokens[index] = tokens.get(index, 0) + count
    return {index: totals[index] / max(1, tokens[index]) for index in totals}


def example_losses(
    model: Any,
    examples: list[EncodedExample],
    indices: list[int],
    device: torch.device,
    pad_id: int,
    max_tokens: int,
    max_seq_len: int,
) -> dict[int, float]:
    """The mean loss over the trained tokens of the examples `indices` under `model` now."""
    packed = device.type == "cuda"
    out: dict[int, float] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for at in range(0, len(indices), EXACT_CHUNK):
                chunk = indices[at : at + EXACT_CHUNK]
                batches = micro_batches(examples, chunk, max_seq_len, pad_id, max_tokens, packed)
                per_token = [token_losses(loss_sums(model, b.to(device))) for b in batches]
                order = row_order(examples, chunk, max_seq_len, packed)
                out.update(split_means(order, torch.cat(per_token)))
    finally:
        model.train(was_training)
    return out


def top_losses(lines: list[int], losses: list[float], top: int = TOP) -> bytes:
    """`{"examples": [{"line", "loss"}, ...]}`, the `top` highest losses first (JSON)."""
    ranked = sorted(zip(lines, losses, strict=True), key=lambda pair: -pair[1])[:top]
    rows = [{"line": line, "loss": round(loss, 6)} for line, loss in ranked]
    return json.dumps({"examples": rows}).encode()
