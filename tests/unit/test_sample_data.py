"""The sample-data generator: deterministic, realistic, and honest about its defects.

Defect counts are checked twice: by an independent reading with the csv module and simple
rules written here, and by the pipeline's own validator (ingest_file), because tests elsewhere
assert the quarantine against the numbers the generator returns.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from resources.settings import PipelineSettings
from rtcdp_assets import sample_data as sd
from rtcdp_assets.broadlog import BROADLOG_FORMAT, CLASSIC, STANDARD, _allowed_codes
from rtcdp_assets.ingest import FileResult, ingest_file

WINDOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 19, 46, 47, tzinfo=UTC)
TS = "%Y-%m-%d %H:%M:%S"
RESERVED_DOMAINS = re.compile(r"(^|\.)(example\.(com|org|net)|[a-z0-9-]+\.(test|example)|example)$")


def rows_of(content: bytes) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    return rows[0], rows[1:]


def records(content: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (CSV record number with header = 1, values) of every data row."""
    header, rows = rows_of(content)
    return header, [(i + 2, row) for i, row in enumerate(rows)]


# ---- an independent validator: plain Python, its own rules -----------------------------------
INT = re.compile(r"[+-]?\d{1,18}")
REQUIRED = {"broadlog_id", "delivery_id", "recipient_id", "address", "status", "event_date"}
INTS = {"broadlog_id", "delivery_id", "recipient_id"}
TIMESTAMPS = {"event_date", "contact_date", "last_modified"}


def email_ok(value: str) -> bool:
    if value.count("@") != 1 or any(c.isspace() for c in value):
        return False
    local, domain = value.split("@")
    return 1 <= len(local) <= 64 and "." in domain.strip(".") and len(domain.rsplit(".", 1)[1]) >= 2


def ts_ok(value: str) -> bool:
    try:
        datetime.strptime(value, TS)
    except ValueError:
        return False
    return True


def problems(row: list[str], header: list[str], layout) -> list[str]:
    """Every rule the row breaks (the generator promises at most one)."""
    if len(row) != len(header):
        return ["wrong_column_count"]
    values = {layout.columns[h]: v.strip() for h, v in zip(header, row, strict=True)}
    found = [f"missing:{f}" for f in sorted(REQUIRED) if values[f] == ""]
    if values["status"] and values["status"] not in {"1", "2", "6", "7"}:
        found.append("unknown_code:status")
    found += [f"int:{f}" for f in sorted(INTS) if values[f] and not INT.fullmatch(values[f])]
    found += [f"ts:{f}" for f in sorted(TIMESTAMPS) if values[f] and not ts_ok(values[f])]
    if values["address"] and not email_ok(values["address"].lower()):
        found.append("invalid_email")
    return found


REASON_OF = {
    "missing": "missing_required_value",
    "int": "invalid_integer",
    "ts": "invalid_timestamp",
}


def independent_rejects(content: bytes, layout) -> dict[int, str]:
    header, recs = records(content)
    out: dict[int, str] = {}
    for number, row in recs:
        found = problems(row, header, layout)
        assert len(found) <= 1, f"record {number} has several defects: {found}"
        if found:
            kind = found[0].split(":")[0]
            out[number] = REASON_OF.get(kind, found[0])
    return out


def pipeline_result(name: str, payload: bytes) -> tuple[FileResult, dict[int, str]]:
    result = FileResult(source_file=name, layout="")
    lines: dict[int, str] = {}
    for part in ingest_file(
        io.BytesIO(payload),
        source_file=name,
        fmt=BROADLOG_FORMAT,
        allowed_overrides=_allowed_codes(PipelineSettings()),
        result=result,
    ):
        rejects = part.rejects.to_pydict()
        lines.update(zip(rejects["line_number"], rejects["reason"], strict=True))
    return result, lines


# ---- determinism ---------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_bytes():
    a = sd.generate_broadlog(WINDOW, 3000, seed=11, now=NOW)
    b = sd.generate_broadlog(WINDOW, 3000, seed=11, now=NOW)
    c = sd.generate_broadlog(WINDOW, 3000, seed=12, now=NOW)
    assert a.content == b.content
    assert a.expected_rejects == b.expected_rejects
    assert a.content != c.content


