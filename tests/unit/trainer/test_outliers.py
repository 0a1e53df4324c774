"""The per-example losses the evaluation report lists as outliers."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.outliers import top_losses


def test_outliers_are_the_highest_losses_first_with_their_file_lines() -> None:
    lines = [2, 3, 5, 8, 13]  # the file's lines of the examples trained on (others skipped)
    losses = [0.1, 4.0, 0.3, 2.5, 0.05]
    ranked = json.loads(top_losses(lines, losses, top=3))["examples"]
    assert ranked == [{"line": 3, "loss": 4.0}, {"line": 8, "loss": 2.5}, {"line": 5, "loss": 0.3}]


def test_step_losses_split_by_example_match_each_example_alone(base_model_dir: Path) -> None:
    """A step's per-token losses, packed into rows as on CUDA, give each example the loss it
    has when run alone (the outliers come from the last epoch's steps)."""
    import torch

    from contracts.chat import ChatTokenizer, EncodedExample
    from contracts.spec import JobSpec
    from trainer.data import micro_batches
    from trainer.model import load_model, loss_sums
    from trainer.outliers import example_losses, row_order, split_means

    chat = ChatTokenizer.from_folder(base_model_dir)
    lines = [("Hi?", "Hello there."), ("What is two and two?", "Four, as ever." * 3),
             ("Name a river.", "The Loire."), ("And a sea?", "The Baltic Sea, cold.")]  # fmt: skip
    examples = [chat.encode({"messages": [{"role": "user", "content": q},
                                          {"role": "assistant", "content": a}]})
                for q, a in lines]  # fmt: skip
    # an example of two sequences (a template that is not prefix-stable): one mean over both
    examples.append(EncodedExample(examples[0].sequences + examples[2].sequences))
    spec = JobSpec.model_validate({
        "job_id": "ftjob-x", "base_model": {"name": "t", "path": str(base_model_dir),
                                            "max_seq_len": 128},
        "training_file": "file:///x", "output": "file:///tmp/x/", "quantization": "none",
    })  # fmt: skip
    model = load_model(spec, torch.device("cpu"))
    indices = [2, 0, 4, 3, 1]
    with torch.no_grad():
        batches = micro_batches(examples, indices, 128, 0, 10_000, packed=True)
        assert len(batches) < len(indices)  # several examples share a row
        per_token = torch.cat([loss_sums(model, b).per_token for b in batches])  # type: ignore[misc]
        order = row_order(examples, indices, 128, packed=True)
        packed = split_means(order, per_token)
        alone = example_losses(model, examples, indices, torch.device("cpu"), 0, 10_000, 128)
    assert sorted(packed) == sorted(alone) == [0, 1, 2, 3, 4]
    for i in indices:
        assert abs(packed[i] - alone[i]) < 1e-4, i
    both = [examples[0].trained_tokens, examples[2].trained_tokens]
    expected = (alone[0] * both[0] + alone[2] * both[1]) / sum(both)
    assert abs(alone[4] - expected) < 1e-4
