"""The Campaign setup (docs/campaign-setup.md / .json) against the code it is derived from:
the committed files equal the generator's output, every column the readers need is there under
both layouts' names, files named and marked as documented are what the sensors read, and the
import columns are the ones the pipeline actually writes."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import materialize

from resources import PipelineSettings, embedded_resources
from resources.drop_zones import Entry
from rtcdp_assets.aep_to_campaign.campaign_audience_import import import_file as audience_file
from rtcdp_assets.aep_to_campaign.campaign_audience_import.csv_writer import csv_bytes
from rtcdp_assets.aep_to_campaign.campaign_audience_import.upload import publish_import
from rtcdp_assets.customer_to_campaign.customer_imports import (
    personalization_import,
    profile_import,
)
from rtcdp_assets.definitions import defs
from rtcdp_assets.platform_setup.campaign import campaign_setup
from rtcdp_assets.platform_setup.campaign.cli import main, render
from rtcdp_assets.platform_setup.campaign.exports import EXPORT_FLOWS
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.ingest import detect_layout
from rtcdp_assets.shared.partitions import four_hourly_partitions
from tests.drop_files import write_settled

REPO = Path(__file__).resolve().parents[2]
SETUP = campaign_setup(PipelineSettings())
EXPORTS = {w["dataset"]: w for w in SETUP["exports"]}
IMPORTS = {w["asset"]: w for w in SETUP["imports"]}
FLOWS = {flow.dataset: flow for flow in EXPORT_FLOWS}


def test_committed_docs_are_what_the_generator_writes_now():
    stale = (
        "docs/campaign-setup.{} is stale: run rtcdp-campaign-setup {}--out docs/campaign-setup.{}"
    )
    assert (REPO / "docs/campaign-setup.md").read_text() == render("md"), stale.format(
        "md", "", "md"
    )
    assert (REPO / "docs/campaign-setup.json").read_text() == render("json"), stale.format(
        "json", "--format json ", "json"
    )


def test_the_command_writes_markdown_to_stdout_and_json_to_a_file(tmp_path, capsys):
    assert main([]) == 0
    assert capsys.readouterr().out == render("md")
    out = tmp_path / "setup.json"
    assert main(["--format", "json", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(json.dumps(SETUP))


def test_every_campaign_export_sensor_has_its_workflow():
    sensors = {
        s.name
        for s in defs.sensors
        if (s.description or "").startswith("Watches the Campaign SFTP export folder")
    }
    assert sensors == {w["sensor"] for w in SETUP["exports"]}
    assert len(sensors) == 6


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_every_column_of_both_layouts_is_documented_under_its_own_name(dataset):
    flow, workflow = FLOWS[dataset], EXPORTS[dataset]
    columns = {c["field"]: c for c in workflow["columns"]}
    assert list(columns) == [f.name for f in flow.fmt.fields]
    layouts = {layout.name: layout for layout in flow.fmt.layouts}
    for header, field in layouts["campaign_classic"].columns.items():
        assert columns[field]["classic_header"] == header
        assert columns[field]["classic_expression"]
    for header, field in layouts["campaign_standard"].columns.items():
        assert columns[field]["standard_header"] == header
    for field in flow.fmt.required:
        assert columns[field]["required"]
        assert columns[field]["classic_header"] and columns[field]["standard_header"]
    # A file whose header is exactly the documented columns is read, in the right layout.
    for layout, key in (
        ("campaign_classic", "classic_header"),
        ("campaign_standard", "standard_header"),
    ):
        header = [c[key] for c in workflow["columns"] if c[key]]
        assert detect_layout(flow.fmt, header).name == layout
        required_only = [c[key] for c in workflow["columns"] if c["required"]]
        assert detect_layout(flow.fmt, required_only).name == layout


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_cadence_is_at_most_four_hours_and_is_the_partitions_cron(dataset):
    cadence = EXPORTS[dataset]["cadence"]
    assert 0 < cadence["every_hours"] <= 4
    assert cadence["cron_utc"] == four_hourly_partitions.cron_schedule
    assert cadence["timezone"] == "UTC"
    # Each window of the partitions is one cadence step long.
    start = datetime(2026, 11, 23, tzinfo=UTC)
    assert (
        four_hourly_partitions.time_window_for_partition_key("2026-11-23-08:00").end
        - start.replace(hour=8)
    ) == timedelta(hours=cadence["every_hours"])


def _entry(path: str, modified: datetime) -> Entry:
    return Entry(path=path, size=10, modified=modified, identity=f"10:{modified.timestamp()}")


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_files_named_and_marked_as_documented_are_read_by_the_sensor_rule(dataset):
    flow, workflow = FLOWS[dataset], EXPORTS[dataset]
    rule = CompletionRule.campaign_export(PipelineSettings())
    completion = workflow["completion"]
    assert completion["rule"] == rule.rule == "marker"
    assert completion["marker_suffix"] == rule.marker_suffix
    folder = workflow["file"]["folder"]
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    written = now - timedelta(minutes=10)
    forms = workflow["file"]["name_forms"]
    assert {f["form"] for f in forms} >= {"minutes", "seconds", "gzip"}
    for form in forms:
        name = form["example"]
        assert flow.partition_for(name) == form["partition"]
        assert re.match(workflow["file"]["regex"], name, re.IGNORECASE)
        data = _entry(f"{folder}/{name}", written)
        marker_name = completion["marker_name"].replace("<file name>", name)
        marker = _entry(f"{folder}/{marker_name}", written + timedelta(seconds=1))
        assert rule.is_marker(marker_name)
        assert rule.wait_reason(data, {data.path: data, marker.path: marker}, None, now) == ""
        assert "no completion marker" in rule.wait_reason(data, {data.path: data}, None, now)
    assert completion["marker_example"] == forms[0]["example"] + rule.marker_suffix


def test_sources_cited_are_sections_of_formats_md():
    headings = set(re.findall(r"^### (\w\d+)\.", (REPO / "docs/formats.md").read_text(), re.M))
    cited = {c["expression_source"] for w in SETUP["exports"] for c in w["columns"]}
    cited |= {w["query"]["schema_source"] for w in SETUP["exports"]}
    for source in cited - {"UNCONFIRMED"}:
        assert source.startswith("§") and source[1:] in headings, source
    assert "b8" in headings  # the workflow activities and options


def _header_and_marker(import_dir: Path, name_pattern: str) -> tuple[list[str], dict]:
    """The header of the one file in `import_dir` named by the documented pattern (its
    `<...>` placeholders as wildcards), and its marker's JSON."""
    first_part = name_pattern.split(" / ")[0]
    pattern = ".+".join(re.escape(part) for part in re.split(r"<[^>]+>", first_part))
    files = [p for p in import_dir.iterdir() if re.fullmatch(pattern, p.name)]
    assert len(files) == 1, (pattern, sorted(p.name for p in import_dir.iterdir()))
    with files[0].open(newline="") as f:
        header = next(csv.reader(f))
    (suffix,) = {w["marker"]["suffix"] for w in SETUP["imports"]}
    marker = files[0].with_name(files[0].name + suffix)
    return header, json.loads(marker.read_text())


