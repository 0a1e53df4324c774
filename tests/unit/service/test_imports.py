"""The control plane never imports torch, transformers or vLLM, and the packages import one
another only as docs/architecture.md ("Packages and dependency rules") allows."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HEAVY = ("torch", "transformers", "vllm", "peft", "bitsandbytes", "accelerate")


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


# --- The dependency rules between our packages (docs/architecture.md), read from the code ---

ROOT = Path(__file__).resolve().parents[3]
OURS = ("contracts", "service", "serving", "trainer", "clients")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (at any depth: lazy imports count), relative ones resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _ours_imported_by(package: str) -> dict[str, set[str]]:
    """For each module of `package`: the modules of ours (other than its own package) it
    imports. `from contracts import formats` counts as `contracts.formats`."""
    modules = {_module_name(p) for top in OURS for p in (ROOT / top).rglob("*.py")}
    result: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = {n for n in _imports(path) if n.split(".")[0] in OURS}
        # Keep the most specific name that is a module (`contracts.formats`, not `contracts`
        # or `contracts.formats.Checker`).
        targets = set()
        for name in names:
            parts = name.split(".")
            while len(parts) > 1 and ".".join(parts) not in modules:
                parts.pop()
            targets.add(".".join(parts))
        specific = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
        result[_module_name(path)] = {t for t in specific if t.split(".")[0] != package}
    return result


def _offenders(package: str, allowed: Callable[[str], bool]) -> dict[str, list[str]]:
    return {
        module: sorted(bad)
        for module, targets in _ours_imported_by(package).items()
        if (bad := [t for t in targets if not allowed(t)])
    }


def test_the_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    assert "contracts.formats" in _ours_imported_by("clients")["clients.sdk.resources.files"]
    assert "contracts.store" in _ours_imported_by("trainer")["trainer.entry"]  # a lazy import
    assert "serving.launcher" in _ours_imported_by("service")["service.registry"]


def test_contracts_import_nothing_else_of_ours() -> None:
    assert _offenders("contracts", lambda _: False) == {}


def test_nothing_imports_the_service() -> None:
    for package in ("contracts", "serving", "trainer", "clients"):
        assert _offenders(package, lambda t: not t.startswith("service")) == {}, package


def test_neither_service_nor_serving_imports_the_trainer() -> None:
    for package in ("service", "serving"):
        assert _offenders(package, lambda t: not t.startswith("trainer")) == {}, package


def test_clients_import_only_the_dataset_formats_and_the_holdout_rule_of_ours() -> None:
    allowed = ("contracts.formats", "contracts.holdout")
    assert _offenders("clients", lambda t: t in allowed) == {}


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


# --- The CLI-only install (`pip install whetstone`): the clients need no server package ---

SERVER_ONLY = ("fastapi", "starlette", "sqlalchemy", "alembic", "psycopg", "uvicorn", "boto3",
               "botocore", "kubernetes", "pydantic_settings", "huggingface_hub")  # fmt: skip
CLIENT_THIRD_PARTY = {"httpx", "pydantic", "typer", "rich", "orjson"}


def _third_party(path: Path) -> set[str]:
    tops = {name.split(".")[0] for name in _imports(path)}
    return {t for t in tops if t and t not in sys.stdlib_module_names and t not in OURS}


def test_clients_import_no_server_package() -> None:
    """Read from the code (lazy imports count): clients/ and the modules of ours they use,
    contracts/formats.py and contracts/holdout.py, import only the base dependencies."""
    files = [*sorted((ROOT / "clients").rglob("*.py")),
             ROOT / "contracts" / "formats.py", ROOT / "contracts" / "holdout.py"]  # fmt: skip
    found = {str(p.relative_to(ROOT)): _third_party(p) for p in files}
    assert {f: sorted(m) for f, m in found.items() if m & set(SERVER_ONLY)} == {}
    assert {
        f: sorted(m - CLIENT_THIRD_PARTY) for f, m in found.items() if m - CLIENT_THIRD_PARTY
    } == {}


def test_base_dependencies_are_what_the_clients_import() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[\[<>=~!; ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert base == CLIENT_THIRD_PARTY
    server = {re.split(r"[\[<>=~!; ]", d, maxsplit=1)[0].lower().replace("-", "_")
              for d in project["optional-dependencies"]["server"]}  # fmt: skip
    assert {
        "fastapi",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "uvicorn",
        "kubernetes",
        "boto3",
    } <= server
    for extra in ("train", "serve"):
        assert "whetstone[server]" in project["optional-dependencies"][extra]


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
