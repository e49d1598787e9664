"""The one-host deployment, built from its shipped instance file: deploy/one-host/dagster.yaml
copied into a fresh DAGSTER_HOME, pointed at the `postgres` fixture, and a real
`dagster-daemon run -w workspace.yaml` process in `RTCDP_ENV=production` against the real sshd
(the Campaign SFTP server) and Azurite (AEP's landing and destination containers), with the
file ledger in the same Postgres.

Campaign's exports (broadLog, and profiles, non-deliverables and preferences, which the
audience import needs) are uploaded with OpenSSH's `sftp` client in batch mode, each followed by
its `.done` marker; `put -p` keeps the times of files written ten minutes earlier, so the
sensors' 30-second settle window does not add a tick. Once `suppression_list` is built, AEP's
audience export is written into the destination container; its import is followed by the
destination files (`destination_export_sensor`). Nothing is run by the test: the
daemon's sensors request the runs, its run queue launches them (the default run launcher:
processes on this host), and its automation sensor builds `suppression_list`. The sensors keep
their production intervals. The test only waits (a generous deadline, never an assertion on
time) and then checks what landed, where it came from, and that every run succeeded.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, EventLogRecord
from dagster._core.storage.tags import (
    AUTOMATION_CONDITION_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
)

from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_dev import sample_audiences as sample
from rtcdp_dev.services import DagsterDaemon
from tests.drop_files import with_completion_markers, write_settled
from tests.results import read_published
from tests.zones import blob_zone

REPO = Path(__file__).resolve().parents[2]
ONE_HOST_INSTANCE = REPO / "deploy" / "one-host" / "dagster.yaml"
# How long the daemon may take for the whole flow on a loaded two-core machine. A deadline for
# waiting, not a timed assertion: the test asserts on what happened, never on how fast.
DEADLINE_SECONDS = 8 * 60
POLL_SECONDS = 3

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*will be removed in 2.0:DeprecationWarning"),
    # pytest-timeout's limit, beyond the deadline and the daemon's shutdown
    pytest.mark.timeout(DEADLINE_SECONDS + 120),
]

STAMP = "20261123_0800"
PK = "2026-11-23-08:00"
AUDIENCE = "ce5c5482-2813-4a80-99bc-57113f6acde2"
DESTINATION = "Azure_Blob"
DESTINATION_FOLDER = "aep/exports"
EXPORTED_AT = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
QUARANTINED, OPTED_OUT = (0, 1), (2,)
ROLES = ("aep_landing", "aep_destination", "warehouse", "customer_source", "aep_dataset_export")

BROADLOG_HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent"
)
BROADLOG_GOOD = [
    f"{i},77,{1000 + i},CUST-{i:05d},user{i}@example.com,1,1,5,2026-11-23 08:{i:02d}:00"
    for i in range(1, 41)
]
# A row without its required external ID and one cut short: rejected with a reason, not published.
BROADLOG_BAD = ["41,77,1041,,broken-address,1,0,0,2026-11-23 09:00:00", "42,77,1042"]


@dataclass
class OneHost:
    """What the test set up: the daemon's environment and where each zone lives."""

    home: Path
    db: str
    environment: dict[str, str]
    sftp_base: Path  # the Campaign SFTP base folder, as a path on the sshd's disk
    containers: dict[str, str]


