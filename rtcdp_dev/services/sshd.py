"""OpenSSH sshd: the Campaign SFTP server."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

from rtcdp_dev.services.base import (
    LOOPBACK,
    SFTP_BINARY,
    SSH_KEYGEN_BINARY,
    SSHD_BINARY,
    STARTUP_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    _descendants,
    _pid_alive,
    _Service,
    _tail,
    _wait_until,
    free_port,
    generate_ed25519_key,
    require_binary,
)


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
