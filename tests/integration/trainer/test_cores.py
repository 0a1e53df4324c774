"""Micro-batches on the CPU's cores (`trainer.cores`): the same gradients as one after the
other, the same bits every time, errors raised in the caller."""

from __future__ import annotations

import pytest
import torch

from trainer.cores import parallel_gradients, shares, workers_for


def test_shares_deal_the_largest_first_to_the_least_loaded() -> None:
    assert shares([5, 1, 4, 2, 3], 2) == [[0, 1, 3], [2, 4]]  # 5+2+1 against 4+3
    assert shares([3], 2) == [[0], []]
    assert sorted(i for share in shares([9, 8, 7, 1, 1, 1], 3) for i in share) == list(range(6))


def _model() -> tuple[torch.nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 8))
    return model, list(model.parameters())


def _batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(n, 64, generator=generator) for n in (40, 7, 300, 12, 90, 3)]


def _loss(model: torch.nn.Module) -> object:
    def loss_of(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        loss = model(batch).square().mean()
        return loss, float(loss.detach())

    return loss_of


def test_the_gradients_are_those_of_one_micro_batch_after_the_other() -> None:
    batches = _batches()
    model, params = _model()
    expected = []
    for batch in batches:
        loss, value = _loss(model)(batch)  # type: ignore[operator]
        loss.backward()
        expected.append(value)
    wanted = [p.grad.clone() for p in params]  # type: ignore[union-attr]

    model, params = _model()
    sizes = [len(b) for b in batches]
    got = parallel_gradients(params, batches, sizes, _loss(model), 3)  # type: ignore[arg-type]
    assert got == pytest.approx(expected)  # the results in the batches' order
    for p, w in zip(params, wanted, strict=True):  # added up in the same order: the same bits
        assert p.grad is not None and torch.equal(p.grad, w)


def test_the_same_bits_whatever_the_threads_and_whichever_ends_first() -> None:
    batches = _batches()
    sizes = [len(b) for b in batches]
    runs = []
    for workers in (2, 3, 2, 4, 6):
        model, params = _model()
        parallel_gradients(params, batches, sizes, _loss(model), workers)  # type: ignore[arg-type]
        runs.append(torch.cat([p.grad.flatten() for p in params]))  # type: ignore[union-attr]
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_an_error_in_a_worker_is_raised_and_the_threads_setting_restored() -> None:
    model, params = _model()
    threads = torch.get_num_threads()

    def loss_of(batch: torch.Tensor) -> tuple[torch.Tensor, None]:
        if len(batch) == 3:
            raise RuntimeError("out of memory")
        return model(batch).sum(), None

    batches = _batches()
    with pytest.raises(RuntimeError, match="out of memory"):
        parallel_gradients(params, batches, [len(b) for b in batches], loss_of, 2)
    assert torch.get_num_threads() == threads


def test_one_worker_unless_every_core_gets_a_micro_batch() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert (workers_for(1), workers_for(2), workers_for(8)) == (1, 2, 2)
        torch.set_num_threads(1)
        assert workers_for(8) == 1
    finally:
        torch.set_num_threads(threads)
