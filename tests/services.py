"""Real test services: OpenSSH sshd as the Campaign SFTP server, Azurite as Azure Blob.

Plain Python (no pytest), so tests, benchmarks and fault-injection suites can start them.
Both bind 127.0.0.1 on a free high port and keep their state in a work folder, so `stop()` and
`start()` on the same object restart the same server on the same port (fault tests use this).
Missing binaries raise with the command that installs them; nothing is ever skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from azure.storage.blob import BlobServiceClient

REPO = Path(__file__).resolve().parents[1]
SSHD = Path("/usr/sbin/sshd")
AZURITE = REPO / "tests" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
INSTALL_HINT = "run scripts/install_test_services.sh (installs openssh-server and Azurite)"

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, public in Azure's documentation: not a secret.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float, check: object = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if check is None or check(conn):  # type: ignore[operator]
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout}s ({last})")


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rtcdp-test", "-f", str(path)],
        check=True,
    )


class SshdServer:
    """OpenSSH's sshd serving SFTP only, key authentication only, rooted at `root`."""

    def __init__(self, root: Path, workdir: Path) -> None:
        if not SSHD.exists() or shutil.which("ssh-keygen") is None:
            raise RuntimeError(f"OpenSSH server not installed: {INSTALL_HINT}")
        self.root = root.resolve()
        self.workdir = workdir.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.username = os.environ.get("USER") or "root"
        self.host_key_path = self.workdir / "host_key"
        self.client_key_path = self.workdir / "client_key"
        self.known_hosts_path = self.workdir / "known_hosts"
        self.config_path = self.workdir / "sshd_config"
        self.pid_path = self.workdir / "sshd.pid"
        self.log_path = self.workdir / "sshd.log"
        _keygen(self.host_key_path)
        _keygen(self.client_key_path)
        keys = self.workdir / "authorized_keys"
        keys.mkdir(exist_ok=True)
        (keys / self.username).write_text(Path(f"{self.client_key_path}.pub").read_text())
        host_pub = Path(f"{self.host_key_path}.pub").read_text().split()
        self.host_public_key = f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}"
        self.known_hosts_path.write_text(self.host_public_key + "\n")
        self.config_path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key_path}",
                    f"PidFile {self.pid_path}",
                    f"AuthorizedKeysFile {keys}/%u",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    # the work folder lives under /tmp, which StrictModes would refuse
                    "StrictModes no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PermitTTY no",
                    "Subsystem sftp internal-sftp",
                    f"ForceCommand internal-sftp -d {self.root}",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
        subprocess.run([str(SSHD), "-t", "-f", str(self.config_path)], check=True)
        self._pid: int | None = None

    def start(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
        self.pid_path.unlink(missing_ok=True)
        subprocess.run(
            [str(SSHD), "-f", str(self.config_path), "-E", str(self.log_path)], check=True
        )
        _wait_for_port(self.port, 10, lambda conn: conn.recv(64).startswith(b"SSH-"))
        self._pid = int(self.pid_path.read_text().strip())

    def stop(self) -> None:
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(self._pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            pass
        self._pid = None

    @property
    def running(self) -> bool:
        return self._pid is not None

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def write_known_hosts(self, path: Path, key_line: str | None) -> Path:
        """A known_hosts file with `key_line` (None = empty: the host is unknown)."""
        path.write_text("" if key_line is None else key_line + "\n")
        return path

    def other_host_key_line(self, scratch: Path) -> str:
        """A valid ed25519 key under this server's name that is NOT its key (a spoofed host)."""
        other = scratch / "other_host_key"
        if not other.exists():
            _keygen(other)
        kind, b64 = Path(f"{other}.pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {kind} {b64}"

    def __enter__(self) -> SshdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AzuriteServer:
    """Azurite's Blob service, data on disk in `workdir` so a restart keeps the blobs."""

    account_name = AZURITE_ACCOUNT
    account_key = AZURITE_KEY

    def __init__(self, workdir: Path) -> None:
        if not AZURITE.exists():
            raise RuntimeError(f"Azurite not installed: {INSTALL_HINT}")
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.account_url = f"http://127.0.0.1:{self.port}/{self.account_name}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.account_url};"
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self) -> None:
        self._log = (self.workdir / "azurite.log").open("ab")
        self._proc = subprocess.Popen(
            [
                str(AZURITE),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.workdir / "data"),
                # the SDK speaks a newer API version than Azurite knows
                "--skipApiVersionCheck",
                "--loose",
                # no outside network here: telemetry would only log failed lookups
                "--disableTelemetry",
                "--silent",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self._proc.returncode}, see its log")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # it answered (with an error for an anonymous request): it is up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Azurite did not answer within 20 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def blob_service_client(self) -> BlobServiceClient:
        return BlobServiceClient(
            self.account_url,
            credential={"account_name": self.account_name, "account_key": self.account_key},
        )

    def __enter__(self) -> AzuriteServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