def test_customer_import_columns_are_what_the_pipeline_writes(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    write_settled(
        tmp_path / "customer_source/profiles/crm.csv",
        "external_id,email,first_name,last_name,mobile_phone,birth_date,country_code,city,"
        "zip_code\nC-1,ann@example.com,Ann,Lee,+33612345678,1980-02-29,fr,Paris,75001\n",
    )
    write_settled(
        tmp_path / "customer_source/personalization/p.csv",
        "external_id,preferred_channel,preferred_language,send_hour_utc,loyalty_tier,"
        "offer_code,offer_expiry\nC-1,email,fr-FR,9,gold,X1,2027-01-31\n",
    )
    result = materialize(
        [profile_import, personalization_import], resources=resources, raise_on_error=False
    )
    assert result.success
    import_dir = tmp_path / "campaign_sftp" / IMPORTS["profile_import"]["file"]["folder"]
    for asset in ("profile_import", "personalization_import"):
        workflow = IMPORTS[asset]
        header, marker = _header_and_marker(import_dir, workflow["file"]["name_pattern"])
        assert header == [c["column"] for c in workflow["columns"]]
        assert marker["rows"] == 1 and marker["file"] and marker["sha256"]
        assert workflow["reconciliation"]["key_column"] in header


def test_audience_import_columns_are_what_the_upload_writes(tmp_path):
    resources = embedded_resources(tmp_path)
    warehouse, settings = resources["warehouse"], PipelineSettings()
    audience, stamp = "5e1f0c2a-7d4b-4c3e-9f8a-0b1c2d3e4f50", "20261204_200512"
    table = pa.table({c: ["1"] for c in audience_file.IMPORT_COLUMNS})
    data = csv_bytes(table)
    name = audience_file.import_file_names(audience, stamp, 1)[0]
    staged = tmp_path / name
    staged.write_bytes(data)
    folder = f"{audience}/{stamp}"
    warehouse.put_file(audience_file.CAMPAIGN_IMPORT, folder, name, staged)
    sha = hashlib.sha256(data).hexdigest()
    warehouse.put_json(
        audience_file.CAMPAIGN_IMPORT,
        folder,
        "manifest.json",
        {
            "files": [{"name": name, "rows": 1, "bytes": len(data), "sha256": sha, "part": 1}],
            "audience_name": "",
            "export_id": "e",
            "export_time": "2026-12-04T20:05:12Z",
            "columns": list(audience_file.IMPORT_COLUMNS),
        },
    )
    publish_import(warehouse, resources["campaign_sftp"], settings, audience, stamp)
    workflow = IMPORTS[audience_file.PUBLISHED]
    import_dir = tmp_path / "campaign_sftp" / workflow["file"]["folder"]
    header, marker = _header_and_marker(import_dir, workflow["file"]["name_pattern"])
    assert header == [c["column"] for c in workflow["columns"]]
    assert marker["sha256"] == sha
    assert workflow["file"]["examples"][0] == name
    assert workflow["reconciliation"]["unknown_keys"] == "reject"
