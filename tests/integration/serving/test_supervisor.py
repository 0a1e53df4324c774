"""The supervisor's process handling, with a small stand-in for vLLM.

The stand-in answers vLLM's /health, /v1/models and runtime-LoRA routes and starts a child
process, as vLLM starts its engine. It is used here because it starts in a fraction of a
second and can be made to crash at start, which the real vLLM cannot cheaply do; the same
behaviour with the real vLLM is in tests/integration/serving.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.local_store import LocalStore
from contracts.pointers import ModelPointer, write_pointer
from serving.launcher import BaseModelEntry, ResolverSettings
from serving.supervisor import AdapterNotFound, NotReady, Supervisor

FAKE_VLLM = """#!{python}
import json, os, socketserver, subprocess, sys
from http.server import BaseHTTPRequestHandler

uds = sys.argv[sys.argv.index("--uds") + 1]
name = sys.argv[sys.argv.index("--served-model-name") + 1]
if os.environ.get("FAKE_CRASH"):
    import time
    with open(os.environ["FAKE_CRASH"], "a") as f:
        f.write(f"{{time.monotonic()}}\\n")
    sys.exit(3)
child = subprocess.Popen(["sleep", "300"])
with open(os.environ["FAKE_PIDS"], "a") as f:
    f.write(f"{{child.pid}}\\n")
loaded = {{}}

