"""How an answer is scored against its reference: exact match after trimming, and the
token-level F1 of SQuAD over lowercased whitespace tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


def exact_match(answer: str, reference: str) -> bool:
    return answer.strip() == reference.strip()


def f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (tokens counted with multiplicity);
    two empty texts agree (1.0), one empty text does not (0.0)."""
    got, want = answer.lower().split(), reference.lower().split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Score:
    matches: int
    examples: int
    f1: float  # mean over the examples

    @property
    def exact_match(self) -> float:
        return self.matches / self.examples if self.examples else 0.0


def score(answers: Sequence[str], references: Sequence[str]) -> Score:
    """The scores of `answers[i]` against `references[i]`."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references")
    matches = sum(exact_match(a, r) for a, r in zip(answers, references, strict=True))
    total = sum(f1(a, r) for a, r in zip(answers, references, strict=True))
    return Score(matches, len(references), total / len(references) if references else 0.0)
