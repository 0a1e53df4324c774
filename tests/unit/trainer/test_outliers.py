"""The per-example losses the evaluation report lists as outliers."""

from __future__ import annotations

import json

from trainer.outliers import top_losses


def test_outliers_are_the_highest_losses_first_with_their_file_lines() -> None:
    lines = [2, 3, 5, 8, 13]  # the file's lines of the examples trained on (others skipped)
    losses = [0.1, 4.0, 0.3, 2.5, 0.05]
    ranked = json.loads(top_losses(lines, losses, top=3))["examples"]
    assert ranked == [{"line": 3, "loss": 4.0}, {"line": 8, "loss": 2.5}, {"line": 5, "loss": 0.3}]
