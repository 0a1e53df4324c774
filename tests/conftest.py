"""Fixtures shared by the whole suite: real services, started once per session.

A required service that is missing skips its tests on a developer's machine and is an error
in CI (`CI=true`), so nothing silently skips there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get(
    "WHETSTONE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `postgres` every test that uses PostgreSQL: through the fixtures below, or as the
    `postgres` case of a fixture run once per database; `-m "not postgres"` leaves them out."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "postgres_databases" in getattr(item, "fixturenames", ()) or "postgres" in params:
            item.add_marker(pytest.mark.postgres)


def require(condition: bool, reason: str) -> None:
    """Skip (or fail in CI) when a required service is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Callable[[], str]]:
    """Makes fresh empty databases on the local PostgreSQL; drops them all at the end."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("select 1")
    except Exception as e:  # noqa: BLE001 - any connection failure means "not there"
        require(False, f"PostgreSQL not reachable at {POSTGRES_URL}: {e.__class__.__name__}")
    made: list[str] = []

    def make() -> str:
        name = f"whetstone_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'create database "{name}"')
        made.append(name)
        return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    """One database shared by the session's API tests (each makes its own objects)."""
    return postgres_databases()


@pytest.fixture()
def own_postgres_url(postgres_databases: Callable[[], str]) -> str:
    """A database of this test's alone: for tests that run a scheduler, which acts on every
    job in its database."""
    return postgres_databases()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 endpoint over HTTP: `moto_server` on a free loopback port."""
    exe = Path(sys.executable).with_name("moto_server")
    require(exe.exists(), "moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the moto server; returns its `s3://` URL."""
    boto3 = pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/prefix"


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small deterministic Llama-shaped base model, built once per session."""
    basemodel = pytest.importorskip("trainer.basemodel")
    path = tmp_path_factory.mktemp("base-model") / "whetstone-tiny"
    basemodel.make_base_model(path)
    return path


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`family_dir(name, **config_overrides)`: the tiny model folder of a `testing.families`
    family (optionally reshaped), built once per session and argument set."""
    built: dict[str, Path] = {}

    def get(name: str, **config_overrides: Any) -> Path:
        key = json.dumps([name, config_overrides], sort_keys=True)
        if key not in built:
            from testing.families import make_family_model

            folder = tmp_path_factory.mktemp(f"family-{name}") / name
            built[key] = make_family_model(name, folder, config_overrides=config_overrides)
        return built[key]

    return get


pytest_plugins = ["tests.vllm_fixture"]  # `vllm_server`: one real vLLM per session
