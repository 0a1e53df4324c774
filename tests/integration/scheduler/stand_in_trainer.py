"""A stand-in for `python -m trainer` that trains nothing: it records that it ran, reports
`started` and `finished` through the real progress endpoint, and exits 0. Used where the test
is about scheduling, not training (the real trainer takes seconds per job on this CPU)."""

from __future__ import annotations

import argparse
import os
import sys

import httpx


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs")  # the file it records its runs in (a trainer inherits no test
    parser.add_argument("command")  # variable: service.executors.environment)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    token = os.environ["WHETSTONE_ATTEMPT_TOKEN"]  # as the local executor passes it
    job_id = args.report.rstrip("/").split("/")[-2]
    folder = f"jobs/{job_id}/"
    with open(args.runs, "a") as runs:
        runs.write(f"{job_id} {args.spec} {token}\n")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        client.post(args.report, json={"type": "started", "total_steps": 1, "attempt": 1,
                                       "resumed_from_step": None}).raise_for_status()  # fmt: skip
        client.post(args.report, json={
            "type": "finished", "trained_tokens": 7,
            "adapter_key": folder + "final/adapter/", "metrics_key": folder + "metrics.csv",
            "full_valid_loss": None, "full_valid_mean_token_accuracy": None,
        }).raise_for_status()  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
