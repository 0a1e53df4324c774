"""One real vLLM (CPU) for the whole test session, started through the serving supervisor.

Registered in tests/conftest.py (`pytest_plugins`), so any test can ask for `vllm_server`.
The vLLM serves the small base model as `whetstone-tiny` with the Whetstone LoRA resolver
reading a local object store (`vllm_server.store`, also at `vllm_server.store_url`): publish
an adapter there (`publish_adapter`) and its `ft:` name answers at once.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contracts.local_store import LocalStore
from contracts.pointers import ModelPointer, write_pointer
from contracts.store import ObjectStore
from serving.launcher import BaseModelEntry, ResolverSettings, ServingOptions, http_client
from serving.supervisor import Supervisor
from tests.conftest import require

BASE_MODEL = "whetstone-tiny"
MAX_LORAS = 2
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]

log = logging.getLogger(__name__)


@dataclass
class VllmServer:
    supervisor: Supervisor
    base_model: str
    base_model_dir: Path
    store: ObjectStore
    store_url: str
    cache_dir: Path
    log_path: Path

    @property
    def address(self) -> str:
        """`unix:/path.sock`: vLLM listens on a Unix socket only the service's user reaches
        (what `WHETSTONE_VLLM_URLS` takes for a vLLM of its own)."""
        return self.supervisor.address(self.base_model)

    @property
    def headers(self) -> dict[str, str]:
        """vLLM's API key: every `/v1` route of vLLM answers 401 without it."""
        return self.supervisor.auth_headers

    def http(self, *, key: bool = True, timeout: float = 120) -> httpx.Client:
        """A client for vLLM's routes over its socket (`client.get("/v1/models")`), with the
        API key unless `key=False`."""
        return http_client(self.address, timeout=timeout, headers=self.headers if key else None)

    def chat(self, model: str, content: str = "hello there", max_tokens: int = 8) -> httpx.Response:
        """A greedy chat completion straight to vLLM."""
        body = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        with self.http() as http:
            return http.post("/v1/chat/completions", json=body)

    def answer(self, model: str, content: str = "hello there", max_tokens: int = 8) -> str:
        response = self.chat(model, content, max_tokens)
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])


def make_tiny_base_model(path: Path) -> Path:
    """A small random Llama (head_dim 64, as vLLM's CPU attention needs) with a chat template.

    Used until `trainer.basemodel.make_base_model` exists; deterministic.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(
        ["hello world, the quick brown fox jumps over the lazy dog"] * 8, trainer
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=1024,
        bos_token_id=0, eos_token_id=1, pad_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def make_lora_adapter(base_model_dir: Path, out: Path, seed: int, rank: int = 8) -> Path:
    """A PEFT LoRA folder for the base model with random non-zero weights (seeded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=LORA_TARGETS)
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    peft_model.save_pretrained(out)
    return out


def publish_adapter(
    store: ObjectStore, adapter_dir: Path, model: str, job_id: str, base_model: str = BASE_MODEL
) -> str:
    """Upload an adapter folder as a job's final adapter and write the model pointer."""
    prefix = f"jobs/{job_id}/final/adapter/"
    store.upload_dir(adapter_dir, prefix)
    write_pointer(store, ModelPointer(model=model, base_model=base_model, adapter_prefix=prefix))
    return prefix


@pytest.fixture(scope="session")
def vllm_base_model_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The served base model: `base_model_dir` once the trainer builds one, else a local one."""
    if importlib.util.find_spec("trainer.basemodel") is not None:
        return Path(request.getfixturevalue("base_model_dir"))
    return make_tiny_base_model(tmp_path_factory.mktemp("vllm-base") / BASE_MODEL)


@pytest.fixture(scope="session")
def vllm_server(
    vllm_base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    """A real vLLM serving `whetstone-tiny` with the resolver plugin; shared by the session."""
    require(importlib.util.find_spec("vllm") is not None, "vLLM is not installed")
    require(_plugin_installed(), "whetstone is not pip-installed: no resolver entry point")
    root = tmp_path_factory.mktemp("vllm")
    store = LocalStore(root / "objects")
    entry = BaseModelEntry(
        name=BASE_MODEL,
        path=str(vllm_base_model_dir),
        max_seq_len=512,
        serving=ServingOptions(max_loras=MAX_LORAS, max_lora_rank=16, max_num_seqs=8),
    )
    resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(root / "lora-cache"))
    supervisor = Supervisor([entry], resolver, root / "logs", startup_timeout=300)
    supervisor.start()
    try:
        supervisor.wait_ready(timeout=300)
        log.info("vLLM up in %.1fs", supervisor.status(BASE_MODEL).startup_seconds or -1)
        yield VllmServer(
            supervisor, BASE_MODEL, vllm_base_model_dir, store, store.url,
            root / "lora-cache", root / "logs" / f"{BASE_MODEL}.log",
        )  # fmt: skip
    except TimeoutError:
        log_text = (root / "logs" / f"{BASE_MODEL}.log").read_text()[-4000:]
        pytest.fail(f"vLLM did not start:\n{log_text}")
    finally:
        supervisor.stop()


def _plugin_installed() -> bool:
    from importlib.metadata import entry_points

    return any(
        ep.name == "whetstone_lora_resolver" for ep in entry_points(group="vllm.general_plugins")
    )


def adapter_config(path: Path) -> dict[str, object]:
    return dict(json.loads((path / "adapter_config.json").read_text()))