def test_files_on_disk_are_byte_identical_across_runs(tmp_path):
    runs = []
    for run in ("one", "two"):
        files = sd.write_broadlog_files(
            tmp_path / run,
            WINDOW - timedelta(hours=8),
            WINDOW + timedelta(hours=4),
            500,
            seed=5,
            gzip=True,
            now=NOW,
        )
        runs.append([(f.name, f.path.read_bytes()) for f in files])
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_layouts_hold_the_same_rows_under_their_own_header():
    classic = sd.generate_broadlog(WINDOW, 1000, seed=2, now=NOW, layout="classic")
    standard = sd.generate_broadlog(WINDOW, 1000, seed=2, now=NOW, layout="standard")
    c_header, c_rows = rows_of(classic.content)
    s_header, s_rows = rows_of(standard.content)
    assert c_header == list(CLASSIC.columns)
    assert s_header == list(STANDARD.columns)
    assert c_rows == s_rows
    assert classic.expected_rejects == standard.expected_rejects


def test_batches_change_nothing_but_the_random_streams(tmp_path):
    path = tmp_path / "big.csv"
    written = sd.stream_broadlog_csv(
        path, 2500, seed=4, batch_rows=1000, defect_rate=0.01, window_start=WINDOW
    )
    in_memory = sd.generate_broadlog(
        WINDOW, 2500, seed=4, batch_rows=1000, defect_rate=0.01, now=NOW
    )
    assert written == 2500
    assert path.read_bytes() == in_memory.content


# ---- realistic values ----------------------------------------------------------------------
def test_timestamps_lie_in_the_window_and_never_after_now():
    generated = sd.generate_broadlog(WINDOW, 5000, seed=3, defect_rate=0, now=NOW)
    header, rows = rows_of(generated.content)
    col = {h: i for i, h in enumerate(header)}
    end = WINDOW + timedelta(hours=4)
    for row in rows:
        event = datetime.strptime(row[col["tsEvent"]], TS).replace(tzinfo=UTC)
        contact = datetime.strptime(row[col["tsContact"]], TS).replace(tzinfo=UTC)
        modified = datetime.strptime(row[col["tsLastModified"]], TS).replace(tzinfo=UTC)
        assert WINDOW <= event < end
        assert event <= NOW
        assert contact <= event <= modified <= NOW


def test_a_window_containing_now_is_cut_at_now():
    now = WINDOW + timedelta(minutes=30, seconds=15)
    generated = sd.generate_broadlog(WINDOW, 3000, seed=3, defect_rate=0, now=now)
    header, rows = rows_of(generated.content)
    col = {h: i for i, h in enumerate(header)}
    for row in rows:
        for name in ("tsEvent", "tsLastModified"):
            when = datetime.strptime(row[col[name]], TS).replace(tzinfo=UTC)
            assert when <= now
    latest = max(row[col["tsEvent"]] for row in rows)
    assert latest >= (now - timedelta(minutes=2)).strftime(TS)  # the whole span is used


def test_a_window_after_now_is_refused():
    with pytest.raises(ValueError, match="after now"):
        sd.generate_broadlog(WINDOW, 10, seed=1, now=WINDOW - timedelta(seconds=1))
    with pytest.raises(ValueError, match="4-hour"):
        sd.generate_broadlog(WINDOW + timedelta(hours=1), 10, seed=1, now=NOW)


def test_values_look_like_a_campaign_broadlog():
    generated = sd.generate_broadlog(WINDOW, 20_000, seed=8, defect_rate=0, now=NOW)
    header, rows = rows_of(generated.content)
    col = {h: i for i, h in enumerate(header)}
    ids = [int(r[col["iBroadLogId"]]) for r in rows]
    assert all(b > a for a, b in itertools.pairwise(ids))

    recipients = Counter(r[col["iRecipientId"]] for r in rows)
    assert recipients.most_common(1)[0][1] > 1  # people get several messages
    assert len({r[col["iDeliveryId"]] for r in rows}) <= 12
    assert any("Black Friday 2026" in r[col["sDeliveryLabel"]] for r in rows)

    externals = [r[col["sExternalId"]] for r in rows]
    assert all(e == "" or re.fullmatch(r"CUST-\d{8}", e) for e in externals)
    assert 0.8 < sum(bool(e) for e in externals) / len(externals) < 1

    addresses = [r[col["sAddress"]] for r in rows]
    assert all(RESERVED_DOMAINS.search(a.lower().split("@")[1]) for a in addresses)
    mixed = sum(a != a.lower() for a in addresses) / len(addresses)
    assert 0 < mixed < 0.1

    status = Counter(r[col["iStatus"]] for r in rows)
    assert set(status) == {"1", "2", "6", "7"}
    assert status["1"] / len(rows) > 0.85

    types = PipelineSettings().failure_type_codes
    allowed = {  # §b3 failureReason table
        "hard": {"1", "3", "4", "7", "8", "9", "20"},
        "soft": {"2", "3", "4", "5", "20"},
        "ignored": {"6", "10", "11", "12", "14", "15", "16", "17", "25", "127"},
    }
    seen = set()
    for r in rows:
        ftype, reason = r[col["iFailureType"]], r[col["iFailureReason"]]
        if r[col["iStatus"]] != "2":
            assert (ftype, reason) == ("0", "0")
            continue
        label = types[ftype]
        seen.add(label)
        assert reason in allowed[label], (label, reason)
    assert seen == {"hard", "soft", "ignored"}
    assert {r[col["sOrgUnit"]] for r in rows} == {"default"}


