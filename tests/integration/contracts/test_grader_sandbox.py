"""A Python grader's sandbox against hostile graders: each is contained and reported, and the
process that ran it carries on. Linux only (namespaces); a host that cannot make them is
reported as a server error, which the last test checks is never a crash."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from contracts.graders.sandbox import Limits, Outcome, run

LIMITS = Limits(wall_seconds=30, cpu_seconds=2, memory_bytes=512 << 20, output_bytes=64 << 10)
SAMPLE = {"output_text": "Paris", "output_json": None, "output_tools": []}


def _run(source: str, item: object = None, limits: Limits = LIMITS) -> Outcome:
    outcome = run(source, SAMPLE, item, limits)
    assert outcome.kind != "server", outcome.error  # this machine can build the sandbox
    return outcome


def test_a_grader_returns_its_reward_and_its_output_is_kept() -> None:
    outcome = _run(
        "import json, math, re\n"
        "def grade(sample, item):\n"
        "    print('graded', sample['output_text'])\n"
        "    return 1.0 if sample['output_text'] == item['label'] else 0.0\n",
        {"label": "Paris"},
    )
    assert outcome.reward == 1.0 and outcome.stdout == "graded Paris\n"


def test_no_network() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[object] = []
    server.settimeout(0.1)

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    outcome = _run(
        "import socket\n"
        "def grade(sample, item):\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    return 1.0\n"
    )
    thread = threading.Thread(target=accept)
    thread.start()
    thread.join()
    server.close()
    assert outcome.reward is None and outcome.kind == "runtime"
    assert "ConnectionRefusedError" in (outcome.error or "") or "unreachable" in (
        outcome.error or ""
    )
    assert accepted == []  # the host's listener never saw it
    outside = _run(
        "import socket\n"
        "def grade(sample, item):\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    return 1.0\n"
    )
    assert outside.reward is None and "Network is unreachable" in (outside.error or "")


def test_no_write_outside_its_folder_and_its_folder_is_private(tmp_path: Path) -> None:
    target = Path.cwd() / "sandbox-escape.txt"
    outcome = _run(
        "def grade(sample, item):\n"
        "    open('/work/scratch', 'w').write('fine')\n"
        "    open('/tmp/scratch2', 'w').write('fine')\n"
        "    errors = []\n"
        f"    for path in ('/usr/escape', '/escape', {str(target)!r}, '/proc/escape'):\n"
        "        try:\n"
        "            open(path, 'w').write('x')\n"
        "        except OSError as e:\n"
        "            errors.append(type(e).__name__)\n"
        "    return float(len(errors))\n"
    )
    assert outcome.reward == 4.0
    assert not target.exists() and not Path("/usr/escape").exists()


def test_no_file_of_the_host_but_the_system_and_python(tmp_path: Path) -> None:
    secret = Path.cwd() / "tests" / "unit" / "contracts" / "__init__.py"  # this checkout
    outcome = _run(
        "import os\n"
        "def grade(sample, item):\n"
        f"    assert not os.path.exists({str(secret)!r})\n"
        f"    assert not os.path.exists({str(Path.cwd())!r})\n"
        "    assert not os.path.exists('/etc/passwd')\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    assert sorted(map(int, pids)) == [1, 2], pids  # its own PID namespace\n"
        "    return float(os.getuid() != 0)\n"
    )
    assert outcome.reward == 1.0, outcome.error


def test_no_environment_of_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHETSTONE_DATABASE_URL", "postgresql://user:secret@db/whetstone")
    outcome = _run(
        "import os\n"
        "def grade(sample, item):\n"
        "    env = os.environ\n"
        "    leaked = [k for k in env if k.startswith('WHETSTONE') or 'secret' in env[k]]\n"
        "    return float(len(leaked))\n"
    )
    assert outcome.reward == 0.0
    assert os.environ["WHETSTONE_DATABASE_URL"].endswith("whetstone")


def test_a_fork_bomb_cannot_fork() -> None:
    outcome = _run("import os\ndef grade(sample, item):\n    while True:\n        os.fork()\n")
    assert outcome.reward is None and "BlockingIOError" in (outcome.error or "")
    threads = _run(
        "import threading\n"
        "def grade(sample, item):\n"
        "    threading.Thread(target=print).start()\n"
        "    return 1.0\n"
    )
    assert threads.reward is None and "can't start new thread" in (threads.error or "")


def test_an_endless_loop_is_stopped_by_the_cpu_limit() -> None:
    outcome = _run("def grade(sample, item):\n    while True:\n        pass\n")
    assert outcome.reward is None and outcome.kind == "runtime"
    assert "CPU limit" in (outcome.error or "")


def test_a_sleeping_grader_is_stopped_by_the_wall_clock() -> None:
    limits = Limits(wall_seconds=1, cpu_seconds=2)
    outcome = _run("import time\ndef grade(sample, item):\n    time.sleep(3600)\n", limits=limits)
    assert outcome.reward is None and outcome.kind == "timeout"


def test_a_grader_printing_100_mb_is_stopped_and_its_start_kept() -> None:
    outcome = _run(
        "import sys\n"
        "def grade(sample, item):\n"
        "    for _ in range(100):\n"
        "        sys.stdout.write('x' * (1 << 20))\n"
        "    return 1.0\n"
    )
    assert outcome.reward is None and "printed more than" in (outcome.error or "")
    assert outcome.stdout == "x" * 8192


def test_memory_and_file_size_are_limited() -> None:
    memory = _run("def grade(sample, item):\n    b = bytearray(2 << 30)\n    return 1.0\n")
    assert memory.reward is None and "MemoryError" in (memory.error or "")
    big_file = _run(
        "def grade(sample, item):\n"
        "    with open('/work/big', 'wb') as f:\n"
        "        f.write(b'x' * (65 << 20))\n"
        "    return 1.0\n"
    )
    assert big_file.reward is None and big_file.kind == "runtime"


def test_what_a_grader_raises_or_returns_wrong_is_reported() -> None:
    raised = _run("def grade(sample, item):\n    raise ValueError('bad item')\n")
    assert "ValueError: bad item" in (raised.error or "")
    wrong = _run("def grade(sample, item):\n    return 'yes'\n")
    assert "must return a finite float" in (wrong.error or "")
    nan = _run("def grade(sample, item):\n    return float('nan')\n")
    assert nan.reward is None
    exits = _run("import os\ndef grade(sample, item):\n    os._exit(3)\n")
    assert exits.reward is None and "without a result" in (exits.error or "")


SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_PYTHON.exists() or not Path("/usr/bin/setpriv").exists(),
    reason="needs root to start a service stand-in as another user, and the system's Python",
)
def test_a_service_that_is_not_root_isolates_through_a_user_namespace() -> None:
    """Production may not run as root: the sandbox then makes a user namespace of its own."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path.cwd())!r})\n"
        "from contracts.graders.sandbox import Limits, run\n"
        "limits = Limits(wall_seconds=30, cpu_seconds=2)\n"
        "sources = {\n"
        "    'net': 'import socket\\ndef grade(s, i):\\n"
        '    socket.create_connection(("1.1.1.1", 53), timeout=2)\\n\',\n'
        "    'fork': 'import os\\ndef grade(s, i):\\n    while True:\\n        os.fork()\\n',\n"
        "    'write': 'def grade(s, i):\\n    open(\"/usr/owned\", \"w\")\\n',\n"
        "    'ok': 'def grade(s, i):\\n    return 0.5\\n',\n"
        "}\n"
        "for name, source in sources.items():\n"
        "    o = run(source, {'output_text': 'a'}, None, limits)\n"
        "    print(name, o.reward, o.kind, (o.error or '').splitlines()[-1:])\n"
    )
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(SYSTEM_PYTHON),
            "-",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines.get("ok") == "0.5 None []", out.stdout + out.stderr
    assert "Network is unreachable" in lines["net"]
    assert "BlockingIOError" in lines["fork"]
    assert "Read-only file system" in lines["write"]
