"""`SftpDropZone.open_read` downloads in a child process: errors, resumes, lifecycle, secrets.

Everything runs against the real sshd (and the fault proxy in front of it). The child must
raise what the in-process read raises, resume a cut download at its offset, never outlive the
reader (early close, parent killed) and never hold the key's passphrase in its command line
or environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from resources import DropZoneAccessDenied
from rtcdp_dev.services import REPO_ROOT, SSH_KEYGEN_BINARY, FaultyTcpProxy, generate_ed25519_key
from tests.zones import sftp_zone

pytestmark = pytest.mark.integration

BIG = 16 << 20  # well beyond what the child, its read-ahead and the pipe hold at once


def gone(pid: int) -> bool:
    """Exited and reaped (or at least exited, for a child reparented to an init that has not
    reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def child_zone(sshd, **overrides):
    """A zone that reads every file through the child, however small."""
    return sftp_zone(sshd, read_in_child_process=True, child_process_min_bytes=0, **overrides)


@pytest.fixture
def zone(sshd):
    z = child_zone(sshd)
    yield z
    z.close()


def test_once_enabled_the_child_path_takes_files_of_a_mebibyte_or_more(sshd, zone):
    assert sftp_zone(sshd).read_in_child_process is False  # opt-in
    default = sftp_zone(sshd, base_path=zone.base_path, read_in_child_process=True)
    big, small = os.urandom(1 << 20), b"x,y\n1,2\n"
    default.write_bytes("export/big.csv", big)
    default.write_bytes("export/small.csv", small)
    with default.open_read("export/big.csv") as fh:
        assert isinstance(fh.pid, int)  # type: ignore[attr-defined]
        assert fh.read() == big
    with default.open_read("export/small.csv") as fh:
        assert not hasattr(fh, "pid")  # read in-process: a child would cost more than it saves
        assert fh.read() == small
    with pytest.raises(FileNotFoundError), default.open_read("export/missing.csv"):
        pass
    default.close()


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 17])
def test_bytes_arrive_whole_through_the_pipe(zone, size):
    payload = os.urandom(size)
    zone.write_bytes("export/p.bin", payload)
    assert zone.read_bytes("export/p.bin") == payload


# Around the 255 KiB read request: the in-process download hands the parser paramiko's answers
# as they came, so their edges must neither lose nor repeat a byte.
@pytest.mark.parametrize("size", [0, 1, 255 * 1024 - 1, 255 * 1024, 255 * 1024 + 1, BIG + 5])
def test_bytes_arrive_whole_in_process(sshd, size):
    in_process = sftp_zone(sshd)
    payload = os.urandom(size)
    in_process.write_bytes("export/p.bin", payload)
    with in_process.open_read("export/p.bin") as fh:
        parts, read_size = [], 1
        while part := fh.read(read_size):
            parts.append(part)
            read_size = read_size * 3 + 7  # sizes that straddle the answers' edges
    in_process.close()
    assert b"".join(parts) == payload


def test_missing_file_raises_file_not_found_as_in_process(sshd, zone):
    with pytest.raises(FileNotFoundError) as child, zone.open_read("export/missing.csv"):
        pass
    in_process = sftp_zone(sshd, base_path=zone.base_path, read_in_child_process=False)
    assert zone.child_process_min_bytes == 0
    with pytest.raises(FileNotFoundError) as thread, in_process.open_read("export/missing.csv"):
        pass
    in_process.close()
    assert (child.value.errno, str(child.value)) == (thread.value.errno, str(thread.value))


def test_unknown_host_key_is_access_denied_in_the_child(sshd, zone, tmp_path):
    zone.write_bytes("export/a.csv", b"x\n")
    empty = sshd.write_empty_known_hosts(tmp_path / "known_hosts_empty")
    unknown = child_zone(sshd, base_path=zone.base_path, known_hosts_path=str(empty))
    with pytest.raises(DropZoneAccessDenied, match="host key refused"):  # noqa: SIM117
        with unknown.open_read("export/a.csv"):
            pass
    rotated = sshd.write_wrong_known_hosts(tmp_path / "known_hosts_wrong")
    spoofed = child_zone(sshd, base_path=zone.base_path, known_hosts_path=str(rotated))
    with pytest.raises(DropZoneAccessDenied, match="host key mismatch"):  # noqa: SIM117
        with spoofed.open_read("export/a.csv"):
            pass


def test_wrong_client_key_is_access_denied_in_the_child(sshd, zone, tmp_path):
    zone.write_bytes("export/a.csv", b"x\n")
    stranger = tmp_path / "stranger"
    generate_ed25519_key(stranger)
    wrong = child_zone(sshd, base_path=zone.base_path, private_key_path=str(stranger))
    with pytest.raises(DropZoneAccessDenied, match="SFTP authentication failed"):  # noqa: SIM117
        with wrong.open_read("export/a.csv"):
            pass


