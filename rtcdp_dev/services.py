"""The real services that integration tests, benchmarks and the demo run against.

`SshdServer` is OpenSSH's sshd standing in for the Adobe Campaign SFTP server; `AzuriteServer` is
Microsoft's Azure Blob API emulator standing in for the AEP landing zone and the warehouse;
`MotoS3Server` is moto's standalone S3 API server for a bucket as the exchange location.
`PostgresServer` is a private PostgreSQL cluster for a production-style Dagster instance. All
listen on a free port on 127.0.0.1 and keep everything they own under a work folder.

Plain Python on purpose (no pytest import) so that `bench/` and the demo can start the same
services the tests use. Both classes are context managers: `with SshdServer(...) as sshd: ...`.
Install the binaries with `scripts/install_test_services.sh`; a missing binary raises
`RuntimeError` rather than letting a test skip, because a skipped integration test proves nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from azure.storage.blob import BlobServiceClient

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = "scripts/install_test_services.sh"

SSHD_BINARY = Path("/usr/sbin/sshd")
SSH_KEYGEN_BINARY = Path("/usr/bin/ssh-keygen")
SFTP_BINARY = Path("/usr/bin/sftp")
AZURITE_BLOB_BINARY = REPO_ROOT / "tests" / "azurite" / "node_modules" / ".bin" / "azurite-blob"

LOOPBACK = "127.0.0.1"

# Azurite's fixed development account, published in Microsoft's Azurite documentation; it is
# not a secret and only works against the emulator.
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def require_binary(path: Path, what: str) -> Path:
    """Fail loudly (never skip) when a service binary is missing."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(
            f"{what} not found at {path}: run `bash {INSTALL_SCRIPT}` "
            "(as root) to install the real test services"
        )
    return path


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago; the tiny race is acceptable on a test machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def generate_ed25519_key(path: Path, comment: str = "rtcdp-test") -> str:
    """Create `path` (private, 0600) and `path.pub`; return the public key line.

    paramiko cannot generate ed25519 keys, so this goes through ssh-keygen.
    """
    keygen = require_binary(SSH_KEYGEN_BINARY, "ssh-keygen (openssh-client)")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)  # ssh-keygen would otherwise ask whether to overwrite
    subprocess.run(
        [str(keygen), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def _wait_until(
    ready: Callable[[], bool], timeout: float, what: str, diagnostics: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{diagnostics()}")
        time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    # The machine's init may not reap orphans, so a killed daemon can linger as a zombie:
    # that counts as gone.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    if not Path("/proc").is_dir():
        return []
    tree = _children_by_parent()
    found: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return found


def _tail(path: Path, max_chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-max_chars:]
    except FileNotFoundError:
        return ""


class _Service:
    """`with Server(...) as server:` starts the service and stops it on the way out, whatever
    happened inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# OpenSSH sshd: the Campaign SFTP server
# --------------------------------------------------------------------------------------------


class SshdServer(_Service):
    """A private OpenSSH sshd on 127.0.0.1 that only speaks SFTP, rooted at `root`.

    Logs in as the current OS user (root on the test machines) with an ed25519 client key; no
    password, no PAM, no shell, no forwarding. `ForceCommand internal-sftp -d <root>` makes every
    session start in `root`, so relative SFTP paths land under it. There is deliberately no
    chroot: sshd requires every component of a chroot path to be root-owned and not writable by
    others, which pytest's folders under /tmp never are.
    """

    host: str = LOOPBACK

    def __init__(
        self,
        root: Path,
        workdir: Path,
        *,
        port: int | None = None,
        sshd_binary: Path = SSHD_BINARY,
    ) -> None:
        self._sshd = require_binary(sshd_binary, "sshd (openssh-server)")
        require_binary(SSH_KEYGEN_BINARY, "ssh-keygen (openssh-client)")
        root.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        self.root: Path = root.resolve()
        self.workdir: Path = workdir.resolve()
        for path in (self.root, self.workdir):
            # sshd_config has no quoting that survives ForceCommand's argument split, and
            # sftp-server -d expands %-tokens.
            if any(ch.isspace() for ch in str(path)) or "%" in str(path):
                raise ValueError(f"sshd paths may not contain whitespace or '%': {path}")
        self.port: int = port if port is not None else free_port()
        self.username: str = pwd.getpwuid(os.geteuid()).pw_name

        self.host_key_path: Path = self.workdir / "host_key"
        self.client_key_path: Path = self.workdir / "client_key"
        self.known_hosts_path: Path = self.workdir / "known_hosts"
        self.config_path: Path = self.workdir / "sshd_config"
        self.pid_path: Path = self.workdir / "sshd.pid"
        self.log_path: Path = self.workdir / "sshd.log"
        self._authorized_keys_dir: Path = self.workdir / "authorized_keys"

        host_pub = generate_ed25519_key(self.host_key_path, "rtcdp-test-host")
        client_pub = generate_ed25519_key(self.client_key_path, "rtcdp-test-client")
        self._authorized_keys_dir.mkdir(exist_ok=True)
        (self._authorized_keys_dir / self.username).write_text(client_pub + "\n")

        key_type, key_b64 = host_pub.split()[:2]
        # Non-default ports are written "[host]:port" in known_hosts; paramiko and OpenSSH look
        # the server up under exactly that name.
        self.host_public_key: str = f"[{self.host}]:{self.port} {key_type} {key_b64}"
        self.write_known_hosts(self.known_hosts_path, self.host_public_key)
        self._write_config()

    # -- lifecycle --------------------------------------------------------------------------

    def _config_text(self, *, penalties_option: bool) -> str:
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pid_path}",
            f"AuthorizedKeysFile {self._authorized_keys_dir}/%u",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            # pytest's folders sit under world-writable /tmp, which StrictModes refuses.
            "StrictModes no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "PermitUserRC no",
            # Concurrency tests open many connections at once; the default 10:30:100 starts
            # dropping unauthenticated connections at random.
            "MaxStartups 100",
            "MaxSessions 100",
            "LoginGraceTime 30",
            # VERBOSE names the key that authenticated (or failed), which is what one needs in
            # log_text() when a test fails.
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            f"ForceCommand internal-sftp -d {self.root}",
        ]
        if penalties_option:
            # OpenSSH >= 9.8 penalises addresses with failed logins; tests fail logins from
            # 127.0.0.1 on purpose and must not lock out the tests that follow.
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def _write_config(self) -> None:
        self.config_path.write_text(self._config_text(penalties_option=True))
        check = self._check_config()
        if check.returncode != 0 and "PerSourcePenalties" in check.stderr:
            self.config_path.write_text(self._config_text(penalties_option=False))
            check = self._check_config()
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejected {self.config_path}:\n{check.stderr}")

    def _check_config(self) -> subprocess.CompletedProcess[str]:
        self._ensure_privsep_dir()
        return subprocess.run(
            [str(self._sshd), "-t", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    @staticmethod
    def _ensure_privsep_dir() -> None:
        # Compiled-in privilege-separation directory; Debian creates it only from the service
        # unit, which never runs here.
        with contextlib.suppress(PermissionError):
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)

    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    @property
    def running(self) -> bool:
        return self.is_running()

    def start(self) -> None:
        """Start sshd (again) on the same port with the same keys; a no-op when running."""
        if self.is_running():
            return
        self._ensure_privsep_dir()
        self.pid_path.unlink(missing_ok=True)
        # sshd binds before it daemonizes, so once this returns 0 the port is listening (or it
        # failed, e.g. the port was taken meanwhile).
        result = subprocess.run(
            [str(self._sshd), "-f", str(self.config_path), "-E", str(self.log_path)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"sshd failed to start on {self.host}:{self.port} (exit {result.returncode})\n"
                f"{result.stderr}\n{self.log_text()}"
            )
        try:
            _wait_until(
                lambda: self.is_running() and self._banner_ok(),
                STARTUP_TIMEOUT_SECONDS,
                f"sshd on {self.host}:{self.port}",
                self.log_text,
            )
        except BaseException:
            self.stop()
            raise

    def _banner_ok(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                sock.settimeout(2)
                banner = b""
                while not banner.endswith(b"\n") and len(banner) < 256:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    banner += chunk
        except OSError:
            return False
        return banner.startswith(b"SSH-2.0-")

    def stop(self, *, drop_connections: bool = True) -> None:
        """Stop sshd; by default also end the open sessions, like a real server outage.

        sshd's per-connection processes run in their own sessions and outlive the listener, so
        they are found through /proc before the listener goes away.
        """
        pid = self.pid
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return
        victims = [pid, *(_descendants(pid) if drop_connections else [])]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(_pid_alive(v) for v in victims) and time.monotonic() < deadline:
            time.sleep(0.02)
        for victim in victims:
            if _pid_alive(victim):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
        while any(_pid_alive(v) for v in victims) and time.monotonic() < deadline + 5:
            time.sleep(0.02)
        self.pid_path.unlink(missing_ok=True)

    def authorize_key(self, public_key_line: str) -> None:
        """Accept one more client key (e.g. an encrypted one) for the same user."""
        with (self._authorized_keys_dir / self.username).open("a") as fh:
            fh.write(public_key_line.strip() + "\n")

    # -- known_hosts helpers -----------------------------------------------------------------

    def write_known_hosts(self, path: Path, key_line: str | None) -> Path:
        """Write a known_hosts file holding `key_line`; None or "" writes an empty file (the
        host is unknown). `host_public_key` is the right line, `other_host_key_line()` a wrong
        one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key_line + "\n" if key_line else "")
        return path

    def other_host_key_line(self, scratch_dir: Path) -> str:
        """A known_hosts line naming this server with a freshly generated, WRONG ed25519 key:
        what a man in the middle would present."""
        pub = generate_ed25519_key(scratch_dir / "other_host_key", "rtcdp-test-wrong-host")
        key_type, key_b64 = pub.split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {key_b64}"

    def write_wrong_known_hosts(self, path: Path) -> Path:
        return self.write_known_hosts(path, self.other_host_key_line(path.parent))

    def write_empty_known_hosts(self, path: Path) -> Path:
        return self.write_known_hosts(path, None)

    # -- OpenSSH client ---------------------------------------------------------------------

    def sftp_command(self, batch_file: Path | str = "-") -> list[str]:
        """argv for OpenSSH's `sftp` client in batch mode with strict host-key checking and only
        this server's client key (no ~/.ssh config, agent or default keys)."""
        sftp = require_binary(SFTP_BINARY, "sftp (openssh-client)")
        return [
            str(sftp),
            "-q",
            "-F",
            "/dev/null",
            "-b",
            str(batch_file),
            "-P",
            str(self.port),
            "-i",
            str(self.client_key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            f"{self.username}@{self.host}",
        ]

    def log_text(self) -> str:
        return _tail(self.log_path, max_chars=1_000_000)

    def __repr__(self) -> str:
        return f"SshdServer({self.username}@{self.host}:{self.port}, root={self.root})"


# --------------------------------------------------------------------------------------------
# Services that run as a child process and answer HTTP (Azurite, moto)
# --------------------------------------------------------------------------------------------


class _HttpChildServer(_Service):
    """A service run as a child process that answers HTTP on 127.0.0.1: `start` launches it
    and waits for its first HTTP answer, `stop` terminates it (SIGTERM, then SIGKILL). The
    subclasses say how to launch it and which URL proves it is serving."""

    name: str = "service"
    host: str = LOOPBACK
    port: int
    workdir: Path
    log_path: Path
    _process: subprocess.Popen[bytes] | None
    _log_file: IO[bytes] | None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _probe_path(self) -> str:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running() and self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def running(self) -> bool:
        return self.is_running()

    def start(self) -> None:
        """Start the service (again) on the same port; a no-op when running."""
        if self.is_running():
            return
        self._close_log()
        # A log file rather than pipes: nobody would drain a pipe, and an unclosed pipe makes
        # pytest warn at teardown.
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self._command(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until(
                self._answers_http,
                STARTUP_TIMEOUT_SECONDS,
                f"{self.name} on {self.host}:{self.port}",
                self.log_text,
            )
        except BaseException:
            self.stop()
            raise

    def _answers_http(self) -> bool:
        if not self.is_running():
            assert self._process is not None
            raise RuntimeError(
                f"{self.name} exited with code {self._process.returncode} during startup\n"
                f"{self.log_text()}"
            )
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            # Any HTTP answer (even an auth error) proves the service is serving.
            conn.request("GET", self._probe_path())
            conn.getresponse().read()
        except OSError:
            return False
        finally:
            conn.close()
        return True

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            # SIGTERM lets the service flush what it persists (Azurite's metadata database).
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return _tail(self.log_path)


# --------------------------------------------------------------------------------------------
# Azurite: the Azure Blob API
# --------------------------------------------------------------------------------------------


class AzuriteServer(_HttpChildServer):
    """Azurite's blob service on 127.0.0.1, persisting to `workdir` so that data survives a
    stop()/start() (fault tests restart it)."""

    name = "Azurite"
    account_name: str = AZURITE_ACCOUNT_NAME
    account_key: str = AZURITE_ACCOUNT_KEY

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        azurite_binary: Path = AZURITE_BLOB_BINARY,
    ) -> None:
        self._binary = require_binary(azurite_binary, "Azurite (npm package azurite)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir: Path = workdir.resolve()
        self.data_dir: Path = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path: Path = self.workdir / "azurite.log"
        self.port: int = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def account_url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};"
            f"AccountKey={self.account_key};"
            f"BlobEndpoint={self.account_url};"
        )

    def blob_service_client(self) -> BlobServiceClient:
        return BlobServiceClient(
            self.account_url,
            credential={"account_name": self.account_name, "account_key": self.account_key},
        )

    def _command(self) -> list[str]:
        return [
            str(self._binary),
            "--blobHost",
            self.host,
            "--blobPort",
            str(self.port),
            "--location",
            str(self.data_dir),
            # The SDK sends a newer API version than Azurite knows; without this flag every
            # request fails.
            "--skipApiVersionCheck",
            "--loose",
            # There is no outside network; telemetry would only log failed lookups.
            "--disableTelemetry",
            "--silent",
        ]

    def _probe_path(self) -> str:
        return f"/{self.account_name}?comp=list"

    def __repr__(self) -> str:
        return f"AzuriteServer({self.account_url}, data={self.data_dir})"


# --------------------------------------------------------------------------------------------
# moto: the S3 API
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# PostgreSQL: the storage of a production Dagster instance
# --------------------------------------------------------------------------------------------

POSTGRES_BIN_DIRS = "/usr/lib/postgresql/*/bin"  # Debian's postgresql-<major> package
POSTGRES_OS_USER = "postgres"


def postgres_binary(name: str) -> Path:
    """The newest installed major version's `name` (initdb, pg_ctl, ...)."""
    candidates = sorted(
        Path("/").glob(POSTGRES_BIN_DIRS.lstrip("/") + f"/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} not found under {POSTGRES_BIN_DIRS}: run "
            f"`bash {INSTALL_SCRIPT}` (as root) to install the real test services"
        )
    return require_binary(candidates[-1], f"PostgreSQL's {name}")


class PostgresServer(_Service):
    """A private PostgreSQL cluster on 127.0.0.1: its own data directory, a free port, password
    authentication over TCP (a wrong password fails as it would in production).

    The server refuses to run as root, so when the tests run as root initdb and pg_ctl run as
    the `postgres` OS user, and the data directory is a fresh folder that user owns (pytest's
    temporary folders are private to root). `stop()` removes the data directory.
    """

    host: str = LOOPBACK
    superuser: str = "postgres"

    def __init__(self, port: int | None = None, password: str = "rtcdp-test-only") -> None:
        self.port: int = port if port is not None else free_port()
        self.password = password
        self._initdb = postgres_binary("initdb")
        self._pg_ctl = postgres_binary("pg_ctl")
        self._run_as: pwd.struct_passwd | None = (
            pwd.getpwnam(POSTGRES_OS_USER) if os.geteuid() == 0 else None
        )
        self.workdir: Path = Path(tempfile.mkdtemp(prefix="rtcdp-postgres-"))
        self.data_dir: Path = self.workdir / "data"
        self.log_path: Path = self.workdir / "postgres.log"
        if self._run_as is not None:
            os.chown(self.workdir, self._run_as.pw_uid, self._run_as.pw_gid)

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        user = self._run_as
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=timeout,
            cwd=self.workdir,
            **(
                {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
                if user is not None
                else {}
            ),
        )

    def start(self) -> None:
        if not self.data_dir.exists():
            pwfile = self.workdir / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._run_as is not None:
                os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
            init = self._run(
                [
                    str(self._initdb),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    # TCP needs the password, as in production; the socket is not used.
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",  # a throwaway cluster: no need to wait for the disk
                ]
            )
            pwfile.unlink()
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -k {self.workdir} "
            # Durability does not matter for a test cluster; fsync would only slow every commit.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = self._run(
            [
                str(self._pg_ctl),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                options,
                "-w",
                "-t",
                str(int(STARTUP_TIMEOUT_SECONDS)),
                "start",
            ]
        )
        if started.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL failed to start on {self.host}:{self.port}\n"
                f"{started.stdout}\n{started.stderr}\n{self.log_text()}"
            )

    def is_running(self) -> bool:
        if not self.data_dir.exists():
            return False
        return self._run([str(self._pg_ctl), "-D", str(self.data_dir), "status"]).returncode == 0

    def stop(self, *, remove: bool = True) -> None:
        if self.is_running():
            self._run([str(self._pg_ctl), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def connect(self, db_name: str = "postgres") -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.superuser,
            password=self.password,
            dbname=db_name,
        )

    def create_database(self, name: str) -> str:
        """A fresh, empty database (one per test keeps tests independent)."""
        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def log_text(self) -> str:
        return _tail(self.log_path)

    def __repr__(self) -> str:
        return f"PostgresServer({self.host}:{self.port}, data={self.data_dir})"


# --------------------------------------------------------------------------------------------
# A TCP proxy that injects network faults in front of sshd or Azurite
# --------------------------------------------------------------------------------------------


class FaultyTcpProxy:
    """Forwards 127.0.0.1:`port` to a service and breaks connections on request.

    - `fail_next(count, after_bytes=0)`: the next `count` connections are cut once `after_bytes`
      bytes went from the service to the client (0: right after accepting, before any byte).
    - `cut_upload(marker, after_bytes, action)`: the first connection whose client → service
      stream contains `marker` (e.g. a blob name in an HTTP request line) runs `action` once
      `after_bytes` more bytes went up, then is cut without forwarding another byte.
    - `cut_download(after_bytes)`: the first connection, open or new, that has sent `after_bytes`
      bytes from the service to the client is cut there, whichever connection carries the
      download (an SFTP zone reads files over a connection of its transfer process, not over
      the one it lists with).

    Counting is exact to the byte, so a fault lands in the middle of a transfer every time.
    """

    host: str = LOOPBACK

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((self.host, 0))
        self.port: int = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pending: list[int] = []  # down-byte budgets of the next connections to cut
        self._upload: tuple[bytes, int, Callable[[], None]] | None = None
        self._download_cut: int | None = None
        self._sockets: list[socket.socket] = []
        self.accepted = 0
        self.cuts = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(self, count: int = 1, after_bytes: int = 0) -> None:
        with self._lock:
            self._pending.extend([after_bytes] * count)

    def cut_download(self, after_bytes: int) -> None:
        with self._lock:
            self._download_cut = after_bytes

    def drop_connections(self) -> None:
        """Cut every open connection now (new ones are forwarded as usual)."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), []
        for sock in sockets:
            self._kill(sock)

    def heal(self) -> None:
        """Forward everything again (faults already armed are dropped)."""
        with self._lock:
            self._pending.clear()
            self._upload = None
            self._download_cut = None

    def cut_upload(self, marker: bytes, after_bytes: int, action: Callable[[], None]) -> None:
        with self._lock:
            self._upload = (marker, after_bytes, action)

    def known_hosts_line(self, sshd: SshdServer) -> str:
        """sshd's host key under this proxy's address, as a client connecting here looks it up."""
        key_type, key_b64 = sshd.host_public_key.split()[1:3]
        return f"[{self.host}]:{self.port} {key_type} {key_b64}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._kill(sock)

    @staticmethod
    def _kill(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                budget = self._pending.pop(0) if self._pending else None
            if budget == 0:
                self.cuts += 1
                self._kill(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._kill(client)  # the service is down: the client sees a closed connection
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            pair = (client, upstream)
            threading.Thread(target=self._pump_down, args=(pair, budget), daemon=True).start()
            threading.Thread(target=self._pump_up, args=(pair,), daemon=True).start()

    def _cut(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self.cuts += 1
        for sock in pair:
            self._kill(sock)

    def _pump_down(self, pair: tuple[socket.socket, socket.socket], budget: int | None) -> None:
        client, upstream = pair
        sent = 0
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._kill(client)
                return
            with self._lock:
                at = self._download_cut
                if at is not None and sent + len(data) >= at:
                    self._download_cut = None  # this connection takes the armed cut
                else:
                    at = None
            if at is not None:
                with contextlib.suppress(OSError):
                    client.sendall(data[: at - sent])
                self._cut(pair)
                return
            sent += len(data)
            if budget is not None and len(data) >= budget:
                with contextlib.suppress(OSError):
                    client.sendall(data[:budget])
                self._cut(pair)
                return
            if budget is not None:
                budget -= len(data)
            try:
                client.sendall(data)
            except OSError:
                self._kill(upstream)
                return

    def _pump_up(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        seen = b""
        left: int | None = None  # bytes still to forward once the upload marker was seen
        action: Callable[[], None] | None = None
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._kill(upstream)
                return
            send = data
            if left is None:
                with self._lock:
                    armed = self._upload
                if armed is not None:
                    marker, after_bytes, armed_action = armed
                    seen = (seen + data)[-(len(marker) + len(data)) :]
                    at = seen.find(marker)
                    if at >= 0:
                        with self._lock:
                            mine = self._upload is armed
                            if mine:
                                self._upload = None
                        if mine:
                            # the bytes of this chunk after the marker count already
                            left = after_bytes - (len(seen) - at - len(marker)) + len(data)
                            action = armed_action
            if left is not None:
                if len(data) >= left:
                    send = data[:left]
                    with contextlib.suppress(OSError):
                        upstream.sendall(send)
                    if action is not None:
                        action()
                    self._cut(pair)
                    return
                left -= len(data)
            try:
                upstream.sendall(send)
            except OSError:
                self._kill(client)
                return
