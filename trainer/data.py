"""Training data: JSONL -> encoded examples -> shuffled batches -> packed rows -> tensors.

A step trains on `batch_size` examples, as OpenAI counts steps. An example is one sequence, or,
with a chat template that is not prefix-stable, several (one more per trained turn that the
whole conversation renders otherwise, `contracts.chat`); a batch trains all the sequences of
its examples. On CUDA the sequences of a batch are packed into rows of at most `max_seq_len`
tokens (first fit, longest first); inside a row each sequence's positions restart at 0, and
transformers turns those restarts into a block-diagonal causal mask, so no token attends across
a sequence boundary. The last token of a sequence has no target, so no loss crosses a boundary
either. On the CPU each sequence is a row of its own instead: no padding either, and no mask at
all, so attention takes PyTorch's causal fast path and skips the cross-example blocks a packed
row computes and masks (measured on the 30M benchmark model, a third less time per step).

The order of the examples in an epoch comes from the seed and the epoch number alone, so the
data position of a resumed run is just `(epoch, batch index)`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from contracts.chat import ChatTokenizer, Encoded, EncodedExample, ExampleError
from contracts.formats import parse_line
from contracts.store import ObjectNotFound, numbered_lines
from contracts.store_url import split_url

IGNORE = -100
T = TypeVar("T")


class DataError(Exception):
    """A training or validation file that cannot be trained on (exit code 2)."""

    def __init__(self, message: str, code: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def load_numbered_examples(
    url: str,
    chat: ChatTokenizer,
    max_seq_len: int,
    param: str,
    endpoint_url: str | None = None,
    skip_lines: frozenset[int] = frozenset(),
) -> list[tuple[int, EncodedExample]]:
    """`(1-based line number, example)` of every example of a chat JSONL file but the lines
    `skip_lines` (set aside for evaluation); the first bad line is a `DataError`."""
    return load_lines(
        url, param, endpoint_url, "chat",
        "only chat examples (`messages`) can be used for supervised training",
        lambda example: chat.check(example, max_seq_len), skip_lines,
    )  # fmt: skip


def load_lines(
    url: str,
    param: str,
    endpoint_url: str | None,
    wanted: str,
    wrong_format: str,
    encode: Callable[[Any], T],
    skip_lines: frozenset[int] = frozenset(),
) -> list[tuple[int, T]]:
    """`(line number, encode(example))` of every line of a JSONL file in format `wanted` but
    `skip_lines`; the first bad line (another format: `wrong_format`; `encode` raising
    `ExampleError`) is a `DataError`."""
    code = f"invalid_{param}"
    examples = []
    try:
        for number, line in numbered_lines(*split_url(url, endpoint_url)):
            if not line.strip() or number in skip_lines:
                continue
            fmt, example, reason = parse_line(line)
            if reason is None and fmt != wanted:
                reason = wrong_format
            if reason is not None:
                raise DataError(f"line {number}: {reason}", code, param)
            try:
                examples.append((number, encode(example)))
            except ExampleError as e:
                raise DataError(str(e.at_line(number)), code, param) from e
    except ObjectNotFound as e:
        raise DataError(f"{param} not found: {url}", code, param) from e
    if not examples:
        raise DataError(f"{param} has no examples", code, param)
    return examples


def epoch_batches(n_examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The example indices of every step of one epoch, shuffled from the seed and epoch."""
    order = list(range(n_examples))
    random.Random(f"whetstone:{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]


def pack(lengths: dict[int, int], max_seq_len: int) -> list[list[int]]:
    """Rows of example indices, each row at most `max_seq_len` tokens (first fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(lengths, key=lambda i: (-lengths[i], i)):
        size = lengths[index]
        for r, free in enumerate(room):
            if size <= free:
                rows[r].append(index)
                room[r] -= size
                break
        else:
            rows.append([index])
            room.append(max_seq_len - size)
    return rows


@dataclass
class Batch:
    """Packed rows as tensors. `targets[r, t]` is the token to predict after position t."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    tokens: int  # real (non-padding) tokens

    @property
    def trained_tokens(self) -> int:
        return int((self.targets != IGNORE).sum())

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.targets.to(device),
            self.tokens,
        )


def collate(rows: list[list[Encoded]], pad_id: int) -> Batch:
    width = max(sum(len(e) for e in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    tokens = 0
    for r, row in enumerate(rows):
        at = 0
        for example in row:
            n = len(example)
            ids = torch.tensor(example.input_ids, dtype=torch.long)
            mask = torch.tensor(example.loss_mask[1:], dtype=torch.bool)
            input_ids[r, at : at + n] = ids
            position_ids[r, at : at + n] = torch.arange(n)
            targets[r, at : at + n - 1] = torch.where(mask, ids[1:], IGNORE)
            at += n
        position_ids[r, at:] = torch.arange(width - at)  # padding: a block of its own
        tokens += at
    return Batch(input_ids, position_ids, targets, tokens)


def micro_batches(
    examples: list[EncodedExample],
    indices: list[int],
    max_seq_len: int,
    pad_id: int,
    max_tokens: int,
    packed: bool = True,
) -> list[Batch]:
    """The sequences of the examples `indices` packed into rows, grouped so each group has
    <= `max_tokens`; unpacked (`packed=False`), one sequence per micro-batch."""
    sequences = [s for i in indices for s in examples[i].sequences]
    if not packed:
        return [collate([[s]], pad_id) for s in sequences]
    rows = pack({k: len(s) for k, s in enumerate(sequences)}, max_seq_len)
    groups: list[list[list[Encoded]]] = [[]]
    width = 0
    for row in rows:
        length = sum(len(sequences[k]) for k in row)
        if groups[-1] and (len(groups[-1]) + 1) * max(width, length) > max_tokens:
            groups.append([])
            width = 0
        groups[-1].append([sequences[k] for k in row])
        width = max(width, length)
    return [collate(group, pad_id) for group in groups if group]
