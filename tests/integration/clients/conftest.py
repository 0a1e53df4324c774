"""The real Whetstone API server (`python -m service`) on a loopback port, with an API key:
started once per module in its own data folder (SQLite, local object store), stopped after.
And `standin`, the unit tests' scripted stand-in served on a loopback port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_port

from .loopback import Loopback


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str
    data_dir: Path
    env: dict[str, str]


def _server_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(WHETSTONE_DATA_DIR=str(data_dir), WHETSTONE_HOST="127.0.0.1",
               WHETSTONE_PORT=str(port), WHETSTONE_WEBHOOK_ALLOW_PRIVATE_URLS="true")  # fmt: skip
    return env


def create_key(env: dict[str, str], project: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--project", project],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("whetstone-data")
    port = free_port()
    env = _server_env(data_dir, port)
    key = create_key(env, "clients")
    with (data_dir / "server.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=log, stderr=log)
        try:
            wait_for_port(port, timeout=60, proc=proc)
            yield Server(f"http://127.0.0.1:{port}", key, data_dir, env)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture()
def standin() -> Iterator[Loopback]:
    """The unit tests' scripted stand-in on a loopback port (`loopback.py`)."""
    server = Loopback().start()
    try:
        yield server
    finally:
        server.stop()
