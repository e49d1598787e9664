"""Preflight of the Campaign SFTP zone: reachable, the host key known, the login accepted, and
each folder the platform uses readable or writable.

The host key is compared with the configured known_hosts file and never added: a preflight
that trusted on first use would defeat the `RejectPolicy` the platform connects with
(resources/sftp.py). The folder probes write a uniquely named dot-file, rename it and delete it
again, and never touch Campaign's export folder beyond listing and reading, where an export
workflow or the platform's own sensors could otherwise meet a probe.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import stat as stat_mod
import uuid
from pathlib import Path, PurePosixPath

import paramiko

from resources.errors import DropZoneAccessDenied, DropZoneUnavailable
from resources.settings import PipelineSettings
from resources.sftp import SftpDropZone, make_remote_dirs
from resources.sftp_transfer import SftpSettings, connect
from rtcdp_assets.operations.preflight.report import CheckResult, fail, ok, one_line, skip, warn
from rtcdp_assets.shared.campaign_sftp_storage import area_folders

PROBE_PREFIX = ".rtcdp-preflight-"


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH and paramiko look a server up under: `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:...`, as `ssh-keygen -lf` and OpenSSH's prompts print it."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _keyscan(zone: SftpDropZone) -> str:
    return f"ssh-keyscan -p {zone.port} {zone.host} >> {zone.known_hosts_path}"


def _server_key(zone: SftpDropZone, known: paramiko.HostKeys) -> paramiko.PKey:
    """The host key the server presents in an SSH handshake (no authentication)."""
    sock = socket.create_connection((zone.host, zone.port), timeout=zone.connect_timeout_seconds)
    transport = paramiko.Transport(sock)
    try:
        # As paramiko's SSHClient does: ask first for the key type known_hosts holds, so a
        # server with several host keys presents the one we can compare.
        entry = known.lookup(known_hosts_name(zone.host, zone.port))
        if entry:
            options = transport.get_security_options()
            wanted = [t for t in entry if t in options.key_types]
            options.key_types = [*wanted, *(t for t in options.key_types if t not in wanted)]
        transport.start_client(timeout=zone.connect_timeout_seconds)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def host_key_result(
    zone: SftpDropZone, known: paramiko.HostKeys, key: paramiko.PKey
) -> CheckResult:
    """Whether known_hosts holds `key` under the name this host and port are looked up by."""
    name = known_hosts_name(zone.host, zone.port)
    kind, print_ = key.get_name(), fingerprint(key)
    entry = known.lookup(name)
    if entry and entry.get(kind) == key:
        return ok("sftp.host_key", f"{name}: {kind} {print_} is in {zone.known_hosts_path}")
    if entry and kind in entry:
        return fail(
            "sftp.host_key",
            f"{name} presented {kind} {print_}, which differs from the key in "
            f"{zone.known_hosts_path} (a changed server key or a man in the middle)",
            f"confirm {print_} with the Campaign SFTP operator out of band, then "
            f"`ssh-keygen -R '{name}' -f {zone.known_hosts_path}` and `{_keyscan(zone)}`",
        )
    other_forms = [zone.host, f"[{zone.host}]:22"] if zone.port != 22 else [f"[{zone.host}]:22"]
    misfiled = next((form for form in other_forms if known.lookup(form)), None)
    if misfiled is not None:
        return fail(
            "sftp.host_key",
            f"{zone.known_hosts_path} has a key under '{misfiled}', but port {zone.port} is "
            f"looked up as '{name}'",
            f"`{_keyscan(zone)}` writes the line as '{name} {kind} ...' (or change the line's "
            f"host field to '{name}'); verify {print_} out of band",
        )
    return fail(
        "sftp.host_key",
        f"the key of {name} ({kind} {print_}) is not in {zone.known_hosts_path}; keys are "
        "never added automatically",
        f"verify {print_} with the Campaign SFTP operator, then `{_keyscan(zone)}`"
        + (f" (a non-default port is written '{name}' in known_hosts)" if zone.port != 22 else ""),
    )


def _settings(zone: SftpDropZone) -> SftpSettings:
    return SftpSettings(
        host=zone.host,
        port=zone.port,
        username=zone.username,
        private_key_path=zone.private_key_path,
        known_hosts_path=zone.known_hosts_path,
        connect_timeout_seconds=zone.connect_timeout_seconds,
        private_key_passphrase=zone.private_key_passphrase,
    )


def _remote(zone: SftpDropZone, folder: str) -> str:
    return str(PurePosixPath(zone.base_path) / folder) if zone.base_path else folder


def connection_checks(zone: SftpDropZone) -> tuple[list[CheckResult], bool]:
    """TCP, SSH handshake and host key; the bool says whether a login may be tried."""
    target = f"{zone.host}:{zone.port}"
    known_hosts = Path(zone.known_hosts_path)
    if not known_hosts.is_file():
        return [
            fail(
                "sftp.known_hosts",
                f"{known_hosts} does not exist",
                f"create it with `{_keyscan(zone)}` after verifying the key's fingerprint, "
                "or point CAMPAIGN_SFTP_KNOWN_HOSTS at the file that holds it",
            )
        ], False
    try:
        known = paramiko.HostKeys(str(known_hosts))
    except OSError as exc:
        return [
            fail("sftp.known_hosts", f"{known_hosts}: {one_line(exc)}", "make it readable")
        ], False
    try:
        with socket.create_connection((zone.host, zone.port), zone.connect_timeout_seconds):
            pass
    except OSError as exc:
        return [
            fail(
                "sftp.reachable",
                f"no TCP connection to {target} ({one_line(exc)})",
                "check CAMPAIGN_SFTP_HOST and CAMPAIGN_SFTP_PORT, DNS, and that the firewall "
                "(and the Campaign SFTP IP allow list) lets this host in",
            )
        ], False
    results = [ok("sftp.reachable", f"TCP connection to {target}")]
    try:
        key = _server_key(zone, known)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        results.append(
            fail(
                "sftp.handshake",
                f"{target} accepted TCP but no SSH handshake ({one_line(exc)})",
                "check that CAMPAIGN_SFTP_PORT is the SFTP port (not HTTPS or a proxy)",
            )
        )
        return results, False
    results.append(ok("sftp.handshake", f"SSH server at {target}"))
    host_key = host_key_result(zone, known, key)
    results.append(host_key)
    return results, host_key.status == "OK"


def _auth_failure(zone: SftpDropZone, exc: Exception) -> CheckResult:
    text = str(exc)
    if "private key" in text:
        fix = "check CAMPAIGN_SFTP_KEY_PATH (readable, an OpenSSH or PEM private key) and "
        fix += "CAMPAIGN_SFTP_KEY_PASSPHRASE for an encrypted key"
    else:
        fix = (
            f"register the public key of CAMPAIGN_SFTP_KEY_PATH for user '{zone.username}' "
            "on the Campaign SFTP server (Control Panel, SFTP key management), and check "
            "CAMPAIGN_SFTP_USER"
        )
    return fail("sftp.login", f"{zone.username}@{zone.host}: {one_line(exc)}", fix)


def read_check(sftp: paramiko.SFTPClient, zone: SftpDropZone, folder: str) -> CheckResult:
    """List the export folder and read the first bytes of one file in it."""
    remote = _remote(zone, folder)
    check = f"sftp.read:{folder}"
    try:
        attrs = sftp.listdir_attr(remote)
    except FileNotFoundError:
        return fail(
            check,
            f"folder '{remote}' does not exist",
            "create it, or fix CAMPAIGN_SFTP_BASE_PATH / campaign_export_folder to the folder "
            "Campaign's export workflows write to",
        )
    except OSError as exc:
        return fail(check, f"cannot list '{remote}' ({one_line(exc)})", _grant(zone, "list"))
    files = [a for a in attrs if a.st_mode is not None and stat_mod.S_ISREG(a.st_mode)]
    if not files:
        return ok(check, f"'{remote}' listed (no file yet to read)")
    try:
        with sftp.open(f"{remote}/{files[0].filename}", "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return fail(
            check, f"cannot read files in '{remote}' ({one_line(exc)})", _grant(zone, "read")
        )
    return ok(check, f"'{remote}' listed ({len(files)} file(s)) and one read")


def _grant(zone: SftpDropZone, what: str) -> str:
    return f"grant SFTP user '{zone.username}' {what} permission on that folder"


def write_check(sftp: paramiko.SFTPClient, zone: SftpDropZone, folder: str) -> CheckResult:
    """Write, rename and delete a probe file in `folder`; the probe is always removed."""
    remote = _remote(zone, folder)
    check = f"sftp.write:{folder}"
    probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    part, final = f"{remote}/{probe}.part", f"{remote}/{probe}.probe"
    step = "create the folder"
    try:
        created = make_remote_dirs(sftp, remote)
        step = "write a file"
        with sftp.open(part, "wb") as fh:
            fh.write(b"rtcdp preflight probe\n")
        step = "rename a file"
        sftp.posix_rename(part, final)
        step = "delete a file"
        sftp.remove(final)
    except OSError as exc:
        return fail(
            check,
            f"cannot {step} in '{remote}' ({one_line(exc)})",
            _grant(zone, "write, rename and delete"),
        )
    finally:
        for leftover in (part, final):
            with contextlib.suppress(OSError):
                sftp.remove(leftover)
    note = " (folder created, as the platform does on first use)" if created else ""
    return ok(check, f"'{remote}': write, rename and delete{note}")


def platform_folders(settings: PipelineSettings) -> tuple[str, list[str]]:
    """The export folder (read) and the folders the platform writes to."""
    written = [folder for area in area_folders(settings).values() for folder in area]
    return settings.campaign_export_folder, written


def sftp_checks(zone: SftpDropZone, settings: PipelineSettings) -> list[CheckResult]:
    results, may_login = connection_checks(zone)
    export, written = platform_folders(settings)
    later = ["sftp.login", f"sftp.read:{export}", *(f"sftp.write:{f}" for f in written)]
    if not may_login:
        failed = next(r.check for r in results if r.status == "FAIL")
        return results + [skip(name, f"{failed} failed") for name in later]
    try:
        client, sftp = connect(_settings(zone))
    except (DropZoneAccessDenied, DropZoneUnavailable) as exc:
        results.append(_auth_failure(zone, exc))
        return results + [skip(name, "sftp.login failed") for name in later[1:]]
    try:
        results.append(ok("sftp.login", f"{zone.username}@{zone.host} authenticated by key"))
        results.append(read_check(sftp, zone, export))
        results.extend(write_check(sftp, zone, folder) for folder in written)
    finally:
        sftp.close()
        client.close()
    if zone.read_in_child_process:
        results.append(
            warn(
                "sftp.sessions",
                "CAMPAIGN_SFTP_READ_IN_CHILD_PROCESS is on: a run holds two SFTP sessions "
                "while it reads a large export",
                "keep the campaign_sftp pool limit at half the account's session limit",
            )
        )
    return results
