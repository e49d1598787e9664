"""Malformed input, one test per case, through the typed asset and its reconciliation check.

For every case: the expected reject or quarantine reason; counts reconcile per file and per
partition (rows in = rows out + rows rejected, recounted from the stored Parquet); nothing is
deleted (each source file ends byte-identical in export/archive or export/quarantine, the
latter with a `.reason.json`).
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import paramiko
import pyarrow.parquet as pq
import pytest

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from resources import LocalDropZone, PipelineSettings, SftpDropZone, embedded_resources
from resources.drop_zones import UnsafePathError
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow import SourceFile, plan_tick
from rtcdp_assets.campaign_to_aep.export_flow.ingest_step import move_source, source_destination
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.shared import partition_rules
from tests.drop_files import drop_campaign_export
from tests.runs import materialize_partition

PK = "2026-11-23-08:00"
NAME = "broadLog_20261123_0800.csv"
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel"
)
GOOD = [
    "1,10,100,CUST-1,alice@example.com,1,0,0,2026-11-23 08:01:00,Newsletter",
    "2,10,101,CUST-2,bob@example.org,1,0,0,2026-11-23 08:02:00,Newsletter",
    "3,10,102,CUST-3,carol@example.net,1,0,0,2026-11-23 08:03:00,Newsletter",
]


# ---- helpers ----------------------------------------------------------------------------------
@pytest.fixture
def embedded_env(tmp_path: Path) -> tuple[Path, dict]:
    """The shared fixture, except that `reject_rate` never blocks: each case here rejects a
    large share of a few rows on purpose, and its row-level outcome is what is under test
    (test_reject_rate.py covers the guardrail)."""
    return tmp_path, embedded_resources(tmp_path, reject_rate_block_above=1.0)


def csv_bytes(lines: list[str], header: str = HEADER, newline: str = "\n") -> bytes:
    return (newline.join([header, *lines]) + newline).encode()


def run_typed(resources, defs=broadlog_defs, pk=PK):
    """The typed asset with its typed-asset checks (reconciliation among them)."""
    return materialize_partition(
        [defs.assets[0], campaign_export_checks(defs.flow)[0]], resources, pk
    )


def reconciliation(result):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "reconciliation")


def stored(root: Path, dataset: str = "broadlog", pk: str = PK):
    folder = root / "warehouse" / dataset / pk
    manifest = json.loads((folder / "manifest.json").read_text())
    data = pq.read_table(folder / "data.parquet")
    rejects = pq.read_table(folder / "rejects.parquet")
    return manifest, data, rejects


def assert_reconciles(root: Path, dataset: str = "broadlog", pk: str = PK):
    """rows in = rows out + rows rejected, per file (recounted) and per partition."""
    manifest, data, rejects = stored(root, dataset, pk)
    good = Counter(data.column("_source_file").to_pylist())
    bad = Counter(rejects.column("source_file").to_pylist())
    for f in manifest["files"]:
        if f["status"] == "quarantined":
            assert good[f["source_file"]] == bad[f["source_file"]] == 0
            continue
        assert f["rows_in"] == f["rows_out"] + f["rows_rejected"], f
        assert (f["rows_out"], f["rows_rejected"]) == (
            good[f["source_file"]],
            bad[f["source_file"]],
        )
        assert sum(f["reasons"].values()) == f["rows_rejected"]
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
    assert (manifest["rows_out"], manifest["rows_rejected"]) == (data.num_rows, rejects.num_rows)
    return manifest, data, rejects


def assert_nothing_deleted(root: Path, originals: dict[str, bytes], dataset: str = "broadlog"):
    """Every source file sits, byte-identical, in the archive or (with a reason) the quarantine.

    Returns {file name: quarantine reason or None}.
    """
    export = root / "campaign_sftp" / "export"
    fates: dict[str, str | None] = {}
    for name, content in originals.items():
        archived = list((export / "archive" / dataset).glob(f"{name}@*"))
        quarantined = [
            p
            for p in (export / "quarantine" / dataset).glob(f"{name}@*")
            if not p.name.endswith(".reason.json")
        ]
        assert len(archived) + len(quarantined) == 1, (name, archived, quarantined)
        moved = (archived or quarantined)[0]
        assert moved.read_bytes() == content
        assert not (export / name).exists()
        if quarantined:
            reason = json.loads(Path(f"{moved}.reason.json").read_text())
            assert reason["source_file"] == name
            fates[name] = reason["reason"]
        else:
            fates[name] = None
    return fates


def reject_rows(rejects) -> list[tuple[int, str, str | None]]:
    return [(r["line_number"], r["reason"], r["column"]) for r in rejects.to_pylist()]


# ---- encodings and line structure -------------------------------------------------------------
def test_utf8_bom_is_not_part_of_the_first_column_name(embedded_env):
    root, resources = embedded_env
    content = b"\xef\xbb\xbf" + csv_bytes(GOOD)
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    manifest, data, rejects = assert_reconciles(root)
    assert manifest["files"][0]["layout"] == "campaign_classic"
    assert data.column("broadlog_id").to_pylist() == [1, 2, 3]
    assert rejects.num_rows == 0
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_crlf_line_endings_leave_no_carriage_return_in_values(embedded_env):
    root, resources = embedded_env
    content = csv_bytes(
        [*GOOD, "4,10,103,,not-an-email,1,0,0,2026-11-23 08:04:00,X"], newline="\r\n"
    )
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success
    _, data, rejects = assert_reconciles(root)
    assert data.column("delivery_label").to_pylist() == ["Newsletter"] * 3
    assert data.column("_line_number").to_pylist() == [2, 3, 4]
    assert reject_rows(rejects) == [(5, "invalid_email", "sAddress")]
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_quoted_delimiters_and_newlines_stay_inside_their_value(embedded_env):
    root, resources = embedded_env
    lines = [
        '1,10,100,CUST-1,alice@example.com,1,0,0,2026-11-23 08:01:00,"Sale, 50% off"',
        '2,10,101,CUST-2,bob@example.org,1,0,0,2026-11-23 08:02:00,"two\nlines"',
        '3,10,102,CUST-3,carol@example.net,1,0,0,2026-11-23 08:03:00,"say ""hi"""',
        "4,10,103,CUST-4,dan@example.com,1,0,0,not-a-time,after the quoted newline",
    ]
    content = csv_bytes(lines)
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success
    _, data, rejects = assert_reconciles(root)
    assert data.column("delivery_label").to_pylist() == ["Sale, 50% off", "two\nlines", 'say "hi"']
    # line numbers are CSV record numbers (header = 1), not physical lines
    assert reject_rows(rejects) == [(5, "invalid_timestamp", "tsEvent")]
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_latin1_bytes_in_a_utf8_file_reject_only_their_row(embedded_env):
    root, resources = embedded_env
    content = csv_bytes(GOOD).replace(
        b"bob@example.org,1,0,0,2026-11-23 08:02:00,Newsletter",
        b"bob@example.org,1,0,0,2026-11-23 08:02:00,Caf\xe9 cr\xe8me",
    )
    assert content != csv_bytes(GOOD)
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    _, data, rejects = assert_reconciles(root)
    assert data.column("broadlog_id").to_pylist() == [1, 3]
    assert reject_rows(rejects) == [(3, "bad_encoding", "sDeliveryLabel")]
    raw = json.loads(rejects.column("raw")[0].as_py())
    assert raw["sDeliveryLabel"] == "Caf\\xe9 cr\\xe8me"  # the bytes, recoverable for replay
    assert raw["iBroadLogId"] == "2"
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_latin1_bytes_in_the_header_quarantine_the_file(embedded_env):
    root, resources = embedded_env
    content = csv_bytes(GOOD, header=HEADER + ",sLibellX").replace(b"sLibellX", b"sLibell\xe9")
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert not reconciliation(result).passed
    manifest, _, _ = assert_reconciles(root)
    assert manifest["files"][0]["reason"] == "bad_encoding"
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: "bad_encoding"}


