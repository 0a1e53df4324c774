"""Training on a chat template that is not prefix-stable (reasoning dropped from history, as
Qwen 3's template does): each trained turn is trained in the conversation up to it, with its
reasoning, and the trainer packs those sequences."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.chat import ChatTokenizer
from contracts.spec import JobSpec
from tests.integration.trainer.test_train import Recorder
from tests.unit.contracts.layout_templates import THINKING
from trainer.loop import train
from trainer.progress import Progress


def _example(i: int) -> dict[str, Any]:
    return {"messages": [
        {"role": "user", "content": f"What is {i} plus {i}?"},
        {"role": "assistant", "reasoning_content": f"Add {i} to {i}.", "content": f"{2 * i}."},
        {"role": "user", "content": f"And {i} times {i}?"},
        {"role": "assistant", "reasoning_content": f"Multiply {i} by {i}.", "content": f"{i * i}."},
    ]}  # fmt: skip


def test_each_turn_is_trained_with_its_reasoning_in_a_sequence_of_its_own(
    base_model_dir: Path, tmp_path: Path, make_spec: Callable[..., dict[str, Any]]
) -> None:
    folder = tmp_path / "thinking-model"
    shutil.copytree(base_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": THINKING}))
    examples = [_example(i) for i in range(4)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in examples))

    spec = make_spec(
        training_file=data.as_uri(), checkpoint_every_steps=100,
        method={"type": "supervised", "supervised": {"n_epochs": 1, "batch_size": 4}},
    )  # fmt: skip
    spec["base_model"] = {**spec["base_model"], "name": "thinking", "path": str(folder)}
    recorder = Recorder()
    result = train(JobSpec.model_validate(spec), Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded" and result.total_steps == 1

    chat = ChatTokenizer.from_folder(folder)
    encoded = [chat.encode(e) for e in examples]
    assert all(len(e.sequences) == 2 for e in encoded)
    # The step trained the tokens of both sequences of every example: the conversation up to
    # the first answer (with its reasoning, which the whole conversation no longer shows) too.
    finished = recorder.of_type("finished")[0]
    assert finished["trained_tokens"] == sum(len(e) for e in encoded)
    assert finished["trained_tokens"] > sum(len(e.sequences[-1]) for e in encoded)
    logs = [m["message"] for m in recorder.of_type("log")]
    assert any("4 training examples (8 sequences," in m for m in logs), logs
