"""The real test services behave the way the drop zones and tests rely on.

Straight paramiko and azure-storage-blob, no project code: when one of these fails, the problem
is the service setup (rtcdp_dev/services), not the drop zones.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from rtcdp_dev.services import AzuriteServer, SshdServer, generate_ed25519_key

pytestmark = pytest.mark.integration


# ---- sshd ------------------------------------------------------------------------------------


def _ssh_client(
    sshd: SshdServer, known_hosts: Path | None = None, key_path: Path | None = None
) -> paramiko.SSHClient:
    """Connect the strict way the project does: only known_hosts, never auto-add, only our key."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts or sshd.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            sshd.host,
            port=sshd.port,
            username=sshd.username,
            key_filename=str(key_path or sshd.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
            banner_timeout=10,
            auth_timeout=10,
        )
    except BaseException:
        client.close()
        raise
    return client


@pytest.fixture
def sftp(sshd: SshdServer) -> Iterator[paramiko.SFTPClient]:
    client = _ssh_client(sshd)
    try:
        with client.open_sftp() as sftp:
            yield sftp
    finally:
        client.close()


def test_known_hosts_holds_exactly_the_servers_key(sshd: SshdServer) -> None:
    host_pub = Path(f"{sshd.host_key_path}.pub").read_text().split()
    expected = f"[127.0.0.1]:{sshd.port} ssh-ed25519 {host_pub[1]}"
    assert sshd.host_public_key == expected
    assert sshd.known_hosts_path.read_text() == expected + "\n"


def test_login_put_list_and_posix_rename(sshd: SshdServer, sftp: paramiko.SFTPClient) -> None:
    # Sessions start in the drop-zone root (ForceCommand internal-sftp -d <absolute root>).
    assert sftp.normalize(".") == str(sshd.root)
    folder = f"smoke-{uuid.uuid4().hex[:8]}"
    sftp.mkdir(folder)
    payload = os.urandom(100_000)
    with sftp.open(f"{folder}/data.csv", "wb") as fh:
        fh.write(payload)

    listed = {a.filename: a.st_size for a in sftp.listdir_attr(folder)}
    assert listed == {"data.csv": len(payload)}
    # Relative SFTP paths really land under the server's root on disk.
    assert (sshd.root / folder / "data.csv").read_bytes() == payload

    with sftp.open(f"{folder}/data.csv.tmp", "wb") as fh:
        fh.write(b"replacement")
    # SFTP v3 rename refuses to overwrite; the OpenSSH posix-rename extension replaces.
    with pytest.raises(OSError):
        sftp.rename(f"{folder}/data.csv.tmp", f"{folder}/data.csv")
    sftp.posix_rename(f"{folder}/data.csv.tmp", f"{folder}/data.csv")
    assert sorted(sftp.listdir(folder)) == ["data.csv"]
    with sftp.open(f"{folder}/data.csv", "rb") as fh:
        assert fh.read() == b"replacement"


def test_wrong_host_key_is_rejected(sshd: SshdServer, tmp_path: Path) -> None:
    wrong = sshd.write_known_hosts(tmp_path / "known_hosts", sshd.other_host_key_line(tmp_path))
    assert wrong.read_text() != sshd.known_hosts_path.read_text()
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh_client(sshd, known_hosts=wrong)


def test_unknown_host_is_rejected_and_not_added(sshd: SshdServer, tmp_path: Path) -> None:
    empty = sshd.write_empty_known_hosts(tmp_path / "known_hosts")
    with pytest.raises(paramiko.SSHException) as excinfo:
        _ssh_client(sshd, known_hosts=empty)
    # Neither of SSHException's subclasses for the other failures: the host was unknown.
    assert not isinstance(
        excinfo.value, paramiko.BadHostKeyException | paramiko.AuthenticationException
    )
    assert "not found in known_hosts" in str(excinfo.value)
    assert empty.read_bytes() == b""


def test_wrong_client_key_is_rejected(sshd: SshdServer, tmp_path: Path) -> None:
    generate_ed25519_key(tmp_path / "stranger")
    with pytest.raises(paramiko.AuthenticationException):
        _ssh_client(sshd, key_path=tmp_path / "stranger")


