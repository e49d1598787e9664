"""The per-record code that issue 20 replaced with Arrow compute, kept verbatim as the reference.

Tests assert the columnar code gives exactly these results; bench/bench_per_record.py measures
both on the same input. Each function is the body of the old one, minus its warehouse reads.
"""

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import normalise_keys
from rtcdp_assets.shared.row_json import json_text


def campaign_phones(table: pa.Table, key_column: str, join_identity: str) -> dict[str, str]:
    """destinations/member_sources.py `campaign_phones` before: pandas, then a dict per row."""
    table = table.append_column("_key", normalise_keys(join_identity, table.column(key_column)))
    df = table.to_pandas()
    df = df.sort_values("last_modified", kind="stable").drop_duplicates("recipient_id", keep="last")
    df = df.dropna(subset=["_key"])
    counts = df["_key"].value_counts()
    df = df[df["_key"].map(counts) == 1].dropna(subset=["mobile_phone"])
    return dict(zip(df["_key"], df["mobile_phone"], strict=True))


def member_sources(members: pa.Table, phones: Mapping[str, str]) -> pa.Table:
    """destinations/member_sources.py `member_sources` before: a dict lookup per member."""
    current = members.filter(pc.not_equal(members.column("status"), "exited"))
    current = current.sort_by("key")
    keys = current.column("key").to_pylist()
    return pa.table(
        {
            "key": current.column("key"),
            "email": current.column("email"),
            "mobile_phone": pa.array([phones.get(k) for k in keys], pa.string()),
        }
    )


def campaign_tokens(batches: Iterable[tuple[pa.Array, pa.Array]]) -> dict[str, str]:
    """duplicate_registration.py `campaign_tokens` before, from (normalized token, app ID)."""
    out: dict[str, str] = {}
    for token, app_id in batches:
        out.update(zip(token.to_pylist(), app_id.to_pylist(), strict=True))
    return out


def duplicate_registration(
    aep_batches: Iterable[pa.RecordBatch], campaign: dict[str, str]
) -> dict[str, object]:
    """duplicate_registration.py `duplicate_registration_result` before: its loop, its figures."""
    aep_tokens: set[str] = set()
    apps: Counter[str] = Counter()
    campaign_apps: Counter[str] = Counter()
    for batch in aep_batches:
        for token, app in zip(
            batch.column("token").to_pylist(), batch.column("app_id").to_pylist(), strict=True
        ):
            if token in aep_tokens:
                continue
            aep_tokens.add(token)
            if token in campaign:
                apps[app or "unknown"] += 1
                campaign_apps[campaign[token] or "unknown"] += 1
    return {
        "aep_tokens": len(aep_tokens),
        "campaign_tokens": len(campaign),
        "tokens_registered_through_both_routes": sum(apps.values()),
        "apps_concerned": dict(sorted(apps.items())),
        "campaign_apps_concerned": dict(sorted(campaign_apps.items())),
    }


def raw_json(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.Array:
    """shared/row_json.py `raw_json` before: once one row held a control character, every row
    of the batch went back to Python, the odd ones re-serialised by json."""
    parts: list[pa.Array | str] = []
    for i, name in enumerate(columns):
        parts.append(("{" if i == 0 else ", ") + json.dumps(name) + ": ")
        parts.append(json_text(batch.column(name)))
    parts.append("}")
    text = pc.binary_join_element_wise(*parts, "")
    odd = pc.match_substring_regex(text, "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]")
    if not pc.any(odd).as_py():
        return text
    rows = batch.select(list(columns)).to_pylist()
    fixed = [
        json.dumps(row, ensure_ascii=False, default=str) if bad else value
        for row, bad, value in zip(rows, odd.to_pylist(), text.to_pylist(), strict=True)
    ]
    return pa.array(fixed, pa.string())


def flatten_export(table: pa.Table) -> pa.Table:
    """audience_exports/file_reader.py `_flatten` before: json.dumps per value of a list column."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        names.append(name.replace(".", "_"))
        if pa.types.is_list(column.type) or pa.types.is_map(column.type):
            column = pa.chunked_array(
                [pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()])],
                pa.string(),
            )
        columns.append(column.cast(pa.string()))
    return pa.Table.from_arrays(columns, names=names)