# ---- columns ----------------------------------------------------------------------------------
def test_missing_required_column_quarantines_the_file_naming_it(embedded_env):
    root, resources = embedded_env
    header = HEADER.replace("sAddress,", "")
    lines = [",".join(v for i, v in enumerate(line.split(",")) if i != 4) for line in GOOD]
    content = csv_bytes(lines, header=header)
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    recon = reconciliation(result)
    assert not recon.passed
    manifest, _, _ = assert_reconciles(root)
    assert manifest["files"][0]["reason"] == "unknown_layout"
    assert "address" in manifest["files"][0]["detail"]
    assert recon.metadata["files_quarantined"].value == [f"{NAME}: unknown_layout"]
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: "unknown_layout"}


def test_missing_optional_column_gives_nulls(embedded_env):
    root, resources = embedded_env
    header = HEADER.replace(",sDeliveryLabel", "")
    content = csv_bytes([line.rsplit(",", 1)[0] for line in GOOD], header=header)
    drop_campaign_export(root, NAME, content)
    assert run_typed(resources).success
    _, data, rejects = assert_reconciles(root)
    assert data.column("delivery_label").to_pylist() == [None] * 3
    assert rejects.num_rows == 0
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_extra_columns_are_ignored_and_an_extra_value_rejects_its_row(embedded_env):
    root, resources = embedded_env
    lines = [f"{line},x,y" for line in GOOD]
    lines.append("4,10,103,CUST-4,dan@example.com,1,0,0,2026-11-23 08:04:00,N,x,y,surplus")
    content = csv_bytes(lines, header=HEADER + ",sUnknown,sOther")
    drop_campaign_export(root, NAME, content)
    assert run_typed(resources).success
    _, data, rejects = assert_reconciles(root)
    assert data.column("broadlog_id").to_pylist() == [1, 2, 3]
    assert reject_rows(rejects) == [(5, "wrong_column_count", "expected 12 columns, found 13")]
    assert rejects.column("raw")[0].as_py().endswith("surplus")
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_reordered_columns_are_read_by_name(embedded_env):
    root, resources = embedded_env
    names = HEADER.split(",")
    order = list(reversed(range(len(names))))
    header = ",".join(names[i] for i in order)
    lines = [",".join(line.split(",")[i] for i in order) for line in GOOD]
    content = csv_bytes(lines, header=header)
    drop_campaign_export(root, NAME, content)
    assert run_typed(resources).success
    _, data, _ = assert_reconciles(root)
    assert data.column("address").to_pylist()[0] == "alice@example.com"
    assert data.column("recipient_id").to_pylist() == [100, 101, 102]
    assert data.column("event_date").to_pylist()[0] == datetime(2026, 11, 23, 8, 1, tzinfo=UTC)
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_duplicate_column_names_quarantine_the_file(embedded_env):
    root, resources = embedded_env
    content = csv_bytes([f"{line},again" for line in GOOD], header=HEADER + ",sDeliveryLabel")
    drop_campaign_export(root, NAME, content)
    assert not reconciliation(run_typed(resources)).passed
    assert_reconciles(root)
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: "duplicate_columns"}