def test_openssh_sftp_client_works_against_sshd(sshd: SshdServer, tmp_path: Path) -> None:
    # The benchmarks compare paramiko with OpenSSH's own client, so that must work too.
    local = tmp_path / "cli.bin"
    local.write_bytes(os.urandom(65_536))
    remote = f"cli-{uuid.uuid4().hex[:8]}.bin"
    batch = tmp_path / "batch"
    batch.write_text(f"put {local} {remote}\nls -l {remote}\n")
    result = subprocess.run(
        sshd.sftp_command(batch), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr + sshd.log_text()[-2000:]
    assert (sshd.root / remote).read_bytes() == local.read_bytes()


def test_sshd_stop_drops_sessions_and_start_keeps_port_and_key(sshd: SshdServer) -> None:
    port, known = sshd.port, sshd.known_hosts_path.read_text()
    client = _ssh_client(sshd)
    try:
        sftp = client.open_sftp()
        assert sftp.listdir(".") is not None
        sshd.stop()
        assert not sshd.is_running()
        # An outage ends the open session as well, not only the listener.
        with pytest.raises((OSError, EOFError, paramiko.SSHException)):
            sftp.listdir(".")
        with pytest.raises((OSError, paramiko.SSHException)):
            _ssh_client(sshd).close()
    finally:
        client.close()
        sshd.start()
    assert sshd.is_running()
    assert (sshd.port, sshd.known_hosts_path.read_text()) == (port, known)
    again = _ssh_client(sshd)  # the same known_hosts still matches
    try:
        with again.open_sftp() as sftp:
            assert sftp.normalize(".") == str(sshd.root)
    finally:
        again.close()


def test_missing_binary_names_the_install_script(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"install_test_services\.sh"):
        SshdServer(tmp_path / "root", tmp_path / "work", sshd_binary=tmp_path / "no-sshd")
    with pytest.raises(RuntimeError, match=r"install_test_services\.sh"):
        AzuriteServer(tmp_path / "az", azurite_binary=tmp_path / "no-azurite")


# ---- Azurite ---------------------------------------------------------------------------------


def _new_container(service: BlobServiceClient) -> str:
    name = f"smoke{uuid.uuid4().hex[:12]}"
    service.create_container(name)
    return name


def test_blob_upload_list_download(azurite: AzuriteServer) -> None:
    service = azurite.blob_service_client()
    container = service.get_container_client(_new_container(service))
    with pytest.raises(ResourceExistsError):
        service.create_container(container.container_name)

    payload = os.urandom(1_500_000)
    etag = container.get_blob_client("landing/data.parquet").upload_blob(payload)["etag"]
    listed = list(container.list_blobs(name_starts_with="landing/"))
    assert [(b.name, b.size) for b in listed] == [("landing/data.parquet", len(payload))]
    # Like real Azure, the ETag header is quoted and the listing's XML <Etag> is not.
    assert listed[0].etag.strip('"') == etag.strip('"')
    assert container.get_blob_client("landing/data.parquet").get_blob_properties().etag == etag
    assert container.download_blob("landing/data.parquet").readall() == payload


def test_connection_string_reaches_the_same_account(azurite: AzuriteServer) -> None:
    name = _new_container(azurite.blob_service_client())
    via_string = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert name in {c.name for c in via_string.list_containers(name_starts_with="smoke")}


def test_azurite_restart_keeps_blobs_on_the_same_port(azurite: AzuriteServer) -> None:
    service = azurite.blob_service_client()
    container = _new_container(service)
    payload = os.urandom(200_000)
    etag = service.get_blob_client(container, "kept.bin").upload_blob(payload)["etag"]
    url, port = azurite.account_url, azurite.port
    try:
        azurite.stop()
        assert not azurite.is_running()
        with pytest.raises(OSError):
            # The SDK would retry for a long time; a bare socket shows the port is closed.
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        azurite.start()
    assert (azurite.account_url, azurite.port) == (url, port)
    blob = azurite.blob_service_client().get_blob_client(container, "kept.bin")
    assert blob.get_blob_properties().etag == etag
    assert blob.download_blob().readall() == payload
