"""vLLM, run as `whetstone up` runs it (the serving supervisor), answers the service alone,
on every route it registers.

vLLM's `--api-key` guards only its `/v1` routes; `/invocations` (SageMaker's chat),
`/adapters` (load, replace, unload LoRA adapters), `/metrics` (every loaded `ft:` name) and
the rest answer anyone who can connect. So the supervisor puts vLLM on a Unix socket in a
folder only the service's user may enter: another local user cannot even connect, whatever
the route. The routes are not a hand-picked list: they are every route vLLM's own app
builder registers for the supervisor's command line (`vllm_routes.py`), checked against the
running server's `/openapi.json`. Each is tried as `nobody` (a forked child of this root
test process that drops to that uid), and as the service.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from serving.launcher import VLLM_MODULE
from tests.vllm_fixture import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ROUTE_CLASSES = ["/v1", "/invocations", "/adapters", "/metrics", "/health"]
Route = tuple[str, str]


@pytest.fixture(scope="module")
def routes(vllm_server: VllmServer) -> list[Route]:
    """Every (method, path) of the running vLLM's app."""
    argv, env = vllm_server.supervisor.command(vllm_server.base_model)
    args = argv[argv.index(VLLM_MODULE) + 1 :]
    built = subprocess.run(
        [sys.executable, "-m", "tests.integration.serving.vllm_routes", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    registered = {(method, path) for method, path in json.loads(built.stdout.splitlines()[-1])}
    with vllm_server.http() as http:
        live = http.get("/openapi.json").json()["paths"]
    served = {(method.upper(), path) for path, ops in live.items() for method in ops}
    assert served <= registered, "the builder's app is the running one"
    return sorted(registered)


def _of_class(routes: Iterable[Route], prefix: str) -> list[Route]:
    return [(m, p) for m, p in routes if p == prefix or p.startswith(prefix + "/")]


def _attempt(socket_path: str, method: str, path: str) -> str:
    """What a caller gets from `method path`: `cannot connect: EACCES` and the like, or
    `connected` (then, for a GET, the HTTP status too: nothing that changes vLLM is sent)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        try:
            sock.connect(socket_path)
        except OSError as e:
            return f"cannot connect: {errno.errorcode.get(e.errno or 0, e)}"
        if method not in ("GET", "HEAD"):
            return "connected"
        target = re.sub(r"\{[^}]*\}", "x", path)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: vllm\r\nConnection: close\r\n\r\n".encode())
        return "connected: HTTP " + sock.recv(64).split(b" ")[1].decode()


def _as_user(user: str, socket_path: str, routes: list[Route]) -> dict[str, str]:
    """`_attempt` for each route in a forked child running as `user` (no groups)."""
    account = pwd.getpwnam(user)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            results = {f"{m} {p}": _attempt(socket_path, m, p) for m, p in routes}
            os.write(write, json.dumps(results).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the probe as another user failed"
    return dict(json.loads(data))


@pytest.fixture(scope="module")
def as_nobody(vllm_server: VllmServer, routes: list[Route]) -> dict[str, str]:
    if os.getuid() != 0:
        pytest.skip("trying another uid needs root")
    return _as_user(
        "nobody", str(vllm_server.supervisor.socket_path(vllm_server.base_model)), routes
    )


def test_vllm_listens_on_a_socket_in_a_folder_only_the_service_enters(
    vllm_server: VllmServer,
) -> None:
    supervisor, name = vllm_server.supervisor, vllm_server.base_model
    path = supervisor.socket_path(name)
    assert vllm_server.address == f"unix:{path}" and path.is_socket()
    folder = path.parent.stat()
    assert folder.st_mode & 0o777 == 0o700, "no one else may enter (nor list) the folder"
    assert folder.st_uid == os.getuid()
    argv, env = supervisor.command(name)
    assert argv[argv.index("--uds") + 1] == str(path)
    assert "--port" not in argv and "--host" not in argv, "no TCP listener"
    assert Path(env["VLLM_RPC_BASE_PATH"]) == path.parent  # its inner ZMQ sockets too


def test_the_routes_are_vllms_own_list(routes: list[Route]) -> None:
    for prefix in ROUTE_CLASSES:
        assert _of_class(routes, prefix), f"vLLM registers no {prefix} route any more?"
    assert ("POST", "/invocations") in routes and ("DELETE", "/adapters/{adapter_name}") in routes


@pytest.mark.parametrize("prefix", ROUTE_CLASSES)
def test_another_local_user_reaches_no_route_of(
    prefix: str, routes: list[Route], as_nobody: dict[str, str], vllm_server: VllmServer
) -> None:
    of_class = _of_class(routes, prefix)
    refused = {f"{m} {p}": as_nobody[f"{m} {p}"] for m, p in of_class}
    assert set(refused.values()) == {"cannot connect: EACCES"}, refused
    # The service reaches the same routes: the refusal is the caller's, not a dead socket.
    socket_path = str(vllm_server.supervisor.socket_path(vllm_server.base_model))
    for method, path in of_class:
        assert _attempt(socket_path, method, path).startswith("connected")


def test_no_route_of_vllm_is_left_to_another_user(
    routes: list[Route], as_nobody: dict[str, str]
) -> None:
    """All of them, the classes above and whatever vLLM adds (`/ping`, `/tokenize`,
    `/scale_elastic_ep`, `/inference/...`)."""
    reached = {route: got for route, got in as_nobody.items() if got != "cannot connect: EACCES"}
    assert not reached and len(as_nobody) == len(routes)


def test_the_service_still_talks_to_vllm(vllm_server: VllmServer) -> None:
    with vllm_server.http() as http:
        assert http.get("/health").status_code == 200
        assert vllm_server.base_model in {m["id"] for m in http.get("/v1/models").json()["data"]}
    with vllm_server.http(key=False) as http:  # and vLLM's own key still guards /v1
        assert http.get("/v1/models").status_code == 401
