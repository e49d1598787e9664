"""Where the service binaries live, small process and port helpers, and the base of every
service (a context manager that starts and stops it)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

# The checkout this package lives in (rtcdp_dev/services/base.py -> the repository root).
REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = "scripts/install_test_services.sh"

SSHD_BINARY = Path("/usr/sbin/sshd")
SSH_KEYGEN_BINARY = Path("/usr/bin/ssh-keygen")
SFTP_BINARY = Path("/usr/bin/sftp")
# Debian's Chromium, which Playwright drives in the browser tests (no browser download).
CHROMIUM_BINARY = Path("/usr/bin/chromium")
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
