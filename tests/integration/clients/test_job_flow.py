"""The job flow as a person runs it: `whetstone files upload`, then `whetstone jobs create
--follow` under a pseudo-terminal until the job succeeds (the real trainer on the CPU, the
scheduler as its own process), and the SDK's `follow` and `wait`. Chat with the tuned model
is covered by the chat tests against a real vLLM."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sdk import Whetstone
from tests.e2e.lifecycle_stack import Stack, dataset, start_stack

pytestmark = pytest.mark.slow
WHETSTONE = str(Path(sys.executable).with_name("whetstone"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("clients-flow"), base_model_dir) as s:
        yield s


def in_pty(stack: Stack, *args: str, timeout: float = 300) -> tuple[int, str]:
    env = {**stack.env, "WHETSTONE_BASE_URL": stack.base_url.removesuffix("/v1"),
           "WHETSTONE_API_KEY": stack.key, "TERM": "xterm-256color", "COLUMNS": "120"}  # fmt: skip
    main, secondary = pty.openpty()
    proc = subprocess.Popen([WHETSTONE, *args], stdin=secondary, stdout=secondary,
                            stderr=secondary, env=env, close_fds=True)  # fmt: skip
    os.close(secondary)
    shown, deadline = bytearray(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        shown += data
    os.close(main)
    return proc.wait(timeout=30), shown.decode(errors="replace")


def test_upload_then_create_and_follow_to_success(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_bytes(dataset())
    code, shown = in_pty(stack, "files", "upload", str(path), "--json")
    assert code == 0, shown
    found = re.search(r"(file-[A-Za-z0-9]{24})", shown)
    assert found, shown
    file_id = found.group(1)
    code, shown = in_pty(stack, "jobs", "create", "--model", "whetstone-tiny",
                         "--training-file", file_id, "--suffix", "qa", "--epochs", "1",
                         "--batch-size", "2", "--follow", "--interval", "0.5")  # fmt: skip
    assert code == 0, shown + stack.logs()
    assert "Step" in shown and "succeeded" in shown
    assert re.search(r"ft:whetstone-tiny:alpha:qa:\w+", shown)


def test_sdk_follow_and_wait(stack: Stack) -> None:
    with Whetstone(base_url=stack.base_url.removesuffix("/v1"), api_key=stack.key) as client:
        file_id = client.files.create(file=("qa.jsonl", dataset())).id
        job = client.fine_tuning.jobs.create(
            model="whetstone-tiny", training_file=file_id,
            method={"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 1, "batch_size": 2}}},
        )  # fmt: skip
        events = list(client.fine_tuning.jobs.follow(job.id, poll_interval=0.5))
        assert any(e.type == "metrics" for e in events)
        done = client.fine_tuning.jobs.wait(job.id, poll_interval=0.5, timeout=120)
        assert done.status == "succeeded" and done.fine_tuned_model and done.result_files
        assert b"step" in client.files.content(done.result_files[0])
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
        assert checkpoints
        assert all(c.fine_tuned_model_checkpoint.startswith(done.fine_tuned_model)
                   for c in checkpoints)  # fmt: skip
