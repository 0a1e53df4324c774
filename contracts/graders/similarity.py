"""`text_similarity` metrics, each a number in [0, 1], through maintained libraries:

- `fuzzy_match`: rapidfuzz's `fuzz.ratio` (normalised Indel similarity of the two strings) / 100.
- `bleu`: NLTK's sentence BLEU (up to 4-grams, even weights, smoothing method 1 so that a short
  answer without a 4-gram match is not 0; n-gram weights follow an answer shorter than 4
  words), case-sensitive words and punctuation marks.
- `gleu`: NLTK's sentence GLEU (Google BLEU, 1- to 4-grams).
- `meteor`: NLTK's METEOR with exact and Porter-stem matching. Its WordNet synonym stage needs
  the WordNet corpus, which no package installs and nothing may download at run time, so
  synonyms are not matched (a METEOR with the exact and stem modules only).
- `rouge_1` .. `rouge_5`, `rouge_l`: Google's `rouge-score` F-measure (ROUGE-N, ROUGE-L).
- `cosine`: the cosine of two embeddings; needs an embedding function (`Embed`), which the
  operator configures. Without one, `SimilarityUnavailable`.

The libraries are imported when a metric is first used (the server extra installs them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]
"""Texts -> their embedding vectors, in order."""

_WORDS = re.compile(r"\w+|[^\w\s]")


class SimilarityUnavailable(RuntimeError):
    """The metric cannot be computed on this deployment (no embedding model for `cosine`)."""


def _tokens(text: str) -> list[str]:
    return _WORDS.findall(text)


def fuzzy_match(text: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return float(fuzz.ratio(text, reference)) / 100.0


def bleu(text: str, reference: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hypothesis, ref = _tokens(text), _tokens(reference)
    if not hypothesis or not ref:
        return 1.0 if hypothesis == ref else 0.0
    smoothing = SmoothingFunction().method1
    return float(sentence_bleu([ref], hypothesis, smoothing_function=smoothing, auto_reweigh=True))


def gleu(text: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    hypothesis, ref = _tokens(text), _tokens(reference)
    if not hypothesis or not ref:
        return 1.0 if hypothesis == ref else 0.0
    return float(sentence_gleu([ref], hypothesis))


class _NoSynonyms:
    """Stands in for NLTK's WordNet reader: no word has synonyms."""

    def synsets(self, *_args: Any, **_kwargs: Any) -> list[Any]:
        return []


def meteor(text: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    hypothesis, ref = _tokens(text), _tokens(reference)
    if not hypothesis or not ref:
        return 1.0 if hypothesis == ref else 0.0
    return float(meteor_score([ref], hypothesis, wordnet=_NoSynonyms()))


@cache
def _rouge(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind])


def rouge(kind: str, text: str, reference: str) -> float:
    """`kind` is rouge-score's name: `rouge1` .. `rouge5`, `rougeL`."""
    return float(_rouge(kind).score(reference, text)[kind].fmeasure)


def cosine(text: str, reference: str, embed: Embed | None) -> float:
    if embed is None:
        raise SimilarityUnavailable(
            "The `cosine` metric needs an embedding model, and none is configured on this "
            "server (WHETSTONE_GRADER_EMBEDDING_MODEL)."
        )
    a, b = embed([text, reference])
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm


def score(metric: str, text: str, reference: str, embed: Embed | None = None) -> float:
    if metric == "cosine":
        return cosine(text, reference, embed)
    if metric.startswith("rouge_"):
        return rouge("rouge" + metric.removeprefix("rouge_").upper(), text, reference)
    metrics: dict[str, Callable[[str, str], float]] = {
        "fuzzy_match": fuzzy_match,
        "bleu": bleu,
        "gleu": gleu,
        "meteor": meteor,
    }
    return metrics[metric](text, reference)
