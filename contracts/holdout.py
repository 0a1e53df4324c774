"""The training lines a job without a validation file sets aside for its evaluation.

Chosen at job start from the job's seed and the training file's line count alone, so every
attempt of the job holds out the same lines (`JobSpec.held_out_lines`, 1-based). Standard
library only: `whetstone migrate --evaluate` (the clients) picks the lines its source model
answers with the same rule and the service's default settings."""

from __future__ import annotations

import random

FRACTION = 0.1  # WHETSTONE_EVAL_HOLDOUT_FRACTION's default
MAX_LINES = 50  # WHETSTONE_EVAL_MAX_EXAMPLES's default
MIN_LINES = 50  # WHETSTONE_EVAL_HOLDOUT_MIN_EXAMPLES's default


def held_out_lines(
    lines: int,
    seed: int,
    fraction: float = FRACTION,
    cap: int = MAX_LINES,
    min_lines: int = MIN_LINES,
) -> list[int]:
    """`round(lines x fraction)` line numbers in [1, lines] (1 at least, `cap` at most),
    sorted; none when `fraction` is 0 or the file has fewer than `min_lines` lines."""
    if fraction <= 0 or lines < max(2, min_lines):
        return []
    count = min(cap, lines - 1, max(1, round(lines * fraction)))
    return sorted(random.Random(f"whetstone-holdout:{seed}").sample(range(1, lines + 1), count))
