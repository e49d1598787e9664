"""`rtcdp-doctor` against the real services: sshd, Azurite, moto's S3 and PostgreSQL.

The environment is a production one (RTCDP_ENV=production, every variable docs/deployment.md
lists), so the command builds its resources exactly as the code location does. One green run,
then one broken setting at a time: each must give a FAIL line with its fix and exit 1, and no
secret value may appear in the output.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from rtcdp_assets.operations.preflight.cli import main
from rtcdp_assets.operations.preflight.instance_checks import PROJECT_POOLS
from rtcdp_assets.operations.preflight.sftp_checks import PROBE_PREFIX
from rtcdp_dev.services.base import free_port

pytestmark = pytest.mark.integration

CONTAINER_ROLES = ("aep_landing", "aep_destination", "customer_source", "aep_dataset_export")
INSTANCE = {
    "storage": {
        "postgres": {
            "postgres_db": {
                "hostname": {"env": "DAGSTER_PG_HOST"},
                "port": {"env": "DAGSTER_PG_PORT"},
                "username": {"env": "DAGSTER_PG_USERNAME"},
                "password": {"env": "DAGSTER_PG_PASSWORD"},
                "db_name": {"env": "DAGSTER_PG_DB"},
                "scheme": "postgresql+psycopg2",
            }
        }
    },
    "run_coordinator": {
        "module": "dagster.core.run_coordinator",
        "class": "QueuedRunCoordinator",
    },
    "concurrency": {"pools": {"default_limit": 4, "granularity": "op"}},
}


@pytest.fixture(scope="module")
def databases(postgres):
    return postgres.create_database("preflight_dagster"), postgres.create_database(
        "preflight_ledger"
    )


def ledger_url(postgres, db: str, password: str | None = None) -> str:
    secret = password or postgres.password
    return (
        f"postgresql+psycopg2://{postgres.superuser}:{secret}@{postgres.host}:{postgres.port}/{db}"
    )


def write_instance(home: Path, config: dict) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def deployment(sshd, azurite, moto_s3, postgres, databases, tmp_path, monkeypatch):
    """A complete production environment on the test services; returns what tests change."""
    dagster_db, ledger_db = databases
    base = f"t-{uuid.uuid4().hex[:8]}"
    export = sshd.root / base / "export"
    export.mkdir(parents=True)
    (export / "broadLog_20261123_0800.csv").write_text("iBroadLogId,iDeliveryId\n1,10\n")
    known_hosts = shutil.copy(sshd.known_hosts_path, tmp_path / "known_hosts")
    suffix = uuid.uuid4().hex[:8]
    service = azurite.blob_service_client()
    containers = {role: f"{role.replace('_', '-')}-{suffix}" for role in CONTAINER_ROLES}
    for name in containers.values():
        service.create_container(name)
    bucket = moto_s3.create_bucket(f"warehouse-{suffix}")
    env = {
        "RTCDP_ENV": "production",
        "CAMPAIGN_SFTP_HOST": sshd.host,
        "CAMPAIGN_SFTP_PORT": str(sshd.port),
        "CAMPAIGN_SFTP_USER": sshd.username,
        "CAMPAIGN_SFTP_KEY_PATH": str(sshd.client_key_path),
        "CAMPAIGN_SFTP_KNOWN_HOSTS": str(known_hosts),
        "CAMPAIGN_SFTP_BASE_PATH": base,
        "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url,
        "AZURE_STORAGE_KEY": azurite.account_key,
        **{f"{role.upper()}_CONTAINER": name for role, name in containers.items()},
        # The warehouse in an S3 bucket: both object stores in one deployment.
        "WAREHOUSE_ZONE": "s3",
        "WAREHOUSE_BUCKET": bucket,
        "AWS_REGION": moto_s3.region,
        "AWS_ENDPOINT_URL": moto_s3.endpoint_url,
        "RTCDP_LEDGER_URL": ledger_url(postgres, ledger_db),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USERNAME": postgres.superuser,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": dagster_db,
    }
    for name in ("AZURE_STORAGE_SAS_TOKEN", "CAMPAIGN_SFTP_KEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    write_instance(tmp_path / "dagster_home", INSTANCE)
    return {"sftp_base": sshd.root / base, "known_hosts": Path(known_hosts), **env}


def doctor(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def lines(out: str, status: str, check: str) -> list[str]:
    return [line for line in out.splitlines() if line.split()[:2] == [status, check]]


def assert_no_secret(out: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in out


def test_a_complete_deployment_passes(deployment, capsys, postgres, azurite):
    code, out = doctor(capsys)
    assert code == 0, out
    assert "FAIL" not in out and "SKIP" not in out
    for check in (
        "sftp.reachable",
        "sftp.handshake",
        "sftp.host_key",
        "sftp.login",
        "sftp.read:export",
        "sftp.write:export/archive",
        "sftp.write:export/markers",
        "sftp.write:export/quarantine",
        "sftp.write:import",
        *(f"zone.{role}" for role in (*CONTAINER_ROLES, "warehouse")),
        "ledger",
        "dagster.home",
        "dagster.storage",
        "pool.campaign_sftp",
    ):
        assert lines(out, "OK", check), f"{check} missing in\n{out}"
    assert "limit 4" in lines(out, "OK", "pool.campaign_sftp")[0]
    # The probes are gone: nothing of the preflight is left on the SFTP server.
    assert not [p for p in deployment["sftp_base"].rglob("*") if PROBE_PREFIX in p.name]
    assert_no_secret(out, azurite.account_key, postgres.password)


def test_json_output_for_scripts(deployment, capsys):
    code, out = doctor(capsys, "--json")
    report = json.loads(out)
    assert code == 0 and report["passed"] is True
    assert {c["check"] for c in report["checks"]} >= {
        "sftp.host_key",
        "ledger",
        "pool.campaign_sftp",
    }


def test_an_unknown_host_key_is_refused_with_the_keyscan_fix(deployment, capsys, sshd):
    sshd.write_empty_known_hosts(deployment["known_hosts"])
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "sftp.host_key")
    assert "not in" in line and "never added automatically" in line
    assert f"ssh-keyscan -p {sshd.port} {sshd.host} >> {deployment['known_hosts']}" in line
    assert f"[{sshd.host}]:{sshd.port}" in line
    # Nothing was trusted on first use, and no login was tried.
    assert deployment["known_hosts"].read_text() == ""
    assert lines(out, "SKIP", "sftp.login")


def test_a_key_filed_without_the_port_is_named_as_such(deployment, capsys, sshd):
    key_type, key_b64 = sshd.host_public_key.split()[1:3]
    sshd.write_known_hosts(deployment["known_hosts"], f"{sshd.host} {key_type} {key_b64}")
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "sftp.host_key")
    assert f"under '{sshd.host}'" in line
    assert f"looked up as '[{sshd.host}]:{sshd.port}'" in line
    assert f"ssh-keyscan -p {sshd.port} {sshd.host}" in line


def test_a_changed_host_key_is_a_failure(deployment, capsys, sshd, tmp_path):
    sshd.write_known_hosts(deployment["known_hosts"], sshd.other_host_key_line(tmp_path))
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "sftp.host_key")
    assert "differs" in line and "ssh-keygen -R" in line


def make_unwritable(folder: Path) -> None:
    folder.chmod(0o555)
    if os.geteuid() == 0:
        # root writes through any mode bits; the immutable attribute stops it too.
        subprocess.run(["chattr", "+i", str(folder)], check=True)


def make_writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_an_unwritable_sftp_folder_is_named_with_its_fix(deployment, capsys, sshd):
    imports = deployment["sftp_base"] / "import"
    imports.mkdir()
    make_unwritable(imports)
    try:
        with pytest.raises(PermissionError):
            (imports / "still-writable").write_text("")  # the setup really bites
        code, out = doctor(capsys)
    finally:
        make_writable(imports)
    assert code == 1
    (line,) = lines(out, "FAIL", "sftp.write:import")
    assert "cannot write a file" in line and "Permission denied" in line
    assert f"grant SFTP user '{sshd.username}' write, rename and delete" in line
    assert lines(out, "OK", "sftp.write:export/archive")
    assert list(imports.iterdir()) == []


def test_a_missing_container_is_not_created_but_reported(deployment, capsys, azurite):
    missing = f"misspelt-{uuid.uuid4().hex[:8]}"
    os.environ["AEP_LANDING_CONTAINER"] = missing
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "zone.aep_landing")
    assert f"container '{missing}'" in line and "does not exist" in line
    assert f"az storage container create --name {missing}" in line
    assert "AEP_LANDING_CONTAINER" in line
    assert not azurite.blob_service_client().get_container_client(missing).exists()


def test_a_bad_azure_key_fails_every_container_without_printing_it(deployment, capsys):
    bad_key = base64.b64encode(os.urandom(64)).decode()
    os.environ["AZURE_STORAGE_KEY"] = bad_key
    code, out = doctor(capsys)
    assert code == 1
    for role in CONTAINER_ROLES:
        (line,) = lines(out, "FAIL", f"zone.{role}")
        assert "refused" in line and "AZURE_STORAGE_KEY must be a key" in line
        # The account the key signed for, and how to name another one.
        assert "(account 'devstoreaccount1')" in line and "AZURE_STORAGE_ACCOUNT_NAME" in line
    assert lines(out, "OK", "zone.warehouse")  # the S3 bucket does not use that key
    assert_no_secret(out, bad_key)


def test_a_missing_bucket_is_reported(deployment, capsys):
    os.environ["WAREHOUSE_BUCKET"] = missing = f"missing-{uuid.uuid4().hex[:8]}"
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "zone.warehouse")
    assert f"bucket '{missing}'" in line and f"aws s3 mb s3://{missing}" in line


def test_a_wrong_dagster_storage_password(deployment, capsys):
    os.environ["DAGSTER_PG_PASSWORD"] = wrong = "not-the-password-42"
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "dagster.storage")
    assert "password authentication failed" in line and "CREATE DATABASE" in line
    assert lines(out, "SKIP", "pool.campaign_sftp")
    assert lines(out, "OK", "ledger")
    assert_no_secret(out, wrong)


def test_an_unreachable_dagster_storage(deployment, capsys):
    os.environ["DAGSTER_PG_PORT"] = str(free_port())
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "dagster.storage")
    assert "DAGSTER_PG_HOST" in line


def test_a_wrong_ledger_password(deployment, capsys, postgres, databases):
    wrong = "also-not-the-password-7"
    os.environ["RTCDP_LEDGER_URL"] = ledger_url(postgres, databases[1], wrong)
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "ledger")
    assert "password authentication failed" in line and "RTCDP_LEDGER_URL" in line
    assert f"{postgres.superuser}:***@" in line
    assert_no_secret(out, wrong, postgres.password)


def test_a_missing_variable_is_named(deployment, capsys):
    del os.environ["CAMPAIGN_SFTP_KNOWN_HOSTS"]
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "config.campaign_sftp")
    assert "CAMPAIGN_SFTP_KNOWN_HOSTS" in line


def test_a_pool_without_limit(deployment, capsys):
    config = {k: v for k, v in INSTANCE.items() if k != "concurrency"}
    write_instance(Path(deployment["DAGSTER_HOME"]), config)
    code, out = doctor(capsys)
    assert code == 1
    (line,) = lines(out, "FAIL", "pool.campaign_sftp")
    assert "no limit" in line and "default_limit" in line
    assert "dagster instance concurrency set campaign_sftp" in line
    assert lines(out, "WARN", "pool.granularity")


def test_the_preflight_knows_every_pool_of_the_code_location():
    from rtcdp_assets.definitions import defs

    pools = {
        node.pool
        for job in defs.resolve_all_job_defs()
        for node in job.graph.iterate_node_defs()
        if getattr(node, "pool", None)
    }
    assert pools == set(PROJECT_POOLS)
