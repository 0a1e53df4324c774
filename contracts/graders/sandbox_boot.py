"""The first code of a Python grader's sandbox process (`contracts.graders.sandbox` runs this
file's text with `python -I -S -c`): it isolates itself, then runs the user's `grade`.

Standard library only, and nothing of ours: it runs before and around untrusted code.

1. Reads its job (source, sample, item, limits) from standard input, as JSON.
2. `unshare`: new mount, network, PID, IPC and UTS namespaces, and a new user namespace when
   not started as root. The network namespace has no interface but a down loopback: no
   connection can be made. Where the kernel refuses, the grader is not run.
3. Forks the namespace's first process, which builds a root of its own: a read-only tmpfs
   with read-only binds of the system's and Python's folders only (no data folder, no home,
   no /work, no /etc), a fresh /proc of the new PID namespace (no other process is visible),
   /dev/null, /dev/zero, /dev/urandom, and a writable tmpfs `/work` of a fixed size (also
   `/tmp`); `pivot_root` into it and detaches the old root.
4. Forks the worker, which drops privileges (uid/gid 65534 when root; every capability and
   `no_new_privs` always), sets its resource limits (CPU seconds, address space, file size,
   open files, no core dumps, and no new process at all: RLIMIT_NPROC 0), then runs the
   source and `grade(sample, item)` and writes `{"reward": x}` or `{"error", "kind"}` to the
   result descriptor.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import platform
import resource
import sys
import traceback
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
NOBODY = 65534
MAX_DETAILS = 8192

_libc = ctypes.CDLL(None, use_errno=True)


def _report(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    while data:
        data = data[os.write(fd, data) :]


def _call(name: str, *args: Any) -> None:
    if getattr(_libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}{args[:2]!r}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype)]
    _call("mount", enc[0], enc[1], enc[2], ctypes.c_ulong(flags), data.encode() or None)


def _isolate_namespaces() -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    _call("unshare", flags | (0 if uid == 0 else CLONE_NEWUSER))
    if uid != 0:
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"0 {uid} 1"),
            ("gid_map", f"0 {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)


def _build_root(root: str, binds: list[str], work_bytes: int) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    for path in binds:
        target = root + path
        if os.path.islink(path) and os.path.dirname(path) == "/":  # /bin -> usr/bin
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path) and not os.path.exists(target):
            os.makedirs(target)
            _mount(path, target, None, MS_BIND | MS_REC)
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.makedirs(root + "/dev")
    for device in ("null", "zero", "urandom"):
        open(f"{root}/dev/{device}", "w").close()
        _mount(f"/dev/{device}", f"{root}/dev/{device}", None, MS_BIND)
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + "/work")
    _mount("tmpfs", root + "/work", "tmpfs", MS_NOSUID | MS_NODEV, f"size={work_bytes},mode=1777")
    os.symlink("/work", root + "/tmp")
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: unknown machine {platform.machine()}")
    if _libc.syscall(number, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    _call("umount2", b".", MNT_DETACH)
    os.chdir("/work")


def _drop_privileges(limits: dict[str, int]) -> None:
    if os.getuid() == 0 and os.path.exists("/proc/self/uid_map"):
        with open("/proc/self/uid_map") as f:
            mapped_root = f.read().split()[:2] == ["0", "0"]
        if mapped_root:  # real root: become nobody (then no capability is left)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    _call("capset", header, (ctypes.c_uint32 * 6)())  # no capability, in any set
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no fork, no thread


def _grade(job: dict[str, Any], result_fd: int) -> None:
    namespace: dict[str, Any] = {"__name__": "grader"}
    try:
        exec(compile(job["source"], "grader.py", "exec"), namespace)  # the sandboxed user code
        reward = namespace["grade"](job["sample"], job["item"])
    except BaseException:  # noqa: BLE001 - everything the user's code raises is its report
        _report(result_fd, {"kind": "runtime", "error": traceback.format_exc()[-MAX_DETAILS:]})
        return
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        message = f"grade() must return a finite float, not {type(reward).__name__}: {reward!r}"
        _report(result_fd, {"kind": "runtime", "error": message[:MAX_DETAILS]})
        return
    _report(result_fd, {"reward": float(reward)})


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    result_fd = job["result_fd"]
    try:
        _isolate_namespaces()
    except OSError as e:
        _report(result_fd, {"kind": "server", "error": f"no isolation on this host: {e}"})
        os._exit(0)
    init = os.fork()
    if init:  # outside the new PID namespace: only waits
        os._exit(_wait(init) & 0xFF)
    _call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0)
    try:
        _build_root(job["root"], job["binds"], job["limits"]["work_bytes"])
    except OSError as e:
        _report(result_fd, {"kind": "server", "error": f"no private root on this host: {e}"})
        os._exit(0)
    worker = os.fork()
    if worker:  # the namespace's first process: waits for the worker, then all end with it
        os._exit(_wait(worker) & 0xFF)
    _call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0)
    _drop_privileges(job["limits"])
    _grade(job, result_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
