"""`whetstone models pull`: base models named `source: hf://ORG/NAME@REVISION`, downloaded once.

Why this is real without the internet: the real `huggingface_hub` client (`HfApi.model_info`,
`snapshot_download`, `hf_hub_download`, unpatched) talks HTTP to `FakeHub`, a small server on
127.0.0.1 that answers in the Hub's own URL layout and headers, reached through `HF_ENDPOINT`
as a mirror would be:

- `GET /api/models/{repo}/revision/{rev}`: JSON with `sha` (the commit) and `siblings`;
- `GET /api/models/{repo}/tree/{rev}?recursive=...`: the file listing (`type`, `path`,
  `size`, `oid`, `lfs` for weights), which `snapshot_download` reads from version 2;
- `HEAD` and `GET /{repo}/resolve/{rev}/{filename}`: `X-Repo-Commit`, `ETag` (git blob sha1,
  or the sha256 of an LFS file, also as `X-Linked-Etag` / `X-Linked-Size`), `Content-Length`;
- errors as the Hub gives them: `X-Error-Code: RevisionNotFound | EntryNotFound |
  RepoNotFound | GatedRepo` with 404 / 401.

It serves the files of the built-in tiny model (`base_model_dir`), records every request, and
can gate a repository behind a bearer token. What is not covered: Xet storage (the Hub's
newer large-file protocol; this server offers plain HTTP, which the client still supports),
CDN redirects, and the real Hub's rate limits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import huggingface_hub.constants
import pytest
import typer
from typer.testing import CliRunner

from service.cli import register
from service.hub import MARKER, HubAccess, HubError, is_pulled, pull
from service.registry import load_registry
from service.runtime import Runtime
from service.settings import Settings
from service.up import ensure_base_models
from serving.launcher import BaseModelEntry

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_test_token_not_real"
# Files a Hub repository often has that a model does not need: never downloaded.
EXTRAS = {
    "README.md": b"# tiny\n",
    "pytorch_model.bin": b"pickled weights, not wanted",
    "original/params.json": b"{}",
    ".gitattributes": b"*.safetensors filter=lfs\n",
}


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    sha: str = COMMIT
    branches: tuple[str, ...] = ("main",)
    gated: bool = False


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class FakeHub:
    """A Hub-shaped HTTP server on 127.0.0.1 (see the module docstring)."""

    repos: dict[str, FakeRepo]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def downloads(self) -> list[str]:
        return [s.path for s in self.seen if s.method == "GET" and "/resolve/" in s.path]


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(name: str) -> bool:
    return name.endswith((".safetensors", ".bin"))


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, *, body: bool) -> None:
            auth = self.headers.get("Authorization")
            path = unquote(urlsplit(self.path).path)
            hub.seen.append(Seen(self.command, path, auth))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo_id, kind, rev = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                repo = self._repo(repo_id, rev)
                if repo is None:
                    return
                if kind == "revision":
                    siblings = [{"rfilename": name} for name in sorted(repo.files)]
                    info = {
                        "_id": "fake",
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": repo.sha,
                        "private": False,
                        "gated": "manual" if repo.gated else False,
                        "disabled": False,
                        "downloads": 0,
                        "likes": 0,
                        "tags": [],
                        "siblings": siblings,
                    }
                    return self._json(info, body=body)
                if kind == "tree":
                    return self._json(
                        [self._tree_entry(n, d) for n, d in repo.files.items()], body=body
                    )
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                repo = self._repo(repo_id, rev)
                if repo is None:
                    return
                if repo.gated and auth != f"Bearer {TOKEN}":
                    message = (
                        f"Access to model {repo_id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in."
                    )
                    return self._error(401, "GatedRepo", message)
                if filename not in repo.files:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist")
                data = repo.files[filename]
                etag = hashlib.sha256(data).hexdigest() if _is_lfs(filename) else _blob_sha1(data)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Repo-Commit", repo.sha)
                self.send_header("ETag", f'"{etag}"')
                if _is_lfs(filename):
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return
            self._error(404, None, "no such route")

        def _repo(self, repo_id: str, rev: str) -> FakeRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return None
            if rev not in repo.branches and rev != repo.sha:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return None
            return repo

        @staticmethod
        def _tree_entry(name: str, data: bytes) -> dict[str, object]:
            entry: dict[str, object] = {
                "type": "file",
                "path": name,
                "size": len(data),
                "oid": _blob_sha1(data),
            }
            if _is_lfs(name):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            return entry

        def _json(self, value: object, *, body: bool) -> None:
            data = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _error(self, status: int, code: str | None, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


@pytest.fixture(scope="module")
def model_files(base_model_dir: Path) -> dict[str, bytes]:
    files = {
        p.relative_to(base_model_dir).as_posix(): p.read_bytes()
        for p in base_model_dir.rglob("*")
        if p.is_file()
    }
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    return files


@pytest.fixture
def hub(
    model_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FakeHub]:
    repos = {
        "org/tiny": FakeRepo(files={**model_files, **EXTRAS}),
        "org/gated": FakeRepo(files=dict(model_files), gated=True),
    }
    fake = FakeHub(repos=repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Only this server: no token or cache of the developer's, whatever the environment says.
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def registry_file(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


def settings_for(tmp_path: Path, *entries: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", base_models_file=registry_file(tmp_path, *entries))


def entry_of(tmp_path: Path, source: str, name: str = "tiny") -> BaseModelEntry:
    settings = settings_for(tmp_path, f"{{name: {name}, source: '{source}'}}")
    return load_registry(settings)[name]


def test_pull_downloads_what_a_model_needs_byte_for_byte_into_the_data_folder(
    hub: FakeHub, tmp_path: Path, model_files: dict[str, bytes]
) -> None:
    entry = entry_of(tmp_path, "hf://org/tiny@main")
    assert entry.path == str((tmp_path / "data" / "models" / "tiny").resolve())
    assert not is_pulled(entry)

    result = pull(entry, progress=False)

    folder = Path(entry.path)
    assert result.downloaded and result.commit == COMMIT and result.path == folder
    for name, data in model_files.items():
        assert (folder / name).read_bytes() == data, name
    for name in EXTRAS:
        assert not (folder / name).exists(), f"{name} is not part of a model"
    assert not any(name in path for path in hub.downloads() for name in EXTRAS)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["source"] == "hf://org/tiny@main" and marker["commit"] == COMMIT
    assert sorted(marker["files"]) == sorted(model_files)
    assert is_pulled(entry)


def test_a_second_pull_asks_the_hub_nothing(hub: FakeHub, tmp_path: Path) -> None:
    entry = entry_of(tmp_path, "hf://org/tiny")  # revision defaults to main
    assert pull(entry, progress=False).downloaded
    assert hub.downloads()
    hub.seen.clear()

    again = pull(entry, progress=False)

    assert not again.downloaded and again.commit == COMMIT
    assert hub.seen == []


def test_a_lost_file_or_a_forced_pull_fetches_only_what_is_missing(
    hub: FakeHub, tmp_path: Path
) -> None:
    entry = entry_of(tmp_path, "hf://org/tiny@main")
    pull(entry, progress=False)
    (Path(entry.path) / "tokenizer.json").unlink()
    hub.seen.clear()

    assert pull(entry, progress=False).downloaded

    assert [p.rsplit("/", 1)[-1] for p in hub.downloads()] == ["tokenizer.json"]


def test_a_gated_repo_needs_hf_token(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = entry_of(tmp_path, "hf://org/gated@main", name="gated")

    with pytest.raises(HubError) as refused:
        pull(entry, progress=False)
    message = str(refused.value)
    assert "org/gated is gated" in message and "set HF_TOKEN" in message, message
    assert not is_pulled(entry)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.seen.clear()
    assert pull(entry, progress=False).downloaded
    resolves = [s for s in hub.seen if "/resolve/" in s.path]
    assert resolves and all(s.authorization == f"Bearer {TOKEN}" for s in resolves)


def test_a_wrong_token_is_named_as_such(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    entry = entry_of(tmp_path, "hf://org/gated@main", name="gated")
    with pytest.raises(HubError, match="is gated and the token in HF_TOKEN has no access"):
        pull(entry, progress=False)


def test_offline_with_nothing_there_says_so(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = entry_of(tmp_path, "hf://org/tiny@main")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set and hf://org/tiny@main is not"):
        pull(entry, progress=False)
    assert hub.seen == []


def test_offline_with_a_complete_folder_is_fine(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = entry_of(tmp_path, "hf://org/tiny@main")
    pull(entry, progress=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not pull(entry, progress=False).downloaded


def test_an_unknown_revision_or_repo_is_named(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(HubError, match="org/tiny has no revision 'v9'"):
        pull(entry_of(tmp_path, "hf://org/tiny@v9"), progress=False)
    with pytest.raises(HubError, match="org/nothing does not exist, or it is private or gated"):
        pull(entry_of(tmp_path, "hf://org/nothing"), progress=False)
    assert not (tmp_path / "data" / "models" / "tiny" / MARKER).exists()


def test_no_network_is_named(hub: FakeHub, tmp_path: Path) -> None:
    closed = HubAccess(endpoint="http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(HubError, match=r"cannot reach http://127.0.0.1:9 .*check the network"):
        pull(entry_of(tmp_path, "hf://org/tiny@main"), progress=False, access=closed)


def test_a_repo_without_safetensors_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["org/old"] = FakeRepo(files={"config.json": b"{}", "pytorch_model.bin": b"x"})
    with pytest.raises(HubError, match=r"no safetensors weights.*pytorch_model.bin"):
        pull(entry_of(tmp_path, "hf://org/old@main", name="old"), progress=False)


def test_up_pulls_missing_models_before_starting(
    hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        tmp_path,
        "{name: tiny, source: 'hf://org/tiny@main'}",
        f"{{name: local, path: '{tmp_path / 'elsewhere'}'}}",
    )
    with caplog.at_level(logging.INFO, logger="whetstone"):
        ensure_base_models(Runtime(settings))
        ensure_base_models(Runtime(settings))
    lines = [r.getMessage() for r in caplog.records]
    path = settings.resolved_models_dir / "tiny"
    assert lines[0] == f"Downloading tiny from hf://org/tiny@main into {path} (first start only)"
    assert lines[1] == f"tiny: downloaded (commit {COMMIT[:12]})"
    assert lines[2] == f"tiny: hf://org/tiny@main is in {path}"
    assert len(lines) == 3, lines


def _whetstone(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed `whetstone` console script, as a user runs it."""
    script = Path(sys.executable).with_name("whetstone")
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_whetstone_models_pull_on_the_command_line(hub: FakeHub, tmp_path: Path) -> None:
    registry = registry_file(
        tmp_path,
        "{name: tiny, source: 'hf://org/tiny@main'}",
        "{name: gated, source: 'hf://org/gated'}",
    )
    env = {
        **os.environ,
        "WHETSTONE_DATA_DIR": str(tmp_path / "data"),
        "WHETSTONE_BASE_MODELS_FILE": str(registry),
        "HF_TOKEN_PATH": str(tmp_path / "no-token"),
    }
    helped = _whetstone("models", "--help", env=env)
    assert helped.returncode == 0, helped.stderr
    assert all(c in helped.stdout for c in ("list", "get", "delete", "pull"))

    first = _whetstone("models", "pull", "tiny", "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    folder = (tmp_path / "data" / "models" / "tiny").resolve()
    assert first.stdout.strip() == (
        f"tiny: hf://org/tiny@main downloaded in {folder} (commit {COMMIT[:12]})"
    )
    assert (folder / "model.safetensors").is_file()

    again = _whetstone("models", "pull", "tiny", env=env)
    assert again.returncode == 0 and "already complete" in again.stdout

    everything = _whetstone("models", "pull", "--all", "-q", env=env)
    assert everything.returncode == 1
    assert "already complete" in everything.stdout
    assert "org/gated is gated" in everything.stderr and "set HF_TOKEN" in everything.stderr

    unknown = _whetstone("models", "pull", "nope", env=env)
    assert unknown.returncode == 1 and "no base model nope" in unknown.stderr


def test_service_cli_alone_has_models_pull(hub: FakeHub, tmp_path: Path) -> None:
    """`python -m service.cli models pull`: no client `models` group, so one of its own."""
    app = typer.Typer()
    register(app)
    settings = settings_for(tmp_path, "{name: tiny, source: 'hf://org/tiny@main'}")
    args = ["models", "pull", "tiny", "-q", "--data-dir", str(settings.data_dir)]
    args += ["--base-models-file", str(settings.base_models_file)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tiny: hf://org/tiny@main downloaded in" in result.stdout
    neither = CliRunner().invoke(app, ["models", "pull"])
    assert neither.exit_code == 2 and "name base models to pull, or give --all" in neither.stderr
