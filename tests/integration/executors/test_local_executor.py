"""The local executor beyond the contract: logs, process groups, signals, scheduler restarts."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.executors import ExecutorSettings, build_executor
from service.executors.base import ExecutorFull, Outcome
from service.executors.local import LocalExecutor
from tests.integration.executors.conftest import STANDIN, LocalHarness
from tests.unit.executors.conftest import make_attempt, wait_finished


def _gone(pid: int) -> bool:
    """True once `pid` no longer runs (absent, or a zombie waiting for its new parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def _wait_for_line(path: Path, prefix: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines() if path.exists() else []:
            if line.startswith(prefix):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no line starting with {prefix!r} in {path}")


def test_trainer_gets_its_arguments_and_logs_land_in_the_data_folder(local: LocalHarness) -> None:
    attempt = make_attempt("ftjob-logs", 3)
    handle = local.executor.launch(attempt)
    assert wait_finished(local.executor, handle).outcome is Outcome.SUCCEEDED
    log = local.root / "logs" / "ftjob-logs" / "attempt-3.log"
    assert f"args: run --spec {attempt.spec_url} --report {attempt.report_url}\n" in log.read_text()
    assert "--token" not in log.read_text()
    assert f"token-from-env: {attempt.token}" in log.read_text()
    meta = json.loads(log.with_suffix(".json").read_text())
    assert meta["exit_code"] == 0
    assert attempt.token not in json.dumps(meta), "the token is not kept on disk"


def test_the_token_is_not_on_the_trainers_command_line(local: LocalHarness) -> None:
    attempt = make_attempt("ftjob-cmdline", sleep=60)
    handle = local.executor.launch(attempt)
    log = local.executor.log_path("ftjob-cmdline", 1)
    _wait_for_line(log, "ready")
    pid = int(handle.rsplit(":", 2)[1])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    try:
        assert attempt.report_url in cmdline, "the pid is the trainer's"
        assert attempt.token not in cmdline, "/proc/PID/cmdline is readable by every local user"
    finally:
        local.executor.kill(handle)
        wait_finished(local.executor, handle)


def test_kill_stops_the_whole_process_group_even_when_sigterm_is_ignored(
    local: LocalHarness,
) -> None:
    handle = local.executor.launch(
        make_attempt("ftjob-group", sleep=60, STANDIN_CHILD="1", STANDIN_IGNORE_TERM="1")
    )
    log = local.executor.log_path("ftjob-group", 1)
    child = int(_wait_for_line(log, "child: ").split()[1])
    _wait_for_line(log, "ready")
    started = time.monotonic()
    local.executor.kill(handle)
    state = wait_finished(local.executor, handle, timeout=10)
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, -9, True)
    assert state.reason == "killed by SIGKILL"
    # A lower bound: a loaded machine only makes the kill later, never earlier.
    assert time.monotonic() - started >= 0.9, "SIGKILL only after the grace period"
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the trainer's child process was left running"


def test_sigterm_lets_a_trainer_exit_on_its_own(local: LocalHarness) -> None:
    handle = local.executor.launch(make_attempt("ftjob-term", sleep=60))
    _wait_for_line(local.executor.log_path("ftjob-term", 1), "ready")
    local.executor.kill(handle)
    state = wait_finished(local.executor, handle)
    assert (state.outcome, state.exit_code) == (Outcome.FAILED, -signal.SIGTERM)


def test_a_recorded_exit_survives_a_restart(local: LocalHarness) -> None:
    handle = local.executor.launch(make_attempt("ftjob-rec", exit_code=2))
    assert wait_finished(local.executor, handle).exit_code == 2
    state = local.restart().poll(handle)
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, 2, False)


_ORPHAN = """
import json
import sys
from pathlib import Path
from service.executors.local import LocalExecutor
from tests.unit.executors.conftest import make_attempt
ex = LocalExecutor(Path(sys.argv[1]), command=[sys.executable, sys.argv[2]])
print(ex.launch(make_attempt("ftjob-orphan", **json.loads(sys.argv[3]))))
"""