class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {{}})
        ids = [name, *loaded]
        self._send(200, {{"data": [{{"id": i}} for i in ids]}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/v1/load_lora_adapter":
            loaded[body["lora_name"]] = body["lora_path"]
            return self._send(200, {{}})
        if loaded.pop(body["lora_name"], None) is None:
            return self._send(404, {{"error": {{"message": "not loaded"}}}})
        self._send(200, {{}})

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass

socketserver.ThreadingUnixStreamServer(uds, Handler).serve_forever()
"""


@pytest.fixture()
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    exe = tmp_path / "fake-vllm"
    exe.write_text(FAKE_VLLM.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_PIDS", str(tmp_path / "children"))
    return exe


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "objects")


@pytest.fixture()
def supervisor(fake_vllm: Path, store: LocalStore, tmp_path: Path) -> Iterator[Supervisor]:
    entry = BaseModelEntry(name="tiny", path="/models/tiny", max_seq_len=256)
    resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(tmp_path / "cache"))
    sup = Supervisor([entry], resolver, tmp_path / "logs", python=str(fake_vllm), poll_interval=0.1)
    sup.start()
    yield sup
    sup.stop()


def _children(tmp_path: Path) -> list[int]:
    return [int(line) for line in (tmp_path / "children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent (gone) to be reaped by init.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_listens_on_a_socket_only_its_user_can_reach_and_reports_ready(
    supervisor: Supervisor,
) -> None:
    supervisor.wait_ready(timeout=20)
    assert supervisor.is_ready("tiny")
    socket_path = supervisor.socket_path("tiny")
    assert supervisor.address("tiny") == f"unix:{socket_path}"
    assert socket_path.is_socket() and socket_path.parent == supervisor.socket_dir
    folder = supervisor.socket_dir.stat()
    assert (folder.st_mode & 0o777, folder.st_uid) == (0o700, os.getuid())
    assert supervisor.status("tiny").startup_seconds is not None
    with pytest.raises(KeyError):
        supervisor.is_ready("other")


def test_killed_server_is_restarted_and_its_children_ended(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.wait_ready(timeout=20)
    first = supervisor.status("tiny")
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while supervisor.status("tiny").starts < 2 or not supervisor.is_ready("tiny"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert supervisor.address("tiny") == first.address
    old_child, new_child = _children(tmp_path)
    assert not _alive(old_child) and _alive(new_child)


def test_stop_ends_every_process(supervisor: Supervisor, tmp_path: Path) -> None:
    supervisor.wait_ready(timeout=20)
    pid = supervisor.status("tiny").pid
    supervisor.stop()
    assert pid is not None and not _alive(pid)
    assert not any(_alive(c) for c in _children(tmp_path))
    assert not supervisor.is_ready("tiny")
    assert not supervisor.socket_dir.exists()


def test_crashing_server_is_retried_with_backoff(
    fake_vllm: Path, store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each crashed start writes when it ran (the clock is the machine's, shared by every
    process); the next start comes a backoff after the crash, doubling: 1 s, then 2 s."""
    crashes = tmp_path / "crashes"
    monkeypatch.setenv("FAKE_CRASH", str(crashes))
    entry = BaseModelEntry(name="tiny", path="/models/tiny")
    resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(tmp_path / "c"))
    with Supervisor(
        [entry], resolver, tmp_path / "logs", python=str(fake_vllm), poll_interval=0.05
    ) as sup:
        deadline = time.monotonic() + 30
        while len(crashes.read_text().split() if crashes.exists() else []) < 3:
            assert time.monotonic() < deadline, "fewer than three starts"
            time.sleep(0.05)
        assert not sup.is_ready("tiny")
    ran = [float(t) for t in crashes.read_text().split()]
    assert ran[1] - ran[0] >= 1.0 and ran[2] - ran[1] >= 2.0, ran  # not dozens of starts
    log = (tmp_path / "logs" / "tiny.log").read_text()
    assert log.count("whetstone: start") == len(ran)


def test_load_and_unload_adapter_from_the_store(
    supervisor: Supervisor, store: LocalStore, tmp_path: Path
) -> None:
    name = "ft:tiny:proj::abc12345"
    prefix = "jobs/ftjob-abc/final/adapter/"
    store.put_bytes(prefix + "adapter_config.json", json.dumps({"peft_type": "LORA"}).encode())
    write_pointer(store, ModelPointer(model=name, base_model="tiny", adapter_prefix=prefix))
    supervisor.wait_ready(timeout=20)

    supervisor.load_adapter("tiny", name)
    supervisor.load_adapter("tiny", name)  # already loaded: nothing to do
    cached = [
        p for p in (tmp_path / "cache").iterdir() if p.is_dir() and not p.name.startswith(".")
    ]
    assert len(cached) == 1
    assert (
        json.loads((cached[0] / "adapter_config.json").read_text())["base_model_name_or_path"]
        == "/models/tiny"
    )
    assert supervisor.unload_adapter("tiny", name) is True
    assert supervisor.unload_adapter("tiny", name) is False
    with pytest.raises(AdapterNotFound):
        supervisor.load_adapter("tiny", "ft:tiny:proj::nosuch00")


def test_adapter_calls_on_a_server_that_is_down_say_not_ready(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.stop()
    with pytest.raises(NotReady):
        supervisor.load_adapter("tiny", "ft:tiny:proj::abc12345", path=str(tmp_path))
    assert supervisor.unload_adapter("tiny", "ft:tiny:proj::abc12345") is False


RUN_SUPERVISOR = """
import sys, time
from pathlib import Path
from serving.launcher import BaseModelEntry, ResolverSettings
from serving.supervisor import Supervisor
root = Path(sys.argv[1])
entry = BaseModelEntry(name="tiny", path="/models/tiny", max_seq_len=256)
resolver = ResolverSettings(object_store_url=sys.argv[3], lora_cache_dir=str(root / "cache"))
sup = Supervisor([entry], resolver, root / "logs", python=sys.argv[2], poll_interval=0.1)
sup.start()
sup.wait_ready(timeout=20)
print(sup.status("tiny").pid, flush=True)
time.sleep(300)  # runs until the test kills it
"""


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_supervisor_killed_with_sigkill_leaves_no_vllm_behind(
    fake_vllm: Path, store: LocalStore, tmp_path: Path
) -> None:
    """vLLM dies with its supervisor (parent-death signal); what it started (vLLM's engine)
    is stopped by the next supervisor of the folder, from the groups in `pids.json`."""
    import subprocess

    parent = subprocess.Popen(
        [sys.executable, "-c", RUN_SUPERVISOR, str(tmp_path), str(fake_vllm), store.url],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[3],
    )
    assert parent.stdout is not None
    vllm_pid = int(parent.stdout.readline())
    (engine,) = _children(tmp_path)
    assert _alive(vllm_pid) and _alive(engine)
    parent.kill()
    parent.wait()
    assert _gone_within([vllm_pid], 10), "vLLM outlived its supervisor"
    assert _alive(engine)  # the stand-in does not stop its child: vLLM's engine may linger

    entry = BaseModelEntry(name="tiny", path="/models/tiny", max_seq_len=256)
    resolver = ResolverSettings(object_store_url=store.url, lora_cache_dir=str(tmp_path / "c"))
    with Supervisor([entry], resolver, tmp_path / "logs", python=str(fake_vllm)) as sup:
        assert _gone_within([engine], 10), "the next start did not reap the leftover"
        sup.wait_ready(timeout=20)


def test_a_recorded_pid_now_used_by_a_stranger_is_left_alone(tmp_path: Path) -> None:
    import subprocess

    from serving.process_groups import reap_leftovers

    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pids = tmp_path / "pids.json"
        pids.write_text(json.dumps({"tiny": {"pgid": stranger.pid, "start": 1}}))
        assert reap_leftovers(pids) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
