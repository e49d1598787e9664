"""Secrets come only from the environment and never reach logs, metadata, run config or the UI.

The production resources run against the real sshd (with an encrypted client key, so the
passphrase is really used) and Azurite (whose account key stands in for a storage key). Then
every record the Dagster instance holds — runs with their config and tags, job and plan
snapshots, every event with its metadata — the code location snapshot the UI shows, and
everything written to stdout, stderr and logging are searched for the secret values.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from dagster import DagsterInstance, Definitions, SensorResult, build_sensor_context, materialize
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.campaign_to_aep.freshness import build_freshness_check
from resources import PipelineSettings, production_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_dev.services import SSH_KEYGEN_BINARY
from tests.zones import sftp_zone

pytestmark = pytest.mark.integration

PK = "2026-11-23-08:00"
EXPORT = (
    "iBroadLogId,iDeliveryId,iRecipientId,sAddress,iStatus,tsEvent\n"
    "1,77,1001,ann@example.com,1,2026-11-23 08:01:00\n"
    "2,77,1002,ben@example.com,1,2026-11-23 08:02:00\n"
)


def production_env(monkeypatch, sshd, azurite, key_path, passphrase, base_path, suffix):
    env = {
        "RTCDP_ENV": "production",
        "CAMPAIGN_SFTP_HOST": sshd.host,
        "CAMPAIGN_SFTP_PORT": str(sshd.port),
        "CAMPAIGN_SFTP_USER": sshd.username,
        "CAMPAIGN_SFTP_KEY_PATH": str(key_path),
        "CAMPAIGN_SFTP_KEY_PASSPHRASE": passphrase,
        "CAMPAIGN_SFTP_KNOWN_HOSTS": str(sshd.known_hosts_path),
        "CAMPAIGN_SFTP_BASE_PATH": base_path,
        "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url,
        "AZURE_STORAGE_KEY": azurite.account_key,
        "AEP_LANDING_CONTAINER": f"landing{suffix}",
        "AEP_DESTINATION_CONTAINER": f"dest{suffix}",
        "WAREHOUSE_CONTAINER": f"warehouse{suffix}",
        "CUSTOMER_SOURCE_CONTAINER": f"customer{suffix}",
        "AEP_DATASET_EXPORT_CONTAINER": f"datasets{suffix}",
        # A Postgres URL carries a password; here a SQLite file whose name stands in for one.
        "RTCDP_LEDGER_URL": f"sqlite:///{key_path.parent / f'ledger-{suffix}-Secret.sqlite'}",
    }
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def instance_text(instance: DagsterInstance) -> str:
    """Everything the instance stores (and the UI reads) about every run, as text."""
    parts = []
    for run in instance.get_runs():
        parts.append(serialize_value(run))  # run config, tags, status
        parts.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
        parts.append(
            serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id))
        )
        parts.extend(serialize_value(record) for record in instance.all_logs(run.run_id))
    return "\n".join(parts)


def test_secrets_never_reach_logs_metadata_run_config_or_the_ui(
    sshd, azurite, tmp_path, monkeypatch, caplog, capfd
):
    caplog.set_level("DEBUG")
    passphrase = f"pp-{uuid.uuid4().hex}-Secret"
    wrong_passphrase = f"wrong-{uuid.uuid4().hex}-Secret"
    key = tmp_path / "encrypted_client_key"
    subprocess.run(
        [str(SSH_KEYGEN_BINARY), "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    sshd.authorize_key(key.with_name(key.name + ".pub").read_text())
    base_path = f"t-{uuid.uuid4().hex[:8]}"
    suffix = uuid.uuid4().hex[:10]
    plain = sftp_zone(sshd, base_path=base_path)
    plain.write_bytes("export/broadLog_20261123_0800.csv", EXPORT.encode())
    plain.close()
    production_env(monkeypatch, sshd, azurite, key, passphrase, base_path, suffix)

    resources = production_resources()
    resources["settings"] = PipelineSettings(
        file_settle_seconds=0, campaign_export_completion="rename"
    )  # SFTP whole-second mtimes
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        tick = broadlog_defs.sensor(ctx)
    assert isinstance(tick, SensorResult) and len(tick.run_requests) == 1
    selection = [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)]
    ok = materialize(
        selection,
        partition_key=PK,
        resources=resources,
        instance=instance,
        tags=tick.run_requests[0].tags,
        raise_on_error=False,
    )
    assert ok.success  # the encrypted key was opened with the passphrase from the environment

    # A failure path: the wrong passphrase must not be echoed in the error either.
    monkeypatch.setenv("CAMPAIGN_SFTP_KEY_PASSPHRASE", wrong_passphrase)
    failed = materialize(
        selection,
        partition_key=PK,
        resources={**production_resources(), "settings": resources["settings"]},
        instance=instance,
        raise_on_error=False,
    )
    assert not failed.success

    # What the UI shows about the code location: resources appear as env var names only.
    ui = serialize_value(
        RepositorySnap.from_def(
            Definitions(
                assets=[*broadlog_defs.assets],
                asset_checks=[
                    *campaign_export_checks(broadlog_defs.flow),
                    build_freshness_check(broadlog_defs.flow.typed_key),
                ],
                sensors=[broadlog_defs.sensor],
                jobs=[broadlog_defs.job],
                resources=resources,
            ).get_repository_def()
        )
    )
    assert "AZURE_STORAGE_KEY" in ui and "CAMPAIGN_SFTP_KEY_PASSPHRASE" in ui
    assert "RTCDP_LEDGER_URL" in ui

    stored = instance_text(instance)
    captured = capfd.readouterr()
    haystacks = {
        "instance": stored,
        "ui": ui,
        "logging": caplog.text,
        "stdout": captured.out,
        "stderr": captured.err,
    }
    # The search looks at real records: non-secret details of both runs are there.
    assert "broadlog_published" in stored and "cannot be loaded" in stored
    secrets = {
        "passphrase": passphrase,
        "wrong passphrase": wrong_passphrase,
        "storage key": azurite.account_key,
        "storage key prefix": azurite.account_key[:16],
        "ledger url": f"ledger-{suffix}-Secret",
    }
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in haystacks.items()
        if secret in text
    ]
    assert leaks == []
