"""The deliverer runs in the scheduler's process (`python -m service.scheduler`), and what it
owes lives in rows: a scheduler killed between two attempts of a delivery is replaced by a
new one, which makes the next attempt with the same `webhook-id`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from openai.types.webhooks import FineTuningJobSucceededWebhookEvent

from .conftest import UNWRAP, Db, end, endpoint, job
from .receiver import receiver

ROOT = Path(__file__).resolve().parents[3]


def scheduler(database_url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHETSTONE_")}
    env.update(
        PYTHONPATH=str(ROOT), WHETSTONE_DATA_DIR=str(data_dir),
        WHETSTONE_DATABASE_URL=database_url, WHETSTONE_WEBHOOK_RETRY_SECONDS="[4, 4]",
        WHETSTONE_WEBHOOK_POLL_SECONDS="0.2", WHETSTONE_SCHEDULER_POLL_SECONDS="0.5",
        WHETSTONE_WEBHOOK_ALLOW_PRIVATE_URLS="true",  # the receiver is on 127.0.0.1
    )  # fmt: skip
    log = (data_dir / "scheduler.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "service.scheduler"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


def test_a_scheduler_killed_mid_retry_is_followed_by_one_that_delivers(
    db: Db, own_postgres_url: str, tmp_path: Path
) -> None:
    with receiver(statuses=[500]) as hook:
        secret = endpoint(db, "alpha", hook.url)
        job_id = job(db)
        end(db, job_id, "succeeded")
        first = scheduler(own_postgres_url, tmp_path)
        try:
            hook.wait_for(1, timeout=60)  # refused: the retry is due in 4 s
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        assert len(hook.got) == 1
        second = scheduler(own_postgres_url, tmp_path)
        try:
            refused, accepted = hook.wait_for(2, timeout=60)
        finally:
            second.terminate()
            second.wait(timeout=30)
    assert accepted.headers["webhook-id"] == refused.headers["webhook-id"]
    event = UNWRAP.unwrap(accepted.body, accepted.headers, secret=secret)
    assert isinstance(event, FineTuningJobSucceededWebhookEvent) and event.data.id == job_id
    assert second.returncode == 0  # SIGTERM: a clean stop, the deliverer included
    # Stopped cleanly, it waited for its attempts, and the receiver keeps each before it
    # answers: nothing more can arrive.
    assert len(hook.got) == 2  # delivered once, not again
