"""What the Campaign SFTP contract tests share: a broadLog export, an import file staged in the
warehouse and uploaded through the shared upload path, and the clock moved forward."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from resources.drop_zones import DropZone, Entry
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.shared.campaign_import_files import upload_verified
from rtcdp_assets.shared.campaign_sftp_storage import UploadGuard
from tests.runs import campaign_assets_and_checks

BROADLOG = campaign_assets_and_checks(broadlog_defs)
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel\n"
)


def broadlog_csv(hour: int, rows: int = 3) -> bytes:
    """A valid broadLog export of `rows` rows in the window starting at `hour` on 23 Nov."""
    lines = [
        f"{hour * 100 + i},10,{100 + i},CUST-{i},user{i}@example.com,1,0,0,"
        f"2026-11-23 {hour:02d}:{i:02d}:00,Newsletter"
        for i in range(1, rows + 1)
    ]
    return (HEADER + "\n".join(lines) + "\n").encode()


def later(days: float = 0, hours: float = 0) -> datetime:
    """The clock `days` and `hours` from now: retention is tested by moving time, not waiting."""
    return datetime.now(UTC) + timedelta(days=days, hours=hours)


def upload(
    resources: dict[str, Any],
    zone: DropZone,
    name: str,
    content: bytes,
    guard_for: str = "profile_import",
    run_id: str | None = "run-1",
) -> Entry:
    """`content` staged in the warehouse, then uploaded to `<import>/<name>` through
    `upload_verified` with the storage guard, as the Campaign import assets do."""
    warehouse: Warehouse = resources["warehouse"]
    settings: PipelineSettings = resources["settings"]
    ledger: FileLedger = resources["file_ledger"]
    staged = Path(resources["_tmp"]) / name
    staged.write_bytes(content)
    warehouse.put_file("staged_import", "s1", name, staged)
    sha = hashlib.sha256(content).hexdigest()
    guard = UploadGuard(zone, settings, ledger, guard_for, None, run_id)
    return upload_verified(
        warehouse,
        zone,
        ("staged_import", "s1", name),
        f"{settings.campaign_import_folder}/{name}",
        sha,
        {"file": name, "rows": 1, "sha256": sha},
        guard,
    )


def create_previous_release_table(url: str) -> None:
    """The ledger table as the release before `removed_at` created it, with one archived row."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE rtcdp_file_versions (zone VARCHAR(512), folder VARCHAR(1024), "
                "name VARCHAR(512), identity VARCHAR(256), dataset VARCHAR(128) NOT NULL, "
                "size BIGINT NOT NULL, modified VARCHAR(40) NOT NULL, "
                "status VARCHAR(16) NOT NULL, in_folder BOOLEAN NOT NULL, "
                "location VARCHAR(2048), sha256 VARCHAR(64), rows BIGINT, "
                "partition VARCHAR(64), run_id VARCHAR(64), reason TEXT, duplicate_of TEXT, "
                "first_seen VARCHAR(40) NOT NULL, updated VARCHAR(40) NOT NULL, "
                "PRIMARY KEY (zone, folder, name, identity))"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO rtcdp_file_versions VALUES ('z', 'export', 'a.csv', '1', "
                "'broadlog', 3, '2026-11-23T08:00:00+00:00', 'processed', FALSE, "
                "'export/archive/broadlog/a.csv@1', 'abc', 3, '2026-11-23-08:00', 'r', NULL, "
                "NULL, '2026-11-23T08:00:00+00:00', '2026-11-23T08:00:00+00:00')"
            )
        )
    engine.dispose()


def assert_removal_recorded(ledger: FileLedger) -> None:
    """The old row reads with no removal, then records one."""
    [row] = ledger.rows()
    assert row.removed_at is None and row.status == "processed"
    ledger.record_removal(row.version, later(), "archive_retention: test")
    [after] = ledger.rows()
    assert after.removed_reason == "archive_retention: test" and after.removed_at is not None
