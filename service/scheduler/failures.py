"""What the scheduler does with an exception while it handles one job.

Every stage (validate, claim, launch, watch) handles one job at a time, and an exception
there ends that job or retries it; it never stops the round or the jobs behind it. Errors of
the job's own inputs (its files, its base model's folder) fail it at once with the cause. A
transient error of the infrastructure (the database, the object store) is retried: the
count is the job's `attempt`, and the time of the next try is its `lease_expires_at` (both
unused while a job is `validating_files` or waiting `queued` without an attempt), written by
`service.fine_tuning.attempts.retry_later`; this module decides the delays. Any other exception is a
server problem: the job fails with `server_error` and the exception.
"""

from __future__ import annotations

from sqlalchemy import exc as sql_errors

from contracts import s3_store

SERVER_ERROR = "server_error"
RETRY_DELAYS = (5, 30)
"""Seconds before the second and the third try of a stage that met a transient error."""
TRIES = len(RETRY_DELAYS) + 1


def is_transient(error: BaseException) -> bool:
    """A database or object store that cannot be reached now: worth another try later."""
    if isinstance(error, sql_errors.DBAPIError):
        return isinstance(error, sql_errors.OperationalError | sql_errors.InterfaceError)
    if isinstance(error, sql_errors.TimeoutError | ConnectionError | TimeoutError):
        return True
    return s3_store.is_transient_error(error)


def retry_delay(tries: int) -> int:
    """Seconds to wait after `tries` failed tries (the last delay from then on)."""
    return RETRY_DELAYS[max(0, min(tries, len(RETRY_DELAYS)) - 1)]
