"""The training examples the final model still gets most wrong: each example's mean loss
under the final model, the highest first, with its line in the training file.

A mislabelled or unlearnable line shows up here (the evaluation report lists them). One
forward pass per group of examples, no gradients: each example is a row of its own
(right-padded, so causal attention never reads the padding), grouped up to the attempt's
micro-batch budget.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from contracts.chat import Encoded
from trainer.data import IGNORE, collate
from trainer.model import per_token_losses

TOP = 10


def example_losses(
    model: Any, examples: list[Encoded], device: torch.device, pad_id: int, max_tokens: int
) -> list[float]:
    """The mean loss over the trained tokens of each example, in order."""
    losses: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for group in _groups(examples, max_tokens):
                batch = collate([[e] for e in group], pad_id).to(device)
                per_token = per_token_losses(model, batch).float()
                counted = (batch.targets != IGNORE).sum(dim=1).clamp(min=1)
                losses.extend((per_token.sum(dim=1) / counted).cpu().tolist())
    finally:
        model.train(was_training)
    return losses


def _groups(examples: list[Encoded], max_tokens: int) -> list[list[Encoded]]:
    """Consecutive examples whose padded rows fit in `max_tokens` (one example at least)."""
    groups: list[list[Encoded]] = []
    width = 0
    for example in examples:
        if groups and (len(groups[-1]) + 1) * max(width, len(example)) <= max_tokens:
            groups[-1].append(example)
            width = max(width, len(example))
        else:
            groups.append([example])
            width = len(example)
    return groups


def top_losses(lines: list[int], losses: list[float], top: int = TOP) -> bytes:
    """`{"examples": [{"line", "loss"}, ...]}`, the `top` highest losses first (JSON)."""
    ranked = sorted(zip(lines, losses, strict=True), key=lambda pair: -pair[1])[:top]
    rows = [{"line": line, "loss": round(loss, 6)} for line, loss in ranked]
    return json.dumps({"examples": rows}).encode()