@pytest.mark.parametrize("in_child", [True, False], ids=["child", "thread"])
def test_a_download_cut_midway_resumes_at_its_offset(sshd, zone, tmp_path, in_child):
    payload = os.urandom(6 << 20)
    zone.write_bytes("export/big.bin", payload)
    with FaultyTcpProxy(sshd.port) as proxy:
        known_hosts = tmp_path / "known_hosts_proxy"
        known_hosts.write_text(proxy.known_hosts_line(sshd) + "\n")
        through = sftp_zone(
            sshd,
            port=proxy.port,
            known_hosts_path=str(known_hosts),
            base_path=zone.base_path,
            read_in_child_process=in_child,
        )
        proxy.cut_download(after_bytes=len(payload) // 2)
        with through.open_read("export/big.bin") as fh:
            got = b"".join(iter(lambda: fh.read(1 << 20), b""))
        through.close()
        assert proxy.cuts == 1  # the cut happened, and the read went on after it
        assert proxy.accepted >= 2
    assert got == payload


def test_closing_early_terminates_and_reaps_the_child(zone):
    zone.write_bytes("export/big.bin", os.urandom(BIG))
    with zone.open_read("export/big.bin") as fh:
        assert len(fh.read(65536)) > 0
        pid = fh.pid  # type: ignore[attr-defined]
        assert not gone(pid)  # still downloading: the pipe is full
    assert gone(pid)
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie


def test_a_parser_error_mid_stream_keeps_its_type_and_reaps_the_child(zone):
    zone.write_bytes("export/big.bin", os.urandom(BIG))
    with pytest.raises(ValueError, match="bad row"), zone.open_read("export/big.bin") as fh:
        fh.read(1 << 20)
        pid = fh.pid  # type: ignore[attr-defined]
        raise ValueError("bad row")
    assert not Path(f"/proc/{pid}").exists()


HOLDER = """
import sys, time
from resources.sftp import SftpDropZone
zone = SftpDropZone.model_validate_json(sys.argv[1])
with zone.open_read("export/big.bin") as fh:
    fh.read(65536)
    print(fh.pid, flush=True)
    time.sleep(600)
"""


def test_the_child_exits_when_its_parent_is_killed(zone):
    zone.write_bytes("export/big.bin", os.urandom(BIG))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, zone.model_dump_json()],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.strip().isdigit(), holder.stderr.read() if holder.stderr else ""
        child = int(line)
        assert not gone(child)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert wait_gone(child)  # its stdin reached end of file: nobody reads any more
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_passphrase_reaches_the_child_only_through_stdin(sshd, tmp_path, monkeypatch):
    passphrase = f"pp-{uuid.uuid4().hex}-Secret"
    key = tmp_path / "encrypted_key"
    subprocess.run(
        [str(SSH_KEYGEN_BINARY), "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    sshd.authorize_key(key.with_name(key.name + ".pub").read_text())
    # In production the passphrase is an environment variable of the run process.
    monkeypatch.setenv("CAMPAIGN_SFTP_KEY_PASSPHRASE", passphrase)
    plain = sftp_zone(sshd)
    plain.write_bytes("export/big.bin", os.urandom(BIG))
    plain.close()
    zone = sftp_zone(
        sshd,
        base_path=plain.base_path,
        private_key_path=str(key),
        private_key_passphrase=passphrase,
        read_in_child_process=True,
    )
    with zone.open_read("export/big.bin") as fh:
        assert len(fh.read(65536)) > 0  # the encrypted key was opened in the child
        pid = fh.pid  # type: ignore[attr-defined]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"sftp_child.py" in cmdline
    assert passphrase.encode() not in cmdline
    assert passphrase.encode() not in environ
    assert b"CAMPAIGN_SFTP" not in environ

    wrong = sftp_zone(
        sshd,
        base_path=plain.base_path,
        private_key_path=str(key),
        private_key_passphrase=f"wrong-{passphrase}",
        read_in_child_process=True,
        child_process_min_bytes=0,  # no stat in the run process first: the child loads the key
    )
    with pytest.raises(DropZoneAccessDenied, match="cannot be loaded") as denied:  # noqa: SIM117
        with wrong.open_read("export/big.bin"):
            pass
    assert passphrase not in str(denied.value)


def test_an_in_process_download_shortens_the_gil_switch_interval_then_restores_it(sshd, tmp_path):
    """The download thread needs the GIL for every packet: while a file streams in, Python's
    switch interval is the zone's setting; nested reads (two zones, two sessions) share it,
    and the last one out, even through an error, puts Python's own back."""
    zone = sftp_zone(sshd)
    other = sftp_zone(sshd, base_path=zone.base_path)
    source = tmp_path / "export.csv"
    source.write_bytes(os.urandom(3 << 20))
    zone.write_atomic("export.csv", source)
    before = sys.getswitchinterval()
    assert before != zone.gil_switch_interval_seconds
    try:
        with zone.open_read("export.csv") as outer:
            assert sys.getswitchinterval() == zone.gil_switch_interval_seconds
            with other.open_read("export.csv") as inner:
                assert inner.read(1 << 20) == outer.read(1 << 20)
            assert sys.getswitchinterval() == zone.gil_switch_interval_seconds
            raise KeyError("a parser error mid-file")
    except KeyError:
        pass
    assert sys.getswitchinterval() == before
    untouched = sftp_zone(sshd, base_path=zone.base_path, gil_switch_interval_seconds=None)
    with untouched.open_read("export.csv") as fh:
        assert sys.getswitchinterval() == before
        assert fh.read() == source.read_bytes()
    for z in (zone, other, untouched):
        z.close()
