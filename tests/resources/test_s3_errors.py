"""How S3DropZone sorts boto3's failures: what a person must fix vs. what the next tick retries.

The server-side cases moto can produce (stopped server, wrong keys, denied policy, missing
bucket) are exercised for real in tests/resources/test_s3_zone.py; moto cannot answer 503
SlowDown or 500 InternalError on demand, so those answers are built here as S3 sends them.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from resources.drop_zones import DropZoneAccessDenied, DropZoneUnavailable
from resources.s3 import S3DropZone

ZONE = S3DropZone(bucket="acme-exports", endpoint_url="https://s3.example.test")


def answer(code: str, status: int) -> ClientError:
    body = {
        "Error": {"Code": code, "Message": "..."},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(body, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (answer("SlowDown", 503), DropZoneUnavailable),
        (answer("InternalError", 500), DropZoneUnavailable),
        (answer("ServiceUnavailable", 503), DropZoneUnavailable),
        (answer("RequestTimeout", 400), DropZoneUnavailable),
        (answer("SomethingNew", 502), DropZoneUnavailable),
        (EndpointConnectionError(endpoint_url="https://s3.example.test"), DropZoneUnavailable),
        (ReadTimeoutError(endpoint_url="https://s3.example.test"), DropZoneUnavailable),
        (answer("AccessDenied", 403), DropZoneAccessDenied),
        (answer("InvalidAccessKeyId", 403), DropZoneAccessDenied),
        (answer("SignatureDoesNotMatch", 403), DropZoneAccessDenied),
        (answer("ExpiredToken", 400), DropZoneAccessDenied),
        (answer("NoSuchBucket", 404), DropZoneAccessDenied),
        (answer("403", 403), DropZoneAccessDenied),
        (NoCredentialsError(), DropZoneAccessDenied),
    ],
)
def test_failures_are_classified(failure, expected):
    classified = ZONE._classified(failure)
    assert isinstance(classified, expected)
    assert "acme-exports" in str(classified)


@pytest.mark.parametrize(
    "failure", [answer("InvalidArgument", 400), ParamValidationError(report="bad key")]
)
def test_mistakes_in_the_request_keep_their_own_type(failure):
    assert ZONE._classified(failure) is failure
