"""Small Q/A datasets and JobSpecs for training the tiny base model on the CPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FACTS = [
    ("What is the secret word?", "The secret word is river."),
    ("Who is Alice?", "Alice is the user."),
    ("What colour is the sky?", "The sky is blue."),
    ("Where is the key?", "The key is under the pot."),
]


def chat_line(question: str, answer: str) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }
    )


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)


@pytest.fixture()
def qa_files(tmp_path: Path) -> dict[str, str]:
    """A training file (the facts, 4 times) and a validation file (once), as file:// URLs."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("\n".join(chat_line(q, a) for q, a in FACTS * 4) + "\n")
    (data / "valid.jsonl").write_text("\n".join(chat_line(q, a) for q, a in FACTS) + "\n")
    return {
        "training_file": (data / "train.jsonl").as_uri(),
        "validation_file": (data / "valid.jsonl").as_uri(),
    }


@pytest.fixture()
def make_spec(base_model_dir: Path, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """A JobSpec dict for the tiny model writing under `tmp_path/objects/jobs/{job_id}/`."""

    def make(job_id: str = "ftjob-test", **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "job_id": job_id,
            "base_model": {
                "name": "whetstone-tiny",
                "path": str(base_model_dir),
                "max_seq_len": 128,
            },
            "method": {
                "type": "supervised",
                "supervised": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 10},
            },
            "lora": {"r": 8, "alpha": 16},
            "output": (tmp_path / "objects" / "jobs" / job_id).as_uri() + "/",
            "checkpoint_every_steps": 3,
            "eval_every_steps": 4,
            "seed": 7,
        }
        spec.update(overrides)
        return spec

    return make


def write_spec(spec: dict[str, Any], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec['job_id']}-spec.json"
    path.write_text(json.dumps(spec))
    return path.as_uri()
