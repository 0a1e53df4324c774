"""`whetstone up` with a Llama-3-shaped base model from a registry file, as a team with its
own model folder runs it: Llama 3's tokenizer (`<|begin_of_text|>`, `<|eot_id|>` ... as added
special tokens), its chat template (an unguarded `messages[0]`, a dated system header) and its
architecture (GQA, llama3 rope scaling). The job validates with that template, trains, and the
tuned model answers through the `openai` package, stopping on `<|eot_id|>`. The same with a
Llama 3 template as they circulate in public collections, pretty-printed with indented `{{ }}`
lines: spaces before every header, a newline after every turn, and a generation prompt that
is not a byte prefix of the rendered assistant turn."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
import yaml

from testing.families import LLAMA3_INDENTED_TEMPLATE, make_family_model
from tests.e2e.lifecycle_stack import FINAL, wait_for
from tests.e2e.test_up import DATASET, HYPERPARAMETERS, messages, whetstone_up

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

NAME = "llama-3-tiny"
SYSTEM = "You answer questions about Veloria."
SEED = 20261207


def test_up_trains_and_serves_a_llama_3_model(
    family_dir: Callable[..., Path], tmp_path: Path
) -> None:
    train_and_serve(family_dir("llama3"), tmp_path)


def test_up_trains_and_serves_a_llama_3_model_with_an_indented_template(tmp_path: Path) -> None:
    folder = make_family_model(
        "llama3", tmp_path / "llama-3-indented", chat_template=LLAMA3_INDENTED_TEMPLATE
    )
    train_and_serve(folder, tmp_path)


def train_and_serve(folder: Path, tmp_path: Path) -> None:
    """A job on the model at `folder` validates, trains (25 epochs at 10x), and
    the tuned model gives four trained answers through the `openai` package, each stopping
    on `<|eot_id|>`; the base model does not."""
    registry = tmp_path / "models.yaml"
    entry = {"name": NAME, "path": str(folder), "max_seq_len": 1024,
             "serving": {"max_lora_rank": 16, "max_loras": 2}}  # fmt: skip
    registry.write_text(yaml.safe_dump({"models": [entry]}))
    qa = [json.loads(line)["messages"] for line in DATASET.read_text().splitlines()]
    qa = [(m[1]["content"], m[2]["content"]) for m in qa[:4]]

    # Ended with kill -9: its vLLM goes with it (a parent-death signal), none is left behind.
    up_args = ("--base-models-file", str(registry))
    with whetstone_up(tmp_path / "data", *up_args, stop=signal.SIGKILL) as up:
        key = up.first_key()
        client = up.client(key)
        assert [m.id for m in client.models.list()] == [NAME]
        with DATASET.open("rb") as f:
            file = client.files.create(file=f, purpose="fine-tune")
        # A fixed seed: with a random one, now and then the tiny model ends its epochs still
        # mixing two answers that begin alike ("Veloria was founded by ..." and "Veloria is led
        # by ...": "Veloria is led by Admiral Senna Brightwater." was seen once).
        job = client.fine_tuning.jobs.create(
            model=NAME, training_file=file.id, suffix="veloria", seed=SEED,
            method={"type": "supervised", "supervised": {"hyperparameters": HYPERPARAMETERS}},
        )  # fmt: skip
        done = wait_for(client, job.id, FINAL, 600)
        assert done.status == "succeeded", (done.error, "\n".join(up.lines[-40:]))
        assert done.fine_tuned_model and done.fine_tuned_model.startswith(f"ft:{NAME}:")
        said = messages(client, job.id)
        assert any(m.startswith("Tokenized 16 training examples") for m in said), said
        up.wait_for_line(rf"vLLM for {NAME} is ready", 300)
        for question, answer in qa:
            reply = client.chat.completions.create(
                model=done.fine_tuned_model, temperature=0, max_tokens=48,
                messages=[{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": question}],
            )  # fmt: skip
            assert (reply.choices[0].message.content or "").strip() == answer
            assert reply.choices[0].finish_reason == "stop"  # on <|eot_id|>, not max_tokens
        base = client.chat.completions.create(
            model=NAME, temperature=0, max_tokens=16,
            messages=[{"role": "user", "content": qa[0][0]}],
        )  # fmt: skip
        assert (base.choices[0].message.content or "").strip() != qa[0][1]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="whetstone-tiny", messages=[{"role": "user", "content": "hi"}]
            )