def _deployment_environment(postgres, db: str, sshd, azurite, base: str) -> dict[str, str]:
    """The env file of a one-host deployment for these services (docs/deployment.md lists each
    variable): the process environment without any RTCDP_/DAGSTER_ setting of the test run."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RTCDP_", "DAGSTER_", "CAMPAIGN_SFTP_", "AZURE_", "AEP_"))
        and not k.endswith(("_ZONE", "_CONTAINER"))
    }
    ledger = (
        f"postgresql+psycopg2://{postgres.superuser}:{postgres.password}"
        f"@{postgres.host}:{postgres.port}/{db}"
    )
    return {
        **inherited,
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USERNAME": postgres.superuser,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": db,
        "RTCDP_ENV": "production",
        "RTCDP_LEDGER_URL": ledger,
        "CAMPAIGN_SFTP_HOST": sshd.host,
        "CAMPAIGN_SFTP_PORT": str(sshd.port),
        "CAMPAIGN_SFTP_USER": sshd.username,
        "CAMPAIGN_SFTP_KEY_PATH": str(sshd.client_key_path),
        "CAMPAIGN_SFTP_KNOWN_HOSTS": str(sshd.known_hosts_path),
        "CAMPAIGN_SFTP_BASE_PATH": base,
        "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url,
        "AZURE_STORAGE_KEY": azurite.account_key,
        "AEP_DESTINATION_FOLDER": DESTINATION_FOLDER,
    }


@pytest.fixture
def one_host(postgres, sshd, azurite, tmp_path, monkeypatch) -> Iterator[OneHost]:
    db = postgres.create_database(f"rtcdp_one_host_{uuid.uuid4().hex[:8]}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ONE_HOST_INSTANCE, home / "dagster.yaml")
    base = f"one-host-{uuid.uuid4().hex[:8]}"
    environment = _deployment_environment(postgres, db, sshd, azurite, base)
    # The test reads the same instance (runs, materializations) as the daemon.
    for name in [k for k in environment if k.startswith("DAGSTER_PG_")]:
        monkeypatch.setenv(name, environment[name])
    # The containers and folders an operator creates before the first start.
    client = azurite.blob_service_client()
    containers = {}
    for role in ROLES:
        containers[role] = f"{role.replace('_', '')}{uuid.uuid4().hex[:8]}"
        client.create_container(containers[role])
        environment[f"{role.upper()}_CONTAINER"] = containers[role]
    sftp_batch(
        sshd,
        tmp_path,
        [f"mkdir {base}", f"mkdir {base}/export", f"mkdir {base}/import"],
    )
    yield OneHost(home, db, environment, sshd.root / base, containers)


def sftp_batch(sshd, tmp_path: Path, commands: list[str]) -> None:
    """Commands through OpenSSH's own `sftp` client in batch mode (Campaign's side)."""
    batch = tmp_path / f"batch-{uuid.uuid4().hex[:6]}.txt"
    batch.write_text("\n".join(commands) + "\n")
    done = subprocess.run(
        sshd.sftp_command(batch), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def upload_campaign_exports(sshd, tmp_path: Path, base: str, files: dict[str, bytes]) -> None:
    """Campaign's export workflow: each file, then its `.done` marker, with `put -p` keeping
    the modification times of files written a while ago (past the settle window)."""
    local = tmp_path / "campaign_out"
    # data files first, markers after (with_completion_markers keeps that order)
    with_markers = with_completion_markers(files)
    for name, data in with_markers.items():
        write_settled(local / name, data, age_seconds=600)
    sftp_batch(sshd, tmp_path, [f"put -p {local / n} {base}/export/{n}" for n in with_markers])


def wait_for(what: str, ready: Callable[[], Any], daemon: DagsterDaemon, deadline: float) -> Any:
    """Poll `ready` until it returns something truthy; fail with the daemon's log when the
    daemon stopped or the deadline passed."""
    while True:
        value = ready()
        if value:
            return value
        if not daemon.is_running():
            pytest.fail(f"dagster-daemon exited ({daemon.exit_code()}):\n{daemon.log_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what}; daemon log:\n{daemon.log_text()}")
        time.sleep(POLL_SECONDS)


def latest_materialization(instance: DagsterInstance, asset: str) -> EventLogRecord | None:
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    return records[0] if records else None


def test_one_host_daemon_carries_broadlog_to_aep_and_an_audience_to_campaign(
    one_host, postgres, sshd, azurite, tmp_path
):
    base = one_host.sftp_base.name
    recipients = sample.campaign_recipients(20)
    broadlog = "\n".join([BROADLOG_HEADER, *BROADLOG_GOOD, *BROADLOG_BAD]) + "\n"
    exports = {
        f"broadLog_{STAMP}.csv": broadlog.encode(),
        **sample.campaign_exports(
            recipients,
            quarantined=QUARANTINED,
            opted_out=OPTED_OUT,
            consenting=range(len(recipients)),
            stamp=STAMP,
        ),
    }
    assert set(exports) == {
        f"{prefix}_{STAMP}.csv"
        for prefix in ("broadLog", "profiles", "nonDeliverables", "preferences")
    }
    upload_campaign_exports(sshd, tmp_path, base, exports)

    daemon = DagsterDaemon(one_host.home, tmp_path / "logs", environment=one_host.environment)
    with DagsterInstance.from_config(str(one_host.home)) as instance:
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        daemon.start()
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            landing = blob_zone(azurite, container=one_host.containers["aep_landing"])
            data_path, manifest_path = broadlog_flow.landing_paths(PipelineSettings(), PK)

            # -- Campaign → AEP: the broadLog reaches the landing container -----------------
            def published() -> list[dict[str, Any]] | None:
                # The manifest is written last: once it is there, the data file is whole.
                if landing.stat(manifest_path) is None:
                    return None
                return read_published(landing, data_path)

            records = wait_for("the published broadLog", published, daemon, deadline)
            assert len(records) == len(BROADLOG_GOOD)

            # -- suppression_list, built by the automation once both deps are in ------------
            def suppression_after_deps() -> bool:
                deps = [
                    latest_materialization(instance, a)
                    for a in ("non_deliverables", "preferences", "profiles")
                ]
                built = latest_materialization(instance, "suppression_list")
                if built is None or None in deps:
                    return False
                return built.storage_id > max(d.storage_id for d in deps if d is not None)

            wait_for("suppression_list after its deps", suppression_after_deps, daemon, deadline)
            record = latest_materialization(instance, "suppression_list")
            assert record is not None
            run = instance.get_run_by_id(record.run_id)
            assert run is not None
            assert run.tags.get(AUTOMATION_CONDITION_TAG) == "true", run.tags
            assert run.tags.get(SENSOR_NAME_TAG) == "suppression_list_automation", run.tags

            # -- AEP → Campaign: an audience export becomes the Campaign import -------------
            members = sample.audience_members(recipients, in_campaign=12, not_in_campaign=2)
            destination = blob_zone(azurite, container=one_host.containers["aep_destination"])
            files = sample.export_files(
                members, destination=DESTINATION, audience_id=AUDIENCE, when=EXPORTED_AT
            )
            for name, data in files.items():
                destination.write_bytes(f"{DESTINATION_FOLDER}/{name}", data)
            import_folder = one_host.sftp_base / "import"

            def imported() -> list[Path]:
                # Complete once its `.done` marker is there (written after the file).
                return [
                    p
                    for p in sorted(import_folder.glob(f"aep_audience_{AUDIENCE}_*.csv"))
                    if p.with_name(p.name + ".done").exists()
                ]

            (import_file,) = wait_for("the Campaign import file", imported, daemon, deadline)
            rows = pd.read_csv(
                io.BytesIO(import_file.read_bytes()), dtype=str, keep_default_na=False
            )
            by_external = {r["external_id"]: r for r in recipients}
            suppressed = {recipients[i]["external_id"] for i in (*QUARANTINED, *OPTED_OUT)}
            assert sorted(rows["recipient_id"]) == sorted(
                by_external[m.external_id]["recipient_id"]
                for m in members
                if m.in_campaign and m.external_id not in suppressed
            )

            # -- Activation: the destination files follow the import, by their sensor --------
            def destination_files() -> list[str]:
                published = latest_materialization(instance, "destination_exports_published")
                if published is None or published.partition_key != AUDIENCE:
                    return []
                return sorted(
                    e.path
                    for e in landing.walk(f"destinations/email/{AUDIENCE}")
                    if e.path.endswith(".csv")
                )

            (email_file,) = wait_for(
                "the email destination file", destination_files, daemon, deadline
            )
            email_rows = pd.read_csv(
                io.BytesIO(landing.read_bytes(email_file)), dtype=str, keep_default_na=False
            )
            assert landing.stat(f"{email_file}.done") is not None
            # Every imported member consents (the others opted out or are quarantined), and
            # members unknown to Campaign have no consent: the file holds the imported ones.
            assert sorted(email_rows["email"]) == sorted(
                m.email.lower()
                for m in members
                if m.in_campaign and m.external_id not in suppressed and m.email
            )
            # Let every run finish before stopping.
            wait_for(
                "every run to end",
                lambda: all(r.is_finished for r in instance.get_runs()),
                daemon,
                deadline,
            )
        finally:
            daemon.stop()

        # Every run was launched by the daemon: by the sensors and the automation, which all
        # succeeded, or by an hourly schedule the test's minutes happened to cross.
        runs = instance.get_runs()
        by_sensor = [r for r in runs if SENSOR_NAME_TAG in r.tags]
        assert {r.tags[SENSOR_NAME_TAG] for r in by_sensor} == {
            f"{prefix}_export_sensor"
            for prefix in ("broadlog", "profiles", "non_deliverables", "preferences")
        } | {
            "suppression_list_automation",
            "aep_audience_export_sensor",
            "destination_export_sensor",
        }
        assert {r.status for r in by_sensor} == {DagsterRunStatus.SUCCESS}
        assert all(SENSOR_NAME_TAG in r.tags or SCHEDULE_NAME_TAG in r.tags for r in runs)
        failed = [r.job_name for r in runs if r.status == DagsterRunStatus.FAILURE]
        assert failed == []

    # The file ledger, in the deployment's Postgres: each Campaign export processed once.
    conn = postgres.connect(one_host.db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT name, status FROM rtcdp_file_versions WHERE name = ANY(%s)",
                (sorted(exports),),
            )
            ledger = sorted(cur.fetchall())
    finally:
        conn.close()
    assert ledger == sorted((name, "processed") for name in exports)
