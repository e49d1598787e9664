"""What only the S3 zone has: ETags, multipart uploads, outages and credentials, on moto's real
HTTP server (the shared contract is in test_drop_zone_contract.py)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import pytest

from resources.drop_zones import DropZoneAccessDenied, DropZoneUnavailable
from rtcdp_dev.services import MotoS3Server
from tests.zones import s3_zone

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
# S3 (and moto) refuse parts under 5 MiB except the last one.
SMALLEST_PART = 5 * MIB


def open_uploads(moto_s3, bucket: str) -> list[dict]:
    return moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_etag_is_the_content_identity(moto_s3):
    zone = s3_zone(moto_s3)
    first = zone.write_bytes("export/a.csv", b"one")
    assert first.identity == hashlib.md5(b"one").hexdigest()  # S3's ETag of a single-part upload
    rewritten = zone.write_bytes("export/a.csv", b"two")
    assert rewritten.identity != first.identity
    assert [e.identity for e in zone.list("export")] == [rewritten.identity]
    # Same bytes again, same identity: a re-delivered identical file is not a new version.
    assert zone.write_bytes("export/a.csv", b"two").identity == rewritten.identity


def test_list_reads_every_page_of_one_folder_level(moto_s3):
    zone = s3_zone(moto_s3, prefix="drop", list_page_size=2)
    names = [f"export/f{i}.csv" for i in range(7)]
    for name in [*names, "export/archive/old.csv", "export/quarantine/x/bad.csv", "top.csv"]:
        zone.write_bytes(name, b"x")
    assert [e.path for e in zone.list("export")] == sorted(names)
    assert [e.path for e in zone.list()] == ["top.csv"]
    assert zone.list("nothing/here") == []


def test_a_multipart_write_is_invisible_until_complete(moto_s3, tmp_path):
    """The upload is held open after its first part: readers see nothing, then the whole file."""
    zone = s3_zone(
        moto_s3, multipart_threshold_bytes=SMALLEST_PART, multipart_chunksize_bytes=SMALLEST_PART
    )
    payload = os.urandom(2 * SMALLEST_PART + 123_456)
    # A named pipe as the source: the test decides when the rest of the bytes arrive.
    fifo = tmp_path / "export.fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def producer() -> None:
        with fifo.open("wb") as fh:
            fh.write(payload[: SMALLEST_PART + MIB])
            fh.flush()
            release.wait(30)
            fh.write(payload[SMALLEST_PART + MIB :])

    results: list[object] = []
    writer = threading.Thread(
        target=lambda: results.append(zone.write_atomic("export/big.csv", fifo))
    )
    feeder = threading.Thread(target=producer)
    feeder.start()
    writer.start()
    try:
        deadline = time.monotonic() + 30
        uploads: list[dict] = []
        while not uploads and time.monotonic() < deadline:
            uploads = open_uploads(moto_s3, zone.bucket)
            time.sleep(0.05)
        (upload,) = uploads
        assert upload["Key"] == "export/big.csv"
        assert zone.list("export") == []
        assert zone.stat("export/big.csv") is None
    finally:
        release.set()
        feeder.join()
        writer.join()
    (entry,) = results
    assert zone.list("export") == [entry]
    assert entry.size == len(payload)
    assert entry.identity.endswith("-3")  # three parts: 5 MiB, 5 MiB and the rest
    assert zone.read_bytes("export/big.csv") == payload
    assert open_uploads(moto_s3, zone.bucket) == []


def test_a_large_move_is_a_complete_server_side_copy(moto_s3, tmp_path):
    zone = s3_zone(
        moto_s3, multipart_threshold_bytes=SMALLEST_PART, multipart_chunksize_bytes=SMALLEST_PART
    )
    payload = os.urandom(SMALLEST_PART + 7)
    src = tmp_path / "p.bin"
    src.write_bytes(payload)
    zone.write_atomic("export/q.csv", src)
    zone.move("export/q.csv", "export/quarantine/q.csv")
    assert zone.list("export") == []
    assert zone.read_bytes("export/quarantine/q.csv") == payload
    with pytest.raises(FileNotFoundError):
        zone.move("export/q.csv", "export/archive/q.csv")


def test_server_down_is_unavailable_and_recovers(tmp_path, moto_s3):
    # A server of its own: stopping the shared one would empty every other test's bucket.
    with MotoS3Server(workdir=tmp_path / "moto") as server:
        zone = s3_zone(server, max_attempts=1)
        zone.write_bytes("export/a.csv", b"a")
        server.stop()
        for call in (
            lambda: zone.list("export"),
            lambda: zone.stat("export/a.csv"),
            lambda: zone.write_bytes("export/b.csv", b"b"),
            lambda: zone.move("export/a.csv", "export/archive/a.csv"),
            lambda: zone.read_bytes("export/a.csv"),
        ):
            with pytest.raises(DropZoneUnavailable, match=server.endpoint_url):
                call()
        server.start()
        # moto keeps nothing across a restart; the bucket is provisioned again, as an
        # operator would after a real outage that lost it.
        server.create_bucket(zone.bucket)
        assert zone.write_bytes("export/b.csv", b"b").size == 1
        assert [e.name for e in zone.list("export")] == ["b.csv"]


ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
DENY_WRITES = {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}


def policy_of(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def use_keys(monkeypatch, key: dict) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])


@pytest.fixture
def signed_server(tmp_path, moto_s3):
    """A moto server that checks every signature against its IAM users, as AWS does."""
    with MotoS3Server(workdir=tmp_path / "moto-iam") as server:
        iam = server.client("iam")
        keys = {}
        for user, policy in (
            ("rtcdp", policy_of(ALLOW_S3)),
            ("admin", policy_of(ALLOW_ALL)),
            ("stranger", None),
        ):
            iam.create_user(UserName=user)
            if policy:
                iam.put_user_policy(
                    UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy)
                )
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        server.create_bucket("rtcdp-exchange")
        server.require_signed_requests()
        yield server, keys


def test_bad_credentials_are_access_denied_without_leaking_the_secret(signed_server, monkeypatch):
    server, keys = signed_server
    good = keys["rtcdp"]

    def zone_with(key_id: str, secret: str):
        use_keys(monkeypatch, {"AccessKeyId": key_id, "SecretAccessKey": secret})
        return s3_zone(server, bucket="rtcdp-exchange")

    assert zone_with(good["AccessKeyId"], good["SecretAccessKey"]).write_bytes("a.csv", b"a")
    wrong_secret = "W" * 40
    cases = {
        "SignatureDoesNotMatch": (good["AccessKeyId"], wrong_secret),
        "InvalidAccessKeyId": ("AKIAIOSFODNN7EXAMPLE", wrong_secret),
        "AccessDenied": (keys["stranger"]["AccessKeyId"], keys["stranger"]["SecretAccessKey"]),
    }
    for code, (key_id, secret) in cases.items():
        zone = zone_with(key_id, secret)
        for call in (lambda: zone.list(), lambda: zone.write_bytes("b.csv", b"b")):  # noqa: B023
            with pytest.raises(DropZoneAccessDenied) as caught:
                call()
            message = str(caught.value)
            assert (
                code in message and "rtcdp-exchange" in message and server.endpoint_url in message
            )
            assert secret not in message and good["SecretAccessKey"] not in message
    # The bucket's name wrong is also something a person must fix.
    use_keys(monkeypatch, good)
    misspelt = s3_zone(server, bucket="no-such-bucket")
    for call in (misspelt.list, lambda: misspelt.stat("a.csv")):
        with pytest.raises(DropZoneAccessDenied, match="NoSuchBucket"):
            call()
    # ... while a missing key in an existing bucket is simply absent.
    assert s3_zone(server, bucket="rtcdp-exchange").stat("missing.csv") is None


def test_no_credentials_anywhere_is_access_denied(moto_s3, monkeypatch, tmp_path):
    zone = s3_zone(moto_s3)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fresh = type(zone)(**{k: getattr(zone, k) for k in type(zone).model_fields})
    with pytest.raises(DropZoneAccessDenied, match="no usable AWS credentials"):
        fresh.list()


def test_a_multipart_write_that_fails_midway_is_aborted(signed_server, monkeypatch, tmp_path):
    """Write permission is revoked after the first part: the upload is aborted (no parts left
    to be billed) and readers keep seeing the previous file."""
    server, keys = signed_server
    admin = {
        "aws_access_key_id": keys["admin"]["AccessKeyId"],
        "aws_secret_access_key": keys["admin"]["SecretAccessKey"],
    }
    use_keys(monkeypatch, keys["rtcdp"])
    zone = s3_zone(
        server,
        bucket="rtcdp-exchange",
        multipart_threshold_bytes=SMALLEST_PART,
        multipart_chunksize_bytes=SMALLEST_PART,
    )
    old = zone.write_bytes("export/big.csv", b"the previous version")
    fifo = tmp_path / "export.fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def producer() -> None:
        with fifo.open("wb") as fh:
            fh.write(os.urandom(SMALLEST_PART + MIB))
            fh.flush()
            release.wait(30)
            fh.write(os.urandom(SMALLEST_PART))

    failures: list[BaseException] = []

    def write() -> None:
        try:
            zone.write_atomic("export/big.csv", fifo)
        except BaseException as exc:  # handed over to the test's thread
            failures.append(exc)

    feeder, writer = threading.Thread(target=producer), threading.Thread(target=write)
    feeder.start()
    writer.start()
    try:
        s3 = server.client(**admin)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            uploads = s3.list_multipart_uploads(Bucket="rtcdp-exchange").get("Uploads", [])
            if uploads and s3.list_parts(
                Bucket="rtcdp-exchange", Key="export/big.csv", UploadId=uploads[0]["UploadId"]
            ).get("Parts"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the first part never arrived")
        server.client("iam", **admin).put_user_policy(
            UserName="rtcdp",
            PolicyName="s3",
            PolicyDocument=json.dumps(policy_of(ALLOW_S3, DENY_WRITES)),
        )
    finally:
        release.set()
        feeder.join()
        writer.join()
    (failure,) = failures
    assert isinstance(failure, DropZoneAccessDenied) and "AccessDenied" in str(failure)
    assert s3.list_multipart_uploads(Bucket="rtcdp-exchange").get("Uploads", []) == []
    assert zone.list("export") == [old]
    assert zone.read_bytes("export/big.csv") == b"the previous version"
