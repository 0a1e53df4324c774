"""Base models named by Hugging Face repository: `whetstone models pull` (torch-free).

A registry entry with `source: hf://ORG/NAME[@REVISION]` is downloaded once into its `path`
with `huggingface_hub.snapshot_download`: only what a model needs (config, safetensors
weights, tokenizer files, generation config, chat template). A marker file written after a
complete download (`.whetstone-pull.json`: source, commit, files) makes the next pull a
no-op that asks nothing of the Hub; a changed `source` downloads again.

The usual Hugging Face variables apply, read when `pull` runs: `HF_TOKEN` (gated and
private repositories), `HF_ENDPOINT` (a mirror), `HF_HUB_OFFLINE` (no network: the folder
must already be complete). Every failure is a `HubError` whose message says what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from serving.launcher import BaseModelEntry, HubSource

MARKER = ".whetstone-pull.json"
DEFAULT_ENDPOINT = "https://huggingface.co"
# What vLLM and the trainer load: top-level files only (no `original/`, `onnx/`, ... copies).
ALLOW_PATTERNS = [
    "*.json",  # config, generation config, tokenizer config, weights index, chat_template.json
    "*.safetensors",
    "*.jinja",  # chat_template.jinja
    "tokenizer.model",  # sentencepiece
    "*.tiktoken",
    "*.txt",  # merges.txt, vocab.txt
]
IGNORE_PATTERNS = ["*/*", "consolidated*", "training_args*", "optimizer*", "scheduler*"]

__all__ = ["HubAccess", "HubError", "PullResult", "is_pulled", "pull"]


class HubError(Exception):
    """A pull that failed, in words a user can act on."""


@dataclass(frozen=True)
class HubAccess:
    """How to reach the Hub: the `HF_*` variables of the environment, read once per pull."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    offline: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HubAccess:
        env = os.environ if environ is None else environ
        token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None
        offline = env.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
        endpoint = (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        return cls(endpoint=endpoint, token=token, offline=offline)


@dataclass(frozen=True)
class PullResult:
    """What a pull did: `downloaded` is False when the folder was already complete."""

    name: str
    path: Path
    source: HubSource
    commit: str
    downloaded: bool


def is_pulled(entry: BaseModelEntry) -> bool:
    """Whether `entry.path` holds a complete download of `entry.source` (no network)."""
    source = entry.hub_source
    return source is not None and _complete(Path(entry.path), source) is not None


def pull(
    entry: BaseModelEntry,
    *,
    progress: bool = True,
    force: bool = False,
    access: HubAccess | None = None,
) -> PullResult:
    """Download `entry.source` into `entry.path`, unless a complete download is there.

    `force` asks the Hub again and fetches whatever changed (a moved branch, a lost file).
    Raises `HubError`.
    """
    source = entry.hub_source
    if source is None:
        raise HubError(
            f"{entry.name} has no `source` in the registry: nothing to pull "
            f"(its files must already be in {entry.path})"
        )
    access = access or HubAccess.from_environ()
    folder = Path(entry.path)
    done = _complete(folder, source)
    if done is not None and not force:
        return PullResult(entry.name, folder, source, done, downloaded=False)
    if access.offline:
        raise HubError(
            f"{entry.name}: HF_HUB_OFFLINE is set and {source} is not downloaded in {folder} yet: "
            f"unset HF_HUB_OFFLINE to download it from {access.endpoint}, or copy the model "
            "folder there"
        )
    api = HfApi(endpoint=access.endpoint, token=access.token)
    try:
        info = api.model_info(source.repo_id, revision=source.revision)
        commit = info.sha
        listed = [s.rfilename for s in info.siblings or []]
        if commit is None:
            raise HubError(f"{access.endpoint} gave no commit for {source}: is it a Hub endpoint?")
        files = _wanted(listed)
        _check_loadable(entry.name, source, listed, files)
        folder.mkdir(parents=True, exist_ok=True)
        snapshot_download(
            source.repo_id,
            revision=commit,
            local_dir=folder,
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=IGNORE_PATTERNS,
            endpoint=access.endpoint,
            token=access.token,
            tqdm_class=None if progress else _Silent,
        )
    except HubError:
        raise
    except Exception as e:  # noqa: BLE001 - every Hub or network failure becomes one sentence
        raise _explain(e, entry, source, access) from e
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise HubError(f"{entry.name}: {source} was downloaded without {missing}: pull again")
    _write_marker(folder, source, commit, files)
    return PullResult(entry.name, folder, source, commit, downloaded=True)


def _wanted(files: Iterable[str]) -> list[str]:
    """The files of the repository a model needs (the patterns above, as the Hub client reads
    them: `*` matches `/` too)."""
    return sorted(
        f
        for f in files
        if any(fnmatch(f, p) for p in ALLOW_PATTERNS)
        and not any(fnmatch(f, p) for p in IGNORE_PATTERNS)
    )


def _check_loadable(name: str, source: HubSource, listed: list[str], files: list[str]) -> None:
    if "config.json" not in files:
        raise HubError(f"{name}: {source} has no config.json: it is not a Transformers model")
    if not any(f.endswith(".safetensors") for f in files):
        others = [f for f in listed if f.endswith((".bin", ".pth", ".pt", ".gguf"))]
        hint = f" (it has {others[:3]}; convert them to safetensors)" if others else ""
        raise HubError(f"{name}: {source} has no safetensors weights at its top level{hint}")


def _explain(
    error: Exception, entry: BaseModelEntry, source: HubSource, access: HubAccess
) -> HubError:
    """The failure as one sentence that says what to do."""
    page = f"{access.endpoint}/{source.repo_id}"
    status = error.response.status_code if isinstance(error, HfHubHTTPError) else None
    head = f"cannot pull {entry.name} from {source}"
    if isinstance(error, RevisionNotFoundError):
        return HubError(
            f"{head}: {source.repo_id} has no revision {source.revision!r}; put a branch, tag "
            f"or commit of {page} after '@' in the registry's `source`"
        )
    if isinstance(error, GatedRepoError) or status in (401, 403):
        tokens = "https://huggingface.co/settings/tokens"
        if isinstance(error, GatedRepoError) and access.token:
            what = (
                f"{source.repo_id} is gated and the token in HF_TOKEN has no access to it: "
                f"accept its conditions on {page} with that token's account, or use a token "
                f"of an account that has ({tokens})"
            )
        elif isinstance(error, GatedRepoError):
            what = (
                f"{source.repo_id} is gated: accept its conditions on {page}, then set HF_TOKEN "
                f"to a read token of that account ({tokens})"
            )
        elif access.token:
            what = (
                f"{source.repo_id} does not exist or the token in HF_TOKEN may not read it "
                f"(HTTP {status}): check `source` and the token's access ({tokens})"
            )
        else:
            what = (
                f"{source.repo_id} does not exist, or it is private or gated (HTTP {status}): "
                f"check `source`, or set HF_TOKEN to a read token of an account with access "
                f"({tokens})"
            )
        return HubError(f"{head}: {what}")
    if isinstance(error, RepositoryNotFoundError):
        return HubError(
            f"{head}: no repository {source.repo_id} on {access.endpoint}: check `source`"
        )
    if isinstance(error, OfflineModeIsEnabled):
        return HubError(
            f"{head}: offline mode is on (HF_HUB_OFFLINE) and the files are not in {entry.path}"
        )
    if isinstance(error, (httpx.TransportError, *_transport_errors(), LocalEntryNotFoundError)):
        return HubError(
            f"{head}: cannot reach {access.endpoint} ({_cause(error)}); check the network and "
            f"any proxy (HTTPS_PROXY), set HF_ENDPOINT to a mirror, or copy the model into "
            f"{entry.path}"
        )
    if isinstance(error, HfHubHTTPError):
        return HubError(f"{head}: {access.endpoint} answered HTTP {status}: {_cause(error)}")
    if isinstance(error, OSError):
        return HubError(f"{head}: cannot write {entry.path}: {error}")
    return HubError(f"{head}: {type(error).__name__}: {error}")


def _transport_errors() -> tuple[type[Exception], ...]:
    """The transport errors of the HTTP client huggingface_hub uses (`httpx2` from 2.0)."""
    try:
        import httpx2  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return ()
    return (httpx2.TransportError,)


def _cause(error: BaseException) -> str:
    """The innermost reason, on one line."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _complete(folder: Path, source: HubSource) -> str | None:
    """The commit of a complete download of `source` in `folder`, else None."""
    try:
        marker: dict[str, Any] = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    files = marker.get("files")
    if marker.get("source") != str(source) or not isinstance(files, list):
        return None
    if not all((folder / str(f)).is_file() for f in files):
        return None
    commit = marker.get("commit")
    return commit if isinstance(commit, str) else None


def _write_marker(folder: Path, source: HubSource, commit: str, files: list[str]) -> None:
    marker = {"source": str(source), "commit": commit, "files": files}
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(tmp, folder / MARKER)


class _Silent(hf_tqdm):
    """Progress bars that never show (`pull(progress=False)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
