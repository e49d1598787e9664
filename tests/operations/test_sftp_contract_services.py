"""The Campaign contract's SFTP limits on the real sshd: exports uploaded by OpenSSH's own `sftp`
client (file, then its `.done` marker, times preserved), ingested, archived, then deleted by
retention only once their partition is stored; our import files removed when Campaign's
workflow (here the `sftp` client) deletes their marker; uploads refused at 95 % of the quota."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance

from asset_checks.operations.sftp_checks import quota_result
from resources import embedded_resources
from resources.file_ledger import FileLedger
from rtcdp_assets.operations.sftp_housekeeping import run_housekeeping
from rtcdp_assets.operations.upload_resume import deferred_uploads
from rtcdp_assets.shared.campaign_sftp_storage import UploadRefused
from tests.operations.sftp_contract_helpers import (
    BROADLOG,
    assert_removal_recorded,
    broadlog_csv,
    create_previous_release_table,
    later,
    upload,
)
from tests.runs import materialize_partition
from tests.zones import sftp_zone

pytestmark = pytest.mark.integration


def sftp_client(sshd, tmp_path: Path, *commands: str) -> None:
    """Run OpenSSH's `sftp` in batch mode; every command must succeed."""
    batch = tmp_path / f"batch-{uuid.uuid4().hex[:6]}.txt"
    batch.write_text("\n".join(commands) + "\n")
    done = subprocess.run(
        sshd.sftp_command(batch), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def campaign_drops(sshd, tmp_path: Path, base: str, name: str, content: bytes) -> None:
    """Campaign's export workflow: the file, then its empty `.done` marker, written an hour ago
    (`put -p` keeps the local times, so no test waits for a settle window)."""
    local = tmp_path / name
    local.write_bytes(content)
    marker = tmp_path / f"{name}.done"
    marker.write_bytes(b"")
    hour_ago = time.time() - 3600
    for path in (local, marker):
        os.utime(path, (hour_ago, hour_ago))
    sftp_client(
        sshd,
        tmp_path,
        f"-mkdir {base}",
        f"-mkdir {base}/export",
        f"put -p {local} {base}/export/{name}",
        f"put -p {marker} {base}/export/{name}.done",
    )


@pytest.fixture
def sftp_env(sshd, tmp_path):
    base = f"t-{uuid.uuid4().hex[:8]}"
    resources = {
        **embedded_resources(tmp_path, campaign_sftp_quota_bytes=4000),
        "campaign_sftp": sftp_zone(sshd, base_path=base),
        "_tmp": str(tmp_path),
    }
    yield base, resources
    resources["campaign_sftp"].close()


def test_retention_on_sftp_deletes_only_stored_partitions_sources(sshd, tmp_path, sftp_env):
    base, resources = sftp_env
    zone, ledger, warehouse = (resources[k] for k in ("campaign_sftp", "file_ledger", "warehouse"))
    settings, instance = resources["settings"], DagsterInstance.ephemeral()
    for hour in (8, 12):
        campaign_drops(
            sshd, tmp_path, base, f"broadLog_20261123_{hour:02d}00.csv", broadlog_csv(hour)
        )
        pk = f"2026-11-23-{hour:02d}:00"
        assert materialize_partition(BROADLOG, resources, pk, instance).success
    assert len(zone.list("export/archive/broadlog")) == 2
    (tmp_path / "warehouse" / "broadlog" / "2026-11-23-12:00" / "manifest.json").unlink()

    assert run_housekeeping(zone, ledger, warehouse, settings, later(days=14))["files_deleted"] == 0
    done = run_housekeeping(zone, ledger, warehouse, settings, later(days=16))
    assert (done["archived_versions_removed"], done["archived_versions_held"]) == (1, 1)
    assert [e.name.split("@")[0] for e in zone.list("export/archive/broadlog")] == [
        "broadLog_20261123_1200.csv"
    ]
    assert not [e for e in zone.walk("export/markers") if "_0800" in e.name]
    rows = {r.version.name: r for r in ledger.rows("broadlog")}
    assert rows["broadLog_20261123_0800.csv"].removed_reason.startswith("archive_retention")
    assert rows["broadLog_20261123_1200.csv"].removed_at is None


def test_imports_on_sftp_go_when_campaign_deletes_the_marker_and_the_quota_holds(
    sshd, tmp_path, sftp_env
):
    base, resources = sftp_env
    zone, ledger, warehouse = (resources[k] for k in ("campaign_sftp", "file_ledger", "warehouse"))
    settings = resources["settings"]
    name = "aep_audience_s1_20261123_080000.csv"
    upload(resources, zone, name, b"r" * 3000)  # 3,000 + marker of 4,000: 75 %
    assert quota_result(zone, settings).passed
    upload(resources, zone, "aep_audience_s2_20261123_080000.csv", b"s" * 200)  # > 80 %
    assert quota_result(zone, settings).severity.value == "WARN"
    with pytest.raises(UploadRefused):
        upload(resources, zone, "aep_audience_s3_20261123_080000.csv", b"t" * 600)
    assert zone.stat("import/aep_audience_s3_20261123_080000.csv") is None
    assert len(deferred_uploads(ledger, zone.describe())) == 1
    # Campaign's import workflow loaded the first file and deleted its marker
    sftp_client(sshd, tmp_path, f"rm {base}/import/{name}.done")
    run_housekeeping(zone, ledger, warehouse, settings, later(hours=1))
    assert zone.stat(f"import/{name}") is None
    [removed] = [r for r in ledger.rows() if r.removed_at is not None]
    assert removed.removed_reason == "consumed: Campaign's import workflow removed the marker"
    # room again: the refused file goes up now
    upload(resources, zone, "aep_audience_s3_20261123_080000.csv", b"t" * 600)
    assert deferred_uploads(ledger, zone.describe()) == []


def test_the_ledger_gains_its_removal_columns_on_an_existing_postgres_table(postgres):
    db = postgres.create_database(f"ledger_{uuid.uuid4().hex[:8]}")
    url = (
        f"postgresql+psycopg2://{postgres.superuser}:{postgres.password}@"
        f"{postgres.host}:{postgres.port}/{db}"
    )
    create_previous_release_table(url)
    assert_removal_recorded(FileLedger(url=url))