# ---- defects -------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["classic", "standard"])
def test_returned_defect_counts_match_an_independent_reading(layout):
    generated = sd.generate_broadlog(
        WINDOW, 8000, seed=21, layout=layout, defect_rate=0.03, now=NOW
    )
    mine = independent_rejects(generated.content, sd.LAYOUTS[layout])
    assert mine == generated.reject_lines
    assert dict(Counter(mine.values())) == generated.expected_rejects
    assert generated.expected_valid == generated.rows - len(mine)
    # every promised kind occurs in a sample this size
    assert set(generated.expected_rejects) == {
        "invalid_email",
        "missing_required_value",
        "invalid_integer",
        "invalid_timestamp",
        "unknown_code:status",
        "wrong_column_count",
    }


@pytest.mark.parametrize("layout", ["classic", "standard"])
def test_returned_defect_counts_match_the_pipeline_validator(layout):
    generated = sd.generate_broadlog(
        WINDOW, 6000, seed=22, layout=layout, defect_rate=0.04, now=NOW, batch_rows=2500
    )
    result, lines = pipeline_result(generated.name, generated.content)
    assert result.rows_in == generated.rows
    assert result.rows_out == generated.expected_valid
    assert dict(result.reasons) == generated.expected_rejects
    assert lines == generated.reject_lines


def test_pipeline_agrees_across_csv_blocks():
    # ~10 MB: several 4 MiB reader blocks, so malformed rows shift record numbers across
    # block boundaries and the good rows' line numbers are checked too.
    generated = sd.generate_broadlog(
        WINDOW, 60_000, seed=23, defect_rate=0.01, now=NOW, batch_rows=25_000
    )
    assert len(generated.content) > 2 * (4 << 20)
    result = FileResult(source_file=generated.name, layout="")
    good_lines: list[int] = []
    reject_lines: dict[int, str] = {}
    for part in ingest_file(
        io.BytesIO(generated.content),
        source_file=generated.name,
        fmt=BROADLOG_FORMAT,
        allowed_overrides=_allowed_codes(PipelineSettings()),
        result=result,
    ):
        good_lines += part.good.column("_line_number").to_pylist()
        rejects = part.rejects.to_pydict()
        reject_lines.update(zip(rejects["line_number"], rejects["reason"], strict=True))
    assert reject_lines == generated.reject_lines
    assert good_lines == [
        n for n in range(2, generated.rows + 2) if n not in generated.reject_lines
    ]
    assert dict(result.reasons) == generated.expected_rejects


def test_defect_rate_zero_gives_clean_files():
    generated = sd.generate_broadlog(WINDOW, 5000, seed=9, defect_rate=0, now=NOW)
    assert generated.expected_rejects == {}
    assert generated.expected_valid == generated.rows == 5000
    assert independent_rejects(generated.content, CLASSIC) == {}
    result, _ = pipeline_result(generated.name, generated.content)
    assert result.rows_out == 5000 and result.rows_rejected == 0


def test_default_defect_rate_is_small():
    generated = sd.generate_broadlog(WINDOW, 20_000, seed=1, now=NOW)
    share = (generated.rows - generated.expected_valid) / generated.rows
    assert 0.002 < share < 0.01


# ---- gzip and files ------------------------------------------------------------------------
def test_gzip_files_decompress_to_the_csv_content(tmp_path):
    plain = sd.write_broadlog_files(
        tmp_path / "plain", WINDOW, WINDOW + timedelta(hours=4), 800, seed=6, now=NOW
    )
    packed = sd.write_broadlog_files(
        tmp_path / "gz", WINDOW, WINDOW + timedelta(hours=4), 800, seed=6, gzip=True, now=NOW
    )
    assert [f.name for f in plain] == ["broadLog_20261123_0800.csv"]
    assert [f.name for f in packed] == ["broadLog_20261123_0800.csv.gz"]
    raw = packed[0].path.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME field: 0, so runs are byte-identical
    assert gzip.decompress(raw) == packed[0].content == plain[0].path.read_bytes()
    result, _ = pipeline_result(packed[0].name, raw)
    assert result.rows_out == packed[0].expected_valid
    assert dict(result.reasons) == packed[0].expected_rejects


