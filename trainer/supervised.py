"""The supervised method's steps: micro-batches of chat examples, the forward and backward of
a step (loss and token accuracy, and in the last epoch each example's loss for the outliers,
`trainer.outliers`), and the evaluation between steps. `trainer.loop` calls it for a job
whose method is neither DPO (`trainer.dpo`) nor reinforcement (`trainer.reinforce`).
"""

from __future__ import annotations

import torch

from contracts.chat import EncodedExample
from trainer.cores import draws_random_numbers, parallel_gradients, workers_for
from trainer.data import Batch, micro_batches
from trainer.model import LossSums, loss_sums
from trainer.outliers import row_order, split_means
from trainer.run import Run


def evaluate(run: Run, examples: list[EncodedExample]) -> dict[str, float]:
    """`valid_*` metrics over `examples` (no gradients, no RNG used): mean loss and token
    accuracy."""
    run.model.eval()
    total = LossSums(torch.zeros(()), 0, 0)
    with torch.no_grad():
        for batch in batches_of(run, examples, list(range(len(examples)))):
            sums = loss_sums(run.model, batch.to(run.device))
            total = LossSums(total.loss + sums.loss.cpu(), total.correct + sums.correct,
                             total.tokens + sums.tokens)  # fmt: skip
    run.model.train()
    tokens = max(1, total.tokens)
    return {
        "valid_loss": float(total.loss) / tokens,
        "valid_mean_token_accuracy": total.correct / tokens,
    }


def batches_of(run: Run, examples: list[EncodedExample], indices: list[int]) -> list[Batch]:
    """Micro-batches of `indices`: packed rows on CUDA, one sequence each on the CPU."""
    return micro_batches(
        examples, indices, run.spec.base_model.max_seq_len, run.pad_id,
        run.micro_batch_tokens, packed=run.device.type == "cuda",
    )  # fmt: skip


def gradients(run: Run, indices: list[int]) -> tuple[dict[str, float], int]:
    """Forward and backward of the examples `indices`: loss and token accuracy, tokens seen.
    On the CPU with enough micro-batches, each core takes whole ones (`trainer.cores`)."""
    batches = batches_of(run, run.train, indices)
    trained = sum(b.trained_tokens for b in batches)

    def loss_of(batch: Batch) -> tuple[torch.Tensor, LossSums]:
        sums = loss_sums(run.model, batch.to(run.device))
        return sums.loss / trained, sums

    on_cores = run.device.type == "cpu" and not draws_random_numbers(run.model)
    workers = workers_for(len(batches)) if on_cores else 1
    if workers > 1:
        params = [p for p in run.model.parameters() if p.requires_grad]
        sizes = [b.tokens for b in batches]
        all_sums = parallel_gradients(params, batches, sizes, loss_of, workers)
    else:
        all_sums = []
        for batch in batches:
            loss, sums = loss_of(batch)
            loss.backward()  # type: ignore[no-untyped-call]
            all_sums.append(sums)
    loss_sum = sum(float(s.loss.detach()) for s in all_sums)
    correct = sum(s.correct for s in all_sums)
    tokens = sum(b.tokens for b in batches)
    if run.position.epoch == run.spec.hyperparameters.n_epochs - 1:  # the outliers' losses
        order = row_order(
            run.train, indices, run.spec.base_model.max_seq_len, run.device.type == "cuda"
        )
        per_token = []
        for sums in all_sums:
            assert sums.per_token is not None
            per_token.append(sums.per_token)
        means = split_means(order, torch.cat(per_token))
        run.position.example_losses.update((str(i), loss) for i, loss in means.items())
    return {
        "train_loss": loss_sum / trained,
        "train_mean_token_accuracy": correct / trained,
    }, tokens
