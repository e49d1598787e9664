"""profile_import / personalization_import on the embedded default: real local zones, real
warehouse, the Campaign SFTP stand-in; CSV and Parquet sources with bad rows of every kind."""

import gzip
import json
import os
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    define_asset_job,
    materialize,
)

from asset_checks.customer_to_campaign.import_checks import (
    customer_import_checks,
    personalization_import_checks,
    profile_import_checks,
)
from resources import LocalDropZone, PipelineSettings, embedded_resources
from rtcdp_assets.customer_to_campaign.customer_imports import (
    customer_import_defs,
    personalization_import,
    profile_import,
)
from tests.drop_files import write_settled
from tests.runs import evaluate_sensor

PROFILE_HEADER = (
    "external_id,email,first_name,last_name,mobile_phone,birth_date,country_code,city,zip_code"
)


@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=5)
    resources["customer_source"] = LocalDropZone(root=str(tmp_path / "customer_source"))
    return tmp_path, resources


def drop(root, folder: str, name: str, data: bytes, age: float = 60) -> None:
    write_settled(root / "customer_source" / folder / name, data, age)


def run(resources, instance, *defs):
    return materialize(list(defs), resources=resources, instance=instance, raise_on_error=False)


def import_dir(root):
    return root / "campaign_sftp" / "import"


def _profiles(root) -> None:
    drop(
        root,
        "profiles",
        "a_crm.csv",
        (
            PROFILE_HEADER
            + "\n"
            + 'C-3,Ann@Example.COM,Ann,"O\'Brien, Jr.",+33612345678,1980-02-29,fr,Paris,75001\n'
            + "C-1,bo@example.org,Bo,Lee,,,,,\n"
            + ",nokey@example.org,No,Key,,,,,\n"  # missing_required_value
            + "C-4,not-an-email,Eve,Smith,,,,,\n"  # invalid_email
            + "C-5,eve@example.net,Eve,Smith,12-34,,,,\n"  # invalid_phone
            + "C-6,zoe@example.net,Zoë,Novák,,1990-02-30,,,\n"  # invalid_date
            + "C-7,mei@example.com,Mei,Tanaka,,,FRA,,\n"  # invalid_country_code
            + "C-2,old@example.com,Old,Address,,,,,\n"  # superseded by b_update.parquet
        ).encode(),
    )
    update = pa.table(
        {
            "external_id": ["C-2", "C-8"],
            "email": ["new@example.com", "liam@example.org"],
            "first_name": ["New", 'Jo "JJ"'],
            "birth_date": pa.array([None, "1975-12-01"]),
            "ignored_column": [1, 2],
        }
    )
    path = root / "customer_source" / "profiles" / "b_update.parquet"
    pq.write_table(update, path)
    os.utime(path, (time.time() - 60, time.time() - 60))


def test_profiles_are_validated_quarantined_reconciled_and_uploaded(env):
    root, resources = env
    _profiles(root)
    instance = DagsterInstance.ephemeral()
    result = run(resources, instance, profile_import, profile_import_checks)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata

    (csv_file,) = import_dir(root).glob("customer_profiles_*.csv")
    rows = pd.read_csv(csv_file, dtype=str, keep_default_na=False)
    assert list(rows["external_id"]) == ["C-1", "C-2", "C-3", "C-8"]  # sorted by the key
    by_id = rows.set_index("external_id")
    assert by_id.loc["C-2", "email"] == "new@example.com"  # the later file wins
    assert by_id.loc["C-3", "email"] == "ann@example.com"  # lower-cased
    assert by_id.loc["C-3", "country_code"] == "FR"  # upper-cased
    assert by_id.loc["C-3", "last_name"] == "O'Brien, Jr."
    assert by_id.loc["C-8", "first_name"] == 'Jo "JJ"'
    assert by_id.loc["C-8", "birth_date"] == "1975-12-01"

    marker = json.loads(csv_file.with_name(csv_file.name + ".done").read_text())
    assert marker["rows"] == 4 and marker["source_files"] == ["a_crm.csv", "b_update.parquet"]

    warehouse = resources["warehouse"]
    snapshot = marker["snapshot_id"]
    quarantine = warehouse.read_table("profile_import", snapshot, "quarantine.parquet")
    reasons = sorted(
        zip(
            quarantine.column("reason").to_pylist(),
            quarantine.column("line_number").to_pylist(),
            strict=True,
        )
    )
    assert reasons == [
        ("duplicate_key", 9),
        ("invalid_country_code", 8),
        ("invalid_date", 7),
        ("invalid_email", 5),
        ("invalid_phone", 6),
        ("missing_required_value", 4),
    ]
    manifest = warehouse.get_json("profile_import", snapshot, "manifest.json")
    rec = manifest["reconciliation"]
    assert rec["balanced"] and (rec["rows_in"], rec["imported"], rec["quarantined"]) == (10, 4, 6)
    assert rec["files"]["b_update.parquet"] == {
        "rows_in": 2,
        "imported": 2,
        "quarantined": 0,
        "balanced": True,
    }
    # Metadata carries counts, never the customer's values.
    (mat,) = result.asset_materializations_for_node("profile_import")
    shown = json.dumps({k: str(v.value) for k, v in mat.metadata.items()})
    assert "example" not in shown and "C-3" not in shown
    assert mat.metadata["quarantined_by_reason"].value["duplicate_key"] == 1

    # A re-run of the same snapshot writes the same bytes everywhere.
    before = {p.name: p.read_bytes() for p in import_dir(root).iterdir()}
    staged = (root / "warehouse" / "profile_import" / snapshot / "quarantine.parquet").read_bytes()
    assert run(resources, instance, profile_import).success
    assert {p.name: p.read_bytes() for p in import_dir(root).iterdir()} == before
    again = root / "warehouse" / "profile_import" / snapshot / "quarantine.parquet"
    assert again.read_bytes() == staged


