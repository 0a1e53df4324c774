"""vLLM's processes, each the leader of a process group of its own (vLLM's engine processes
join it): started so that it dies with the thread that started it (`spawn`), stopped with
every process of its group (`stop_group`), and recorded in `pids.json` (`record_groups`) so
that the next supervisor of a log folder stops what a killed one left (`reap_leftovers`).
A group is told by its id and its leader's start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PIDS_FILE = "pids.json"
_PR_SET_PDEATHSIG = 1


def spawn(argv: list[str], env: Mapping[str, str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start `argv` (this process's environment plus `env`) in a new session and process
    group, its output to `out`; on Linux it gets SIGTERM when the thread that started it dies."""
    return subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def record_groups(path: Path, leaders: Mapping[str, subprocess.Popen[bytes] | None]) -> None:
    """Write at `path` (atomically) the process group and start time of each live leader in
    `leaders` (by name), for the next supervisor to stop if this process dies without
    stopping them."""
    groups = {}
    for name, proc in leaders.items():
        start = _start_time(proc.pid) if proc is not None and proc.poll() is None else None
        if proc is not None and start is not None:
            groups[name] = {"pgid": proc.pid, "start": start}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(path)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Linux: vLLM gets SIGTERM when the thread that started it dies, so a supervisor killed
    with SIGKILL takes its vLLMs along (they run in their own session, out of reach of the
    terminal's signals). Their own children are stopped by vLLM on that SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_time(pid: int) -> int | None:
    """Field 22 of `/proc/{pid}/stat`: tells a process from a later one given its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


def reap_leftovers(pids_path: Path, timeout: float = 10.0) -> list[int]:
    """Stop the process groups an earlier supervisor recorded in `pids_path` that still run;
    their pgids. A group outlives its leader (vLLM's engine processes); a pid is never given
    to a new process while a group of that id exists, so a recorded group is ours unless its
    id now names a live process that started at another time (a stranger with a reused pid,
    the old group long gone)."""
    try:
        groups = json.loads(pids_path.read_text())
    except (OSError, ValueError):
        return []
    reaped = []
    for name, group in groups.items():
        pgid, start = int(group["pgid"]), int(group["start"])
        now_start = _start_time(pgid)
        if (now_start is not None and now_start != start) or not _group_alive(pgid):
            continue
        log.warning("stopping the vLLM for %s an earlier run left behind (group %d)", name, pgid)
        _killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _killpg(pgid, signal.SIGKILL)
        reaped.append(pgid)
    pids_path.unlink(missing_ok=True)
    return reaped


def _group_alive(pgid: int) -> bool:
    """Some process of group `pgid` still runs (zombies, waiting to be reaped, do not)."""
    if not Path("/proc/self/stat").exists():  # pragma: no cover - not Linux
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def stop_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group of `proc`, wait, then SIGKILL whatever is left of it."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    if proc.poll() is None and timeout > 0:
        _killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    _killpg(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 2  # SIGKILL lands a moment later in the rest of the group
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