def _launch_from_a_scheduler_that_dies(root: Path, **how: object) -> str:
    """Launch from another process that exits at once, as a crashed scheduler would; `how`
    are `make_attempt`'s keywords."""
    out = subprocess.run(
        [sys.executable, "-c", _ORPHAN, str(root), str(STANDIN), json.dumps(how)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[3],
    )
    return out.stdout.strip()


def test_attempt_outlives_its_scheduler_and_can_be_killed_by_the_next(tmp_path: Path) -> None:
    handle = _launch_from_a_scheduler_that_dies(tmp_path, sleep=60)
    pid = int(handle.split(":")[3])
    ex = LocalExecutor(tmp_path, kill_grace_seconds=1)
    assert [a.handle for a in ex.running()] == [handle]
    ex.kill(handle)
    state = wait_finished(ex, handle)
    # Not our child: its exit code is known only if we see it before its new parent reaps it.
    assert (state.outcome, state.exit_code) in [(Outcome.LOST, None), (Outcome.FAILED, -15)]
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
    assert ex.running() == []


def test_attempt_that_ended_while_no_scheduler_watched_is_not_running(tmp_path: Path) -> None:
    """The trainer ends when the test releases it (not after a fixed time, which a loaded
    machine could spend before the first poll), so it is seen running first."""
    release = tmp_path / "release"
    handle = _launch_from_a_scheduler_that_dies(tmp_path, STANDIN_UNTIL=str(release))
    ex = LocalExecutor(tmp_path)
    assert ex.poll(handle).outcome is Outcome.RUNNING
    release.touch()
    state = wait_finished(ex, handle, timeout=10)
    # `lost` once its new parent has reaped it; its real exit code if seen before that.
    assert (state.outcome, state.exit_code) in [(Outcome.LOST, None), (Outcome.SUCCEEDED, 0)]
    assert ex.running() == []


def test_slots_are_shared_by_executors_on_one_data_folder(tmp_path: Path) -> None:
    first = LocalHarness(tmp_path, slots=1)
    handle = first.executor.launch(make_attempt("ftjob-slot", sleep=60))
    second = LocalHarness(tmp_path, slots=1).executor
    try:
        assert [a.handle for a in second.running()] == [handle]
        with pytest.raises(ExecutorFull):
            second.launch(make_attempt("ftjob-other"))
    finally:
        first.executor.kill(handle)
        wait_finished(first.executor, handle)


def test_build_executor_defaults_to_one_local_slot_running_the_trainer(tmp_path: Path) -> None:
    ex = build_executor(ExecutorSettings(), tmp_path)
    assert isinstance(ex, LocalExecutor)
    assert ex.capacity == 1
    assert ex._command == [sys.executable, "-m", "trainer"]


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHETSTONE_EXECUTOR", "kubernetes")
    monkeypatch.setenv("WHETSTONE_TRAINER_SLOTS", "8")
    monkeypatch.setenv("WHETSTONE_K8S_NODE_SELECTOR", '{"nvidia.com/gpu.present": "true"}')
    monkeypatch.setenv(
        "WHETSTONE_K8S_TOLERATIONS",
        '[{"key": "nvidia.com/gpu", "operator": "Exists", "tolerationSeconds": 30}]',
    )
    s = ExecutorSettings()
    assert (s.executor, s.trainer_slots) == ("kubernetes", 8)
    assert s.k8s_node_selector == {"nvidia.com/gpu.present": "true"}
    assert s.k8s_tolerations[0].toleration_seconds == 30


def test_secret_variables_reach_the_trainers_environment(tmp_path: Path) -> None:
    attempt = dataclasses.replace(
        make_attempt("ftjob-wandb"), secret_env={"WANDB_API_KEY": "wandb-secret-key"}
    )
    env = LocalExecutor(tmp_path).environment(attempt, None)
    assert env["WANDB_API_KEY"] == "wandb-secret-key"
    assert "wandb-secret-key" not in " ".join(attempt.trainer_args())


SERVICE_SECRETS = {
    "WHETSTONE_DATABASE_URL": "postgresql://whetstone:db-password@db/whetstone",
    "WHETSTONE_VLLM_API_KEY": "vllm-secret-key",
    "WHETSTONE_WANDB_API_KEY": "deployment-wandb-key",
    "WHETSTONE_METRICS_TOKEN": "metrics-secret",
    "WANDB_API_KEY": "operator-wandb-key",
    "HF_TOKEN": "hf_operator_token",
}
NEEDED = {
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "CUDA_HOME": "/usr/local/cuda",
    "HF_HOME": "/srv/hf", "TORCH_HOME": "/srv/torch", "PYTORCH_CUDA_ALLOC_CONF": "x",
    "AWS_ACCESS_KEY_ID": "store-id", "OMP_NUM_THREADS": "2",
}  # fmt: skip


def _trainer_environ(local: LocalHarness, job_id: str, wandb: bool) -> dict[str, str]:
    """The environment the launched trainer process actually has (/proc/PID/environ)."""
    attempt = dataclasses.replace(make_attempt(job_id, sleep=60), wandb=wandb)
    handle = local.executor.launch(attempt)
    try:
        _wait_for_line(local.executor.log_path(job_id, 1), "ready")
        pid = int(handle.rsplit(":", 2)[1])
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    finally:
        local.executor.kill(handle)
        wait_finished(local.executor, handle)


def test_a_trainer_gets_none_of_the_services_secrets(
    local: LocalHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SERVICE_SECRETS, **NEEDED}.items():
        monkeypatch.setenv(name, value)
    env = _trainer_environ(local, "ftjob-env", wandb=False)
    leaked = [name for name in SERVICE_SECRETS if name in env]
    assert leaked == [], "a trainer runs user-influenced code: no service secret reaches it"
    assert not [name for name in env if name.startswith("WHETSTONE_") and name not in (
        "WHETSTONE_ATTEMPT_TOKEN", "WHETSTONE_TRAINER_REPORT_MAX_WAIT_SECONDS",
        "WHETSTONE_TRAINER_HEARTBEAT_SECONDS")]  # fmt: skip
    assert {name: env.get(name) for name in NEEDED} == NEEDED
    for name in ("PATH", "HOME"):
        assert env[name] == os.environ[name]
    assert env["WHETSTONE_ATTEMPT_TOKEN"] == "tok-ftjob-env-1"


def test_only_a_wandb_job_keeps_the_services_wandb_variables(
    local: LocalHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "operator-wandb-key")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WHETSTONE_DATABASE_URL", "postgresql://x:pw@db/w")
    env = _trainer_environ(local, "ftjob-wandb-env", wandb=True)
    assert (env.get("WANDB_API_KEY"), env.get("WANDB_MODE")) == ("operator-wandb-key", "offline")
    assert "WHETSTONE_DATABASE_URL" not in env