def test_personalization_codes_ranges_and_gzip(env):
    root, resources = env
    text = (
        "offer_code,external_id,preferred_channel,preferred_language,send_hour_utc,offer_expiry\n"
        "SPRING,C-1,email,fr-FR,9,2026-12-31\n"
        "X,C-2,pigeon,en,9,\n"  # unknown_code:preferred_channel
        "X,C-3,sms,english,9,\n"  # invalid_language
        "X,C-4,sms,en,24,\n"  # out_of_range:send_hour_utc
        "X,C-5,sms,en,nine,\n"  # invalid_integer
        "X,C-6,push,,,\n"
    )
    drop(root, "personalization", "next_best.csv.gz", gzip.compress(text.encode(), mtime=0))
    instance = DagsterInstance.ephemeral()
    result = run(resources, instance, personalization_import, personalization_import_checks)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    (csv_file,) = import_dir(root).glob("customer_personalization_*.csv")
    assert csv_file.read_text().splitlines() == [
        "external_id,preferred_channel,preferred_language,send_hour_utc,loyalty_tier,"
        "offer_code,offer_expiry",
        "C-1,email,fr-FR,9,,SPRING,2026-12-31",
        "C-6,push,,,,X,",
    ]
    (mat,) = result.asset_materializations_for_node("personalization_import")
    assert mat.metadata["quarantined_by_reason"].value == {
        "invalid_integer": 1,
        "invalid_language": 1,
        "out_of_range:send_hour_utc": 1,
        "unknown_code:preferred_channel": 1,
    }


def test_an_unreadable_file_blocks_the_whole_snapshot(env):
    root, resources = env
    drop(root, "profiles", "good.csv", (PROFILE_HEADER + "\nC-1,a@example.com,,,,,,,\n").encode())
    drop(root, "profiles", "no_key.csv", b"email,first_name\nb@example.com,B\n")
    result = run(resources, DagsterInstance.ephemeral(), profile_import)
    assert not result.success
    assert not import_dir(root).exists() or not list(import_dir(root).iterdir())
    (manifest_path,) = (root / "warehouse" / "profile_import").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "blocked"
    assert manifest["reconciliation"]["unreadable_files"] == {"no_key.csv": "unknown_layout"}
    # the ledger records both versions' fates; the customer's files stay where they are
    fates = {r.version.name: (r.status, r.reason, r.rows) for r in resources["file_ledger"].rows()}
    assert fates == {
        "good.csv": ("processed", None, 1),
        "no_key.csv": ("quarantined", "unknown_layout", None),
    }
    assert (root / "customer_source" / "profiles" / "no_key.csv").exists()


def test_files_still_being_written_wait_and_an_empty_folder_uploads_nothing(env):
    root, resources = env
    instance = DagsterInstance.ephemeral()
    result = run(resources, instance, profile_import, profile_import_checks)
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    drop(
        root,
        "profiles",
        "fresh.csv",
        (PROFILE_HEADER + "\nC-1,a@example.com,,,,,,,\n").encode(),
        age=0,
    )
    drop(root, "profiles", "upload.csv.part", b"partial", age=60)
    assert run(resources, instance, profile_import).success
    assert not import_dir(root).exists() or not list(import_dir(root).iterdir())


def test_check_fails_when_the_uploaded_file_was_changed(env):
    root, resources = env
    drop(root, "profiles", "p.csv", (PROFILE_HEADER + "\nC-1,a@example.com,,,,,,,\n").encode())
    instance = DagsterInstance.ephemeral()
    assert run(resources, instance, profile_import).success
    (csv_file,) = import_dir(root).glob("customer_profiles_*.csv")
    csv_file.write_bytes(csv_file.read_bytes() + b"C-9,x@example.com,,,,,,,\n")
    # The check alone, as a guardrail job would run it after the upload.
    job = define_asset_job("recheck", selection=AssetSelection.checks(profile_import_checks))
    definitions = Definitions(
        assets=customer_import_defs.assets,
        asset_checks=customer_import_checks,
        jobs=[job],
        resources=resources,
    )
    result = definitions.resolve_job_def("recheck").execute_in_process(
        instance=instance, raise_on_error=False
    )
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert any("differs" in p for p in check.metadata["problems"].value)


def test_customer_import_definitions_load(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["customer_source"] = LocalDropZone(root=str(tmp_path / "customer_source"))
    defs = Definitions(
        assets=customer_import_defs.assets,
        asset_checks=customer_import_checks,
        jobs=customer_import_defs.jobs,
        sensors=customer_import_defs.sensors,
        resources=resources,
    )
    assert defs.resolve_job_def("customer_import_job")
    assert defs.resolve_sensor_def("customer_source_sensor")


def test_sensor_requests_one_run_per_changed_dataset(env):
    root, resources = env
    sensor_def = customer_import_defs.sensors[0]

    def tick():
        return evaluate_sensor(sensor_def, resources, DagsterInstance.ephemeral())

    assert tick().skip_reason.skip_message == "no customer files"  # (with its cursor)
    drop(root, "profiles", "p.csv", (PROFILE_HEADER + "\nC-1,a@example.com,,,,,,,\n").encode())
    drop(root, "personalization", "n.csv", b"external_id\nC-1\n", age=0)  # still being written
    (first,) = tick().run_requests
    assert first.asset_selection == [profile_import.key]
    assert tick().run_requests[0].run_key == first.run_key  # same files, same key: runs once
    drop(root, "profiles", "q.csv", (PROFILE_HEADER + "\nC-2,b@example.com,,,,,,,\n").encode())
    assert tick().run_requests[0].run_key != first.run_key
