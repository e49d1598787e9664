"""moto: the S3 API."""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from rtcdp_dev.services.base import free_port
from rtcdp_dev.services.http_child import _HttpChildServer

# moto accepts any key pair until IAM checks are switched on (`require_signed_requests`); these
# are placeholders, not secrets.
MOTO_ACCESS_KEY_ID = "testing"
MOTO_SECRET_ACCESS_KEY = "testing"
MOTO_REGION = "us-east-1"


class MotoS3Server(_HttpChildServer):
    """moto's standalone server (`python -m moto.server`) on 127.0.0.1, in its own process so
    that fault tests can stop and restart it. moto keeps everything in memory: a restart starts
    with no buckets."""

    name = "moto"
    region: str = MOTO_REGION

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir: Path = workdir.resolve()
        self.log_path: Path = self.workdir / "moto.log"
        self.port: int = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def credentials_env(self) -> dict[str, str]:
        """What boto3's environment chain needs to talk to this server."""
        return {
            "AWS_ACCESS_KEY_ID": MOTO_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": MOTO_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A boto3 client for this server with the placeholder keys (or `credentials`)."""
        import boto3

        keys = {
            "aws_access_key_id": MOTO_ACCESS_KEY_ID,
            "aws_secret_access_key": MOTO_SECRET_ACCESS_KEY,
            **credentials,
        }
        return boto3.client(
            service, endpoint_url=self.endpoint_url, region_name=self.region, **keys
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def require_signed_requests(self) -> None:
        """From now on moto checks every request's signature against its own IAM users and
        their policies (`/moto-api/reset-auth`); create the users first."""
        self._moto_api("/moto-api/reset-auth", b"0")

    def _moto_api(self, path: str, body: bytes) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("POST", path, body=body)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"moto {path} answered {response.status}")
        finally:
            conn.close()

    def _command(self) -> list[str]:
        # moto keeps everything in memory: each start is an empty server.
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]

    def _probe_path(self) -> str:
        return "/moto-api/data.json"

    def __repr__(self) -> str:
        return f"MotoS3Server({self.endpoint_url})"
