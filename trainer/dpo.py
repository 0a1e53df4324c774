"""DPO: preference pairs, their batches, sequence log-probabilities, the reference and the loss.

`trainer.loop` runs every method's steps, checkpoints, resume, stop requests and heartbeats;
this module is what DPO changes in them (`Run.prefs`, as `trainer.reinforce` is for a
reinforcement job): `start` computes the reference or takes it from the resume state, a step
is `Preferences.gradients` (the loop then clips and steps the optimiser as for the other
methods), evaluation is `Preferences.evaluate`, and `Preferences.state` goes into every
checkpoint.

- Data: each preference line becomes an `EncodedPair` (`contracts.preference`): the chat
  template of `input.messages` with its generation prompt, then the output; only the output's
  tokens carry loss.
- Batches: the preferred and the non-preferred side of a pair are always separate rows
  (row 2k the preferred side of the k-th pair, row 2k+1 its non-preferred side), never packed
  into one row, so no token of one attends to the other. Rows are padded at the end, which a
  causal model never reads from a real token.
- Log-probability of a side: the sum over its output tokens of log p(token | what precedes).
- Reference: computed once, before the first step, for every training and validation pair
  (two numbers per pair, in the checkpoint's resume state from then on), in eval mode:
  with a fresh adapter, the base model with the adapter disabled (peft `disable_adapter()`,
  no second copy of the weights); when continuing from a fine-tuned model (`init_adapter`),
  the model as loaded, i.e. the base plus the parent's adapter, before any step changes it.
  Both are exact (the reference is the model it names, evaluated once) and need no second
  model or adapter in memory while training.
- Loss (sigmoid DPO): `-log sigmoid(beta x ((chosen - ref_chosen) - (rejected - ref_rejected)))`,
  the mean over the step's pairs. The reward of a side is `beta x (policy - reference)`; the
  reward margin is chosen reward - rejected reward, and the reward accuracy the share of pairs
  whose margin is positive.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from contracts.chat import ChatTokenizer
from contracts.preference import EncodedPair, check_pair
from trainer.data import IGNORE, Batch, collate, load_lines
from trainer.model import _chunk, _decode, chunked_losses, output_head


def load_numbered_pairs(
    url: str,
    chat: ChatTokenizer,
    max_seq_len: int,
    param: str,
    endpoint_url: str | None = None,
    skip_lines: frozenset[int] = frozenset(),
) -> list[tuple[int, EncodedPair]]:
    """`(line number, pair)` of a preference JSONL file but `skip_lines`."""
    return load_lines(
        url, param, endpoint_url, "preference",
        "only preference examples (`input`, `preferred_output`, `non_preferred_output`) can be "
        "used for DPO",
        lambda example: check_pair(chat, example, max_seq_len), skip_lines,
    )  # fmt: skip


@dataclass
class PairBatch:
    """Rows `[chosen_0, rejected_0, chosen_1, rejected_1, ...]` of the pairs `indices`."""

    batch: Batch
    indices: list[int]

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(self.batch.to(device), self.indices)


def pair_batches(
    pairs: list[EncodedPair], indices: list[int], pad_id: int, max_tokens: int
) -> list[PairBatch]:
    """The pairs `indices`, in order, grouped so that each micro-batch's rows x width (padding
    included) stay within `max_tokens` (a pair alone is always a micro-batch of its own)."""
    groups: list[list[int]] = []
    width = 0
    for i in indices:
        longest = max(len(pairs[i].chosen), len(pairs[i].rejected))
        if groups and 2 * (len(groups[-1]) + 1) * max(width, longest) <= max_tokens:
            groups[-1].append(i)
            width = max(width, longest)
        else:
            groups.append([i])
            width = longest
    return [
        PairBatch(
            collate([[s] for i in g for s in (pairs[i].chosen, pairs[i].rejected)], pad_id), g
        )
        for g in groups
    ]


def sequence_logps(model: Any, batch: Batch) -> torch.Tensor:
    """Per row, the summed log-probability of the tokens that carry loss `[rows]`."""
    hidden = _decode(model, batch)
    selected = batch.targets != IGNORE
    head = output_head(model.get_base_model())
    losses, _ = chunked_losses(head, hidden[selected], batch.targets[selected], _chunk(model, None))
    rows = selected.nonzero()[:, 0]
    zeros = torch.zeros(batch.targets.shape[0], dtype=losses.dtype, device=losses.device)
    return zeros.index_add(0, rows, -losses)


@contextmanager
def _evaluating(model: Any) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def reference_logps(
    model: Any,
    pairs: list[EncodedPair],
    pad_id: int,
    max_tokens: int,
    device: torch.device,
    base_only: bool,
) -> torch.Tensor:
    """`[pairs, 2]` (chosen, rejected) log-probabilities under the reference: the base model
    with the adapter disabled (`base_only`), else the model as it is now."""
    out = torch.zeros(len(pairs), 2, dtype=torch.float32)
    adapter_off = model.disable_adapter() if base_only else nullcontext()
    with _evaluating(model), adapter_off:
        for micro in pair_batches(pairs, list(range(len(pairs))), pad_id, max_tokens):
            logps = sequence_logps(model, micro.batch.to(device)).float().cpu()
            out[micro.indices] = logps.view(-1, 2)
    return out


@dataclass
class PairSums:
    """Summed over pairs, so micro-batches add up exactly."""

    loss: torch.Tensor
    margin: float
    correct: int
    pairs: int


def pair_sums(model: Any, micro: PairBatch, reference: torch.Tensor, beta: float) -> PairSums:
    """The DPO loss of a micro-batch, summed over its pairs, and its rewards."""
    logps = sequence_logps(model, micro.batch).view(-1, 2)
    ref = reference[micro.indices].to(logps.device)
    margins = beta * ((logps[:, 0] - ref[:, 0]) - (logps[:, 1] - ref[:, 1]))
    loss = -F.logsigmoid(margins).sum()
    detached = margins.detach()
    return PairSums(loss, float(detached.sum()), int((detached > 0).sum()), len(micro.indices))


@dataclass
class Preferences:
    """What a DPO run holds beside the loop's `Run`: beta and the reference log-probs."""

    beta: float
    reference_train: torch.Tensor
    reference_valid: torch.Tensor

    def state(self) -> dict[str, torch.Tensor]:
        """For the checkpoint's resume state: the reference is never computed again."""
        return {"reference_train": self.reference_train, "reference_valid": self.reference_valid}

    def gradients(self, run: Any, indices: list[int]) -> tuple[dict[str, float], int]:
        """One step's forward and backward over the training pairs `indices`: its `train_*`
        metrics and the tokens seen."""
        return train_pairs(
            run.model, self, run.train, indices, run.pad_id, run.micro_batch_tokens, run.device
        )

    def evaluate(self, run: Any, pairs: list[EncodedPair]) -> dict[str, float]:
        """`valid_*` metrics over the validation `pairs` (no gradients, no RNG used)."""
        return evaluate_pairs(
            run.model, self, pairs, run.pad_id, run.micro_batch_tokens, run.device
        )


