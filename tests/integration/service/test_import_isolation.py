"""What a fresh interpreter holds after importing our packages: the control plane loads no ML
stack, `contracts` no torch, and the CLI no server package. Each runs in its own process, so
that nothing this test session imported counts; the rules read from the code are in
tests/unit/service/test_imports.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.service.test_imports import HEAVY, ROOT, SERVER_ONLY, _module_name


def test_service_app_imports_no_ml_stack(tmp_path: Path) -> None:
    code = f"""
import sys
import service.app, service.cli, service.openapi
from service.settings import Settings
from fastapi.testclient import TestClient
app = service.app.create_app(Settings(data_dir={str(tmp_path)!r}))
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(",".join(heavy))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"service imported: {out.stdout.strip()}"


def test_contracts_are_torch_free() -> None:
    modules = sorted(_module_name(p) for p in (ROOT / "contracts").rglob("*.py"))
    assert "contracts.messages" in modules and "contracts.formats" in modules
    code = f"""
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
        cwd=ROOT,
    )  # fmt: skip
    assert out.stdout.strip() == "", f"contracts imported: {out.stdout.strip()}"


def test_the_cli_with_its_plugins_loads_no_server_package() -> None:
    """`whetstone --help` (which loads the `whetstone.cli` entry points, service.cli among
    them) imports no server package: without the server extra it still starts."""
    code = f"""
import sys
from typer.testing import CliRunner
from clients.cli.main import app, load_plugins
load_plugins(app)
result = CliRunner().invoke(app, ["--help"])
assert result.exit_code == 0 and " up " in result.stdout, result.output
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in {SERVER_ONLY!r})))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
        cwd=ROOT,
    )  # fmt: skip
    assert out.stdout.strip() == "", f"the CLI imported: {out.stdout.strip()}"
