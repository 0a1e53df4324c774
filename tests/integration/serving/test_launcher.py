"""The vLLM command line and environment built from a registry entry."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from serving.launcher import (
    BaseModelEntry,
    ResolverSettings,
    ServingOptions,
    http_base,
    k8s_env,
    socket_of,
    vllm_args,
    vllm_command,
    vllm_env,
)

ENTRY = BaseModelEntry(
    name="whetstone-tiny",
    path="/models/whetstone-tiny",
    max_seq_len=512,
    serving=ServingOptions(max_loras=2, max_lora_rank=16, cpu_kv_cache_gib=2),
)
RESOLVER = ResolverSettings(
    object_store_url="s3://bucket/data",
    lora_cache_dir="/cache/lora",
    s3_endpoint_url="http://s3:9000",
)


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_command_serves_the_model_with_runtime_lora_on_loopback() -> None:
    argv, env = vllm_command(ENTRY, RESOLVER, port=8123)
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(argv, "--model") == "/models/whetstone-tiny"
    assert _flag(argv, "--served-model-name") == "whetstone-tiny"
    assert "--enable-lora" in argv
    assert _flag(argv, "--max-loras") == "2"
    assert _flag(argv, "--max-lora-rank") == "16"
    assert _flag(argv, "--max-model-len") == "512"
    assert (_flag(argv, "--host"), _flag(argv, "--port")) == ("127.0.0.1", "8123")
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "true"
    assert env["VLLM_PLUGINS"] == "whetstone_lora_resolver"


def test_host_memory_keeps_32_adapters_unless_the_registry_says_otherwise() -> None:
    """More tuned models in use than `max_loras` must not reload from disk on every request
    (bench/serving_many.py): vLLM keeps 32 adapters in host memory by default."""
    default = vllm_args(ENTRY, port=1)
    assert _flag(default, "--max-cpu-loras") == "32"
    wide = ENTRY.model_copy(update={"serving": ServingOptions(max_loras=64)})
    assert _flag(vllm_args(wide, port=1), "--max-cpu-loras") == "64"
    own = ENTRY.model_copy(update={"serving": ServingOptions(max_loras=2, max_cpu_loras=8)})
    assert _flag(vllm_args(own, port=1), "--max-cpu-loras") == "8"


def test_environment_carries_the_resolver_settings_and_no_credentials() -> None:
    env = vllm_env(ENTRY, RESOLVER)
    assert env["WHETSTONE_OBJECT_STORE_URL"] == "s3://bucket/data"
    assert env["WHETSTONE_S3_ENDPOINT_URL"] == "http://s3:9000"
    assert env["WHETSTONE_LORA_CACHE_DIR"] == "/cache/lora"
    assert env["WHETSTONE_BASE_MODEL"] == "whetstone-tiny"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert not any("SECRET" in k or "KEY" in k for k in env)


def test_gpu_entry_has_no_cpu_settings() -> None:
    gpu = ENTRY.model_copy(
        update={"serving": ServingOptions(device="gpu", gpu_memory_utilization=0.8)}
    )
    args, env = vllm_args(gpu, port=8000, host="0.0.0.0"), vllm_env(gpu, RESOLVER)
    assert _flag(args, "--gpu-memory-utilization") == "0.8"
    assert _flag(args, "--host") == "0.0.0.0"
    assert "VLLM_CPU_KVCACHE_SPACE" not in env


def test_args_and_env_render_for_a_kubernetes_container() -> None:
    args = vllm_args(ENTRY, port=8000, host="0.0.0.0")
    assert all(isinstance(a, str) for a in args)
    env = k8s_env(vllm_env(ENTRY, RESOLVER))
    assert {"name": "VLLM_PLUGINS", "value": "whetstone_lora_resolver"} in env
    assert [e["name"] for e in env] == sorted(e["name"] for e in env)


def test_registry_entry_is_validated() -> None:
    entry = BaseModelEntry.model_validate(
        {
            "name": "m",
            "path": "/m",
            "max_seq_len": 256,
            "serving": {"max_loras": 3, "extra_args": ["--seed", "1"]},
        }
    )
    assert vllm_args(entry, port=1)[-2:] == ["--seed", "1"]
    with pytest.raises(ValidationError):
        BaseModelEntry.model_validate({"name": "m", "path": "/m", "serving": {"max_lorass": 3}})


def test_launcher_imports_neither_vllm_nor_torch() -> None:
    import subprocess

    code = (
        "import sys, serving.launcher, serving.supervisor, serving.adapters; "
        "print(sorted({'vllm', 'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_on_a_unix_socket_vllm_has_no_tcp_listener() -> None:
    argv, _ = vllm_command(ENTRY, RESOLVER, uds="/run/whetstone/tiny.sock")
    assert _flag(argv, "--uds") == "/run/whetstone/tiny.sock"
    assert "--host" not in argv and "--port" not in argv


@pytest.mark.parametrize(
    ("address", "socket", "base"),
    [("unix:/run/v.sock", "/run/v.sock", "http://vllm"),
     ("unix:///run/v.sock", "/run/v.sock", "http://vllm"),
     ("http://vllm-tiny:8000/", None, "http://vllm-tiny:8000")],
)  # fmt: skip
def test_a_vllm_address_is_a_unix_socket_or_a_url(
    address: str, socket: str | None, base: str
) -> None:
    assert (socket_of(address), http_base(address)) == (socket, base)
