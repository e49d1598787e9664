"""The known_hosts step of docs/deployment.md: for a non-default SSH port the host key must be
written `[host]:port`, which is what `ssh-keyscan -p` writes; the plain-host form is refused.
Against the real sshd (always on a free, non-default port)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from resources.drop_zones import DropZoneAccessDenied
from tests.zones import sftp_zone

pytestmark = pytest.mark.integration


def keyscan(sshd) -> str:
    """The guide's command: `ssh-keyscan -p <port> -t ed25519,ecdsa,rsa <host>`."""
    program = shutil.which("ssh-keyscan")
    assert program, "OpenSSH's ssh-keyscan is installed with the test sshd"
    scanned = subprocess.run(
        [program, "-p", str(sshd.port), "-t", "ed25519,ecdsa,rsa", sshd.host],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return scanned.stdout


def test_the_keyscan_of_a_non_default_port_is_accepted(sshd, tmp_path):
    assert sshd.port != 22
    scanned = keyscan(sshd)
    lines = [line for line in scanned.splitlines() if line and not line.startswith("#")]
    assert lines and all(line.startswith(f"[{sshd.host}]:{sshd.port} ") for line in lines)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(scanned)

    zone = sftp_zone(sshd, base_path="", known_hosts_path=str(known_hosts))
    try:
        assert isinstance(zone.list(""), list)
    finally:
        zone.close()


def test_the_plain_host_form_is_refused_on_a_non_default_port(sshd, tmp_path):
    plain = keyscan(sshd).replace(f"[{sshd.host}]:{sshd.port} ", f"{sshd.host} ")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(plain)

    zone = sftp_zone(sshd, base_path="", known_hosts_path=str(known_hosts))
    try:
        refused = rf"Server '\[{re.escape(sshd.host)}\]:{sshd.port}' not found in known_hosts"
        with pytest.raises(DropZoneAccessDenied, match=refused):
            zone.list("")
    finally:
        zone.close()
