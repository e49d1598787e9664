"""The same contract, asserted against every drop zone: local folder, real sshd, real Azurite,
moto's S3 server."""

from __future__ import annotations

import gzip
import os
import threading

import pytest

from resources import LocalDropZone
from resources.drop_zones import UnsafePathError
from tests.zones import blob_zone, s3_zone, sftp_zone

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "sftp", "blob", "s3"])
def zone(request, tmp_path):
    if request.param == "local":
        yield LocalDropZone(root=str(tmp_path))
        return
    if request.param == "sftp":
        z = sftp_zone(request.getfixturevalue("sshd"))
        yield z
        z.close()
        return
    if request.param == "s3":
        # A prefix, so the contract also covers keys under a "folder" of a shared bucket.
        yield s3_zone(request.getfixturevalue("moto_s3"), prefix="rtcdp")
        return
    yield blob_zone(request.getfixturevalue("azurite"))


def test_write_list_stat_read(zone, tmp_path):
    assert zone.list("export") == []
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    entry = zone.write_atomic("export/broadLog_20261123_0800.csv", src)
    assert entry.path == "export/broadLog_20261123_0800.csv"
    assert entry.size == len(payload)
    listed = zone.list("export")
    assert [e.path for e in listed] == ["export/broadLog_20261123_0800.csv"]
    assert listed[0].identity == entry.identity
    assert zone.stat("export/missing.csv") is None
    with zone.open_read(entry.path) as fh:
        chunks = []
        while chunk := fh.read(65536):
            chunks.append(chunk)
    assert b"".join(chunks) == payload


def test_write_atomic_replaces_and_changes_identity(zone):
    first = zone.write_bytes("export/a.csv", b"one")
    second = zone.write_bytes("export/a.csv", b"two, longer")
    assert zone.read_bytes("export/a.csv") == b"two, longer"
    assert first.identity != second.identity
    # no temporary file is left behind under any name
    assert [e.name for e in zone.list("export")] == ["a.csv"]


def test_move_to_archive_keeps_the_bytes(zone):
    zone.write_bytes("export/b.csv.gz", gzip.compress(b"x,y\n1,2\n", mtime=0))
    zone.move("export/b.csv.gz", "export/archive/broadlog/b.csv.gz@v1")
    assert zone.list("export") == []
    assert gzip.decompress(zone.read_bytes("export/archive/broadlog/b.csv.gz@v1")) == b"x,y\n1,2\n"


def test_nested_folders_are_not_listed_as_files(zone):
    zone.write_bytes("export/top.csv", b"t")
    zone.write_bytes("export/archive/x/deep.csv", b"d")
    assert [e.name for e in zone.list("export")] == ["top.csv"]


@pytest.mark.parametrize(
    "bad", ["../escape.csv", "/etc/passwd", "export/../../x", "a\\b.csv", "x\x00y", ""]
)
def test_paths_can_never_leave_the_zone(zone, bad):
    with pytest.raises(UnsafePathError):
        zone.write_bytes(bad, b"nope")
    with pytest.raises(UnsafePathError):
        zone.stat(bad)


def test_readers_never_see_a_partial_file(zone, tmp_path):
    """While a large file is being replaced, every read sees the old or the new bytes."""
    old, new = b"A" * (2 << 20), b"B" * (3 << 20)
    zone.write_bytes("export/big.csv", old)
    src = tmp_path / "new.bin"
    src.write_bytes(new)
    # A second client, as Campaign's import workflow would be: its own session.
    other = type(zone)(**{k: getattr(zone, k) for k in type(zone).model_fields})
    seen: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(other.read_bytes("export/big.csv"))

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(3):
        zone.write_atomic("export/big.csv", src)
    done.set()
    t.join()
    seen.append(other.read_bytes("export/big.csv"))
    assert seen[-1] == new
    assert len(seen) >= 2
    assert all(s in (old, new) for s in seen)


def test_list_folders_names_direct_sub_folders_only(zone):
    # AEP dataset exports nest their files: <folder>/<datasetId>/exportTime=YYYYMMDDHHMM/
    assert zone.list_folders("exports") == []
    for path in (
        "exports/ds2/exportTime=202611230900/part-0.json",
        "exports/ds1/exportTime=202611230800/part-0.json",
        "exports/ds1/exportTime=202611231200/part-0.parquet",
        "exports/readme.txt",
    ):
        zone.write_bytes(path, b"{}\n")
    assert zone.list_folders("exports") == ["ds1", "ds2"]
    assert zone.list_folders("exports/ds1") == [
        "exportTime=202611230800",
        "exportTime=202611231200",
    ]
    assert zone.list_folders("exports/ds1/exportTime=202611230800") == []
    assert [e.name for e in zone.list("exports")] == ["readme.txt"]


def test_walk_lists_every_file_below_a_folder_with_its_size(zone):
    zone.write_bytes("export/archive/broadlog/a.csv@1", b"12345")
    zone.write_bytes("export/archive/tracking_log/deep/b.csv@2", b"123")
    zone.write_bytes("export/c.csv", b"outside the archive")
    walked = sorted((e.path, e.size) for e in zone.walk("export/archive"))
    assert walked == [
        ("export/archive/broadlog/a.csv@1", 5),
        ("export/archive/tracking_log/deep/b.csv@2", 3),
    ]
    assert list(zone.walk("export/missing")) == []


def test_delete_removes_one_file_and_says_whether_it_was_there(zone):
    zone.write_bytes("import/a.csv", b"a")
    zone.write_bytes("import/a.csv.done", b"{}")
    assert zone.delete("import/a.csv") is True
    assert zone.stat("import/a.csv") is None
    assert zone.stat("import/a.csv.done") is not None
    assert zone.delete("import/a.csv") is False
