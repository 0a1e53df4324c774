"""The local supervisor: one vLLM per base model, kept alive beside the service.

Each vLLM runs in its own process group (`serving.process_groups`: stopping it stops its
engine processes too, and a supervisor killed takes it along or leaves it to the next one),
listening on a Unix socket of its own (`--uds {socket_dir}/{name}.sock`) in a folder only
this process's user may enter (mode 0700): no other local user can reach any route of it,
those vLLM's `--api-key` leaves open (`/invocations`, `/adapters`, `/metrics`) included. Its
output goes to `{log_dir}/{name}.log`. A monitor
thread waits for `/health`, restarts a vLLM that died (or never became healthy) with
exponential backoff, and `stop()` ends them all. No vLLM or torch import: the service uses
this through `base_url`, `is_ready`, `load_adapter` and `unload_adapter`.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from contracts.store_url import open_store
from serving.adapters import AdapterCache, AdapterRefused
from serving.launcher import (
    API_KEY_ENV,
    UNIX_SCHEME,
    BaseModelEntry,
    ResolverSettings,
    http_client,
    vllm_command,
)
from serving.process_groups import PIDS_FILE, reap_leftovers, record_groups, spawn, stop_group

log = logging.getLogger(__name__)

# Seconds between /health checks of a ready vLLM; its death is noticed at every poll.
HEALTH_EVERY = 5.0


class ServingError(Exception):
    """A vLLM could not do what was asked; `status_code` says how an API should answer."""

    status_code = 502

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class NotReady(ServingError):
    status_code = 503


class AdapterNotFound(ServingError):
    status_code = 404


@dataclass
class ServerStatus:
    name: str
    address: str
    ready: bool
    pid: int | None
    starts: int
    startup_seconds: float | None


@dataclass
class _Server:
    entry: BaseModelEntry
    socket: Path
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    starts: int = 0
    started_at: float = 0.0
    startup_seconds: float | None = None
    next_start: float = 0.0
    checked_at: float = 0.0
    backoff: float = 1.0
    adapters: AdapterCache | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{UNIX_SCHEME}{self.socket}"


# A Unix socket's path holds at most 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


def private_socket_dir(parent: Path | None = None) -> Path:
    """A new folder for vLLM's sockets that only this user may enter (0700, made so
    atomically by `mkdtemp`), under the system's temporary folder unless `parent`."""
    return Path(tempfile.mkdtemp(prefix="whetstone-vllm-", dir=parent))


