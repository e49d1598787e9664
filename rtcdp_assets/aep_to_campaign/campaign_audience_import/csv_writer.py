"""Writing CSV: vectorised, quoting only what needs it, slices encoded on a pool of threads."""

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import IMPORT_COLUMNS

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


def csv_bytes(table: pa.Table, columns: tuple[str, ...] = IMPORT_COLUMNS) -> bytes:
    """RFC 4180 CSV with a header, quoting only values that need it, `\\n` line ends."""
    head = ",".join(columns) + "\n"
    if table.num_rows == 0:
        return head.encode()
    return head.encode() + _csv_lines(table, columns).to_pybytes()


# Rows converted to CSV at a time: the file's bytes are never all in memory at once.
_CSV_SLICE_ROWS = 256 * 1024


def write_csv(
    table: pa.Table, path: Path, columns: tuple[str, ...] = IMPORT_COLUMNS
) -> tuple[int, str]:
    """Write `csv_bytes(table)` to `path` slice by slice; return its size and SHA-256."""
    return write_prepared_csv(table, path, columns)


def write_prepared_csv(
    table: pa.Table,
    path: Path,
    columns: tuple[str, ...],
    prepare: Callable[[pa.Table], pa.Table] | None = None,
) -> tuple[int, str]:
    """`write_csv`, each slice passed through `prepare` first.

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
