"""SQL lives in the repositories (docs/architecture.md, "Packages and dependency rules"): no
other module of `service/` builds a statement or sends one, read from the code. The engine,
the migrations and the cursor pagination the repositories share are the database's own
plumbing."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.service.test_imports import ROOT

SERVICE = ROOT / "service"
STATEMENTS = {"select", "update", "insert", "delete", "text", "exists"}  # sqlalchemy's
RUNS = {"execute", "scalar", "scalars"}  # on a session or a connection, whatever its name
SESSION_ONLY = {"get", "query"}  # `dict.get` is not SQL: only a session's


def _is_repository(path: Path) -> bool:
    relative = path.relative_to(SERVICE)
    return (
        path.stem == "repository"
        or path.stem.endswith("_repository")
        or relative.parts[:2] == ("db", "migrations")
        or relative in (Path("db/engine.py"), Path("db/pagination.py"))
    )


def _sqlalchemy_names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """The statement builders imported from sqlalchemy, and the names sqlalchemy's modules
    are imported as (`import sqlalchemy as sa`)."""
    builders: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            builders.update(a.asname or a.name for a in node.names if a.name in STATEMENTS)
        elif isinstance(node, ast.Import):
            modules.update(
                (a.asname or a.name).split(".")[0]
                for a in node.names
                if a.name.startswith("sqlalchemy")
            )
    return builders, modules


def _receiver(node: ast.expr) -> str:
    """`session` for `session.get`, `self.session` and `ctx.session`: the last name."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def sql_calls(source: str, filename: str = "<module>") -> list[str]:
    """`line: call` for each SQL statement built or sent in `source`."""
    tree = ast.parse(source, filename)
    builders, modules = _sqlalchemy_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in builders:
            found.append((node.lineno, f"{func.id}("))
        elif isinstance(func, ast.Attribute):
            receiver = _receiver(func.value)
            if (
                func.attr in RUNS
                or (func.attr in SESSION_ONLY and receiver.endswith("session"))
                or (func.attr in STATEMENTS and receiver in modules)
            ):
                found.append((node.lineno, f"{receiver}.{func.attr}("))
    return [f"{line}: {call}" for line, call in sorted(found)]


def test_the_reader_finds_each_kind_of_sql_call() -> None:
    source = """
import sqlalchemy as sa
from sqlalchemy import func, select as pick, update
job = session.get(Job, job_id)
rows = session.execute(pick(Job).where(Job.id == 1)).all()
n = self.session.scalar(sa.select(func.count()))
update(Job)
"""
    assert sql_calls(source) == [
        "4: session.get(",
        "5: pick(",
        "5: session.execute(",
        "6: sa.select(",
        "6: session.scalar(",
        "7: update(",
    ]


def test_the_reader_leaves_what_is_not_sql() -> None:
    source = """
from service.files import uploads
value = settings.get("key", None)
store.delete(key)
uploads.select(rows)
delete(rows)
"""
    assert sql_calls(source) == []


def test_sql_only_in_repositories() -> None:
    """A query outside a repository goes into the repository of its table's domain, as a
    function named for what it asks (`find_job`, `count_waiting`, ...)."""
    modules = [p for p in sorted(SERVICE.rglob("*.py")) if not _is_repository(p)]
    assert len(modules) > 50 and SERVICE / "limits.py" in modules
    leaks = {
        str(path.relative_to(ROOT)): calls
        for path in modules
        if (calls := sql_calls(path.read_text(), str(path)))
    }
    assert leaks == {}
