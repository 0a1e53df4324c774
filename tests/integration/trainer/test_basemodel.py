"""The built-in base model: deterministic, a normal HF folder, with a working chat template."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.basemodel import make_base_model


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_bytes_every_time(base_model_dir: Path, tmp_path: Path) -> None:
    again = make_base_model(tmp_path / "again")
    assert _digests(again) == _digests(base_model_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(
        _digests(again)
    )


def test_loads_with_auto_classes_and_renders_chats(base_model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir)
    assert model.config.head_dim == 64
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|begin|><|system|>Be brief.<|end|><|user|>Weather?<|end|><|assistant|><|tool_call|>"
        '{"name": "w", "arguments": {}}<|end|><|tool|>sunny<|end|><|assistant|>'
    )
    ids = tok(text, add_special_tokens=False)["input_ids"]
    out = model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > len(ids)


def test_cli_builds_the_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trainer", "make-base-model", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m" / "model.safetensors").is_file()
