"""The checks of each offline dataset (rtcdp_assets/customer_to_aep): the Campaign datasets'
recount on the accepted rows, and XDM conformance of the stored records, both blocking, so a
partition whose counts do not add up or whose records AEP would refuse is never published.

`offline_checks(ds)` builds them; the dataset's job runs them by selecting its assets.

A day with an unreadable file is held: its manifest lists the version quarantined by an earlier
run too (rtcdp_assets/customer_to_aep/offline_ingest.py), so ``reconciliation`` fails on every
retry and re-run. The operator resolves it by uploading a corrected file with the same name;
that run publishes the day with every file's rows. Nothing is deleted.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.partition_reconciliation import partition_check_spec, reconcile
from resources.warehouse import Warehouse
from rtcdp_assets.customer_to_aep.offline_assets import daily_partitions
from rtcdp_assets.customer_to_aep.offline_ingest import OfflineDataset


def offline_checks(ds: OfflineDataset) -> list[AssetChecksDefinition]:
    typed, xdm = AssetKey(ds.dataset), AssetKey(ds.xdm_dataset)
    specs = [
        partition_check_spec(
            "reconciliation",
            typed,
            "Per source file: rows in the file = accepted rows + quarantined rows, and no file "
            "was quarantined as unreadable. Blocks publication of an incomplete day, on every "
            "run of it: a day whose file an earlier run quarantined stays held on retries and "
            "re-runs (which end `failed`, see no_failed_versions). To resolve a held day, upload "
            "the corrected file under the same name to the dataset's folder: its run publishes "
            "the day; the unreadable version stays in <folder>/quarantine/.",
            blocking=True,
            source="project: nothing lost, counts reconcile",
            limit="rows in = rows out + rows rejected",
            partitions_def=daily_partitions,
        ),
        partition_check_spec(
            "xdm_conformance",
            xdm,
            "Every stored record is valid against the official XDM class and field groups of "
            "its mapping file (types, formats, required fields, no unknown field).",
            blocking=True,
            source="Adobe: XDM schemas (adobe/xdm, vendored); AEP refuses invalid records",
            limit="0 invalid records",
            partitions_def=daily_partitions,
        ),
    ]

    @multi_asset_check(specs=specs, name=f"{ds.dataset}_checks")
    def checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse
    ) -> Iterator[AssetCheckResult]:
        pk = context.partition_key
        yield reconcile(ds.dataset, warehouse, pk)
        table = warehouse.read_table(ds.xdm_dataset, pk)
        report = ds.mapping.xdm_schema().validate_table(table, max_examples=20)
        yield AssetCheckResult(
            asset_key=xdm,
            check_name="xdm_conformance",
            passed=report.invalid == 0,
            severity=AssetCheckSeverity.ERROR,
            description=f"{report.invalid} of {report.checked} records fail XDM validation",
            metadata={
                "checked": report.checked,
                "invalid": report.invalid,
                # Messages name paths and rules, never values (xdm_conformance "Privacy").
                "examples": MetadataValue.json([m for _, m in report.examples]),
            },
        )

    return [checks]
