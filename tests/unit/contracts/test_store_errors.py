"""Which object-store errors the scheduler retries later (`contracts.s3_store.is_transient_error`,
through `service.scheduler.failures.is_transient`): an S3 that cannot answer now, never a
request that is wrong."""

from __future__ import annotations

import pytest
from botocore import exceptions as s3

from contracts.s3_store import is_transient_error
from contracts.store import ObjectNotFound
from service.scheduler.failures import is_transient


def client_error(status: int, code: str) -> s3.ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return s3.ClientError(response, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        client_error(503, "ServiceUnavailable"),
        client_error(500, "InternalError"),
        client_error(400, "SlowDown"),
        client_error(400, "RequestTimeout"),
        s3.EndpointConnectionError(endpoint_url="http://minio:9000"),
    ],
    ids=["503", "500", "slow-down", "request-timeout", "unreachable"],
)
def test_an_object_store_that_cannot_answer_now_is_retried(error: Exception) -> None:
    assert is_transient_error(error)
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error(403, "AccessDenied"),
        client_error(404, "NoSuchKey"),
        client_error(400, "InvalidBucketName"),
        ObjectNotFound("files/x"),
        ValueError("bad line"),
    ],
    ids=["denied", "missing", "bad-bucket", "not-found", "not-a-store-error"],
)
def test_a_wrong_request_is_not_retried(error: Exception) -> None:
    assert not is_transient_error(error)
    assert not is_transient(error)
