"""XDM records as JSON Lines: the interface of the publication's JSON form.

`json_lines(batch)` must give exactly these bytes for any XDM batch (canonical JSON per record,
sorted keys, one line each, `\\n` after every line); this module holds the per-record reference
the vectorised encoder is tested against.
"""

from __future__ import annotations

import pyarrow as pa

from rtcdp_assets.shared import xdm


def json_lines(batch: pa.RecordBatch | pa.Table) -> bytes:
    """The records of `batch` as JSON Lines (UTF-8), deterministic for a re-run."""
    return "".join(xdm.dumps(r) + "\n" for r in xdm.to_records(batch)).encode()
