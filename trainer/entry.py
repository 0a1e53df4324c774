"""`python -m trainer run`: read the JobSpec, train, and turn the outcome into an exit code.

Exit codes (`contracts.messages`): `EXIT_OK` (0) done (finished, cancelled or paused as asked,
or stopped by SIGTERM after a checkpoint), `EXIT_BAD_INPUT` (2) bad spec or bad data (a
`failed` message and one line on stderr, never a bare traceback), anything else a crash.

The only environment this reads: `WHETSTONE_S3_ENDPOINT_URL` (an S3-compatible endpoint such
as MinIO), `WHETSTONE_TRAINER_REPORT_MAX_WAIT_SECONDS` (how long one progress report is
retried, default 600), `WHETSTONE_TRAINER_HEARTBEAT_SECONDS` (between heartbeats, default
30; the service sets a quarter of its lease) and what boto3 and wandb read themselves
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `WANDB_API_KEY`, `WANDB_BASE_URL`, ...).
A report the service refuses (the attempt is no longer current) or cannot take in that time
stops the trainer with `EXIT_LOST` (a crash: the service retries the job from its last checkpoint).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from contracts.messages import EXIT_BAD_INPUT, EXIT_OK, Failed
from contracts.spec import JobSpec
from contracts.store import ObjectNotFound
from contracts.store_url import split_url
from trainer.progress import (
    HEARTBEAT_SECONDS,
    REPORT_MAX_WAIT_SECONDS,
    Channel,
    HttpChannel,
    Progress,
    ReportRefused,
    ServiceUnreachable,
    StdoutChannel,
)

ENDPOINT_ENV = "WHETSTONE_S3_ENDPOINT_URL"
REPORT_MAX_WAIT_ENV = "WHETSTONE_TRAINER_REPORT_MAX_WAIT_SECONDS"
HEARTBEAT_ENV = "WHETSTONE_TRAINER_HEARTBEAT_SECONDS"
EXIT_LOST = 3
"""The progress channel is gone (refused or unreachable): a crash, retried by the service."""


class SpecError(Exception):
    def __init__(self, message: str, code: str = "invalid_spec", param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


def read_spec(url: str, endpoint_url: str | None) -> JobSpec:
    try:
        store, key = split_url(url, endpoint_url)
        data = store.get_bytes(key)
    except ObjectNotFound as e:
        raise SpecError(f"spec not found: {url}") from e
    except ValueError as e:
        raise SpecError(f"bad spec URL: {e}") from e
    try:
        spec = JobSpec.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise SpecError(f"invalid spec: {where}: {first['msg']}{more}", param=where) from e
    if not (Path(spec.base_model.path) / "config.json").is_file():
        raise SpecError(
            f"base model folder not found or not a model: {spec.base_model.path}",
            code="invalid_base_model",
            param="base_model.path",
        )
    return spec


def _fail(progress: Progress, message: str, code: str, param: str | None) -> int:
    progress.send(Failed(code=code, message=message, param=param))
    sys.stderr.write(f"error: {message}\n")
    return EXIT_BAD_INPUT


def run_command(spec_url: str, report_url: str | None = None, token: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    channel: Channel = StdoutChannel()
    if report_url:
        max_wait = float(os.environ.get(REPORT_MAX_WAIT_ENV) or REPORT_MAX_WAIT_SECONDS)
        channel = HttpChannel(report_url, token or "", max_wait=max_wait)
    progress = Progress(
        channel, heartbeat_seconds=float(os.environ.get(HEARTBEAT_ENV) or HEARTBEAT_SECONDS)
    )
    try:
        return _run(spec_url, progress, os.environ.get(ENDPOINT_ENV) or None)
    except (ReportRefused, ServiceUnreachable) as e:
        sys.stderr.write(f"error: stopping: {e}\n")
        return EXIT_LOST


def _run(spec_url: str, progress: Progress, endpoint_url: str | None) -> int:
    try:
        spec = read_spec(spec_url, endpoint_url)
    except SpecError as e:
        return _fail(progress, e.message, e.code, e.param)

    from contracts.store import ObjectNotFound as Missing
    from trainer.checkpoints import UnsafeCheckpoint
    from trainer.data import DataError
    from trainer.loop import train
    from trainer.model import UnsupportedModel

    progress.pause_on_sigterm()
    try:
        result = train(spec, progress, endpoint_url)
    except DataError as e:
        return _fail(progress, e.message, e.code, e.param)
    except UnsupportedModel as e:
        return _fail(progress, str(e), "unsupported_base_model", "model")
    except UnsafeCheckpoint as e:
        return _fail(progress, str(e), "invalid_checkpoint", "resume_from")
    except Missing as e:
        if spec.resume_from:
            what, param = "resume checkpoint", "resume_from"
        else:
            what, param = "adapter to continue from", "init_adapter"
        return _fail(progress, f"{what} not found: {e}", "invalid_checkpoint", param)
    if result.status != "succeeded":
        progress.log(f"stopped ({result.status}) at step {result.step} of {result.total_steps}")
    return EXIT_OK
