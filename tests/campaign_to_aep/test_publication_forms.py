"""The two publication forms (`aep_publication_format`, docs/formats.md §h3): every Campaign
dataset published as XDM Parquet and as JSON Lines, both read back and validated against the
official XDM schemas; the same records in both; a re-run that leaves the landing alone; a
switch of form that leaves one data file per partition."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_defs
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.xdm_json import json_lines
from rtcdp_assets.shared.xdm_parquet import (
    aep_parquet_batch,
    parquet_type_problems,
)
from rtcdp_dev import sample_data as sd
from tests.drop_files import drop_campaign_export
from tests.results import landing_files, materialization, read_published
from tests.runs import campaign_assets_and_checks, materialize_partition

PK = "2026-11-23-08:00"
WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 19, tzinfo=UTC)
DEFS = {
    "broadlog": broadlog_defs,
    "tracking_log": tracking_log_defs,
    "non_deliverables": non_deliverables_defs,
    "preferences": preferences_defs,
    "profiles": profiles_defs,
    "push_subscriptions": push_subscriptions_defs,
}


def in_form(resources: dict[str, Any], form: str) -> dict[str, Any]:
    # A new resource: Dagster builds a run's resources from their init values, not a copy's.
    settings = resources["settings"].model_dump()
    return {
        **resources,
        "settings": PipelineSettings(**{**settings, "aep_publication_format": form}),
    }


def publish(defs, resources, instance, form: str):
    result = materialize_partition(
        campaign_assets_and_checks(defs), in_form(resources, form), PK, instance
    )
    assert result.success
    return result


def drop_generated(root: Path, dataset: str) -> sd.GeneratedFile:
    generated = sd.generate_dataset(
        dataset, WINDOW, 400, seed=7, layout="classic", defect_rate=0.005, now=NOW
    )
    drop_campaign_export(root, generated.name, generated.content, age_seconds=600)
    return generated


@pytest.mark.parametrize("dataset", list(DEFS))
def test_both_forms_hold_the_same_valid_records(embedded_env_with_instance, dataset):
    root, resources, instance = embedded_env_with_instance
    defs = DEFS[dataset]
    flow = defs.flow
    generated = drop_generated(root, dataset)
    schema = flow.xdm_schema()
    landing = root / "aep_landing"

    publish(defs, resources, instance, "parquet")
    parquet_path, manifest_path = flow.landing_paths(resources["settings"], PK, "parquet")
    assert parquet_path.endswith(".parquet")
    # The published columns are a subset of the dataset's schema, typed as Adobe's XDM
    # Parquet (maps as MAP, DateTime as TIMESTAMP_MILLIS, Date as DATE).
    published_schema = pq.read_schema(landing / parquet_path)
    assert parquet_type_problems(published_schema, schema) == []
    assert pa.types.is_map(published_schema.field("identityMap").type)
    parquet_records = read_published(landing, parquet_path)
    assert len(parquet_records) == generated.expected_valid > 0
    report = schema.validate_many(parquet_records, fast=False)
    assert report.invalid == 0, report.examples
    manifest = json.loads((landing / manifest_path).read_text())
    parquet_bytes = (landing / parquet_path).read_bytes()
    assert manifest["format"] == "parquet" and manifest["records"] == len(parquet_records)
    assert manifest["sha256"] == hashlib.sha256(parquet_bytes).hexdigest()

    # Switch to JSON Lines: the same records; the Parquet file leaves the dataset's folder.
    publish(defs, resources, instance, "json-lines")
    json_path, _ = flow.landing_paths(resources["settings"], PK, "json-lines")
    assert json_path.endswith(".json")
    json_records = read_published(landing, json_path)
    report = schema.validate_many(json_records, fast=False)
    assert report.invalid == 0, report.examples
    assert json_records == parquet_records
    manifest = json.loads((landing / manifest_path).read_text())
    assert manifest["format"] == "json-lines" and manifest["file"] == json_path.rsplit("/")[-1]
    assert manifest["sha256"] == hashlib.sha256((landing / json_path).read_bytes()).hexdigest()
    folder = landing / json_path.rsplit("/", 1)[0]
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json", Path(json_path).name]
    # kept, not deleted, outside every dataset folder of the landing
    [kept] = (landing / flow.superseded_folder(resources["settings"], PK)).iterdir()
    assert kept.name.startswith(Path(parquet_path).name + "@")
    assert kept.read_bytes() == parquet_bytes


def test_identical_reruns_leave_the_landing_alone_in_either_form_and_switch_back(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    drop_generated(root, "broadlog")
    landing = root / "aep_landing"
    parquet_path = landing / broadlog_flow.landing_paths(resources["settings"], PK, "parquet")[0]
    json_path = landing / broadlog_flow.landing_paths(resources["settings"], PK, "json-lines")[0]

    def state(path: Path) -> tuple[bytes, int]:
        return path.read_bytes(), path.stat().st_mtime_ns

    def already(result) -> bool:
        return materialization(result, "broadlog_published").metadata["already_published"].value

    first = publish(broadlog_defs, resources, instance, "parquet")
    assert not already(first)
    before = state(parquet_path)
    again = publish(broadlog_defs, resources, instance, "parquet")
    assert already(again) and state(parquet_path) == before  # not rewritten

    assert not already(publish(broadlog_defs, resources, instance, "json-lines"))
    json_before = state(json_path)
    assert not parquet_path.exists()
    assert already(publish(broadlog_defs, resources, instance, "json-lines"))
    assert state(json_path) == json_before

    # Back to Parquet: the same bytes as the first run (a deterministic writer), one data file.
    back = publish(broadlog_defs, resources, instance, "parquet")
    assert not already(back)
    assert parquet_path.read_bytes() == before[0]
    assert not json_path.exists()
    data_files = [p for p in landing_files(root) if "_superseded" not in p.parts]
    assert [p.name for p in data_files] == ["_manifest.json", parquet_path.name]
    superseded = [p.name.split("@")[0] for p in landing_files(root) if "_superseded" in p.parts]
    assert sorted(superseded) == [json_path.name, parquet_path.name]


def test_the_published_parquet_holds_the_stored_columns_as_stored(embedded_env_with_instance):
    """Only the columns whose XDM Parquet type differs are rebuilt: the others are the stored
    XDM partition's, value for value."""
    root, resources, instance = embedded_env_with_instance
    drop_generated(root, "broadlog")
    publish(broadlog_defs, resources, instance, "parquet")
    stored = pq.read_table(root / "warehouse" / "broadlog_xdm" / PK / "data.parquet")
    path = broadlog_flow.landing_paths(resources["settings"], PK, "parquet")[0]
    published = pq.read_table(root / "aep_landing" / path)
    assert published.column_names == stored.column_names
    for name in ("_id", "eventType", "producedBy", "directMarketing", "_experience"):
        assert published.column(name).equals(stored.column(name)), name
    assert published.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")


