"""The Arrow fast path: a whole export file split into rows and rejects with compute kernels.

It gives the same rows and rejects as the per-record path (push_token_records.py) for the same
records.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from resources.settings import PipelineSettings
from rtcdp_assets.mobile_push.push_token_records import LINE_NUMBER, TYPED_SCHEMA, raw_json
from rtcdp_assets.shared import push_token_formats


def arrow_table(local: Path, name: str) -> pa.Table | None:
    """The file as an Arrow table when Arrow can take it whole: any Parquet file (None when
    unreadable is decided by the caller), or a plain JSON-lines file whose every line is one
    object of consistent types, with no blank line (so row i is line i + 1). None → the
    per-record path, which also finds and names the malformed lines."""
    if name.endswith(".parquet"):
        return pq.read_table(local)
    if not name.endswith(".json"):
        return None
    lines, blank, previous = 0, False, b"\n"
    with local.open("rb") as fh:
        while chunk := fh.read(4 << 20):
            lines += chunk.count(b"\n")
            blank = blank or b"\n\n" in previous[-1:] + chunk
            previous = chunk
    if previous[-1:] != b"\n":
        lines += 1
    if blank:
        return None
    try:
        table = pajson.read_json(local)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == lines else None


def _text_array(values: pa.Array | None, n: int) -> pa.Array:
    """Trimmed text, null where missing or empty (as `_text` does for one value)."""
    if values is None or pa.types.is_struct(values.type) or pa.types.is_list(values.type):
        return pa.nulls(n, pa.string())
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    return pc.if_else(pc.equal(pc.utf8_length(text), 0), pa.scalar(None, pa.string()), text)


def _field(values: pa.Array | None, name: str) -> pa.Array | None:
    if values is None or not pa.types.is_struct(values.type):
        return None
    index = values.type.get_field_index(name)
    return None if index < 0 else pc.struct_field(values, [index])


def _first_ecids(table: pa.Table) -> pa.Array:
    """Per record: the first non-empty ECID of its identityMap (null when none)."""
    n = table.num_rows
    identity_map = (
        table.column("identityMap").combine_chunks()
        if "identityMap" in table.column_names
        else None
    )
    ecids = _field(identity_map, "ECID")
    if ecids is None or not pa.types.is_list(ecids.type):
        return pa.nulls(n, pa.string())
    ids = _text_array(_field(pc.list_flatten(ecids), "id"), len(pc.list_flatten(ecids)))
    parents = pc.list_parent_indices(ecids).to_numpy()
    present = np.asarray(pc.is_valid(ids).to_numpy(zero_copy_only=False), dtype=bool)
    rows, first = np.unique(parents[present], return_index=True)
    out = np.full(n, -1, dtype=np.int64)
    out[rows] = np.flatnonzero(present)[first]
    return pc.take(ids, pa.array(out, mask=out < 0))


def arrow_split(
    table: pa.Table, settings: PipelineSettings
) -> tuple[pa.Table, list[tuple[int, str, str, str]]]:
    """Typed candidate rows (token not yet checked; `LINE_NUMBER` set) and the rejects
    (record number, reason, column, raw) of one whole file, as `split_record` decides them."""
    n = table.num_rows
    rejects: list[tuple[int, str, str, str]] = []
    details = (
        table.column("pushNotificationDetails").combine_chunks()
        if "pushNotificationDetails" in table.column_names
        else None
    )
    if details is None or not pa.types.is_list(details.type):
        details = pa.nulls(n, pa.list_(pa.struct([])))
    lengths = pc.fill_null(pc.list_value_length(details), 0).to_numpy()
    for i in np.flatnonzero(lengths == 0).tolist():
        record = table.slice(i, 1).to_pylist()[0]
        rejects.append(
            (i + 1, "no_push_details", "pushNotificationDetails", json.dumps(record, default=str))
        )
    items = pc.list_flatten(details)
    parent = pc.list_parent_indices(details).to_numpy()
    offsets = details.offsets.to_numpy()
    position = np.arange(len(items)) - (offsets[parent] - offsets[0])
    m = len(items)
    if not pa.types.is_struct(items.type):
        for k in range(m):
            rejects.append(
                (
                    int(parent[k]) + 1,
                    "no_push_details",
                    f"pushNotificationDetails[{position[k]}]",
                    raw_json(items[k].as_py()),
                )
            )
        return TYPED_SCHEMA.empty_table(), rejects
    app, token, platform = (
        _text_array(_field(items, k), m) for k in ("appID", "token", "platform")
    )
    known = pc.is_in(platform, value_set=pa.array(sorted(push_token_formats.PLATFORMS)))
    checks = (
        (pc.is_null(app), "missing_required_value", ".appID"),
        (pc.is_null(token), "missing_required_value", ".token"),
        (pc.is_null(platform), "missing_required_value", ".platform"),
        (pc.invert(pc.fill_null(known, False)), "unknown_code:platform", ".platform"),
    )
    failed = np.zeros(m, dtype=bool)
    for mask, reason, suffix in checks:
        hit = (
            np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
            & ~failed
        )
        for k in np.flatnonzero(hit).tolist():
            rejects.append(
                (
                    int(parent[k]) + 1,
                    reason,
                    f"pushNotificationDetails[{position[k]}]{suffix}",
                    raw_json(items[k].as_py()),
                )
            )
        failed |= hit
    keep = pa.array(~failed)
    identity = _field(items, "identity")
    denylisted = _field(items, "denylisted")
    if denylisted is None or not pa.types.is_boolean(denylisted.type):
        denylisted = pa.nulls(m, pa.bool_())
    record_ids = _text_array(
        table.column("_id").combine_chunks() if "_id" in table.column_names else None, n
    )
    take = pa.array(parent)
    xid = _text_array(_field(identity, "xid"), m)
    candidates = pa.table(
        {
            "record_id": pc.take(record_ids, take),
            "ecid": pc.take(_first_ecids(table), take),
            "app_id": app,
            "token": token,
            "platform": platform,
            "denylisted": denylisted,
            "identity_namespace": _text_array(_field(_field(identity, "namespace"), "code"), m),
            "identity_id": pc.coalesce(xid, _text_array(_field(identity, "id"), m)),
            LINE_NUMBER: pa.array(parent + 1, pa.int64()),
            "_item": pa.array(position, pa.int64()),
        }
    ).filter(keep)
    return candidates, rejects
