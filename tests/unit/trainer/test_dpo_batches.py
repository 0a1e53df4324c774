"""DPO micro-batches: the two sides of a pair are rows of their own (never packed together),
each starting at position 0, in the order the loss reads them."""

from __future__ import annotations

import pytest

from contracts.chat import Encoded
from contracts.preference import EncodedPair

torch = pytest.importorskip("torch")
dpo = pytest.importorskip("trainer.dpo")


def _encoded(prompt: list[int], answer: list[int]) -> Encoded:
    return Encoded(prompt + answer, [False] * len(prompt) + [True] * len(answer))


PAIRS = [
    EncodedPair(_encoded([1, 2, 3], [10, 11]), _encoded([1, 2, 3], [20])),
    EncodedPair(_encoded([4, 5], [12, 13, 14]), _encoded([4, 5], [21, 22])),
    EncodedPair(_encoded([6], [15]), _encoded([6], [23, 24, 25, 26])),
]


def test_each_side_is_a_row_of_its_own_from_position_zero() -> None:
    (micro,) = dpo.pair_batches(PAIRS, [2, 0], pad_id=0, max_tokens=1000)
    assert micro.indices == [2, 0]
    batch = micro.batch
    sides = [PAIRS[2].chosen, PAIRS[2].rejected, PAIRS[0].chosen, PAIRS[0].rejected]
    assert batch.input_ids.shape == (4, 5)
    for row, side in enumerate(sides):
        n = len(side)
        assert batch.input_ids[row, :n].tolist() == side.input_ids
        assert batch.position_ids[row, :n].tolist() == list(range(n))
        # Only the answer's tokens are targets, and only within the row's own sequence.
        targets = [t for t in batch.targets[row].tolist() if t != -100]
        answer = [t for t, m in zip(side.input_ids, side.loss_mask, strict=True) if m]
        assert targets == answer


def test_micro_batches_keep_pairs_whole_within_the_token_budget() -> None:
    micros = dpo.pair_batches(PAIRS, [0, 1, 2], pad_id=0, max_tokens=20)
    assert [m.indices for m in micros] == [[0, 1], [2]]
    for micro in micros:
        rows, width = micro.batch.input_ids.shape
        assert rows == 2 * len(micro.indices) and rows * width <= 20
    alone = dpo.pair_batches(PAIRS, [0, 1], pad_id=0, max_tokens=1)
    assert [m.indices for m in alone] == [[0], [1]]