# -- the conversion, on crafted batches ----------------------------------------------------------


def identity_column(rows: list[dict[str, Any] | None]) -> pa.Array:
    namespaces = pa.struct([pa.field(n, pa.list_(xdm.IDENTITY_ITEM)) for n in ("Email", "ECID")])
    return pa.array(rows, namespaces)


def test_identity_map_becomes_a_map_of_the_present_namespaces():
    item = {"id": "x", "authenticatedState": "ambiguous", "primary": True}
    other = {"id": "y", "authenticatedState": "authenticated", "primary": False}
    column = identity_column(
        [
            {"Email": [item], "ECID": [other]},
            {"Email": None, "ECID": [other]},
            {"Email": None, "ECID": None},  # no entry left: a null map, as JSON drops it
            None,
        ]
    )
    batch = pa.RecordBatch.from_arrays([column], names=["identityMap"])
    converted = aep_parquet_batch(batch, broadlog_flow.xdm_schema())
    assert converted.column(0).to_pylist() == [
        [("Email", [item]), ("ECID", [other])],
        [("ECID", [other])],
        None,
        None,
    ]
    # the records are the JSON form's, also on a slice (an offset into the arrays)
    assert xdm.to_records(converted.slice(1)) == xdm.to_records(batch.slice(1))


def test_timestamps_are_milliseconds_and_dates_are_dates():
    from rtcdp_assets.campaign_to_aep.profiles import profiles_flow

    person = pa.array(
        [{"birthDate": "1990-04-30"}, {"birthDate": None}, None],
        pa.struct([pa.field("birthDate", pa.string())]),
    )
    batch = pa.RecordBatch.from_arrays([person], names=["person"])
    converted = aep_parquet_batch(batch, profiles_flow.xdm_schema())
    assert converted.schema.field("person").type == pa.struct([pa.field("birthDate", pa.date32())])
    assert parquet_type_problems(converted.schema, profiles_flow.xdm_schema()) == []
    assert [r.get("person") for r in xdm.to_records(converted)][2] is None

    when = pa.array(
        [datetime(2026, 11, 23, 8, 1, 2, 345678, tzinfo=UTC)], pa.timestamp("us", "UTC")
    )
    events = pa.RecordBatch.from_arrays([when], names=["timestamp"])
    converted = aep_parquet_batch(events, broadlog_flow.xdm_schema())
    assert converted.column(0).type == pa.timestamp("ms", tz="UTC")
    # truncated as the JSON text is
    assert xdm.to_records(converted) == xdm.to_records(events)


def test_type_problems_name_every_column_aep_would_refuse():
    schema = broadlog_flow.xdm_schema()
    wrong = pa.schema(
        [
            pa.field("notInXdm", pa.string()),
            pa.field("timestamp", pa.timestamp("us", tz="UTC")),
            pa.field("identityMap", pa.struct([pa.field("Email", pa.list_(xdm.IDENTITY_ITEM))])),
            pa.field("eventType", pa.int64()),
            pa.field("_experience", pa.struct([pa.field("campaign", pa.struct([]))])),
        ]
    )
    problems = parquet_type_problems(wrong, schema)
    assert [p.split(":")[0] for p in problems] == [
        "notInXdm",
        "timestamp",
        "identityMap",
        "eventType",
    ]


def test_json_lines_is_the_canonical_json_of_each_record():
    batch = pa.RecordBatch.from_pylist(
        [{"b": 1, "a": {"z": None, "y": "é"}}, {"b": None, "a": None}]
    )
    assert json_lines(batch) == '{"a":{"y":"é"},"b":1}\n{}\n'.encode()
