"""The packages import one another only as docs/architecture.md ("Packages and dependency
rules") allows, read from the code. What a fresh interpreter loads (no ML stack in the control
plane, no torch in `contracts`, no server package in the CLI) is checked in
tests/integration/service/test_import_isolation.py."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

HEAVY = ("torch", "transformers", "vllm", "peft", "bitsandbytes", "accelerate")


# --- The dependency rules between our packages (docs/architecture.md), read from the code ---

ROOT = Path(__file__).resolve().parents[3]
OURS = ("contracts", "service", "serving", "trainer", "clients", "testing")
SHIPPED = ("contracts", "service", "serving", "trainer", "clients")  # pyproject's package list


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


def _import_graph(package: str) -> dict[str, set[str]]:
    """For each module of `package`: the modules of ours it imports, its own package's
    included. `from contracts import formats` counts as `contracts.formats`."""
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
        result[_module_name(path)] = specific - {_module_name(path)}
    return result


def _ours_imported_by(package: str) -> dict[str, set[str]]:
    """For each module of `package`: the modules of ours (other than its own package) it
    imports."""
    return {
        module: {t for t in targets if t.split(".")[0] != package}
        for module, targets in _import_graph(package).items()
    }


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


def test_nothing_shipped_imports_the_test_fixtures() -> None:
    """`testing/` (tiny model families, ...) is not in the distribution."""
    for package in SHIPPED:
        assert _offenders(package, lambda t: t.split(".")[0] != "testing") == {}, package


def test_clients_import_only_the_dataset_formats_and_the_holdout_rule_of_ours() -> None:
    allowed = ("contracts.formats", "contracts.holdout")
    assert _offenders("clients", lambda t: t in allowed) == {}


# --- Layering inside the service: no import circle; only the app reaches the routes ---


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: each group of modules that reach one another (Tarjan's
    strongly connected components of more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph[module]:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    assert sorted(_circles(graph)) == [["a", "b", "c"], ["e"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_counts_type_checking_imports() -> None:
    """An import only for annotations still ties two modules: one of them cannot be moved
    or split without the other, so a circle through it is a circle."""
    assert "service.scheduler.runner" in _import_graph("service")["service.app"]


def test_no_import_circle_in_the_service() -> None:
    assert _circles(_import_graph("service")) == []


def _routes_modules() -> set[str]:
    """The API layer: each domain folder's `routes.py` and `*_routes.py`."""
    return {
        _module_name(path)
        for path in (ROOT / "service").rglob("*.py")
        if path.stem == "routes" or path.stem.endswith("_routes")
    }


def _builds_a_router(path: Path) -> bool:
    """True when the module calls `APIRouter(...)` (by its name or as an attribute)."""
    called = [
        n.func for n in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(n, ast.Call)
    ]
    return any(getattr(f, "id", getattr(f, "attr", None)) == "APIRouter" for f in called)


def test_every_router_is_built_in_a_routes_module() -> None:
    """A domain's endpoints are found by name: a module that builds a router is its domain
    folder's `routes.py` or `*_routes.py`, and nothing else is named so."""
    builders = {
        _module_name(path) for path in (ROOT / "service").rglob("*.py") if _builds_a_router(path)
    }
    assert {"service.files.routes", "service.fine_tuning.internal_routes"} <= builders
    assert builders == _routes_modules()
    assert [m for m in builders if not re.fullmatch(r"service\.\w+\.(\w+_)?routes", m)] == []


def test_only_the_app_and_the_routes_import_the_routes() -> None:
    """The routes modules are the API layer; the rest of a domain folder (`service/files/`,
    `service/keys/`, `service/models/`, ...) sits below them and never reaches up into them.
    `service.app` mounts the routers; a router may include another's (`service.models.routes`
    the aliases' first) or use its request parsing (the trainer's `grader/chat`, the chat
    route's)."""
    api = _routes_modules()
    upward = {
        module: sorted(targets & api)
        for module, targets in _import_graph("service").items()
        if module not in api and module != "service.app"
    }
    assert {module: targets for module, targets in upward.items() if targets} == {}


def test_the_domains_do_not_import_the_scheduler() -> None:
    """The scheduler calls the domains (a job's file checks, JobSpec and reports live in
    `service/fine_tuning/`); no domain reaches back into it, so a slice can be read, tested
    and changed without the loop. Only the start-up wiring (`service.runtime`, `service.app`)
    builds a scheduler."""
    wiring = ("service.app", "service.runtime")
    into = {
        module: sorted(t for t in targets if t.startswith("service.scheduler"))
        for module, targets in _import_graph("service").items()
        if not module.startswith("service.scheduler") and module not in wiring
    }
    assert {module: targets for module, targets in into.items() if targets} == {}


# --- The CLI-only install (`pip install whetstone`): the clients need no server package ---

SERVER_ONLY = ("fastapi", "starlette", "sqlalchemy", "alembic", "psycopg", "uvicorn", "boto3",
               "botocore", "kubernetes", "pydantic_settings", "huggingface_hub")  # fmt: skip
CLIENT_THIRD_PARTY = {"httpx", "pydantic", "typer", "rich", "orjson"}


def _third_party(path: Path) -> set[str]:
    tops = {name.split(".")[0] for name in _imports(path)}
    return {t for t in tops if t and t not in sys.stdlib_module_names and t not in OURS}


def test_clients_import_no_server_package() -> None:
    """Read from the code (lazy imports count): clients/ and the modules of ours they use,
    contracts/formats.py (with contracts/dataset_messages.py) and contracts/holdout.py,
    import only the base dependencies."""
    ours = ("formats.py", "dataset_messages.py", "holdout.py")
    files = [*sorted((ROOT / "clients").rglob("*.py")), *(ROOT / "contracts" / f for f in ours)]
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
