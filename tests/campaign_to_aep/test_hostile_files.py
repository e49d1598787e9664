"""Hostile files: bounded memory, and reasons an operator can act on.

A gzip bomb of one endless line is refused as `row_too_large` after about a MiB, a bomb of
ordinary rows as `decompression_bomb` once its decompressed bytes outgrow the compressed ones
100 times; the peak memory of the ingest is measured in a child process, by its own `VmHWM`
(the rusage of a child also counts the parent's memory it was forked from).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from dagster import DagsterInstance

from resources import embedded_resources
from resources.audience_settings import AepDestinationOptions
from rtcdp_assets.aep_to_campaign.audience_exports.aep_csv_stream import AepCsvStream
from rtcdp_assets.shared.ingest import StreamLimits, UnreadableFile, _GuardedStream
from rtcdp_assets.shared.ingest.limits import RowLengthGuard
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.test_audience_exports import _gz_export, _ingest
from tests.campaign_to_aep.test_malformed_input import (
    GOOD,
    NAME,
    PK,
    assert_nothing_deleted,
    assert_reconciles,
    csv_bytes,
    reconciliation,
    run_typed,
)
from tests.customer_to_campaign.test_customer_imports import (
    PROFILE_HEADER,
    drop,
    profile_import,
    run,
)
from tests.drop_files import drop_campaign_export

REPO = Path(__file__).resolve().parents[2]
MAX_RSS = 512 << 20
GIB = 1 << 30


def _gzip_bomb(path: Path, header: bytes, chunk: bytes, size: int) -> Path:
    """`header`, then `chunk` repeated up to `size` bytes, gzipped at level 9, streamed."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    with path.open("wb") as out:
        out.write(deflate.compress(header))
        for _ in range(size // len(chunk)):
            out.write(deflate.compress(chunk))
        out.write(deflate.flush())
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """The issue's bomb (2 GiB: a header, then one line of 2 GiB; 2 MB compressed) and a bomb
    of 512 MiB of one ordinary row repeated (about 300:1)."""
    folder = tmp_path_factory.mktemp("bombs")
    header = csv_bytes([])
    row = (GOOD[0] + "\n").encode()
    return {
        "one_line": _gzip_bomb(folder / "one_line.gz", header, b"a" * (16 << 20), 2 * GIB),
        "many_rows": _gzip_bomb(
            folder / "many_rows.gz", header, row * ((1 << 20) // len(row)), 512 << 20
        ),
    }


# The Campaign export ingest as the broadlog op runs it, in a child process of its own. It
# leaves through os._exit once it has printed: an Arrow reader stopped by an error may still
# have a read-ahead in flight, and at interpreter shutdown that aborts now and then, whatever
# was ingested (seen before this change too).
CHILD = """
import json, os, sys
from pathlib import Path
from resources import embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
res = embedded_resources(Path(sys.argv[1]))
out = broadlog_flow.ingest_partition(
    res["campaign_sftp"], res["warehouse"], res["settings"], sys.argv[2]
)
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"manifest": out.manifest, "peak_rss": peak_kib * 1024}), flush=True)
os._exit(0)
"""


def _ingest_in_child(root: Path) -> tuple[dict, int]:
    """The manifest of partition PK ingested by a child process, and that child's peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), PK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    return report["manifest"], report["peak_rss"]


@pytest.mark.parametrize(
    ("bomb", "reason", "words"),
    [
        ("one_line", "row_too_large", ["longer than 1,048,576 bytes", "max_row_bytes"]),
        ("many_rows", "decompression_bomb", ["limit is 100:1", "max_decompression_ratio"]),
    ],
)
def test_a_gzip_bomb_is_quarantined_with_its_reason_in_bounded_memory(
    bombs, tmp_path, bomb, reason, words
):
    content = bombs[bomb].read_bytes()
    drop_campaign_export(tmp_path, f"{NAME}.gz", content)
    embedded_resources(tmp_path)  # the zone folders
    manifest, peak_rss = _ingest_in_child(tmp_path)
    assert peak_rss <= MAX_RSS, f"peak RSS {peak_rss / 2**20:.0f} MiB"
    (entry,) = manifest["files"]
    assert (entry["status"], entry["reason"]) == ("quarantined", reason)
    for word in words:
        assert word in entry["detail"], entry["detail"]
    assert "straddling" not in entry["detail"]
    assert manifest["rows_out"] == 0  # nothing of a refused file is published
    assert assert_nothing_deleted(tmp_path, {f"{NAME}.gz": content}) == {f"{NAME}.gz": reason}


def test_the_ratio_guard_alone_also_trips_on_the_one_line_bomb(bombs):
    """With the row limit out of the way, the default ratio refuses the same file."""
    limits = StreamLimits(max_row_bytes=0)
    with bombs["one_line"].open("rb") as raw:
        stream = _GuardedStream(raw, gzip=True, max_bytes=20 * GIB, limits=limits)  # type: ignore[arg-type]
        with pytest.raises(UnreadableFile) as refused:
            while stream.read(2 << 20):
                pass
    assert refused.value.reason == "decompression_bomb"
    # Refused at the floor (64 MiB out), long before the 2 GiB.
    assert stream.bytes_out < 80 << 20


def test_a_small_repetitive_gzip_under_the_floor_is_ingested(embedded_env):
    """Over 100:1, but only 8 MiB decompressed: a real export can be that repetitive."""
    root, resources = embedded_env
    label = "Newsletter " * 60
    rows = [
        f"{i},10,100,CUST-1,alice@example.com,1,0,0,2026-11-23 08:01:00,{label}"
        for i in range(1, 12_000)
    ]
    content = gzip.compress(csv_bytes(rows), 9)
    assert len(csv_bytes(rows)) > 100 * len(content)
    drop_campaign_export(root, f"{NAME}.gz", content)
    assert reconciliation(run_typed(resources)).passed
    manifest, data, _ = assert_reconciles(root)
    assert data.num_rows == len(rows) == manifest["rows_in"]


def test_a_long_row_in_a_plain_csv_quarantines_the_file_saying_where(embedded_env):
    root, resources = embedded_env
    long_row = GOOD[1].replace("Newsletter", "x" * (2 << 20))
    content = csv_bytes([GOOD[0], long_row, GOOD[2]])
    drop_campaign_export(root, NAME, content)
    assert not reconciliation(run_typed(resources)).passed
    manifest, data, _ = assert_reconciles(root)
    assert data.num_rows == 0
    detail = manifest["files"][0]["detail"]
    start = content.index(long_row.encode())
    assert f"from byte {start:,}" in detail and "max_row_bytes = 1,048,576" in detail
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: "row_too_large"}


def test_rows_up_to_max_row_bytes_are_read_and_the_setting_raises_it(tmp_path):
    label = "x" * (3 << 20)  # longer than the parser's default block (2 MiB)
    content = csv_bytes([GOOD[0], GOOD[1].replace("Newsletter", label)])
    drop_campaign_export(tmp_path, NAME, content)
    resources = embedded_resources(tmp_path, max_row_bytes=4 << 20)
    assert reconciliation(run_typed(resources)).passed
    _, data, _ = assert_reconciles(tmp_path)
    assert data.column("delivery_label").to_pylist()[1] == label


def test_an_unclosed_quote_is_reported_as_a_long_record_not_a_block_size(embedded_env):
    """A quote never closed makes the rest of the file one record (values may span lines)."""
    root, resources = embedded_env
    lines = [GOOD[0], GOOD[1].replace("Newsletter", '"Newsletter')] + GOOD[2:] * 60_000
    content = csv_bytes(lines)
    drop_campaign_export(root, NAME, content)
    assert not reconciliation(run_typed(resources)).passed
    manifest, _, _ = assert_reconciles(root)
    detail = manifest["files"][0]["detail"]
    assert "never closed" in detail and "max_row_bytes" in detail
    assert "straddling" not in detail
    assert assert_nothing_deleted(root, {NAME: content}) == {NAME: "row_too_large"}


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_the_row_guard_finds_the_longest_line_whatever_the_read_sizes(newline):
    rng = random.Random(7)
    limit = 1000
    for _ in range(200):
        lengths = [rng.choice([0, 5, 300, 999, 1000, 1001, 2500]) for _ in range(rng.randint(1, 9))]
        text = newline.join(b"y" * n for n in lengths) + rng.choice([b"", newline])
        # The reference: split at the line ends (the CR of a CRLF stays with its line).
        longest = max(len(line) for line in text.split(newline[-1:]))
        guard = RowLengthGuard(limit)
        pos, refused = 0, False
        try:
            while pos < len(text):
                step = rng.choice([1, 7, 999, 1000, 1001, 4096])
                guard.check(text[pos : pos + step])
                pos += step
        except UnreadableFile as exc:
            refused = exc.reason == "row_too_large"
        assert refused == (longest > limit), (lengths, newline)


def test_an_aep_audience_csv_with_an_endless_line_is_quarantined(tmp_path):
    resources = embedded_resources(tmp_path)
    members = sample.audience_members(sample.campaign_recipients(10), in_campaign=10)
    files = _gz_export(members)
    (name,) = files
    text = gzip.decompress(files[name])
    files[name] = gzip.compress(text + b"z" * (3 << 20))
    record, _ = _ingest(resources, files)
    assert record["status"] == "quarantined"
    assert any("row_too_large" in r for r in record["quarantine_reasons"]), record


def test_an_aep_audience_csv_bomb_of_rows_is_quarantined(tmp_path):
    resources = embedded_resources(tmp_path)
    members = sample.audience_members(sample.campaign_recipients(10), in_campaign=10)
    files = _gz_export(members)
    (name,) = files
    header, _, body = gzip.decompress(files[name]).partition(b"\n")
    files[name] = gzip.compress(header + b"\n" + body * ((80 << 20) // len(body)), 6)
    record, _ = _ingest(resources, files)
    assert record["status"] == "quarantined"
    assert any("decompression_bomb" in r for r in record["quarantine_reasons"]), record


def test_the_aep_csv_stream_refuses_a_line_over_its_limit():
    source = io.BytesIO(b"a,b\n" + b"x" * 5000)
    stream = AepCsvStream(source, AepDestinationOptions(), block=1000, max_line_bytes=4096)
    with pytest.raises(UnreadableFile) as refused:
        stream.read()
    assert refused.value.reason == "row_too_large"


def test_a_customer_profile_file_with_an_endless_line_blocks_its_snapshot(tmp_path):
    resources = embedded_resources(tmp_path, file_settle_seconds=5)
    good = (PROFILE_HEADER + "\nC-1,a@example.com,,,,,,,\n").encode()
    drop(tmp_path, "profiles", "good.csv", good)
    drop(tmp_path, "profiles", "endless.csv", good + b"C-2," + b"z" * (2 << 20))
    assert not run(resources, DagsterInstance.ephemeral(), profile_import).success
    (manifest_path,) = (tmp_path / "warehouse" / "profile_import").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "blocked"
    assert manifest["reconciliation"]["unreadable_files"] == {"endless.csv": "row_too_large"}
