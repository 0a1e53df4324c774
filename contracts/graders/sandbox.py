"""Run a Python grader's `grade(sample, item)` in a sandbox process and report what happened.

The process (`sandbox_boot.py`, see there for each step) starts with an empty environment,
in new namespaces (no network, its own PID space, a private read-only root with a writable
`/work` of a fixed size), as an unprivileged user with no capability, under resource limits
(CPU seconds, address space, file size, open files, no new process). Here, the parent keeps
a wall-clock limit and caps what it reads: a grader that prints or runs past its limits is
killed with its whole process group and reported, never raised.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

KEPT_OUTPUT: Final = 8192  # of stdout and of stderr, for the report
MAX_RESULT: Final = 64 * 1024


@cache
def _boot() -> str:
    """The sandbox process's first code, run with `python -c`."""
    return (Path(__file__).parent / "sandbox_boot.py").read_text()


@dataclass(frozen=True)
class Limits:
    """A Python grader's limits. The JobSpec carries them as they are (`grader_limits`):
    pydantic validates this dataclass there, a ValueError of `__post_init__` becoming its
    validation error, so the bounds are written here only."""

    wall_seconds: float = 30.0
    cpu_seconds: int = 20
    memory_bytes: int = 1024 * 1024 * 1024
    work_bytes: int = 64 * 1024 * 1024
    file_bytes: int = 64 * 1024 * 1024
    output_bytes: int = 1024 * 1024  # stdout and stderr together; past it, killed

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be greater than 0, not {self.wall_seconds}")
        for counted in fields(self)[1:]:
            value = getattr(self, counted.name)
            if value < 1:
                raise ValueError(f"{counted.name} must be at least 1, not {value}")

    def for_boot(self) -> dict[str, int]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
            "work_bytes": self.work_bytes,
            "file_bytes": self.file_bytes,
        }


@dataclass
class Outcome:
    """`reward` when `grade` returned a number; otherwise `error` says why, and `kind` whose
    fault: `runtime` (the grader's code: it raised, returned no number, ran past a limit) or
    `server` (the sandbox could not be set up on this host)."""

    reward: float | None = None
    kind: Literal["runtime", "server", "timeout"] | None = None
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    execution_time: float = 0.0
    killed: list[str] = field(default_factory=list)


def _binds() -> list[str]:
    """The folders the grader sees, read-only: the system's and this Python's."""
    python = Path(os.path.realpath(sys.executable))
    prefixes = {os.path.realpath(sys.base_prefix), str(python.parent.parent)}
    system = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin"]
    return system + sorted(p for p in prefixes if not p.startswith("/usr/"))


def run(source: str, sample: dict[str, Any], item: Any, limits: Limits) -> Outcome:
    root = tempfile.mkdtemp(prefix="whetstone-grader-")
    read_result, write_result = os.pipe()
    job = {
        "source": source,
        "sample": sample,
        "item": item,
        "root": root,
        "binds": _binds(),
        "limits": limits.for_boot(),
        "result_fd": write_result,
    }
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            [os.path.realpath(sys.executable), "-I", "-S", "-c", _boot()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_result,),
            env={},
            cwd=root,
            start_new_session=True,
        )
    except OSError as e:
        os.close(read_result)
        os.close(write_result)
        shutil.rmtree(root, ignore_errors=True)
        return Outcome(kind="server", error=f"The sandbox did not start: {e}")
    os.close(write_result)
    try:
        outcome = _supervise(process, json.dumps(job).encode(), read_result, limits, started)
    finally:
        _kill(process)
        os.close(read_result)
        shutil.rmtree(root, ignore_errors=True)
    outcome.execution_time = time.monotonic() - started
    return outcome


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _supervise(
    process: subprocess.Popen[bytes], job: bytes, result_fd: int, limits: Limits, started: float
) -> Outcome:
    assert process.stdin and process.stdout and process.stderr
    out, err = process.stdout.fileno(), process.stderr.fileno()
    kept: dict[int, bytearray] = {out: bytearray(), err: bytearray()}
    result = bytearray()
    outcome = Outcome()
    total = 0
    stdin = process.stdin.fileno()
    with selectors.DefaultSelector() as selector:
        os.set_blocking(stdin, False)
        selector.register(stdin, selectors.EVENT_WRITE)
        for fd in (*kept, result_fd):
            selector.register(fd, selectors.EVENT_READ)
        while len(selector.get_map()) > (0 if job else 1) or process.poll() is None:
            left = started + limits.wall_seconds - time.monotonic()
            if left <= 0:
                outcome.kind = "timeout"
                outcome.error = (
                    f"The grader ran past its {limits.wall_seconds:g} s wall-clock limit."
                )
                break
            if not selector.get_map():
                time.sleep(min(left, 0.01))  # every pipe closed; the process is ending
                continue
            for key, _ in selector.select(timeout=min(left, 0.5)):
                fd = key.fd
                if fd == stdin:
                    try:
                        job = job[os.write(fd, job[:65536]) :]
                    except BrokenPipeError:
                        job = b""
                    if not job:
                        selector.unregister(fd)
                        process.stdin.close()
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    selector.unregister(fd)
                elif fd == result_fd:
                    result += chunk[: MAX_RESULT - len(result)]
                else:
                    total += len(chunk)
                    kept[fd] += chunk[: KEPT_OUTPUT - len(kept[fd])]
            if total > limits.output_bytes:
                outcome.kind = "runtime"
                outcome.error = (
                    f"The grader printed more than {limits.output_bytes} bytes; it was stopped."
                )
                break
    _kill(process)
    outcome.stdout = kept[out].decode(errors="replace")
    outcome.stderr = kept[err].decode(errors="replace")
    if outcome.kind is None:
        _read_result(outcome, bytes(result), process.returncode, limits)
    return outcome


def _read_result(outcome: Outcome, result: bytes, code: int, limits: Limits) -> None:
    try:
        message = json.loads(result) if result else None
    except ValueError:
        message = None
    if isinstance(message, dict) and isinstance(message.get("reward"), float):
        outcome.reward = message["reward"]
        return
    if isinstance(message, dict) and message.get("kind") in ("runtime", "server"):
        outcome.kind = message["kind"]
        outcome.error = str(message.get("error"))
        return
    outcome.kind = "runtime"
    signal_number = code - 128 if code > 128 else 0
    if signal_number in (signal.SIGXCPU, signal.SIGKILL):
        outcome.error = (
            f"The grader was killed (signal {signal_number}): past its {limits.cpu_seconds} s "
            "CPU limit, or out of memory."
        )
    else:
        outcome.error = f"The grader ended without a result (exit status {code})."
