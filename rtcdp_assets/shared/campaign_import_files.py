"""Campaign import files: the CSV a Campaign import workflow loads, and its verified upload.

CSV: RFC 4180, UTF-8 (no BOM), comma, a header line, `"`-quoting only where a value needs it,
`\n` line ends, written column by column with Arrow kernels. Upload: the staged bytes are
checked against the SHA-256 the checks passed, written atomically to the Campaign SFTP server,
then the `.done` marker that says the file is complete. Uploads to Campaign pass an
`UploadGuard` (shared/campaign_sftp_storage.py), which refuses them while the SFTP storage is at
its block share and records each upload in the file ledger.
"""

import hashlib
import json
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import Failure

from resources.drop_zones import DropZone, Entry
from resources.warehouse import Warehouse
from rtcdp_assets.shared.campaign_sftp_storage import UploadGuard

# Written beside each import file once it is complete; Campaign's import workflow waits for it.
IMPORT_MARKER_SUFFIX = ".done"
# Bytes that make a value need quotes: `"` `,` `\r` `\n`.
_QUOTE_TRIGGERS = (34, 44, 13, 10)


def _may_need_quotes(text: pa.Array) -> bool:
    """Whether any value of a null-free string array holds a byte that needs quoting.

    One scan of the values' bytes: most columns (ids, addresses, timestamps) hold none, and
    then the per-value regex, replace and if_else are skipped.
    """
    data = text.buffers()[2]
    if data is None or len(text) == 0:
        return False
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)
    start, end = int(offsets[text.offset]), int(offsets[text.offset + len(text)])
    values = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    return any(bool((values == byte).any()) for byte in _QUOTE_TRIGGERS)


def _csv_field(values: pa.Array, suffix: str = "") -> pa.Array:
    """`values` as CSV fields (quoted where needed), each followed by `suffix`."""
    if pa.types.is_dictionary(values.type):
        # Quote each distinct value once (a constant column has one).
        return _csv_field(values.dictionary, suffix).take(values.indices)
    text = pc.fill_null(pc.cast(values, pa.string()), "")
    if _may_need_quotes(text):
        needs = pc.match_substring_regex(text, r'[",\r\n]')
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(needs, quoted, text)
    # The line end joins the last field only, not every line once more.
    return pc.binary_join_element_wise(text, suffix, "") if suffix else text


def _csv_lines(table: pa.Table, columns: tuple[str, ...]) -> pa.Buffer:
    """The CSV lines of `table` (no header), as one buffer; `table` must have rows."""
    last = len(columns) - 1
    fields = [
        _csv_field(table.column(c).combine_chunks(), "\n" if i == last else "")
        for i, c in enumerate(columns)
    ]
    lines = pc.binary_join_element_wise(*fields, ",") if len(fields) > 1 else fields[0]
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    lines = lines.cast(pa.large_string())
    # The data buffer of a null-free string array is exactly the values back to back.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(start, end - start)


def csv_bytes(table: pa.Table, columns: tuple[str, ...]) -> bytes:
    """RFC 4180 CSV with a header, quoting only values that need it, `\\n` line ends."""
    head = ",".join(columns) + "\n"
    if table.num_rows == 0:
        return head.encode()
    return head.encode() + _csv_lines(table, columns).to_pybytes()


# Rows converted to CSV at a time: the file's bytes are never all in memory at once.
_CSV_SLICE_ROWS = 256 * 1024


def write_csv(
    table: pa.Table,
    path: Path,
    columns: tuple[str, ...],
    prepare: Callable[[pa.Table], pa.Table] | None = None,
) -> tuple[int, str]:
    """Write `csv_bytes(table, columns)` to `path` slice by slice, each slice passed through
    `prepare` first; return its size and SHA-256.

    Slices are encoded on a pool of threads (Arrow's kernels release the GIL, and each one is
    single-threaded) and written in order; at most one slice per thread waits to be written,
    which bounds the memory.
    """
    digest = hashlib.sha256()
    workers = max(1, pa.cpu_count())

    def encode(start: int) -> pa.Buffer:
        part = table.slice(start, _CSV_SLICE_ROWS)
        return _csv_lines(prepare(part) if prepare else part, columns)

    def put(data: pa.Buffer | bytes) -> int:
        out.write(data)
        digest.update(data)
        return len(data)

    with path.open("wb") as out, ThreadPoolExecutor(workers) as pool:
        size = put((",".join(columns) + "\n").encode())
        pending: deque[Future[pa.Buffer]] = deque()
        for start in range(0, table.num_rows, _CSV_SLICE_ROWS):
            if len(pending) > workers:
                size += put(pending.popleft().result())
            pending.append(pool.submit(encode, start))
        while pending:
            size += put(pending.popleft().result())
    return size, digest.hexdigest()


def upload_verified(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    staged: tuple[str, str, str],
    target: str,
    sha256: str,
    marker: Mapping[str, Any],
    guard: UploadGuard | None = None,
) -> Entry:
    """Upload a staged import file to Campaign only if its bytes are still the ones the checks
    passed, atomically, then its `.done` marker (the marker says the file is complete).
    `guard`: the Campaign SFTP storage guard, which may refuse the upload (`UploadRefused`)."""
    dataset, folder, name = staged
    with warehouse.local_copy(dataset, folder, name) as local:
        if local is None:
            raise Failure(description=f"Staged import file {name} is missing.")
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        if digest != sha256:
            raise Failure(
                description=f"Staged {name} changed after it was checked "
                f"(SHA-256 {digest} != {sha256}); not uploading it."
            )
        if guard is not None:
            guard.admit(target, local.stat().st_size, sha256)
        entry = campaign_sftp.write_atomic(target, local)
    content = json.dumps(dict(marker), indent=2, sort_keys=True).encode()
    campaign_sftp.write_bytes(f"{target}{IMPORT_MARKER_SUFFIX}", content)
    if guard is not None:
        guard.uploaded(target, entry, sha256)
    return entry
