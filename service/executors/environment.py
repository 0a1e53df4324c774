"""What of the service's environment a local trainer inherits: what it runs on, no secret.

The service's environment holds its database URL, vLLM's API key, the deployment's W&B key
and whatever else its operator put there; a trainer needs none of them (it reports through
its attempt's token and reads only the object store). `inherited(environ, wandb=...)` keeps
the variables that make Python, CUDA, PyTorch, Hugging Face and the object store work, and
W&B's own only for a job with a W&B integration. Everything a trainer is given on purpose
comes on top (`Attempt.env`, `Attempt.secret_env`, the token).
"""

from __future__ import annotations

from collections.abc import Mapping

KEPT = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG", "LANGUAGE",
    "PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONWARNINGS", "VIRTUAL_ENV",
    "LD_LIBRARY_PATH", "LD_PRELOAD",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
})  # fmt: skip
"""Kept by name: the process, Python, locale, certificates and proxies."""

KEPT_PREFIXES = (
    "LC_", "CUDA_", "NVIDIA_", "NCCL_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "KMP_",
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "BNB_", "ACCELERATE_", "TRITON_",
    "AWS_",
)  # fmt: skip
"""Kept by prefix: locale, GPUs, PyTorch and its libraries, Hugging Face, and `AWS_` (the
object store's credentials: a trainer reads its data and writes its checkpoints there)."""

WANDB_PREFIX = "WANDB_"
DROPPED = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})
"""Secrets under a kept prefix that a trainer never needs (it downloads nothing)."""


def inherited(environ: Mapping[str, str], *, wandb: bool) -> dict[str, str]:
    """The variables of `environ` a trainer gets: `KEPT`, `KEPT_PREFIXES`, and `WANDB_*`
    (and `NETRC`, where wandb may keep its key) only when the job logs to W&B."""

    def kept(name: str) -> bool:
        if name in DROPPED:
            return False
        if name in KEPT or name.startswith(KEPT_PREFIXES):
            return True
        return wandb and (name.startswith(WANDB_PREFIX) or name == "NETRC")

    return {name: value for name, value in environ.items() if kept(name)}
