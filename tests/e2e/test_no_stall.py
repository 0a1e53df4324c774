"""A broken base model never holds up anyone else's job, through the whole stack: the API and
the scheduler as processes, the real trainer, the `openai` package. Each bad job (a chat
template that raises, a tokenizer file missing or corrupt, a model folder that vanished while
the server ran) is created first, a good job right after it: the bad job fails with a
code and a message a user can act on, and the good one trains to `succeeded`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.lifecycle_stack import FINAL, create_job, dataset, start_stack, wait_for

pytestmark = pytest.mark.slow


def _copy(base: Path, folder: Path) -> Path:
    shutil.copytree(base, folder)
    return folder


def _raising_template(folder: Path) -> None:
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ messages[0]['content'].nonexistent() }}"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)


BREAKS: dict[str, Callable[[Path], None]] = {
    "bad-template": _raising_template,
    "no-tokenizer": lambda f: (f / "tokenizer.json").unlink(),
    "corrupt-tokenizer": lambda f: (f / "tokenizer.json").write_bytes(b"\x00garbage{"),
}
EXPECTED = {
    "bad-template": ("invalid_training_file", "line 1: the chat template failed on the example"),
    "no-tokenizer": ("model_not_available", "tokenizer.json is missing"),
    "corrupt-tokenizer": ("model_not_available", "cannot be loaded"),
    "vanished": ("model_not_available", "is missing"),
}


def test_bad_base_models_fail_their_jobs_and_good_jobs_succeed_beside_them(
    tmp_path: Path, base_model_dir: Path
) -> None:
    models = {name: _copy(base_model_dir, tmp_path / "models" / name)
              for name in [*BREAKS, "vanished"]}  # fmt: skip
    for name, breaks in BREAKS.items():
        breaks(models[name])
    data = tmp_path / "data"
    data.mkdir()
    with start_stack(data, base_model_dir, more_models=models) as stack:
        client = stack.client()
        file = client.files.create(file=("qa.jsonl", dataset()), purpose="fine-tune")
        order: list[tuple[str, str]] = []
        shutil.rmtree(models["vanished"])  # while the server runs, its registry naming it
        for name in EXPECTED:
            bad = client.fine_tuning.jobs.create(model=name, training_file=file.id).id
            order += [(name, bad), ("good", create_job(client, n_epochs=1, batch_size=4))]
        for name, job_id in order:
            job = wait_for(client, job_id, FINAL, 300)
            if name == "good":
                assert job.status == "succeeded", (job.error, stack.logs()[-3000:])
                continue
            code, words = EXPECTED[name]
            assert job.status == "failed", name
            assert job.error is not None and job.error.code == code, (name, job.error)
            assert words in job.error.message, (name, job.error.message)
