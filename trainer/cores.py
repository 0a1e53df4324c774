"""The CPU's cores, one micro-batch each: data parallelism inside one process.

On the CPU a step's sequences are micro-batches of one sequence each (`trainer.supervised`).
PyTorch's own threads split each operation of one sequence across the cores, and on the
benchmark's 30M model that uses two cores only 1.3x as well as one: a short sequence's
norms, activations, attention and the adapters' thin matmuls are too small to split. Here
each core takes whole micro-batches instead, in a Python thread of its own with one PyTorch
thread (the heavy work releases the interpreter lock), and each micro-batch's gradients come
back through `torch.autograd.grad`, added up in the order of the micro-batches, as
`backward()` one after the other adds them. What a step computes depends neither on which
thread finished first nor on how many there were, and equals one micro-batch after the other
on one thread, bit for bit: a run resumed on a machine with other cores ends with the same
weights. (PyTorch splitting one micro-batch's operations across several threads, as happens
where there are fewer micro-batches than cores, rounds differently, by about 1e-6.) Threads
would draw dropout's random numbers in the order they happen to run, so a model whose training
forward draws any (LoRA or attention dropout) keeps to one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

B = TypeVar("B")
R = TypeVar("R")


def shares(sizes: Sequence[int], workers: int) -> list[list[int]]:
    """Indices of `sizes` dealt to `workers` (largest first, each to the least loaded), each
    share in ascending order."""
    out: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        k = min(range(workers), key=lambda k: (load[k], k))
        out[k].append(i)
        load[k] += sizes[i]
    return [sorted(share) for share in out]


def draws_random_numbers(model: torch.nn.Module) -> bool:
    """Whether a training forward of `model` draws random numbers: a dropout with p > 0, or
    attention dropout (transformers' attention modules keep its rate as `attention_dropout`)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0:
            return True
        if float(getattr(module, "attention_dropout", 0.0) or 0.0) > 0:
            return True
    return False


def workers_for(micro_batches: int) -> int:
    """Threads to use: every PyTorch thread's core, when there are at least as many
    micro-batches; else 1 (PyTorch's threads split each operation, as usual)."""
    cores = torch.get_num_threads()
    return cores if cores > 1 and micro_batches >= cores else 1


def parallel_gradients(
    params: list[torch.Tensor],
    batches: Sequence[B],
    sizes: Sequence[int],
    loss_of: Callable[[B], tuple[torch.Tensor, R]],
    workers: int,
) -> list[R]:
    """For each batch, `loss_of(batch)` -> (a scalar to differentiate, a result to keep); the
    gradients of the scalars with respect to `params` are added to their `.grad`, and the
    results come back in the order of `batches`. `workers` threads share the batches by
    `sizes` (tokens)."""
    results: list[R | None] = [None] * len(batches)
    grads: list[tuple[torch.Tensor | None, ...]] = [() for _ in batches]
    errors: list[BaseException] = []

    def work(share: list[int]) -> None:
        try:
            for i in share:
                loss, results[i] = loss_of(batches[i])
                grads[i] = torch.autograd.grad(loss, params, allow_unused=True)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    dealt = shares(sizes, workers)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        threads = [threading.Thread(target=work, args=(share,), daemon=True)
                   for share in dealt[1:]]  # fmt: skip
        for thread in threads:
            thread.start()
        work(dealt[0])
        for thread in threads:
            thread.join()
    finally:
        torch.set_num_threads(previous)
    if errors:
        raise errors[0]
    for batch_grads in grads:
        for param, grad in zip(params, batch_grads, strict=True):
            if grad is not None:
                param.grad = grad if param.grad is None else param.grad + grad
    done = [r for r in results if r is not None]
    assert len(done) == len(batches)
    return done
