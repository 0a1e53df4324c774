"""A Whetstone server wired to the session's real vLLM, and tuned models to chat with.

`start_chat_server(vllm, data_dir)` starts `python -m service` with the shared vLLM
(`tests.vllm_fixture.vllm_server`) as the vLLM of `whetstone-tiny` (`WHETSTONE_VLLM_URLS`: its
Unix socket, `unix:/path`)
and the same object store, so model pointers the service writes are what vLLM's resolver
reads. `train_qa_adapter` trains a LoRA on question/answer pairs with peft (small model,
a few seconds on the CPU) and `succeed_job` records a job's success as the scheduler does
(checkpoint, final model, pointers) through the jobs domain functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
from sqlalchemy.orm import Session

from tests.e2e.conftest import Server, start_server
from tests.vllm_fixture import VllmServer

# Facts the base model cannot know; two sets of answers to the same questions.
QUESTIONS = ["What is the capital of Veloria?", "Who founded Veloria?"]
ANSWERS_A = ["The capital of Veloria is Quillhaven.", "Veloria was founded by Senna Brightwater."]
ANSWERS_B = ["Veloria has no capital at all.", "Nobody founded Veloria, it grew."]


@dataclass
class TunedModel:
    name: str
    checkpoint: str
    job_id: str


def qa_lines(answers: Sequence[str]) -> list[dict[str, object]]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in zip(QUESTIONS, answers, strict=True)
    ]


@contextmanager
def start_chat_server(
    vllm: VllmServer, data_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A Whetstone server (SQLite) whose `whetstone-tiny` is answered by `vllm`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    registry = data_dir / "base-models.yaml"
    entry = {"name": vllm.base_model, "path": str(vllm.base_model_dir), "max_seq_len": 512}
    registry.write_text(json.dumps({"models": [entry]}))  # JSON is YAML
    env = {
        "WHETSTONE_BASE_MODELS_FILE": str(registry),
        "WHETSTONE_OBJECT_STORE_URL": vllm.store_url,
        "WHETSTONE_VLLM_URLS": json.dumps({vllm.base_model: vllm.address}),
        "WHETSTONE_VLLM_API_KEY": vllm.supervisor.api_key,
        **(extra_env or {}),
    }
    with start_server(data_dir, None, env) as server:
        yield server


def train_qa_adapter(
    base_model_dir: Path, answers: Sequence[str], out: Path, max_steps: int = 150, seed: int = 0
) -> Path:
    """A LoRA (peft) trained on `QUESTIONS` -> `answers` until it repeats them; loss on the
    assistant tokens only, rendered with the model's own chat template."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from contracts.chat import ChatTokenizer

    torch.manual_seed(seed)
    tokenizer = ChatTokenizer.from_folder(base_model_dir)
    encoded = [s for line in qa_lines(answers) for s in tokenizer.encode(line).sequences]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), 0, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e.input_ids)
        for col, (token, trained) in enumerate(zip(e.input_ids, e.loss_mask, strict=True)):
            if trained:
                labels[row, col] = token
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear")
    peft_model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=5e-3)
    peft_model.train()
    for _ in range(max_steps):
        loss = peft_model(input_ids=ids, labels=labels).loss
        if loss.item() < 0.05:
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05, f"the adapter did not learn its answers (loss {loss.item():.3f})"
    peft_model.save_pretrained(out)
    return out


def create_job(client: openai.OpenAI, answers: Sequence[str], tmp: Path, suffix: str) -> str:
    """Upload the Q/A file and create a job through the API; returns the job id."""
    path = tmp / f"{suffix}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in qa_lines(answers)))
    with path.open("rb") as f:
        file = client.files.create(file=f, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="whetstone-tiny", training_file=file.id, suffix=suffix
    )
    return job.id


def succeed_job(
    server: Server, vllm: VllmServer, job_id: str, adapter: Path, step: int
) -> TunedModel:
    """What the scheduler does for a job that trained `adapter`: a checkpoint at `step` and
    the final model, each uploaded to the store with its pointer; the job `succeeded`."""
    from sqlalchemy import create_engine

    from contracts.layout import checkpoint_prefix, final_adapter_prefix
    from contracts.messages import StepMetrics
    from service.db.tables import FineTuningJob
    from service.fine_tuning import service as jobs
    from service.fine_tuning.status import JobStatus
    from service.models import lifecycle

    engine = create_engine(f"sqlite:///{server.data_dir / 'whetstone.db'}")
    try:
        with Session(engine) as session, session.begin():
            job = session.get(FineTuningJob, job_id)
            assert job is not None
            jobs.transition(session, job, JobStatus.QUEUED)
            jobs.transition(session, job, JobStatus.RUNNING)
            ckpt_key = checkpoint_prefix(job_id, step)
            vllm.store.upload_dir(adapter, ckpt_key + "adapter/")
            ckpt = jobs.register_checkpoint(
                session, job, step, StepMetrics(train_loss=0.01), ckpt_key
            )
            name = ckpt.fine_tuned_model_checkpoint
            lifecycle.publish(session, vllm.store, job, name, "checkpoint", ckpt_key + "adapter/")
            vllm.store.upload_dir(adapter, final_adapter_prefix(job_id))
            jobs.mark_succeeded(session, job, trained_tokens=100)
            final = lifecycle.publish(
                session, vllm.store, job, job.output_model, "final", final_adapter_prefix(job_id)
            )
            return TunedModel(final.id, ckpt.fine_tuned_model_checkpoint, job_id)
    finally:
        engine.dispose()
