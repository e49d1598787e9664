"""JSON Lines and Parquet audience exports flatten to the same CSV as the per-record reference.

The records are shaped like AEP's (docs/formats.md §c2): nested XDM paths, a segmentMembership
map, and identityMap with arrays of identity items; one item with non-ASCII text, one with a
quote and a backslash, one with a control character, empty and missing arrays, and a float in a
list, which json writes its own way. Parquet holds identityMap as a map of namespace → items.
"""

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from rtcdp_assets.aep_to_campaign.audience_exports.file_reader import _flatten
from tests import per_record_reference as reference

AUDIENCE = "0f6a4e1c-2b7d-4c51-9d3e-8a1b2c3d4e5f"


def _item(identity: str, state: str = "ambiguous", primary: bool = False) -> dict[str, object]:
    return {"id": identity, "authenticatedState": state, "primary": primary}


def records() -> list[dict[str, object]]:
    membership = {
        "ups": {AUDIENCE: {"status": "realized", "lastQualificationTime": "2026-11-30T08:00:00Z"}}
    }
    rows: list[dict[str, object]] = []
    for i in range(300):
        rows.append(
            {
                "personalEmail": {"address": f"person{i}@example.com"},
                "segmentMembership": membership,
                "identityMap": {
                    "ECID": [_item(f"{83_237_000_000 + i}", primary=True)],
                    "Email": [_item(f"person{i}@example.com", "authenticated")],
                },
                "scores": [i, i + 1],
            }
        )
    rows[1]["identityMap"] = {"ECID": [], "Email": [_item("zoë@exämple.fr")]}
    rows[2]["identityMap"] = {"ECID": [_item('q"uo\\te')], "Email": None}
    rows[3]["identityMap"] = {"ECID": [_item("bell\x07")], "Email": []}
    rows[4].pop("identityMap")
    rows[5]["scores"] = []
    rows[6]["scores"] = None
    return rows


def test_json_lines_export_flattens_like_the_reference(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(r) for r in records()).encode()
    table = pajson.read_json(io.BytesIO(lines))
    got, expected = _flatten(table), reference.flatten_export(table)
    assert got.equals(expected)
    assert any("identityMap" in n for n in got.column_names)
    for name, flat in (("got", got), ("expected", expected)):
        pacsv.write_csv(flat, tmp_path / f"{name}.csv")
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()


def test_parquet_identity_map_and_floats_flatten_like_the_reference() -> None:
    item = pa.struct(
        [("id", pa.string()), ("authenticatedState", pa.string()), ("primary", pa.bool_())]
    )
    rows = records()
    identity_maps = [
        None if "identityMap" not in r else [(k, v) for k, v in r["identityMap"].items()]
        for r in rows
    ]
    table = pa.table(
        {
            "personalEmail": pa.array([r["personalEmail"] for r in rows]),
            "identityMap": pa.array(identity_maps, pa.map_(pa.string(), pa.list_(item))),
            "weights": pa.array([[i / 3, 1.0] for i in range(len(rows))], pa.list_(pa.float64())),
        }
    )
    for part in (table, table.slice(3, 100)):
        assert _flatten(part).equals(reference.flatten_export(part))
