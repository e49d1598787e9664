"""Materializes one broadLog partition in a process of its own, so a fault test can SIGKILL it.

Usage: python -m tests.campaign_to_aep.fault_runner '<json config>' (see `runner_config` in
test_faults.py). Prints `started` once the run begins, then the run's success as JSON.
"""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance, materialize
from dagster_azure.blob import AzureBlobStorageKeyCredential, AzureBlobStorageResource

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from resources import AzureBlobDropZone, FileLedger, PipelineSettings, SftpDropZone, Warehouse
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs


def main(raw: str) -> int:
    cfg = json.loads(raw)
    storage = AzureBlobStorageResource(
        account_url=cfg["account_url"],
        credential=AzureBlobStorageKeyCredential(key=cfg["account_key"]),
    )
    resources = {
        "campaign_sftp": SftpDropZone(**cfg["sftp"]),
        "aep_landing": AzureBlobDropZone(storage=storage, container=cfg["landing_container"]),
        "warehouse": Warehouse(
            zone=AzureBlobDropZone(storage=storage, container=cfg["warehouse_container"])
        ),
        # Whole files, uploaded at once: rule `rename` (no marker needed).
        "settings": PipelineSettings(file_settle_seconds=0, campaign_export_completion="rename"),
        "file_ledger": FileLedger(url=cfg["ledger_url"]),
    }
    print("started", flush=True)
    result = materialize(
        [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
        partition_key=cfg["partition"],
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    print(json.dumps({"success": result.success}), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
