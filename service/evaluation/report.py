"""The evaluation report (`eval_report.json`, a `fine-tune-results` file of the job) and
its one-line summary event. docs/api.md describes the fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from service.evaluation.examples import Example, prompt_text
from service.evaluation.scoring import Score, exact_match, score

Kind = Literal["base", "fine_tuned", "checkpoint", "source"]
MAX_SAMPLES = 20
MAX_OUTLIERS = 10
MAX_FLIPS = 20  # of each direction


@dataclass
class Scored:
    model: str
    kind: Kind
    answers: list[str] | None  # None: the model could not be evaluated (`error`)
    step: int | None = None
    valid_loss: float | None = None
    valid_token_accuracy: float | None = None
    error: str | None = None

    def entry(self, references: list[str]) -> dict[str, Any]:
        result: Score | None = score(self.answers, references) if self.answers is not None else None
        row: dict[str, Any] = {
            "model": self.model, "kind": self.kind, "step": self.step,
            "exact_match": None if result is None else round(result.exact_match, 6),
            "f1": None if result is None else round(result.f1, 6),
            "matches": None if result is None else result.matches,
            "valid_loss": self.valid_loss, "valid_token_accuracy": self.valid_token_accuracy,
        }  # fmt: skip
        if self.error:
            row["error"] = self.error
        return row


def build_report(
    examples: list[Example],
    models: list[Scored],
    *,
    data: Literal["validation_file", "held_out"],
    file: str,
    outliers: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    references = [e.reference for e in examples]
    by_kind = {m.kind: m for m in models if m.answers is not None and m.kind != "checkpoint"}
    samples = []
    for i, example in enumerate(examples[:MAX_SAMPLES]):
        sample = {"prompt": prompt_text(example.prompt), "reference": example.reference}
        for kind in ("base", "fine_tuned", "source"):
            if kind in by_kind:
                sample[kind] = by_kind[kind].answers[i]  # type: ignore[index]
        samples.append(sample)
    report: dict[str, Any] = {
        "examples": len(examples),
        "data": data,
        "file": file,
        "models": [m.entry(references) for m in models],
        "samples": samples,
        "seconds": round(seconds, 3),
        "outliers": outliers[:MAX_OUTLIERS],
    }
    if "source" in by_kind and "fine_tuned" in by_kind:
        report["flips"] = flips(examples, by_kind["source"], by_kind["fine_tuned"])
    return report


def flips(examples: list[Example], source: Scored, tuned: Scored) -> dict[str, Any]:
    """The examples whose exact match differs between the source model (a migrated job's
    original) and the fine-tuned model: `lost` (the source was right, the new model is
    not) and `gained` (the other way round); counts of all, the first `MAX_FLIPS` of each
    with both answers."""
    found: dict[str, list[dict[str, Any]]] = {"lost": [], "gained": []}
    for i, example in enumerate(examples):
        was = exact_match(source.answers[i], example.reference)  # type: ignore[index]
        now = exact_match(tuned.answers[i], example.reference)  # type: ignore[index]
        if was != now:
            found["lost" if was else "gained"].append({
                "line": example.line, "prompt": prompt_text(example.prompt),
                "reference": example.reference, "source": source.answers[i],  # type: ignore[index]
                "fine_tuned": tuned.answers[i],  # type: ignore[index]
            })  # fmt: skip
    return {
        "lost": len(found["lost"]), "gained": len(found["gained"]),
        "examples": [{"flip": kind, **entry} for kind in ("lost", "gained")
                     for entry in found[kind][:MAX_FLIPS]],
    }  # fmt: skip


def encode(report: dict[str, Any]) -> bytes:
    return json.dumps(report, indent=1, ensure_ascii=False).encode()


def summary(report: dict[str, Any]) -> str:
    """`Evaluation: exact match 11/12 fine-tuned, 0/12 base on the validation file`, and
    with a source model `...; against the source: 1 lost, 2 gained`."""
    n = report["examples"]
    rows = {m["kind"]: m for m in report["models"] if m["kind"] != "checkpoint"}
    parts = []
    for kind, label in (("fine_tuned", "fine-tuned"), ("base", "base"), ("source", None)):
        row = rows.get(kind)
        if row is not None and row["matches"] is not None:
            parts.append(f"{row['matches']}/{n} {label or row['model']}")
    where = (
        "on the validation file"
        if report["data"] == "validation_file"
        else f"on {n} held-out training example{'s' if n != 1 else ''}"
    )
    flipped = report.get("flips")
    against = (
        f"; against the source: {flipped['lost']} lost, {flipped['gained']} gained"
        if flipped
        else ""
    )
    return f"Evaluation: exact match {', '.join(parts)} {where}{against}"
