"""What each way of installing Whetstone costs: venv size and package count.

For each install, a fresh venv in a temp folder (`python -m venv`), then `pip install` from a
copy of this checkout (pip's own cache and configured indexes, so a warm cache means no
downloads):

- `cli`: `pip install .`, the SDK and the `whetstone` CLI only;
- `server`: `pip install '.[server]'`, the control plane (`whetstone up`, `keys`);
- `run`: `pip install torch==2.13.0`, then `'.[server,train,serve]'` and the removal of
  torchvision, torchaudio and torchcodec, as the Makefile's `make demo` does.

Prints a markdown table: venv size in MB (10^6 bytes, file sizes as stored), packages
installed (besides pip, setuptools and whetstone itself), the install's wall time, and which
server-only packages (FastAPI, SQLAlchemy, ...) it pulled.

    .venv/bin/python bench/install_size.py [--installs cli,server,run] [--keep]

`--estimate-run-from VENV` instead reports the run install from an existing venv (e.g. the
Makefile's `.venv`, which also has the dev tools): pip resolves `.[server,train,serve]`
without installing (`--dry-run --report`), and the files of those packages in VENV are
summed (plus an empty venv's own size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
SERVER_ONLY = ("fastapi", "sqlalchemy", "alembic", "psycopg", "uvicorn", "kubernetes", "boto3")
NOT_COUNTED = {"pip", "setuptools", "wheel", "whetstone"}
INSTALLS: dict[str, list[list[str]]] = {
    "cli": [["{src}"]],
    "server": [["{src}[server]"]],
    "run": [["torch==2.13.0"], ["{src}[server,train,serve]"]],
}
# PyPI's builds of these, pulled in by vLLM, break `import transformers` (see the Makefile).
RUN_UNINSTALL = ["torchvision", "torchaudio", "torchcodec"]


@dataclass
class Result:
    name: str
    spec: str
    megabytes: float
    packages: int
    seconds: float
    server_only: list[str]
    note: str = ""


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            file = Path(dirpath, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def copy_checkout(target: Path) -> Path:
    """The checkout's tracked and untracked-not-ignored files, so that the build writes
    nothing (build/, *.egg-info) into the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    return target


def installed(python: Path) -> list[str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(p["name"].lower() for p in json.loads(out))


def pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", *args, "--quiet"], check=True)


def measure(name: str, src: Path, work: Path) -> Result:
    venv = work / f"venv-{name}"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    steps = [[a.format(src=src) for a in step] for step in INSTALLS[name]]
    for step in steps:
        pip(python, "install", *step)
    if name == "run":
        subprocess.run(
            [str(python), "-m", "pip", "uninstall", "--quiet", "-y", *RUN_UNINSTALL], check=False
        )
    seconds = time.monotonic() - started
    packages = installed(python)
    spec = " then ".join(
        "`pip install " + " ".join(s.replace(str(src), ".") for s in step) + "`" for step in steps
    )
    return Result(
        name=name,
        spec=spec,
        megabytes=tree_bytes(venv) / MB,
        packages=len([p for p in packages if p not in NOT_COUNTED]),
        seconds=seconds,
        server_only=[p for p in SERVER_ONLY if p in packages],
    )


def estimate_run(src: Path, work: Path, venv: Path) -> Result:
    """The run install's size from an existing venv: the files of the packages that pip
    resolves for `.[server,train,serve]` (and torch), plus an empty venv."""
    started = time.monotonic()
    report = work / "report.json"
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--dry-run",
         "--ignore-installed", "--report", str(report), "torch==2.13.0",
         f"{src}[server,train,serve]"],
        check=True,
    )  # fmt: skip
    wanted = {
        item["metadata"]["name"].lower().replace("_", "-")
        for item in json.loads(report.read_text())["install"]
    } - set(RUN_UNINSTALL)
    code = """
import json, sys
from importlib.metadata import distributions
sizes = {}
for dist in distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    total = 0
    for f in dist.files or []:
        p = dist.locate_file(f)
        try:
            total += p.stat().st_size if p.is_file() and not p.is_symlink() else 0
        except OSError:
            pass
    sizes[name] = total
print(json.dumps(sizes))
"""
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    sizes: dict[str, int] = json.loads(out)
    missing = sorted(wanted - sizes.keys())
    empty = work / "venv-empty"
    subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
    total = tree_bytes(empty) + sum(sizes.get(name, 0) for name in wanted)
    note = f"estimated from {venv}: its files of the {len(wanted)} packages pip resolves"
    if missing:
        note += f" (not in it: {', '.join(missing)})"
    return Result(
        name="run (estimate)",
        spec="`pip install torch==2.13.0` then `pip install .[server,train,serve]`",
        megabytes=total / MB,
        packages=len(wanted - NOT_COUNTED),
        seconds=time.monotonic() - started,
        server_only=[p for p in SERVER_ONLY if p in wanted],
        note=note,
    )


def table(results: list[Result]) -> str:
    lines = [
        "| install | command | venv size (MB) | packages | time (s) | server-only packages |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.spec} | {r.megabytes:,.0f} | {r.packages} | {r.seconds:.0f} | "
            f"{', '.join(r.server_only) or 'none'} |"
        )
    notes = [f"- {r.name}: {r.note}" for r in results if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installs", default="cli,server,run", help="Comma-separated.")
    parser.add_argument("--estimate-run-from", type=Path, help="Estimate `run` from this venv.")
    parser.add_argument("--keep", action="store_true", help="Keep the temp folder.")
    args = parser.parse_args()
    names = [n for n in args.installs.split(",") if n]
    unknown = [n for n in names if n not in INSTALLS]
    if unknown:
        parser.error(f"unknown install {', '.join(unknown)}; choose from {', '.join(INSTALLS)}")
    work = Path(tempfile.mkdtemp(prefix="whetstone-install-size-"))
    results: list[Result] = []
    try:
        src = copy_checkout(work / "src")
        for name in names:
            print(f"installing {name} ...", file=sys.stderr, flush=True)
            results.append(measure(name, src, work))
        if args.estimate_run_from is not None:
            print("estimating run ...", file=sys.stderr, flush=True)
            results.append(estimate_run(src, work, args.estimate_run_from.resolve()))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))


if __name__ == "__main__":
    main()
