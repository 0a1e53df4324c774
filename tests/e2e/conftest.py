"""A running Whetstone server (`python -m service` under uvicorn) on a loopback port, driven
with the official `openai` package.

`server` is session-scoped and parametrized over the database: every test that uses it runs
against SQLite and against PostgreSQL. Each start gets a fresh data folder and keys for two
projects (`alpha`, `beta`). Areas that need more settings (scheduler, executor, vLLM)
override `server_env` in their own conftest, or call `start_server` themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from tests.conftest import free_port, wait_for_port


@dataclass
class Server:
    url: str  # e.g. http://127.0.0.1:8123 (no /v1)
    data_dir: Path
    env: dict[str, str]
    key_a: str
    key_b: str
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, key: str | None = None, **kwargs: object) -> openai.OpenAI:
        """An `openai.OpenAI` for project `alpha` (or the given key), without retries."""
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=key or self.key_a,
            max_retries=0,
            **kwargs,  # type: ignore[arg-type]
        )

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")


def create_key(env: dict[str, str], project: str) -> str:
    """`python -m service.cli keys create --project NAME` with the server's settings."""
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--project", project],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout.strip().splitlines()[-1]


@contextmanager
def start_server(
    data_dir: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start `python -m service` on a free port; stop it (and wait) on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(
        WHETSTONE_DATA_DIR=str(data_dir),
        WHETSTONE_HOST="127.0.0.1",
        WHETSTONE_PORT=str(port),
        **({"WHETSTONE_DATABASE_URL": database_url} if database_url else {}),
        **(extra_env or {}),
    )
    key_a, key_b = create_key(env, "alpha"), create_key(env, "beta")
    with (data_dir / "server.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=log, stderr=log)
        try:
            wait_for_port(port, timeout=60, proc=proc)
            yield Server(f"http://127.0.0.1:{port}", data_dir, env, key_a, key_b, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    """Extra `WHETSTONE_*` settings for `server`; override in an area's conftest."""
    return {}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    server_env: dict[str, str],
) -> Iterator[Server]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    data_dir = tmp_path_factory.mktemp(f"whetstone-{request.param}")
    with start_server(data_dir, database_url, server_env) as running:
        yield running


@pytest.fixture()
def client(server: Server) -> openai.OpenAI:
    return server.client()