def start(run: Any, state: dict[str, Any] | None) -> Preferences:
    """A run's DPO state: beta and the reference log-probs, from the resume state, else
    computed now, before any step (the base with the adapter disabled, or the parent model
    when continuing from a fine-tuned one)."""
    assert run.spec.method.dpo is not None
    beta = run.spec.method.dpo.beta
    if state is not None:
        return Preferences(beta, state["reference_train"], state["reference_valid"])
    parent = run.spec.init_adapter is not None
    run.progress.log(
        f"Computing the reference log-probabilities of {len(run.train) + len(run.valid)} "
        f"preference pairs ({'the model continued from' if parent else 'the base model'})"
    )

    def reference(pairs: list[EncodedPair]) -> torch.Tensor:
        return reference_logps(
            run.model, pairs, run.pad_id, run.micro_batch_tokens, run.device, base_only=not parent
        )

    return Preferences(beta, reference(run.train), reference(run.valid))


def train_pairs(
    model: Any,
    prefs: Preferences,
    pairs: list[EncodedPair],
    indices: list[int],
    pad_id: int,
    max_tokens: int,
    device: torch.device,
) -> tuple[dict[str, float], int]:
    """Forward and backward over the pairs `indices` (the gradient of their mean loss):
    the step's training metrics and the tokens seen."""
    total = PairSums(torch.zeros(()), 0.0, 0, 0)
    tokens = 0
    for micro in pair_batches(pairs, indices, pad_id, max_tokens):
        sums = pair_sums(model, micro.to(device), prefs.reference_train, prefs.beta)
        (sums.loss / len(indices)).backward()  # type: ignore[no-untyped-call]
        total = _add(total, sums)
        tokens += micro.batch.tokens
    return _metrics(total, "train_"), tokens


def evaluate_pairs(
    model: Any,
    prefs: Preferences,
    pairs: list[EncodedPair],
    pad_id: int,
    max_tokens: int,
    device: torch.device,
) -> dict[str, float]:
    """Mean loss, reward margin and reward accuracy over the validation `pairs` (the first
    `len(pairs)` of the validation file); no gradients, no RNG used."""
    total = PairSums(torch.zeros(()), 0.0, 0, 0)
    with _evaluating(model):
        for micro in pair_batches(pairs, list(range(len(pairs))), pad_id, max_tokens):
            total = _add(
                total, pair_sums(model, micro.to(device), prefs.reference_valid, prefs.beta)
            )
    return _metrics(total, "valid_")


def _add(total: PairSums, sums: PairSums) -> PairSums:
    return PairSums(
        total.loss + sums.loss.detach().cpu(), total.margin + sums.margin,
        total.correct + sums.correct, total.pairs + sums.pairs,
    )  # fmt: skip


def _metrics(total: PairSums, prefix: str) -> dict[str, float]:
    n = max(1, total.pairs)
    return {
        f"{prefix}loss": float(total.loss) / n,
        f"{prefix}reward_margin": total.margin / n,
        f"{prefix}reward_accuracy": total.correct / n,
    }