def test_streamed_gzip_is_deterministic(tmp_path):
    a, b = tmp_path / "a.csv.gz", tmp_path / "b" / "a.csv.gz"
    b.parent.mkdir()
    stats = sd.stream_broadlog(a, 3000, seed=3, batch_rows=1000, defect_rate=0.01)
    sd.stream_broadlog(b, 3000, seed=3, batch_rows=1000, defect_rate=0.01)
    assert a.read_bytes() == b.read_bytes()  # no file name or time in the gzip header
    content = gzip.decompress(a.read_bytes())
    assert independent_rejects(content, CLASSIC) == stats.reject_lines
    assert stats.bytes_written == a.stat().st_size


# ---- CLI -----------------------------------------------------------------------------------
def test_cli_writes_one_file_per_window(tmp_path, capsys):
    code = sd.main(
        [
            "--out",
            str(tmp_path),
            "--start",
            "2026-11-22",
            "--end",
            "2026-11-23T00:00:00Z",
            "--now",
            NOW.isoformat(),
            "--rows-per-file",
            "100",
            "--seed",
            "1",
            "--gzip",
        ]
    )
    assert code == 0
    expected = [f"broadLog_20261122_{h:02d}00.csv.gz" for h in range(0, 24, 4)]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == expected
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 6
    assert all("100 rows" in line for line in out)


def test_cli_default_range_is_the_last_day_of_completed_windows(tmp_path, capsys):
    code = sd.main(
        [
            "--out",
            str(tmp_path),
            "--now",
            "2026-11-23T19:46:47",
            "--rows-per-file",
            "20",
            "--layout",
            "standard",
            "--defect-rate",
            "0",
            "--export-folder",
            "drop",
        ]
    )
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "drop").iterdir())
    assert names == [
        "broadLog_20261122_1600.csv",
        "broadLog_20261122_2000.csv",
        "broadLog_20261123_0000.csv",
        "broadLog_20261123_0400.csv",
        "broadLog_20261123_0800.csv",
        "broadLog_20261123_1200.csv",
    ]
    header = (tmp_path / "drop" / names[0]).read_text().splitlines()[0]
    assert header == ",".join(STANDARD.columns)
    assert "0 defective" in capsys.readouterr().out


def test_cli_windows_and_range_rules():
    now = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    start, end = sd.resolve_range(None, None, 2, now)
    assert sd.window_starts(start, end) == [datetime(2026, 11, 23, h, tzinfo=UTC) for h in (8, 12)]
    assert end == datetime(2026, 11, 23, 16, tzinfo=UTC)
    start, end = sd.resolve_range(datetime(2026, 11, 20, 5, tzinfo=UTC), None, 3, now)
    assert sd.window_starts(start, end) == [
        datetime(2026, 11, 20, h, tzinfo=UTC) for h in (4, 8, 12)
    ]
    start, end = sd.resolve_range(None, datetime(2026, 11, 23, 10, tzinfo=UTC), 2, now)
    assert sd.window_starts(start, end) == [datetime(2026, 11, 23, h, tzinfo=UTC) for h in (4, 8)]


def test_cli_refuses_windows_after_now(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        sd.main(
            [
                "--out",
                str(tmp_path),
                "--start",
                "2026-11-24",
                "--end",
                "2026-11-25",
                "--now",
                NOW.isoformat(),
            ]
        )
    assert exc.value.code == 2
    assert "after --now" in capsys.readouterr().err


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        sd.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--out",
        "--start",
        "--end",
        "--windows",
        "--rows-per-file",
        "--seed",
        "--layout",
        "--gzip",
        "--defect-rate",
        "--datasets",
        "--now",
        "--org-unit",
        "--export-folder",
    ):
        assert option in text
    assert "broadlog" in text


def test_datasets_registry_and_unknown_dataset(tmp_path, capsys):
    assert set(sd.DATASETS) == {"broadlog"}
    with pytest.raises(SystemExit):
        sd.main(["--out", str(tmp_path), "--datasets", "trackinglog", "--now", NOW.isoformat()])
    assert "unknown dataset" in capsys.readouterr().err