# ---- values -----------------------------------------------------------------------------------
def test_wrong_types_are_rejected_with_their_reason_and_column(embedded_env):
    root, resources = embedded_env
    base = "10,100,CUST,x@example.com,1,0,0,2026-11-23 08:00:00,L"
    lines = [
        GOOD[0],
        "one," + base,  # broadlog_id
        "2,10,100,CUST,x@example.com,1,0,0,23/11/2026 08:00,L",
        "3,10,100,CUST,x@example.com,1,0,0,2026-02-30 08:00:00,L",  # impossible date
        "4,10,100,CUST,no-at-sign,1,0,0,2026-11-23 08:00:00,L",
        "5,10,100,CUST,x@example.com,1,0,99,2026-11-23 08:00:00,L",
        "6,10,,CUST,x@example.com,1,0,0,2026-11-23 08:00:00,L",
        "7,1.5,100,CUST,x@example.com,1,0,0,2026-11-23 08:00:00,L",
        "99999999999999999999," + base,  # beyond int64
    ]
    content = csv_bytes(lines)
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    _, data, rejects = assert_reconciles(root)
    assert data.column("broadlog_id").to_pylist() == [1]
    assert reject_rows(rejects) == [
        (3, "invalid_integer", "iBroadLogId"),
        (4, "invalid_timestamp", "tsEvent"),
        (5, "invalid_timestamp", "tsEvent"),
        (6, "invalid_email", "sAddress"),
        (7, "unknown_code:failure_reason", "iFailureReason"),
        (8, "missing_required_value", "iRecipientId"),
        (9, "invalid_integer", "iDeliveryId"),
        (10, "invalid_integer", "iBroadLogId"),
    ]
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_an_explicit_plus_sign_beside_a_bad_integer_is_read_as_the_number(embedded_env):
    root, resources = embedded_env
    base = "10,100,CUST,x@example.com,1,0,0,2026-11-23 08:00:00,L"
    content = csv_bytes(["+5," + base, "six," + base])
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    _, data, rejects = assert_reconciles(root)
    assert data.column("broadlog_id").to_pylist() == [5]
    assert reject_rows(rejects) == [(3, "invalid_integer", "iBroadLogId")]


def test_wrong_date_types_in_profiles(embedded_env):
    root, resources = embedded_env
    name = "profiles_20261123_0800.csv"
    header = "iRecipientId,sEmail,dBirthDate,iGender,tsLastModified"
    content = csv_bytes(
        [
            "R1,a@example.com,1980-02-28,1,2026-11-23 07:00:00",
            "R2,b@example.com,1980-02-30,1,2026-11-23 07:00:00",
            "R3,c@example.com,28.02.1980,1,2026-11-23 07:00:00",
            "R4,d@example.com,1980-02-28,1,yesterday",
        ],
        header=header,
    )
    drop_campaign_export(root, name, content)
    assert run_typed(resources, profiles_defs).success
    _, data, rejects = assert_reconciles(root, "profiles")
    assert data.column("recipient_id").to_pylist() == ["R1"]
    assert reject_rows(rejects) == [
        (3, "invalid_date", "dBirthDate"),
        (4, "invalid_date", "dBirthDate"),
        (5, "invalid_timestamp", "tsLastModified"),
    ]
    assert assert_nothing_deleted(root, {name: content}, "profiles") == {name: None}


