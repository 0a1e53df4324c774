"""The training examples the final model still gets most wrong: each example's mean loss
under the final model, the highest first, with its line in the training file.

A mislabelled or unlearnable line shows up here (the evaluation report lists them). One
forward pass per group of sequences, no gradients: each sequence is a row of its own
(right-padded, so causal attention never reads the padding), grouped up to the attempt's
micro-batch budget; an example of several sequences (`contracts.chat.EncodedExample`) has
the mean over all its trained tokens.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from contracts.chat import Encoded, EncodedExample
from trainer.data import IGNORE, collate
from trainer.model import per_token_losses

TOP = 10


def example_losses(
    model: Any, examples: list[EncodedExample], device: torch.device, pad_id: int, max_tokens: int
) -> list[float]:
    """The mean loss over the trained tokens of each example, in order."""
    owners = [i for i, example in enumerate(examples) for _ in example.sequences]
    sequences = [s for example in examples for s in example.sequences]
    sums = [0.0] * len(examples)
    counts = [0] * len(examples)
    was_training = model.training
    model.eval()
    at = 0
    try:
        with torch.no_grad():
            for group in _groups(sequences, max_tokens):
                batch = collate([[s] for s in group], pad_id).to(device)
                per_token = per_token_losses(model, batch).float()
                counted = (batch.targets != IGNORE).sum(dim=1)
                rows = zip(per_token.sum(dim=1).cpu().tolist(), counted.cpu().tolist(), strict=True)
                for loss, count in rows:
                    sums[owners[at]] += loss
                    counts[owners[at]] += count
                    at += 1
    finally:
        model.train(was_training)
    return [total / max(1, count) for total, count in zip(sums, counts, strict=True)]


def _groups(sequences: list[Encoded], max_tokens: int) -> list[list[Encoded]]:
    """Consecutive sequences whose padded rows fit in `max_tokens` (one sequence at least)."""
    groups: list[list[Encoded]] = []
    width = 0
    for sequence in sequences:
        if groups and (len(groups[-1]) + 1) * max(width, len(sequence)) <= max_tokens:
            groups[-1].append(sequence)
            width = max(width, len(sequence))
        else:
            groups.append([sequence])
            width = len(sequence)
    return groups


def top_losses(lines: list[int], losses: list[float], top: int = TOP) -> bytes:
    """`{"examples": [{"line", "loss"}, ...]}`, the `top` highest losses first (JSON)."""
    ranked = sorted(zip(lines, losses, strict=True), key=lambda pair: -pair[1])[:top]
    rows = [{"line": line, "loss": round(loss, 6)} for line, loss in ranked]
    return json.dumps({"examples": rows}).encode()
