"""The vLLM command line and environment for one base model of the registry.

One source for both ways of running vLLM: the local supervisor (`serving.supervisor`) runs
`python -m vllm.entrypoints.openai.api_server ARGS` with `ENV` added to its own environment,
and the Kubernetes manifests put `vllm_args(...)` in a container's `args` and
`k8s_env(vllm_env(...))` in its `env`. No vLLM or torch import here: the service uses it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.spec import Epochs, LearningRateMultiplier

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
API_KEY_ENV = "VLLM_API_KEY"
"""vLLM's API key, read from its environment (a command line is readable by every local user):
set by the local supervisor, from a Secret on Kubernetes. vLLM then answers 401 on every `/v1`
route without it (`/health` stays open)."""
RESOLVER_PLUGIN = "whetstone_lora_resolver"
UNIX_SCHEME = "unix:"
"""An address `unix:/abs/path.sock` is a vLLM listening on that Unix socket (`--uds`); any
other is an `http://host:port` base URL."""
SOCKET_BASE_URL = "http://vllm"
"""The URL requests over a Unix socket are made to (the host only names the `Host` header)."""


def socket_of(address: str) -> str | None:
    """The socket path of a `unix:` address (`unix:/p`, `unix:///p`), else None."""
    if not address.startswith(UNIX_SCHEME):
        return None
    return "/" + address[len(UNIX_SCHEME) :].lstrip("/")


def http_base(address: str) -> str:
    """The base URL to put before `/v1/...` for a vLLM at `address`."""
    return SOCKET_BASE_URL if socket_of(address) else address.rstrip("/")


def http_client(address: str, **kwargs: Any) -> httpx.Client:
    """An httpx client whose relative URLs (`/v1/models`) reach the vLLM at `address`, over
    its Unix socket or TCP; `kwargs` go to `httpx.Client` (timeout, headers)."""
    socket = socket_of(address)
    transport = httpx.HTTPTransport(uds=socket) if socket else None
    return httpx.Client(base_url=http_base(address), transport=transport, trust_env=False, **kwargs)


DEFAULT_CPU_LORAS = 32
"""Adapters vLLM keeps in host memory when the registry does not say (vLLM's own default is
`max_loras`: with more tuned models in use than that, every request of one not in its cache
reads it from disk again and evicts another; `bench/serving_many.py`)."""


class ServingOptions(BaseModel):
    """How vLLM serves one base model (the `serving` block of a registry entry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Literal["cpu", "gpu"] = "cpu"
    max_loras: int = Field(default=4, ge=1, description="Adapters in one batch.")
    max_cpu_loras: int | None = Field(
        default=None,
        ge=1,
        description="Adapters kept in host memory, ready to swap into a batch slot; unset: "
        f"max(max_loras, {DEFAULT_CPU_LORAS}) (`bench/serving_many.py`).",
    )
    max_lora_rank: int = Field(default=64, ge=1)
    max_num_seqs: int | None = Field(default=None, ge=1)
    dtype: str = "auto"
    cpu_kv_cache_gib: int = Field(default=1, ge=1, description="VLLM_CPU_KVCACHE_SPACE (cpu).")
    cpu_threads_bind: str | None = Field(default=None, description="VLLM_CPU_OMP_THREADS_BIND.")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    extra_args: tuple[str, ...] = ()
    cuda_visible_devices: str | None = Field(
        default=None,
        description="CUDA_VISIBLE_DEVICES of this vLLM (gpu, local supervisor), e.g. `0`; "
        "unset: `whetstone up`'s GPU plan picks (service.gpus).",
    )


HUB_SCHEME = "hf://"
DEFAULT_REVISION = "main"
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_HUB_SOURCE = re.compile(
    rf"^hf://(?P<repo>(?:{_HUB_PART}/)?{_HUB_PART})(?:@(?P<revision>[A-Za-z0-9._][A-Za-z0-9._/-]*))?$"
)
SOURCE_GRAMMAR = "hf://ORG/NAME[@REVISION] (REVISION: a branch, tag or commit; default main)"


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face repository at one revision (a registry entry's `source`)."""

    repo_id: str
    revision: str = DEFAULT_REVISION

    def __str__(self) -> str:
        return f"{HUB_SCHEME}{self.repo_id}@{self.revision}"


def parse_hub_source(source: str) -> HubSource:
    """`hf://Qwen/Qwen2.5-7B-Instruct@main` -> HubSource; ValueError naming the grammar."""
    match = _HUB_SOURCE.match(source)
    repo = match["repo"] if match else ""
    revision = (match["revision"] if match else None) or DEFAULT_REVISION
    rest = source[len(HUB_SCHEME) :]
    if match is None or len(repo) > 96 or "--" in repo or ".." in rest or "//" in rest:
        if not source.startswith(HUB_SCHEME):
            why = f"only Hugging Face repositories ({HUB_SCHEME}) are supported"
        else:
            why = "ORG and NAME are letters, digits and ._- (no '--' or '..', 96 at most)"
        raise ValueError(f"source {source!r}: expected {SOURCE_GRAMMAR}; {why}")
    return HubSource(repo_id=repo, revision=revision)


class AutoHyperparameters(BaseModel):
    """What `auto` gives jobs on one base model (the `auto` block of a registry entry); a
    field left unset follows the service's rule (`service.fine_tuning.auto_hyperparameters`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_epochs: Epochs | None = Field(
        default=None, description="Epochs for `n_epochs: auto`, whatever the size."
    )
    learning_rate_multiplier: LearningRateMultiplier | None = Field(
        default=None,
        description="The multiplier of the base rate (2e-4) for `learning_rate_multiplier: auto`.",
    )


class BaseModelEntry(BaseModel):
    """A registered base model: served name, local folder, context length, serving options.

    `source` (`hf://ORG/NAME[@REVISION]`) names the Hugging Face repository the folder is
    downloaded from by `whetstone models pull` (`service.hub`); without it, `path` must
    already hold the model. The registry fills in `path` for an entry with only `source`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$", max_length=64)
    path: str
    source: str | None = Field(default=None, description=SOURCE_GRAMMAR)
    max_seq_len: int = Field(default=1024, ge=16)
    serving: ServingOptions = ServingOptions()
    auto: AutoHyperparameters = AutoHyperparameters()

    @field_validator("source")
    @classmethod
    def _valid_source(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hub_source(value)
        return value

    @property
    def hub_source(self) -> HubSource | None:
        """The parsed `source`, or None for a model that is only a local folder."""
        return parse_hub_source(self.source) if self.source is not None else None


class ResolverSettings(BaseModel):
    """What the LoRA resolver inside vLLM needs: the object store and a cache folder."""

    model_config = ConfigDict(frozen=True)

    object_store_url: str
    lora_cache_dir: str
    s3_endpoint_url: str | None = None


def vllm_args(
    entry: BaseModelEntry, *, port: int = 8000, host: str = "127.0.0.1", uds: str | None = None
) -> list[str]:
    """The arguments after `python -m vllm.entrypoints.openai.api_server` (a YAML list): on
    the Unix socket `uds` when given (the local supervisor), else on `host:port` (Kubernetes)."""
    opts = entry.serving
    where = ["--uds", uds] if uds else ["--host", host, "--port", str(port)]
    args = [
        "--model", entry.path,
        "--served-model-name", entry.name,
        "--enable-lora",
        "--max-loras", str(opts.max_loras),
        "--max-lora-rank", str(opts.max_lora_rank),
        "--max-model-len", str(entry.max_seq_len),
        "--dtype", opts.dtype,
        *where,
    ]  # fmt: skip
    cpu_loras = opts.max_cpu_loras or max(opts.max_loras, DEFAULT_CPU_LORAS)
    args += ["--max-cpu-loras", str(max(cpu_loras, opts.max_loras))]  # vLLM refuses fewer
    if opts.max_num_seqs is not None:
        args += ["--max-num-seqs", str(opts.max_num_seqs)]
    if opts.device == "gpu":
        args += ["--gpu-memory-utilization", str(opts.gpu_memory_utilization)]
    return args + list(opts.extra_args)


def vllm_env(entry: BaseModelEntry, resolver: ResolverSettings) -> dict[str, str]:
    """Variables to add to the environment vLLM runs in (credentials are not among them: the
    supervisor adds `API_KEY_ENV`, Kubernetes takes it from a Secret)."""
    env = {
        # Runtime adapters: the resolver plugin and /v1/load_lora_adapter. These endpoints
        # load or unload any adapter: only the API, which holds vLLM's API key, calls them.
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true",
        "VLLM_PLUGINS": RESOLVER_PLUGIN,
        "WHETSTONE_OBJECT_STORE_URL": resolver.object_store_url,
        "WHETSTONE_LORA_CACHE_DIR": resolver.lora_cache_dir,
        "WHETSTONE_BASE_MODEL": entry.name,
        # Nothing is downloaded at run time and nothing is reported anywhere.
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if resolver.s3_endpoint_url:
        env["WHETSTONE_S3_ENDPOINT_URL"] = resolver.s3_endpoint_url
    if entry.serving.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = entry.serving.cuda_visible_devices
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # count GPUs as nvidia-smi does
    if entry.serving.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(entry.serving.cpu_kv_cache_gib)
        if entry.serving.cpu_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = entry.serving.cpu_threads_bind
    return env


def vllm_command(
    entry: BaseModelEntry,
    resolver: ResolverSettings,
    *,
    port: int = 8000,
    host: str = "127.0.0.1",
    uds: str | None = None,
    python: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(argv, env additions) to start vLLM for `entry`, on the socket `uds` or `host:port`."""
    args = vllm_args(entry, port=port, host=host, uds=uds)
    return [python or sys.executable, "-m", VLLM_MODULE, *args], vllm_env(entry, resolver)


def k8s_env(env: dict[str, str]) -> list[dict[str, str]]:
    """Environment variables as a container's `env` list, sorted by name."""
    return [{"name": k, "value": v} for k, v in sorted(env.items())]