# ---- empty and compressed files ---------------------------------------------------------------
def test_empty_file_is_quarantined(embedded_env):
    root, resources = embedded_env
    drop_campaign_export(root, NAME, b"")
    assert not reconciliation(run_typed(resources)).passed
    manifest, data, rejects = assert_reconciles(root)
    assert (manifest["rows_in"], data.num_rows, rejects.num_rows) == (0, 0, 0)
    assert assert_nothing_deleted(root, {NAME: b""}) == {NAME: "empty_file"}


def test_header_only_file_is_an_export_with_no_rows(embedded_env):
    """Campaign writes the header when a window had no activity: processed, zero rows."""
    root, resources = embedded_env
    content = csv_bytes([])
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    manifest, data, _ = assert_reconciles(root)
    assert (manifest["rows_in"], data.num_rows, manifest["files"][0]["status"]) == (
        0,
        0,
        "processed",
    )
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_truncated_gzip_is_quarantined(embedded_env):
    root, resources = embedded_env
    whole = gzip.compress(csv_bytes(GOOD * 200))
    content = whole[: len(whole) * 2 // 3]
    drop_campaign_export(root, f"{NAME}.gz", content)
    assert not reconciliation(run_typed(resources)).passed
    assert_reconciles(root)
    assert assert_nothing_deleted(root, {f"{NAME}.gz": content}) == {f"{NAME}.gz": "truncated_gzip"}


def test_gzip_bomb_is_quarantined_before_it_inflates(tmp_path):
    root = tmp_path
    resources = embedded_resources(root, max_decompressed_bytes=1 << 20)
    # 64 MiB of one repeated row compresses to about 200 KiB.
    content = gzip.compress(csv_bytes([GOOD[0]] * (64 * 1024 * 1024 // len(GOOD[0]))), 9)
    assert len(content) < 1 << 20
    drop_campaign_export(root, f"{NAME}.gz", content)
    recon = reconciliation(run_typed(resources))
    assert not recon.passed
    manifest, data, _ = assert_reconciles(root)
    assert data.num_rows == 0  # nothing of a refused file is kept
    assert "beyond 1048576 bytes" in manifest["files"][0]["detail"]
    assert assert_nothing_deleted(root, {f"{NAME}.gz": content}) == {
        f"{NAME}.gz": "decompressed_size_exceeded"
    }


# ---- file names -------------------------------------------------------------------------------
TRAVERSAL_NAMES = [
    "..\\..\\broadLog_20261123_0800.csv",
    "broadLog_20261123_0800.csv\\..\\..\\..\\escaped.csv",
    "broadLog_20261123_0800_..%2F..%2Fx.csv",
    "..broadLog_20261123_0800.csv",
]


def test_names_with_path_traversal_characters_are_never_processed_or_moved(embedded_env):
    root, resources = embedded_env
    good = csv_bytes(GOOD)
    drop_campaign_export(root, NAME, good)
    for name in TRAVERSAL_NAMES:
        drop_campaign_export(root, name, csv_bytes(GOOD[:1]))
    zone = resources["campaign_sftp"]
    plan = plan_tick(
        broadlog_flow,
        zone.list("export"),
        {},
        None,
        datetime.now(UTC),
        PipelineSettings(file_settle_seconds=0),
    )
    assert [r.run_key.split("@")[0] for r in plan.run_requests] == [f"export/{NAME}"]
    assert run_typed(resources).success
    manifest, _, _ = assert_reconciles(root)
    assert [f["source_file"] for f in manifest["files"]] == [NAME]
    assert_nothing_deleted(root, {NAME: good})
    # the odd names are left where they were, untouched; nothing appeared outside the zone
    remaining = sorted(p.name for p in (root / "campaign_sftp" / "export").iterdir() if p.is_file())
    assert remaining == sorted([*TRAVERSAL_NAMES, *(f"{n}.done" for n in TRAVERSAL_NAMES)])
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("ledger.sqlite")) == [
        "aep_dataset_export",
        "aep_destination",
        "aep_landing",
        "campaign_sftp",
        "customer_source",
        "warehouse",
    ]


@pytest.mark.parametrize(
    "path",
    ["../escaped.csv", "export/../../escaped.csv", "/tmp/escaped.csv", "export\\..\\x", "a\x00b"],
)
def test_a_drop_zone_path_can_never_leave_its_folder(tmp_path, path):
    zone = LocalDropZone(root=str(tmp_path / "zone"))
    zone.write_bytes("export/broadLog_20261123_0800.csv", b"x")
    for call in (
        lambda: zone.move("export/broadLog_20261123_0800.csv", path),
        lambda: zone.move(path, "export/archive/x"),
        lambda: zone.write_bytes(path, b"x"),
        lambda: zone.open_read(path).__enter__(),
        lambda: zone.stat(path),
        lambda: zone.list(path),
    ):
        with pytest.raises(UnsafePathError):
            call()
    assert zone.read_bytes("export/broadLog_20261123_0800.csv") == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zone"]


def test_archive_and_quarantine_moves_refuse_a_name_that_would_escape(embedded_env):
    root, resources = embedded_env
    drop_campaign_export(root, NAME, csv_bytes(GOOD))
    zone = resources["campaign_sftp"]
    entry = zone.stat(f"export/{NAME}")
    for name in ("../../../escaped.csv", "a/../../../escaped.csv", "../.."):
        source = SourceFile(name, entry, "incoming")
        for target in ("archive", "quarantine"):
            with pytest.raises(UnsafePathError):
                dest = source_destination(broadlog_flow, resources["settings"], source, target)
                move_source(zone, source, dest, {"reason": "x"})
    assert (root / "campaign_sftp" / "export" / NAME).exists()
    assert not list(root.rglob("escaped.csv"))


def test_sftp_listing_drops_names_a_server_could_use_to_escape(monkeypatch):
    """A hostile server could answer a listing with `../` names; they never become entries."""

    class Listing:
        def listdir_iter(self, path, read_aheads=50):
            return iter(self.listdir_attr(path))

        def listdir_attr(self, _path):
            out = []
            for name in (NAME, "../../broadLog_20261123_0900.csv", "sub/broadLog_x.csv", ".."):
                attrs = paramiko.SFTPAttributes()
                attrs.filename, attrs.st_mode, attrs.st_size, attrs.st_mtime = (
                    name,
                    0o100644,
                    10,
                    1_700_000_000,
                )
                out.append(attrs)
            return out

    zone = SftpDropZone(host="127.0.0.1", username="u", private_key_path="k", known_hosts_path="kh")
    monkeypatch.setattr(SftpDropZone, "_connect", lambda self: Listing())
    assert [e.path for e in zone.list("export")] == [f"export/{NAME}"]


# ---- timestamps -------------------------------------------------------------------------------
def test_timestamps_with_offsets_are_converted_to_utc(tmp_path):
    root = tmp_path
    resources = embedded_resources(root, campaign_timezone="Europe/Paris")
    lines = [
        "1,10,100,C,a@example.com,1,0,0,2026-11-23T09:30:00+01:00,L",
        "2,10,100,C,a@example.com,1,0,0,2026-11-23 08:30:00Z,L",
        "3,10,100,C,a@example.com,1,0,0,2026-11-23 03:30:00-0500,L",
        "4,10,100,C,a@example.com,1,0,0,2026-11-23 14:00:00+05:30,L",
        "5,10,100,C,a@example.com,1,0,0,2026-11-23 09:30:00,L",  # no offset: Paris time
        "6,10,100,C,a@example.com,1,0,0,2026-11-23 08:30:00.250+00:00,L",
    ]
    content = csv_bytes(lines)
    drop_campaign_export(root, NAME, content)
    assert run_typed(resources).success
    _, data, rejects = assert_reconciles(root)
    assert rejects.num_rows == 0
    expected = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    values = data.column("event_date").to_pylist()
    assert values[:5] == [expected] * 5
    assert values[5] == expected.replace(microsecond=250000)
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def future_lines() -> list[str]:
    # the name puts the file in the 08:00-12:00 window; with the default 1 h tolerance
    # anything after 13:00 UTC is in the future
    return [
        "1,10,100,C,a@example.com,1,0,0,2026-11-23 12:59:59,L",
        "2,10,100,C,a@example.com,1,0,0,2026-11-23 13:00:01,L",
        "3,10,100,C,a@example.com,1,0,0,2026-11-23T14:30:00+01:00,L",  # 13:30 UTC
        "4,10,100,C,a@example.com,1,0,0,2026-11-23T13:30:00+02:00,L",  # 11:30 UTC
        "5,10,100,C,a@example.com,1,0,0,2026-11-23 08:00:00,L",
    ]


def test_timestamps_later_than_the_export_time_are_rejected(embedded_env):
    root, resources = embedded_env
    header = HEADER.replace("tsEvent,", "tsEvent,tsContact,")
    # row 5 is on time but its contact date is not
    lines = [
        line.removesuffix(",L") + ("," + "2027-01-01 00:00:00" if i == 4 else ",") + ",L"
        for i, line in enumerate(future_lines())
    ]
    content = csv_bytes(lines, header=header)
    drop_campaign_export(root, NAME, content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    manifest, data, rejects = assert_reconciles(root)
    assert data.column("broadlog_id").to_pylist() == [1, 4]
    assert reject_rows(rejects) == [
        (3, "timestamp_in_future", "event_date"),
        (4, "timestamp_in_future", "event_date"),
        (6, "timestamp_in_future", "contact_date"),
    ]
    assert manifest["reasons"] == {"timestamp_in_future": 3}
    assert json.loads(rejects.column("raw")[0].as_py())["event_date"].startswith(
        "2026-11-23 13:00:01"
    )
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: None}


def test_future_tolerance_is_a_setting(tmp_path):
    resources = embedded_resources(tmp_path, export_time_tolerance_seconds=2 * 3600)
    drop_campaign_export(tmp_path, NAME, csv_bytes(future_lines()))
    assert run_typed(resources).success
    _, data, rejects = assert_reconciles(tmp_path)
    assert data.num_rows == 5 and rejects.num_rows == 0


# ---- duplicates -------------------------------------------------------------------------------
def test_duplicate_rows_keep_the_first_copy_across_files_of_the_partition(embedded_env):
    root, resources = embedded_env
    second = "broadLog_20261123_0930.csv"
    near = GOOD[1].replace("Newsletter", "Newsletter B")  # differs in one value: not a duplicate
    first_content = csv_bytes([GOOD[0], GOOD[1], GOOD[0], near, GOOD[0]])
    second_content = csv_bytes([GOOD[2], GOOD[1].replace("bob@", "BOB@"), "x,y"])
    drop_campaign_export(root, NAME, first_content)
    drop_campaign_export(root, second, second_content)
    result = run_typed(resources)
    assert result.success and reconciliation(result).passed
    manifest, data, rejects = assert_reconciles(root)
    assert sorted(
        zip(
            data.column("_source_file").to_pylist(),
            data.column("_line_number").to_pylist(),
            strict=True,
        )
    ) == [
        (NAME, 2),
        (NAME, 3),
        (NAME, 5),
        (second, 2),
    ]
    rows = [
        (r["source_file"], r["line_number"], r["reason"], r["column"]) for r in rejects.to_pylist()
    ]
    assert rows == [
        (NAME, 4, "duplicate_row", f"duplicate of {NAME} line 2"),
        (NAME, 6, "duplicate_row", f"duplicate of {NAME} line 2"),
        # the address is lower-cased when typed, so this row equals line 3 of the first file
        (second, 3, "duplicate_row", f"duplicate of {NAME} line 3"),
        (second, 4, "wrong_column_count", "expected 10 columns, found 2"),
    ]
    raw = json.loads(rejects.column("raw")[0].as_py())
    assert raw["broadlog_id"] == 1 and raw["address"] == "alice@example.com"
    by_file = {f["source_file"]: f for f in manifest["files"]}
    assert by_file[NAME]["reasons"] == {"duplicate_row": 2}
    assert by_file[second]["reasons"] == {"duplicate_row": 1, "wrong_column_count": 1}

    # a re-run (files now archived) gives the same partition, byte for byte
    folder = root / "warehouse" / "broadlog" / PK
    before = {n: (folder / n).read_bytes() for n in ("data.parquet", "rejects.parquet")}
    assert run_typed(resources).success
    assert {n: (folder / n).read_bytes() for n in before} == before
    assert_nothing_deleted(root, {NAME: first_content, second: second_content})


def test_duplicates_are_confirmed_on_values_not_on_the_hash(embedded_env, monkeypatch):
    """Even if every row hashed alike, only rows with equal values are duplicates."""
    root, resources = embedded_env
    original = partition_rules._row_hashes
    monkeypatch.setattr(
        partition_rules, "_row_hashes", lambda batch, cols: original(batch, cols) * 0
    )
    drop_campaign_export(root, NAME, csv_bytes([GOOD[0], GOOD[1], GOOD[2], GOOD[1]]))
    assert run_typed(resources).success
    _, data, rejects = assert_reconciles(root)
    assert data.column("broadlog_id").to_pylist() == [1, 2, 3]
    assert reject_rows(rejects) == [(5, "duplicate_row", f"duplicate of {NAME} line 3")]


def test_digests_taken_while_streaming_give_the_rules_the_same_result_as_a_re_read(tmp_path):
    """`ingest_partition` hands the rules hashes and future flags taken during the pass; the
    rules must decide exactly as they do when they read the typed parts back."""
    import io
    import random
    from datetime import timedelta

    from resources.warehouse import ParquetSink
    from rtcdp_assets.campaign_to_aep.broadlog import BROADLOG_FORMAT
    from rtcdp_assets.shared.ingest import REJECT_SCHEMA, ingest_file
    from rtcdp_assets.shared.partition_rules import (
        RowDigests,
        apply_partition_rules,
        window_end_from_stamp,
    )

    rng = random.Random(11)
    pool = GOOD + [line.removesuffix(",L") + ",Newsletter" for line in future_lines()]
    names = [NAME, "broadLog_20261123_0930.csv", "broadLog_20261123_1130.csv"]
    tolerance = timedelta(hours=1)
    runs = {}
    for mode in ("re-read", "digests"):
        folder = tmp_path / mode
        folder.mkdir()
        goods, bads, digests, entries = [], [], [], []
        for i, name in enumerate(names):
            rows = [rng.choice(pool) for _ in range(400)] if mode == "re-read" else None
            runs.setdefault(name, rows)
            lines = runs[name]
            good, bad = folder / f"good-{i}.parquet", folder / f"bad-{i}.parquet"
            limit = window_end_from_stamp(name.split("_", 1)[1].removesuffix(".csv"))
            digest = RowDigests(BROADLOG_FORMAT, limit + tolerance, spill_dir=folder)
            with (
                ParquetSink(good, BROADLOG_FORMAT.typed_schema) as g,
                ParquetSink(bad, REJECT_SCHEMA) as b,
            ):
                for part in ingest_file(
                    io.BytesIO(csv_bytes(lines)), source_file=name, fmt=BROADLOG_FORMAT
                ):
                    g.write(part.good)
                    b.write(part.rejects)
                    digest.add(part.good)
            goods.append(good)
            bads.append(bad)
            digests.append(digest)
            entries.append({"source_file": name, "rows_out": 0, "rows_rejected": 0, "reasons": {}})
        new_good, new_bad = apply_partition_rules(
            BROADLOG_FORMAT,
            goods,
            bads,
            entries,
            latest_time=lambda n: window_end_from_stamp(n.split("_", 1)[1].removesuffix(".csv")),
            tolerance=tolerance,
            digests=digests if mode == "digests" else None,
        )
        runs[mode] = (
            [pq.read_table(p) for p in new_good],
            [pq.read_table(p) for p in new_bad],
            entries,
        )
    reread, streamed = runs["re-read"], runs["digests"]
    assert sum(e["reasons"].get("duplicate_row", 0) for e in reread[2]) > 100
    assert sum(e["reasons"].get("timestamp_in_future", 0) for e in reread[2]) > 100
    assert streamed[2] == reread[2]
    for a, b in zip(streamed[0] + streamed[1], reread[0] + reread[1], strict=True):
        assert a.equals(b)


def test_a_row_hashes_alike_whatever_else_its_batch_holds():
    """The rules hash streamed blocks and re-read batches cut at other rows; a null elsewhere
    in a batch must not change a row's hash."""
    import pyarrow as pa

    cols = ["n", "flag", "text"]
    clean = pa.record_batch(
        {"n": pa.array([7, 8]), "flag": pa.array([True, False]), "text": pa.array(["a", "b"])}
    )
    with_nulls = pa.record_batch(
        {"n": pa.array([7, None]), "flag": pa.array([True, None]), "text": pa.array(["a", None])}
    )
    a, b = partition_rules._row_hashes(clean, cols), partition_rules._row_hashes(with_nulls, cols)
    assert a[0] == b[0]
    # a null is not a zero or a false
    zeros = pa.record_batch(
        {"n": pa.array([0]), "flag": pa.array([False]), "text": pa.array([None], pa.string())}
    )
    assert partition_rules._row_hashes(zeros, cols)[0] != b[1]


def test_a_text_hashes_alike_wherever_its_bytes_sit_in_the_arrow_buffers():
    """Text enters the hash from the Arrow buffers (length, first and last 8 bytes): a slice,
    a re-built array and a large_string must agree, and a byte inside those 16 must count."""
    import pyarrow as pa

    texts = ["", None, "a", "ab", "ab\x00", "é", "abcdefgh", "abcdefghi", "CUST-000000012345"]
    texts += ["Xbcdefghijklmnopq", "abcdefghijklmnopX", "abcdefghijklmnopq", "bcdefghijklmnopq"]
    full = partition_rules._row_hashes(pa.record_batch({"t": pa.array(texts)}), ["t"])
    assert len(set(full.tolist())) == len(texts)
    for k in range(1, len(texts)):
        sliced = pa.record_batch({"t": pa.array(texts).slice(k)})
        rebuilt = pa.record_batch({"t": pa.array(texts[k:], pa.large_string())})
        assert (partition_rules._row_hashes(sliced, ["t"]) == full[k:]).all()
        assert (partition_rules._row_hashes(rebuilt, ["t"]) == full[k:]).all()


def test_repeated_hashes_found_bucket_by_bucket_equal_those_of_one_sort(tmp_path):
    """Repeats are searched one sixteenth of the hash space at a time, from files, to keep
    memory flat; the result must be every hash seen twice or more, sorted, once each."""
    import numpy as np

    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64, 50_000, dtype=np.uint64)
    hashes = np.concatenate([hashes, hashes[rng.integers(0, hashes.size, 700)]])
    hashes = np.concatenate([hashes, np.array([0, 0, 2**64 - 1, 2**64 - 1], np.uint64)])
    rng.shuffle(hashes)
    buckets = partition_rules._HashBuckets(tmp_path)
    for block in np.array_split(hashes, 7):
        buckets.add(block)
    values, counts = np.unique(hashes, return_counts=True)
    expected = values[counts > 1]
    found = buckets.repeated()
    assert found.size > 600 and found.dtype == np.uint64
    assert np.array_equal(found, expected)


def test_text_decoding_takes_ascii_as_is_and_still_checks_every_other_byte():
    import pyarrow as pa

    from rtcdp_assets.shared.ingest import _decode_utf8

    values = [b"plain", b"", b"Caf\xc3\xa9", b"Caf\xe9", b"tail"]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(values, pa.binary()), pa.array([b"a", b"b", b"c", b"d", b"e"], pa.binary())],
        names=["label", "code"],
    )
    text, reasons, columns = _decode_utf8(batch)
    assert text.column("code").type == pa.string()
    assert text.column("code").to_pylist() == ["a", "b", "c", "d", "e"]
    assert text.column("label").to_pylist() == ["plain", "", "Café", "Caf\\xe9", "tail"]
    assert reasons is not None and columns is not None
    assert reasons.to_pylist() == [None, None, None, "bad_encoding", None]
    assert columns.to_pylist() == [None, None, None, "label", None]
    # A slice sees only its own bytes: the bad value outside it does not count.
    sliced = pa.RecordBatch.from_arrays([pa.array(values, pa.binary()).slice(0, 2)], ["label"])
    text, reasons, _ = _decode_utf8(sliced)
    assert (text.column("label").to_pylist(), reasons) == (["plain", ""], None)
    after = pa.RecordBatch.from_arrays([pa.array(values, pa.binary()).slice(4)], ["label"])
    assert _decode_utf8(after)[0].column("label").to_pylist() == ["tail"]