def _private_folder(folder: Path) -> None:
    """`folder` exists, is this user's and only this user's (0700); ValueError when it
    belongs to another user (who could swap the sockets in it)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise ValueError(f"{folder} belongs to another user: vLLM's sockets cannot go there")
    os.chmod(folder, 0o700)


def _socket_path(folder: Path, index: int, name: str) -> Path:
    path = folder / f"{name}.sock"
    return path if len(str(path)) <= _MAX_SOCKET_PATH else folder / f"{index}.sock"


class Supervisor:
    """Starts, watches, restarts and stops one vLLM per base model."""

    def __init__(
        self,
        models: Sequence[BaseModelEntry],
        resolver: ResolverSettings,
        log_dir: Path,
        *,
        socket_dir: Path | None = None,
        python: str | None = None,
        startup_timeout: float = 600.0,
        poll_interval: float = 0.5,
        max_backoff: float = 30.0,
        request_timeout: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        self.resolver = resolver
        self.api_key = api_key or secrets.token_urlsafe(32)
        """vLLM's API key (`VLLM_API_KEY` in its environment, never on its command line): every
        `/v1` route of vLLM, `load_lora_adapter` included, answers 401 without it. Made fresh
        per supervisor unless given; the service holds it (`auth_headers`)."""
        self.log_dir = log_dir
        self.socket_dir = socket_dir or private_socket_dir()
        """Where the sockets are (`_private_folder`: a folder another user may enter would
        let that user connect)."""
        _private_folder(self.socket_dir)
        self.startup_timeout = startup_timeout
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._servers: dict[str, _Server] = {}
        self._http: dict[str, httpx.Client] = {}
        for index, entry in enumerate(models):
            path = _socket_path(self.socket_dir, index, entry.name)
            argv, env = vllm_command(entry, resolver, uds=str(path), python=python)
            env[API_KEY_ENV] = self.api_key
            # vLLM's own ZMQ sockets between its processes: in the private folder too.
            env["VLLM_RPC_BASE_PATH"] = str(self.socket_dir)
            log_path = log_dir / f"{entry.name}.log"
            self._servers[entry.name] = _Server(entry, path, argv, env, log_path)
            self._http[entry.name] = http_client(
                f"{UNIX_SCHEME}{path}", timeout=request_timeout, headers=self.auth_headers
            )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every vLLM and the monitor thread; returns at once (see `wait_ready`).

        First stops what an earlier supervisor of this log folder left running (killed with
        SIGKILL, it could not stop its vLLMs): the groups recorded in `pids.json`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _private_folder(self.socket_dir)
        reap_leftovers(self._pids_path)
        Path(self.resolver.lora_cache_dir).mkdir(parents=True, exist_ok=True)
        with self._lock:
            for server in self._servers.values():
                self._spawn(server)
        self._thread = threading.Thread(target=self._monitor, name="vllm-supervisor", daemon=True)
        self._thread.start()

    def wait_ready(self, name: str | None = None, timeout: float | None = None) -> None:
        """Block until `name` (or every vLLM) answers /health; TimeoutError otherwise."""
        names = [name] if name else list(self._servers)
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        while not all(self.is_ready(n) for n in names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"vLLM not ready after {timeout}s: see {self.log_dir}")
            time.sleep(0.2)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the monitor and every vLLM with all its processes (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for server in self._servers.values():
                if server.proc is not None:
                    stop_group(server.proc, timeout)
                server.ready = False
            self._record_pids()
        for client in self._http.values():
            client.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- queries ---------------------------------------------------------------------------

    @property
    def auth_headers(self) -> dict[str, str]:
        """The header every request to these vLLMs' `/v1` routes carries."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def names(self) -> list[str]:
        return list(self._servers)

    def address(self, name: str) -> str:
        """`unix:/path/to/name.sock`: where the vLLM serving base model `name` listens
        (`serving.launcher.http_client` makes a client for it)."""
        return self._server(name).address

    def socket_path(self, name: str) -> Path:
        return self._server(name).socket

    def is_ready(self, name: str) -> bool:
        server = self._server(name)
        return server.ready and server.proc is not None and server.proc.poll() is None

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        """(argv, env additions) the vLLM of `name` is started with."""
        server = self._server(name)
        return list(server.argv), dict(server.env)

    def status(self, name: str) -> ServerStatus:
        s = self._server(name)
        pid = s.proc.pid if s.proc is not None and s.proc.poll() is None else None
        return ServerStatus(
            name, self.address(name), self.is_ready(name), pid, s.starts, s.startup_seconds
        )

    # -- adapters --------------------------------------------------------------------------

    def load_adapter(self, name: str, lora_name: str, path: str | None = None) -> None:
        """Load `lora_name` into the vLLM of base model `name` now (warm start).

        Without `path`, the adapter is fetched from the object store through its model
        pointer into the resolver's cache. Loading an adapter already loaded is a no-op.
        """
        if not self.is_ready(name):
            raise NotReady(f"the server of {name!r} is not ready")
        if lora_name in self._loaded(name):
            return
        if path is None:
            path = str(self._fetch(name, lora_name))
        body = {"lora_name": lora_name, "lora_path": path}
        answer = self._post(name, "/v1/load_lora_adapter", body)
        if answer.status_code != 200 and lora_name not in self._loaded(name):
            raise ServingError(f"vLLM refused {lora_name!r}: {answer.text}", answer.status_code)

    def unload_adapter(self, name: str, lora_name: str) -> bool:
        """Unload `lora_name`; False when it was not loaded (or the server is down)."""
        if not self.is_ready(name):
            return False
        answer = self._post(name, "/v1/unload_lora_adapter", {"lora_name": lora_name})
        if answer.status_code == 404:
            return False
        if answer.status_code != 200:
            raise ServingError(f"vLLM could not unload {lora_name!r}: {answer.text}")
        return True

    def _fetch(self, name: str, lora_name: str) -> Path:
        server = self._server(name)
        if server.adapters is None:
            store = open_store(self.resolver.object_store_url, self.resolver.s3_endpoint_url)
            cache = Path(self.resolver.lora_cache_dir)
            server.adapters = AdapterCache(store, cache, name, server.entry.path)
        try:
            path = server.adapters.fetch(lora_name)
        except AdapterRefused as e:
            raise ServingError(str(e), 400) from e
        if path is None:
            raise AdapterNotFound(f"no model {lora_name!r} in the object store")
        return path

    def _loaded(self, name: str) -> set[str]:
        try:
            answer = self._http[name].get("/v1/models")
            return {m["id"] for m in answer.json()["data"]}
        except (httpx.HTTPError, ValueError, KeyError) as e:
            raise NotReady(f"the server of {name!r} did not answer: {e}") from e

    def _post(self, name: str, route: str, body: dict[str, str]) -> httpx.Response:
        try:
            return self._http[name].post(route, json=body)
        except httpx.HTTPError as e:
            raise NotReady(f"the server of {name!r} did not answer: {e}") from e

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise KeyError(f"no served base model {name!r}") from None

    # -- monitor ---------------------------------------------------------------------------

    def _spawn(self, server: _Server) -> None:
        server.starts += 1
        server.ready = False
        server.started_at = time.monotonic()
        server.startup_seconds = None
        server.socket.unlink(missing_ok=True)  # a dead vLLM's socket: binding would fail
        with server.log_path.open("ab") as out:
            out.write(f"--- whetstone: start {server.starts}: {' '.join(server.argv)}\n".encode())
            out.flush()
            server.proc = spawn(server.argv, server.env, out)
        self._record_pids()
        name, pid = server.entry.name, server.proc.pid
        gpus = server.env.get("CUDA_VISIBLE_DEVICES")
        where = "" if gpus is None else f", GPU {gpus or 'none'}"
        if gpus and server.entry.serving.device == "gpu":
            where += f" at {server.entry.serving.gpu_memory_utilization:.0%} of its memory"
        log.info("started vLLM for %s (pid %d, socket %s%s)", name, pid, server.socket, where)

    @property
    def _pids_path(self) -> Path:
        return self.log_dir / PIDS_FILE

    def _record_pids(self) -> None:
        """`pids.json`: each live vLLM's process group (`record_groups`)."""
        record_groups(self._pids_path, {s.entry.name: s.proc for s in self._servers.values()})

    def _monitor(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            for server in self._servers.values():
                with self._lock:
                    if not self._stopping.is_set():
                        self._check(server)

    def _check(self, server: _Server) -> None:
        now = time.monotonic()
        proc = server.proc
        if proc is not None and proc.poll() is not None:
            log.warning("vLLM for %s exited with %s", server.entry.name, proc.returncode)
            stop_group(proc, 0)
            server.proc, server.ready = None, False
            # Counted from when the exit was seen (`now` may precede it by a preemption).
            server.next_start = time.monotonic() + server.backoff
            server.backoff = min(server.backoff * 2, self.max_backoff)
            return
        if proc is None:
            if now >= server.next_start:
                self._spawn(server)
            return
        if server.ready and now - server.checked_at < HEALTH_EVERY:
            return
        server.checked_at = now
        healthy = self._healthy(server)
        if healthy and not server.ready:
            server.startup_seconds = now - server.started_at
            server.backoff = 1.0
            log.info("vLLM for %s ready in %.1fs", server.entry.name, server.startup_seconds)
        server.ready = healthy
        waited = now - server.started_at
        if server.startup_seconds is None and waited > self.startup_timeout:
            log.warning(
                "vLLM for %s not healthy after %.0fs: restarting", server.entry.name, waited
            )
            stop_group(proc, 5)

    def _healthy(self, server: _Server) -> bool:
        try:
            answer = self._http[server.entry.name].get("/health", timeout=2)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200
