"""Local executor: one subprocess per attempt, in its own process group, on this machine.

Files in the data folder, per attempt:

- `logs/{job_id}/attempt-{n}.log`: the trainer's stdout and stderr.
- `logs/{job_id}/attempt-{n}.json`: the handle, pid, command and, once known, the exit code.
- `logs/running/{job_id}.{n}`: present while the attempt may still run (what `running()` reads).

A handle is `local:{job_id}:{n}:{pid}:{start}` where `start` is the process start time from
`/proc/{pid}/stat`, so a reused pid is never mistaken for the trainer. The trainer runs in a
new session (`start_new_session`), so it outlives a scheduler that crashes or restarts; a new
executor on the same data folder polls and kills it through `/proc` and process-group signals.
A process that is gone without a recorded exit code (its parent died before reaping it) is
`lost`. Slots count every live attempt in the data folder, whichever executor launched it.

GPUs: given `gpus` (ids as `CUDA_VISIBLE_DEVICES` takes them), each attempt sees one, the one
fewest live attempts of the data folder use (the first such), recorded in its `.json`; with
`gpus=[]` it sees none; with None (the default) the environment is left as it is.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.messages import ATTEMPT_TOKEN_ENV
from service.executors.base import (
    Attempt,
    AttemptState,
    ExecutorError,
    ExecutorFull,
    LiveAttempt,
    Outcome,
)
from service.executors.environment import inherited
from service.gpus import cuda_env

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_PREFIX = "local:"


@dataclass(frozen=True)
class _Handle:
    job_id: str
    number: int
    pid: int
    start: int

    def __str__(self) -> str:
        return f"{_PREFIX}{self.job_id}:{self.number}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, handle: str) -> _Handle | None:
        if not handle.startswith(_PREFIX):
            return None
        parts = handle[len(_PREFIX) :].rsplit(":", 3)
        if len(parts) != 4 or not _SAFE_ID.match(parts[0]):
            return None
        try:
            return cls(parts[0], int(parts[1]), int(parts[2]), int(parts[3]))
        except ValueError:
            return None


@dataclass(frozen=True)
class _ProcInfo:
    start: int
    zombie: bool
    exit_code: int | None


class LocalExecutor:
    """Runs `{command} run --spec URL --report URL` as a local process group, the token in
    its environment (`WHETSTONE_ATTEMPT_TOKEN`)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        slots: int = 1,
        command: Sequence[str] | None = None,
        kill_grace_seconds: float = 30.0,
        gpus: Sequence[str] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._logs = Path(data_dir) / "logs"
        self._slots = slots
        self._command = list(command) if command else [sys.executable, "-m", "trainer"]
        self._grace = kill_grace_seconds
        self._gpus = list(gpus) if gpus is not None else None
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._slots

    def log_path(self, job_id: str, number: int) -> Path:
        return self._logs / job_id / f"attempt-{number}.log"

    def launch(self, attempt: Attempt) -> str:
        if not _SAFE_ID.match(attempt.job_id) or attempt.number < 1:
            raise ExecutorError(f"unusable job id or attempt: {attempt.job_id!r} #{attempt.number}")
        with self._lock, _file_lock(self._logs / "launch.lock"):
            live = self.running()
            if any((a.job_id, a.number) == (attempt.job_id, attempt.number) for a in live):
                raise ExecutorError(f"attempt {attempt.number} of {attempt.job_id} already runs")
            if len(live) >= self._slots:
                raise ExecutorFull(f"all {self._slots} local trainer slots are busy")
            log = self.log_path(attempt.job_id, attempt.number)
            log.parent.mkdir(parents=True, exist_ok=True)
            gpu = self._pick_gpu(live)
            env = self.environment(attempt, gpu)
            command = [*self._command, *attempt.trainer_args()]
            with log.open("ab") as out:
                try:
                    proc = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                    )
                except OSError as e:
                    raise ExecutorError(f"cannot start the trainer: {e}") from e
            info = _proc_info(proc.pid)
            handle = _Handle(attempt.job_id, attempt.number, proc.pid, info.start if info else 0)
            self._children[str(handle)] = proc
            shown = [*self._command, *attempt.trainer_args()]
            meta: dict[str, Any] = {"handle": str(handle), "command": shown, "log": str(log)}
            if gpu is not None:
                meta["cuda_visible_devices"] = gpu
            self._write_meta(handle, meta)
            self._marker(handle).parent.mkdir(parents=True, exist_ok=True)
            self._marker(handle).write_text(str(handle))
            return str(handle)

    def poll(self, handle: str) -> AttemptState:
        parsed = _Handle.parse(handle)
        if parsed is None:
            return AttemptState.lost(f"not a local executor handle: {handle!r}")
        proc = self._children.get(handle)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return AttemptState.running()
            return self._finish(parsed, code)
        recorded = self._read_meta(parsed).get("exit_code")
        if isinstance(recorded, int):
            return AttemptState.from_exit_code(recorded)
        info = _proc_info(parsed.pid)
        if info is None or info.start != parsed.start:
            self._marker(parsed).unlink(missing_ok=True)
            return AttemptState.lost("the trainer process is gone and no exit code was recorded")
        if info.zombie and info.exit_code is not None:
            return self._finish(parsed, info.exit_code)
        return AttemptState.running()

    def kill(self, handle: str) -> None:
        """SIGTERM to the process group now, SIGKILL after the grace period (in a thread)."""
        parsed = _Handle.parse(handle)
        if parsed is None or self.poll(handle).outcome is not Outcome.RUNNING:
            return
        try:
            os.killpg(parsed.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        threading.Thread(
            target=self._reap, args=(parsed,), name=f"kill-{parsed.pid}", daemon=True
        ).start()

    def running(self) -> list[LiveAttempt]:
        live = []
        folder = self._logs / "running"
        for marker in sorted(folder.iterdir()) if folder.is_dir() else []:
            handle = marker.read_text().strip()
            parsed = _Handle.parse(handle)
            if parsed is None:
                marker.unlink(missing_ok=True)
                continue
            if self.poll(handle).outcome is Outcome.RUNNING:
                live.append(LiveAttempt(handle, parsed.job_id, parsed.number))
        return live

    def environment(self, attempt: Attempt, gpu: str | None) -> dict[str, str]:
        """The trainer's environment: what it needs of ours (`environment.inherited`: no
        database URL, no vLLM or W&B key), `CUDA_VISIBLE_DEVICES=gpu` (unless None), the
        attempt's own variables, then its token as `WHETSTONE_ATTEMPT_TOKEN` (a process's
        environment is readable only by its user and root, unlike its command line)."""
        devices = cuda_env(gpu) if gpu is not None else {}
        return {
            **inherited(os.environ, wandb=attempt.wandb),
            "PYTHONUNBUFFERED": "1",
            **devices,
            **attempt.env,
            **attempt.secret_env,
            ATTEMPT_TOKEN_ENV: attempt.token,
        }

    # --- internals ---------------------------------------------------------------------------

    def _pick_gpu(self, live: Sequence[LiveAttempt]) -> str | None:
        """The GPU of the next attempt: the least used by `live` ones; "" for none."""
        if self._gpus is None:
            return None
        if not self._gpus:
            return ""
        use = dict.fromkeys(self._gpus, 0)
        for attempt in live:
            parsed = _Handle.parse(attempt.handle)
            gpu = self._read_meta(parsed).get("cuda_visible_devices") if parsed else None
            if isinstance(gpu, str) and gpu in use:
                use[gpu] += 1
        return min(use, key=lambda g: use[g])

    def _reap(self, handle: _Handle) -> None:
        """Wait up to the grace period for the group to exit, then SIGKILL what is left."""
        proc = self._children.get(str(handle))
        deadline = time.monotonic() + self._grace
        while time.monotonic() < deadline and _group_alive(handle.pid, proc):
            time.sleep(0.05)
        if _group_alive(handle.pid, proc):
            try:
                os.killpg(handle.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None:
            self._finish(handle, proc.wait())

    def _finish(self, handle: _Handle, code: int) -> AttemptState:
        meta = self._read_meta(handle)
        if meta.get("exit_code") != code:
            self._write_meta(handle, {**meta, "exit_code": code, "ended_at": time.time()})
        self._marker(handle).unlink(missing_ok=True)
        return AttemptState.from_exit_code(code)

    def _marker(self, handle: _Handle) -> Path:
        return self._logs / "running" / f"{handle.job_id}.{handle.number}"

    def _meta_path(self, handle: _Handle) -> Path:
        return self._logs / handle.job_id / f"attempt-{handle.number}.json"

    def _read_meta(self, handle: _Handle) -> dict[str, Any]:
        try:
            data = json.loads(self._meta_path(handle).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("handle") != str(handle):
            return {}
        return data

    def _write_meta(self, handle: _Handle, meta: dict[str, Any]) -> None:
        path = self._meta_path(handle)
        tmp = path.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(path)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise launches of every executor on this data folder (slots are per folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _group_alive(pgid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        proc.poll()  # reap our own child so that a zombie leader does not count as alive
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    info = _proc_info(pgid)
    # Only a zombie leader left (not ours to reap): the group has nothing left to stop.
    return not (info is not None and info.zombie and _group_size(pgid) <= 1)


def _group_size(pgid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat_fields(int(entry.name))
            if info is not None and len(info) > 2 and info[2] == str(pgid):
                count += 1
    return count


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of `/proc/{pid}/stat` from field 3 (state) on; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _proc_info(pid: int) -> _ProcInfo | None:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    zombie = fields[0] in ("Z", "X")
    exit_code = None
    if zombie and len(fields) >= 50:  # field 52: exit status in waitpid(2)'s form
        exit_code = os.waitstatus_to_exitcode(int(fields[49]))
    return _ProcInfo(start=int(fields[19]), zombie=zombie, exit_code=exit_code)
