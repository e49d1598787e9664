"""`duplicate_registration`'s Arrow figures equal its per-record reference on the same tokens.

The Campaign side is `push_subscriptions` partitions (platform codes as Campaign writes them,
APNs tokens in upper case and with spaces that the normalisation folds, one token re-registered
under another app in a later partition, an unknown platform code, missing app IDs); the AEP side
is an `aep_push_tokens` partition of more than one Parquet batch, with tokens repeated under
other apps.
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from asset_checks.mobile_push import duplicate_registration as check
from resources.drop_zones import LocalDropZone
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.mobile_push.push_token_records import DATASET as AEP_DATASET
from rtcdp_assets.shared import push_token_formats, xdm
from tests import per_record_reference as reference

APNS = [f"{i:064x}" for i in range(1, 6)]
FCM = [f"fcm-token:APA91b{i:0140d}" for i in range(1, 6)]


def _put(warehouse: Warehouse, tmp: Path, dataset: str, pk: str, table: pa.Table) -> None:
    local = tmp / f"{dataset}-{pk}.parquet"
    pq.write_table(table, local)
    warehouse.put_file(dataset, pk, "data.parquet", local)


def campaign_partitions() -> dict[str, pa.Table]:
    first = pa.table(
        {
            "app_id": ["app.ios", "app.ios", "app.android", None, "app.android", ""],
            "token": [APNS[0].upper(), f" {APNS[1]} ", FCM[0], FCM[1], FCM[2], APNS[4]],
            "platform": ["iOS", "iOS", "Android", "Android", "Android", "iOS"],
        }
    )
    later = pa.table(
        {
            "app_id": ["app.ios.beta", "app.android", "app.other"],
            "token": [APNS[0], FCM[3], "tok-unknown-platform"],
            "platform": ["iOS", "Android", "Windows"],
        }
    )
    return {"2026-11-30-00": first, "2026-11-30-04": later}


def aep_partition() -> pa.Table:
    # Enough rows for several Parquet batches; the tokens that matter sit in the first and last.
    filler = [f"fcm-filler-{i}" for i in range(70_000)]
    tokens = [APNS[0], APNS[1], FCM[0], *filler, APNS[0], FCM[2], FCM[3], APNS[4], FCM[1]]
    apps = ["aep.ios", "aep.ios", "aep.android", *["aep.filler"] * len(filler)]
    apps += ["aep.ios.second", "aep.android", "aep.android", "aep.ios", "aep.android"]
    return pa.table({"token": tokens, "app_id": apps})


def test_duplicate_registration_equals_the_per_record_reference(tmp_path: Path) -> None:
    warehouse = Warehouse(zone=LocalDropZone(root=str(tmp_path / "warehouse")))
    settings = PipelineSettings()
    for pk, table in campaign_partitions().items():
        _put(warehouse, tmp_path, check.CAMPAIGN_PUSH_DATASET, pk, table)
    _put(warehouse, tmp_path, AEP_DATASET, "2026-11-30-04", aep_partition())
    partitions = set(campaign_partitions())

    campaign = check.campaign_tokens(warehouse, settings, partitions)
    expected_campaign = reference.campaign_tokens(
        (
            push_token_formats.normalized(
                b.column("token"), xdm.lookup(b.column("platform"), settings.push_platform_codes)
            ),
            b.column("app_id"),
        )
        for pk in sorted(partitions)
        for b in warehouse.iter_batches(check.CAMPAIGN_PUSH_DATASET, pk)
    )
    assert dict(zip(*campaign.to_pydict().values(), strict=True)) == expected_campaign

    result = check.duplicate_registration_result(warehouse, "2026-11-30-04", campaign)
    batches = list(warehouse.iter_batches(AEP_DATASET, "2026-11-30-04"))
    assert len(batches) > 1
    expected = reference.duplicate_registration(batches, expected_campaign)
    got = {k: getattr(result.metadata[k], "value", result.metadata[k]) for k in expected}
    assert got == expected
    # The case is not trivial: tokens through both routes, apps named and "unknown".
    assert expected["tokens_registered_through_both_routes"] == 7
    assert "unknown" in expected["campaign_apps_concerned"]


def test_no_campaign_tokens(tmp_path: Path) -> None:
    warehouse = Warehouse(zone=LocalDropZone(root=str(tmp_path / "warehouse")))
    _put(warehouse, tmp_path, AEP_DATASET, "2026-11-30-04", aep_partition().slice(0, 3))
    campaign = check.campaign_tokens(warehouse, PipelineSettings(), set())
    result = check.duplicate_registration_result(warehouse, "2026-11-30-04", campaign)
    assert result.passed
    assert result.metadata["aep_tokens"].value == 3
    assert result.metadata["campaign_tokens"].value == 0
