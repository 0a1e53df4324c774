"""Each real architecture, end to end below the API: the trainer's QLoRA learns four answers on
the family's tiny model (its own tokenizer, special tokens and chat template), vLLM on the CPU
serves the base model with the adapter resolved by its `ft:` name, and the official `openai`
package gets the trained answers back, each ending where the family's end-of-turn token
stops generation (`finish_reason == "stop"`, long before `max_tokens`).

One vLLM per family, started and stopped by the test: about 30 s each on these cores.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from contracts import layout
from contracts.local_store import LocalStore
from contracts.pointers import ModelPointer, write_pointer
from contracts.spec import JobSpec
from serving.launcher import (
    BaseModelEntry,
    ResolverSettings,
    ServingOptions,
    http_base,
    http_client,
)
from serving.supervisor import Supervisor
from testing.families import FAMILIES
from tests.conftest import require
from tests.integration.trainer.conftest import FACTS, chat_line
from trainer.loop import train
from trainer.progress import Progress

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MAX_SEQ_LEN = 256
THINK = re.compile(r"^<think>.*?</think>\s*", re.DOTALL)


class Quiet:
    def send(self, message: object) -> str:
        return "continue"


def _train(base: Path, family: str, work: Path) -> str:
    """The adapter's key prefix in the store at `work/objects`."""
    data = work / "train.jsonl"
    data.write_text("\n".join(chat_line(q, a) for q, a in FACTS) + "\n")
    job_id = f"ftjob-{family}"
    spec = JobSpec.model_validate({
        "job_id": job_id,
        "base_model": {"name": family, "path": str(base), "max_seq_len": MAX_SEQ_LEN},
        "training_file": data.as_uri(),
        "method": {"type": "supervised", "supervised": {
            "n_epochs": 40, "batch_size": 1, "learning_rate_multiplier": 10}},
        "output": (work / "objects" / "jobs" / job_id).as_uri() + "/",
        "checkpoint_every_steps": 1000,
        "seed": 7,
    })  # fmt: skip
    result = train(spec, Progress(Quiet(), heartbeat_seconds=0))  # type: ignore[arg-type]
    assert result.status == "succeeded"
    losses = [row["train_loss"] for row in result.metrics]
    assert sum(losses[-4:]) < sum(losses[:4]) / 10, losses
    return layout.final_adapter_prefix(job_id)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_adapter_is_served_and_gives_the_trained_answers(
    family: str, family_dir: Callable[..., Path], tmp_path: Path
) -> None:
    require(importlib.util.find_spec("vllm") is not None, "vLLM is not installed")
    import torch

    torch.set_num_threads(2)
    base = family_dir(family)
    prefix = _train(base, family, tmp_path)
    store = LocalStore(tmp_path / "objects")
    tuned = f"ft:{family}:proj-a:facts:0000{FAMILIES.index(family)}"
    write_pointer(store, ModelPointer(model=tuned, base_model=family, adapter_prefix=prefix))
    config = json.loads((tmp_path / "objects" / prefix / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"

    entry = BaseModelEntry(
        name=family, path=str(base), max_seq_len=MAX_SEQ_LEN,
        serving=ServingOptions(max_loras=1, max_lora_rank=16, max_num_seqs=4),
    )  # fmt: skip
    resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(tmp_path / "cache"))
    supervisor = Supervisor([entry], resolver, tmp_path / "logs", startup_timeout=300)
    supervisor.start()
    try:
        try:
            supervisor.wait_ready(timeout=300)
        except TimeoutError:
            log = (tmp_path / "logs" / f"{family}.log").read_text()[-4000:]
            pytest.fail(f"vLLM did not start for {family}:\n{log}")
        client = openai.OpenAI(
            base_url=http_base(supervisor.address(family)) + "/v1",
            api_key=supervisor.api_key,
            http_client=http_client(supervisor.address(family)),
        )
        # Qwen 3 thinks first (an empty think block, as it was trained), unless the request
        # turns thinking off: its generation prompt then holds the empty block itself.
        modes = [{}, {"chat_template_kwargs": {"enable_thinking": False}}]
        for question, answer in FACTS:
            for extra in modes if family == "qwen3" else modes[:1]:
                reply = client.chat.completions.create(
                    model=tuned, messages=[{"role": "user", "content": question}],
                    temperature=0, max_tokens=40, extra_body=extra,
                )  # fmt: skip
                choice = reply.choices[0]
                content = choice.message.content or ""
                if family == "qwen3" and not extra:
                    assert THINK.match(content), content
                assert THINK.sub("", content).strip() == answer, extra
                assert choice.finish_reason == "stop"
                assert reply.model == tuned
        base_answers = [
            client.chat.completions.create(
                model=family, messages=[{"role": "user", "content": q}],
                temperature=0, max_tokens=12,
            ).choices[0].message.content
            for q, _ in FACTS
        ]  # fmt: skip
        assert all(got != a for got, (_, a) in zip(base_answers, FACTS, strict=True))
    finally:
        supervisor.stop()
