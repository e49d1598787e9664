"""Clean sample exports never repeat an XDM `_id`, whatever their size: non_deliverables
(entries drawn from the recipient pool) and push_subscriptions (more rows than subscribers)
at sizes where the generator used to repeat them, through the pipeline's own parse and XDM
mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_flow
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_flow
from rtcdp_assets.shared.ingest import FileResult, ingest_file
from rtcdp_dev import sample_data as sd
from rtcdp_dev.sample_data.common import DEFAULT_BENCH_WINDOW

FLOWS = {"non_deliverables": non_deliverables_flow, "push_subscriptions": push_subscriptions_flow}
# What each mapping builds `_id` from (non_deliverables_to_xdm, push_subscriptions_to_xdm).
ID_KEYS = {
    "non_deliverables": ("address_id", "last_modified"),
    "push_subscriptions": ("subscription_id", "last_modified"),
}


def typed_and_xdm(flow: CampaignExportFlow, path: Path) -> tuple[FileResult, pa.Table, pa.Array]:
    """The typed rows the pipeline keeps of `path` and the `_id`s its XDM mapping gives them."""
    settings = PipelineSettings()
    result = FileResult(source_file=path.name, layout="")
    good: list[pa.RecordBatch] = []
    with path.open("rb") as stream:
        for part in ingest_file(
            stream,
            source_file=path.name,
            fmt=flow.fmt,
            allowed_overrides=flow.allowed_codes(settings),
            result=result,
            row_rules=flow.row_rules(settings),
        ):
            good.append(part.good)
    table = pa.Table.from_batches(good, schema=flow.fmt.typed_schema)
    ids = pa.chunked_array(
        [flow.to_xdm(batch, settings).column("_id") for batch in table.to_batches()], pa.string()
    )
    return result, table, ids


def repeated_keys(table: pa.Table, keys: tuple[str, ...]) -> int:
    return table.num_rows - table.group_by(list(keys)).aggregate([]).num_rows


@pytest.mark.parametrize("cut_after", [None, timedelta(seconds=59)])
@pytest.mark.parametrize("dataset", list(FLOWS))
def test_a_large_clean_export_has_no_repeated_id(dataset, cut_after, tmp_path):
    # 300,000 rows: 6x the recipient pool (non_deliverables repeated 25 `_id`s at 200,000
    # rows), 18x push_subscriptions' subscribers (one row per subscription up to 16,226).
    # Cut after 59 s (a window containing `now`), 5,000 rows share each second, as 1 M rows
    # in a whole window share them at the ends of push_subscriptions' rounds.
    flow = FLOWS[dataset]
    assert flow.column_lineage["_id"] == ID_KEYS[dataset]
    path = tmp_path / sd.dataset_file_name(dataset, DEFAULT_BENCH_WINDOW)
    now = DEFAULT_BENCH_WINDOW + cut_after if cut_after else None
    stats = sd.stream_dataset(dataset, path, 300_000, seed=42, defect_rate=0.0, now=now)
    result, table, ids = typed_and_xdm(flow, path)
    assert stats.rows == result.rows_out == 300_000 and result.rows_rejected == 0
    assert repeated_keys(table, ID_KEYS[dataset]) == 0
    assert pc.count_distinct(ids).as_py() == 300_000


def test_more_push_rows_than_subscribers_are_further_subscriptions(tmp_path):
    subscribers = sd.push_devices(42).who.size
    path = tmp_path / "push.csv"
    sd.stream_dataset("push_subscriptions", path, 3 * subscribers, seed=42, defect_rate=0.0)
    _, table, _ = typed_and_xdm(push_subscriptions_flow, path)
    assert pc.count_distinct(table.column("subscription_id")).as_py() == 3 * subscribers
    # Every subscriber comes back once a round, on another device with a token of its own.
    per_subscriber = table.group_by("subscriber_key").aggregate([("token", "count_distinct")])
    assert per_subscriber.num_rows == subscribers
    assert set(per_subscriber.column("token_count_distinct").to_pylist()) == {3}
    assert pc.count_distinct(table.column("token")).as_py() == 3 * subscribers


def test_non_deliverables_crowded_into_seconds_across_batches(tmp_path):
    # A window cut 2 s after its start: 60,000 rows in 3 seconds, batches of 7,000 rows, so
    # batches share a second and most addresses are drawn several times in one second.
    now = DEFAULT_BENCH_WINDOW + timedelta(seconds=2)
    path = tmp_path / "nd.csv"
    sd.stream_dataset(
        "non_deliverables", path, 60_000, seed=3, defect_rate=0.0, now=now, batch_rows=7_000
    )
    result, table, ids = typed_and_xdm(non_deliverables_flow, path)
    assert result.rows_out == 60_000
    seconds = pc.unique(table.column("last_modified")).to_pylist()
    assert len(seconds) == 3
    assert repeated_keys(table, ID_KEYS["non_deliverables"]) == 0
    assert pc.count_distinct(ids).as_py() == 60_000


def test_non_deliverables_refuses_more_rows_in_a_second_than_addresses(tmp_path):
    # Window cut at its start: one second for every row, and 60,000 rows hold ~51,600
    # emails, more than the 50,000 pool recipients have.
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="one second"):
        sd.stream_dataset(
            "non_deliverables", tmp_path / "nd.csv", 60_000, seed=3, defect_rate=0.0, now=start
        )
    assert not (tmp_path / "nd.csv").exists()
