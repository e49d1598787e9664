"""AEP dataset export of the Mobile SDK push registrations (the other route to the device)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rtcdp_dev.sample_data.common import (
    _epoch_seconds,
    as_utc,
    floor_window,
    rng_for,
    weighted_choice,
)
from rtcdp_dev.sample_data.datasets import _write_atomically
from rtcdp_dev.sample_data.push_subscriptions_rows import (
    _PUSH_APP_WEIGHTS,
    _PUSH_PLATFORMS,
    PUSH_APPS,
    push_tokens_for,
)

DEFAULT_PUSH_DATASET_ID = "6571b2c3d4e5f60718293a4b"  # shaped like an AEP dataset ID
_AEP_DEFECTS = (
    "invalid_json",
    "no_push_details",
    "invalid_push_token",
    "unknown_code:platform",
    "missing_required_value",
)
_IDENTITY_TYPE = pa.struct(
    [pa.field("namespace", pa.struct([pa.field("code", pa.string())])), ("xid", pa.string())]
)
AEP_PUSH_RECORD_SCHEMA = pa.schema(
    [
        pa.field("_id", pa.string()),
        pa.field(
            "identityMap",
            pa.struct(
                [
                    pa.field(
                        "ECID",
                        pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])),
                    )
                ]
            ),
        ),
        pa.field(
            "pushNotificationDetails",
            pa.list_(
                pa.struct(
                    [
                        ("appID", pa.string()),
                        ("token", pa.string()),
                        ("platform", pa.string()),
                        ("denylisted", pa.bool_()),
                        ("identity", _IDENTITY_TYPE),
                    ]
                )
            ),
        ),
    ]
)


@dataclass(frozen=True)
class AepPushExport:
    """One AEP dataset export: zone-relative path -> bytes, and what the pipeline must make
    of it (each record holds one push item, so rows = records)."""

    files: dict[str, bytes] = field(repr=False)
    records: int
    expected_rows_out: int
    expected_rejects: dict[str, int]
    overlap: int  # good rows whose token Campaign also holds
    overlap_by_app: dict[str, int]
    partition: str

    def write(self, root: Path) -> list[Path]:
        written = []
        for rel, data in self.files.items():
            path = Path(root) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
            written.append(path)
        return written


def aep_push_token_export(
    campaign_tokens: Sequence[tuple[str, str, str]],
    *,
    seed: int,
    export_time: datetime,
    overlap: int,
    aep_only: int,
    defects: int = 0,
    fmt: str = "json",
    parts: int = 1,
    dataset_id: str = DEFAULT_PUSH_DATASET_ID,
    folder: str = "aep_dataset_exports",
) -> AepPushExport:
    """The push tokens AEP holds from the Mobile SDK route, as a dataset export under
    `<folder>/<dataset_id>/exportTime=YYYYMMDDHHMM/part-*.json|.parquet`.

    `campaign_tokens` are (app ID, token, platform apns/fcm) that Campaign holds; exactly
    `overlap` distinct ones of them are registered in AEP too (the duplicate registrations),
    plus `aep_only` devices Campaign does not know, plus `defects` malformed records (one
    reason each, cycling through `_AEP_DEFECTS`; `invalid_json` only in JSON).
    """
    if fmt not in ("json", "parquet"):
        raise ValueError("fmt must be json or parquet")
    when = as_utc(export_time)
    stamp = f"{when:%Y%m%d%H%M}"
    rng = rng_for(seed, "aep-push", _epoch_seconds(when))
    distinct = list(dict.fromkeys((t, (a, p)) for a, t, p in campaign_tokens))
    if overlap > len(distinct):
        raise ValueError(f"overlap {overlap} > {len(distinct)} Campaign tokens")
    shared = [distinct[i] for i in sorted(rng.choice(len(distinct), size=overlap, replace=False))]
    platforms = [_PUSH_PLATFORMS[i][0] for i in weighted_choice(rng, aep_only, [0.55, 0.45])]
    own_apps = [PUSH_APPS[i] for i in weighted_choice(rng, aep_only, _PUSH_APP_WEIGHTS)]
    own = list(zip(own_apps, push_tokens_for(rng, platforms), platforms, strict=True))
    devices = [(app, token, platform) for token, (app, platform) in shared] + own
    ecids = ["".join(map(str, rng.integers(0, 10, 38))) for _ in range(len(devices) + defects)]

    def record(i: int, item: dict[str, object] | None) -> dict[str, object]:
        out: dict[str, object] = {
            "_id": f"{stamp}-{i:07d}",
            "identityMap": {"ECID": [{"id": ecids[i], "primary": True}]},
        }
        if item is not None:
            item["identity"] = {"namespace": {"code": "ECID"}, "xid": ecids[i]}
            out["pushNotificationDetails"] = [item]
        return out

    records: list[dict[str, object] | str] = [
        record(i, {"appID": a, "token": t, "platform": p, "denylisted": False})
        for i, (a, t, p) in enumerate(devices)
    ]
    kinds = [k for k in _AEP_DEFECTS if fmt == "json" or k != "invalid_json"]
    rejects: Counter[str] = Counter()
    for j in range(defects):
        kind = kinds[j % len(kinds)]
        i = len(devices) + j
        good_token = push_tokens_for(rng, ["apns"])[0]
        item = {"appID": PUSH_APPS[0], "token": good_token, "platform": "apns", "denylisted": False}
        if kind == "invalid_json":
            records.append('{"_id": "' + stamp + '-broken", "pushNotificationDetails": [')
        elif kind == "no_push_details":
            records.append(record(i, None))
        elif kind == "invalid_push_token":
            records.append(record(i, {**item, "token": good_token[:40]}))
        elif kind == "unknown_code:platform":
            records.append(record(i, {**item, "platform": "wns"}))
        else:
            records.append(record(i, {**item, "appID": None}))
        rejects[kind] += 1
    order = rng.permutation(len(records))
    shuffled = [records[i] for i in order]
    name_hash = hashlib.sha256(f"{seed}-{stamp}-{dataset_id}".encode()).hexdigest()[:12]
    base = f"{folder}/{dataset_id}/exportTime={stamp}"
    files: dict[str, bytes] = {}
    per_part = -(-len(shuffled) // parts) if shuffled else 0
    for k in range(parts):
        chunk = shuffled[k * per_part : (k + 1) * per_part]
        name = f"{base}/part-{k:05d}-{name_hash}.{fmt}"
        if fmt == "json":
            lines = [r if isinstance(r, str) else json.dumps(r, sort_keys=True) for r in chunk]
            files[name] = "".join(line + "\n" for line in lines).encode()
        else:
            sink = pa.BufferOutputStream()
            table = pa.Table.from_pylist(
                [r for r in chunk if not isinstance(r, str)], schema=AEP_PUSH_RECORD_SCHEMA
            )
            pq.write_table(table, sink)
            files[name] = sink.getvalue().to_pybytes()
    by_app = Counter(app for _token, (app, _p) in shared)
    window = floor_window(when).strftime("%Y-%m-%d-%H:%M")
    return AepPushExport(
        files=files,
        records=len(records),
        expected_rows_out=len(devices),
        expected_rejects=dict(sorted(rejects.items())),
        overlap=overlap,
        overlap_by_app=dict(sorted(by_app.items())),
        partition=window,
    )
