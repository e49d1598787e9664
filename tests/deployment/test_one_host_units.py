"""The one-host deployment's systemd units (deploy/one-host/dagster-daemon.service,
dagster-webserver.service and dagster-webserver-readonly.service): valid for systemd
(`systemd-analyze verify` where systemd is installed, else a strict parse and the directives'
known values), and hardened: a dedicated user, the checkout as working directory, the shared
environment file, DAGSTER_HOME in the only writable folder, restart on failure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ONE_HOST = REPO / "deploy" / "one-host"
ENV_TEMPLATE = ONE_HOST / "rtcdp.env.example"
UNITS = {
    "dagster-daemon.service": "dagster-daemon",
    "dagster-webserver.service": "dagster-webserver",
    "dagster-webserver-readonly.service": "dagster-webserver",
}


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file, strictly: every line is a comment, a [Section] or Key=value inside
    a section (keys may repeat, as Environment= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if re.fullmatch(r"\[[A-Za-z]+\]", stripped):
            assert stripped[1:-1] not in sections, f"line {number}: section repeated"
            current = sections.setdefault(stripped[1:-1], {})
            continue
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", stripped)
        assert match and current is not None, f"line {number} is not Key=value: {line!r}"
        current.setdefault(match[1], []).append(match[2])
    return sections


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    return unit_sections((ONE_HOST / name).read_text())


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, (key, values)
    return values[0]


@pytest.mark.parametrize(("name", "program"), UNITS.items())
def test_the_systemd_units_run_the_service_as_a_hardened_dedicated_user(name, program):
    sections = unit(name)
    assert set(sections) == {"Unit", "Service", "Install"}
    service = sections["Service"]
    assert one(service, "User") == one(service, "Group") == "rtcdp"
    # No "-" prefix: a missing environment file stops the start instead of running unconfigured.
    assert one(service, "EnvironmentFile") == "/etc/rtcdp/rtcdp.env"
    assert one(service, "Restart") == "on-failure"
    working_directory = Path(one(service, "WorkingDirectory"))
    assert working_directory.is_absolute()
    environment = dict(value.split("=", 1) for value in service["Environment"])
    dagster_home = Path(environment["DAGSTER_HOME"])
    writable = [Path(p) for p in one(service, "ReadWritePaths").split()]
    assert any(dagster_home.is_relative_to(p) for p in writable)
    assert (
        dagster_home.is_relative_to("/var/lib")
        and "rtcdp/dagster_home" in one(service, "StateDirectory").split()
    )

    command = one(service, "ExecStart").split()
    assert Path(command[0]).is_absolute() and Path(command[0]).name == program
    assert Path(command[0]).is_relative_to(working_directory)  # the checkout's own venv
    workspace = command[command.index("-w") + 1]
    assert (REPO / workspace).is_file()  # relative to WorkingDirectory, i.e. the checkout
    if program == "dagster-daemon":
        assert command[1] == "run"
    else:
        assert command[command.index("-h") + 1] == "127.0.0.1"  # a proxy with auth in front

    if name == "dagster-webserver-readonly.service":
        assert command[-1] == "--read-only"  # the reviewers' door (docs/ui-access.md)

    hardening = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "UMask": "0027",
    }
    assert {key: one(service, key) for key in hardening} == hardening
    assert one(sections["Install"], "WantedBy") == "multi-user.target"


def test_the_units_share_the_instance_and_the_environment():
    services = [unit(name)["Service"] for name in UNITS]
    for key in ("EnvironmentFile", "Environment", "WorkingDirectory", "User", "ReadWritePaths"):
        assert all(service[key] == services[0][key] for service in services), key
    assert "DAGSTER_HOME=" not in ENV_TEMPLATE.read_text().replace("# DAGSTER_HOME=", "")


# Without systemd-analyze (a machine without systemd) the units are still checked by the strict
# parse above and against these: the directives the units use and Restart's documented values.
KNOWN_DIRECTIVES = {
    "Unit": {"Description", "Documentation", "Wants", "After", "Requires"},
    "Install": {"WantedBy"},
}
RESTART_VALUES = {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort"}


def systemd_complaints(units: dict[str, str], tmp_path: Path) -> list[str]:
    """What `systemd-analyze verify` says about these units, as shipped except that the
    checkout and its venv are where this test runs (verify checks that ExecStart's program is
    executable). Unknown keys and bad values are only warnings: every line naming a unit
    counts."""
    venv_bin = Path(sys.executable).parent
    paths = []
    for name, text in units.items():
        checkout = one(unit_sections(text)["Service"], "WorkingDirectory")
        text = text.replace(f"{checkout}/.venv/bin/", f"{venv_bin}/")
        text = text.replace(f"WorkingDirectory={checkout}", f"WorkingDirectory={REPO}")
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        complaints = []
        for name, text in units.items():
            sections = unit_sections(text)
            for section, known in KNOWN_DIRECTIVES.items():
                complaints += [f"{name}: {key}" for key in set(sections[section]) - known]
            if one(sections["Service"], "Restart") not in RESTART_VALUES:
                complaints.append(f"{name}: Restart")
        return complaints
    verified = subprocess.run(
        [analyze, "verify", "--man=no", *paths],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    complaints = [line for line in verified.stderr.splitlines() if ".service" in line]
    if verified.returncode != 0:
        complaints.append(verified.stderr)
    return complaints


def test_systemd_accepts_the_units(tmp_path):
    units = {name: (ONE_HOST / name).read_text() for name in UNITS}
    assert systemd_complaints(units, tmp_path) == []


def test_a_bad_unit_is_reported(tmp_path):
    text = (ONE_HOST / "dagster-daemon.service").read_text()
    bad = text.replace("Restart=on-failure", "Restart=sometimes")
    bad = bad.replace("[Install]", "[Install]\nWantedByTarget=multi-user.target")
    complaints = systemd_complaints({"dagster-daemon.service": bad}, tmp_path)
    assert len(complaints) >= 2, complaints
    with pytest.raises(AssertionError, match="Key=value"):
        unit_sections(text.replace("[Service]", "[Service]\nnot a setting"))