def test_trim_and_empty_shortcuts_agree_with_arrow_on_every_edge():
    # The shortcuts read the first and last byte of each value off the buffers (clipped at
    # the buffer's ends for empty values); they may trim needlessly, never miss a trim.
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    from rtcdp_assets.shared.ingest import _empty_mask, _trimmed

    rng = random.Random(3)
    pieces = ["a", "b", " ", "\t", "é", "", "\u00a0", "x y", "\n", "\u2003"]
    for _ in range(2000):
        values = [
            "".join(rng.choice(pieces) for _ in range(rng.randint(0, 3)))
            for _ in range(rng.randint(1, 8))
        ]
        whole = pa.array(values, pa.string())
        for array in (whole, whole.slice(1), whole.slice(0, len(whole) - 1)):
            if not len(array):
                continue
            assert _trimmed(array).equals(pc.utf8_trim_whitespace(array)), values
            empty = pc.equal(pc.utf8_length(array), 0)
            mask = _empty_mask(array)
            if pc.any(empty).as_py():
                assert mask is not None and mask.equals(empty), values
            else:
                assert mask is None, values


@pytest.mark.parametrize("gzipped", [False, True])
def test_the_byte_stream_hands_out_every_byte_once_whatever_the_read_sizes(gzipped):
    # The source answers in pieces of its own sizes (an SFTP download: 255 KiB answers), the
    # parser asks for blocks of its own; the stream keeps the pieces and joins what it returns.
    import io
    import random

    from rtcdp_assets.shared.ingest import _GuardedStream

    class Pieces(io.RawIOBase):
        def __init__(self, data: bytes, rng: random.Random) -> None:
            self.data, self.pos, self.rng = data, 0, rng

        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> bytes:
            size = len(self.data) if size is None or size < 0 else size
            take = min(size, self.rng.choice([1, 7, 1000, 255 * 1024, 1 << 20]))
            out = self.data[self.pos : self.pos + take]
            self.pos += len(out)
            return out

    rng = random.Random(5)
    payload = os.urandom(1_500_000)
    # Two gzip members back to back, as gzip allows.
    source = gzip.compress(payload) + gzip.compress(b"tail") if gzipped else payload
    expected = payload + b"tail" if gzipped else payload
    for _ in range(10):
        stream = _GuardedStream(Pieces(source, rng), gzip=gzipped, max_bytes=10**9)
        parts = []
        while True:
            size = rng.choice([0, 1, 5, 4096, 2 << 20, 3 << 20])
            part = stream.read(size)
            assert len(part) <= size
            if size and not part:
                break
            parts.append(part)
        assert b"".join(parts) == expected
        assert (stream.bytes_in, stream.bytes_out) == (len(source), len(expected))
