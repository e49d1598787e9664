"""Identity graphs of the records we publish, over columns: what AEP's Identity Service builds
when it links the identities one record carries (docs/formats.md §e2: a record with two or
more identities links them; 50 identities per graph at most).

Each identity is a 64-bit hash of `namespace + U+001F + id` (xdm_tallies.string_hashes), so
memory is 8 bytes per identity and no value is kept. A record's identities (every namespace of
its `identityMap`, and the `identity` of each `pushNotificationDetails` item) are linked to
the record's first identity; the graphs are the connected components of those links, found
by a vectorised union-find (hook the larger root onto the smaller, then halve paths until
every node points at its root), a few numpy passes per round.

Two different identities sharing a hash (odds about n²/2⁶⁵: 10⁻⁶ for 6 M identities) would
join their graphs: the check could over-report, never miss a graph over the limit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asset_checks.campaign_to_aep.xdm_tallies import string_hashes

SEPARATOR = "\x1f"  # between namespace and id in the hashed key: no id carries it


class IdentityGraphs:
    """Identities and the links between them, added record batch by record batch."""

    def __init__(self) -> None:
        self.records = 0
        self._nodes: list[np.ndarray] = []
        self._left: list[np.ndarray] = []
        self._right: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch) -> None:
        """The identities of each record of `batch`, linked to the record's first one."""
        rows, hashes = record_identities(batch)
        self.records += batch.num_rows
        if not len(hashes):
            return
        order = np.argsort(rows, kind="stable")
        rows, hashes = rows[order], hashes[order]
        _, first_at, per_row = np.unique(rows, return_index=True, return_counts=True)
        first = np.repeat(hashes[first_at], per_row)
        linked = first != hashes
        self._nodes.append(hashes)
        self._left.append(first[linked])
        self._right.append(hashes[linked])

    def sizes(self) -> np.ndarray:
        """Identities per graph (one entry per graph, a lone identity is a graph of 1)."""
        if not self._nodes:
            return np.zeros(0, dtype=np.int64)
        nodes = np.unique(np.concatenate(self._nodes))
        left = np.searchsorted(nodes, np.concatenate(self._left))
        right = np.searchsorted(nodes, np.concatenate(self._right))
        roots = connected_roots(len(nodes), left, right)
        counts = np.bincount(roots, minlength=len(nodes))
        return counts[counts > 0]


def connected_roots(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The root (smallest node) of each node's component, for `n` nodes and links
    `left[i]`-`right[i]`: union-find by rounds of hooking and full path compression."""
    parent = np.arange(n, dtype=np.int64)
    left, right = left.astype(np.int64), right.astype(np.int64)
    while len(left):
        a, b = parent[left], parent[right]  # roots: every node points at its root here
        apart = a != b
        left, right, a, b = left[apart], right[apart], a[apart], b[apart]
        if not len(left):
            break
        # Each root with a smaller neighbour root hooks onto the smallest: no cycle can form.
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def record_identities(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(row, hash) of every identity of every record of `batch`, nulls left out."""
    rows: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    names = batch.schema.names
    if "identityMap" in names:
        for namespace, items in _identity_map_lists(batch.column("identityMap")):
            _add(rows, hashes, items, lambda flat: flat.field("id"), namespace)
    if "pushNotificationDetails" in names:
        details = batch.column("pushNotificationDetails")
        item_type = details.type.value_type
        if pa.types.is_struct(item_type) and item_type.get_field_index("identity") >= 0:
            _add(rows, hashes, details, lambda flat: flat.field("identity"), None)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    return np.concatenate(rows), np.concatenate(hashes)


def _identity_map_lists(column: pa.Array) -> Iterable[tuple[str, pa.Array]]:
    """(namespace, list of identity items) per namespace of an `identityMap` column."""
    if pa.types.is_struct(column.type):
        for i, lists in enumerate(column.flatten()):  # a null identityMap nulls its lists
            yield column.type.field(i).name, lists
        return
    # A map column (namespace → items): one list per namespace found in it.
    keys = pc.list_flatten(pc.map_keys(column)) if len(column) else pa.array([], pa.string())
    for namespace in pc.unique(keys).to_pylist():
        yield namespace, pc.map_lookup(column, namespace, "first")


def _add(
    rows: list[np.ndarray],
    hashes: list[np.ndarray],
    lists: pa.Array,
    ids_of: object,
    namespace: str | None,
) -> None:
    """Append the (row, hash) of the non-null ids in `lists` (a list column)."""
    flat = pc.list_flatten(lists)  # the items of non-null lists only
    if not len(flat):
        return
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    parents = pa.array(np.repeat(np.arange(len(lists), dtype=np.int64), lengths))
    picked = ids_of(flat)  # type: ignore[operator]
    if namespace is None:  # an XDM `identity` struct: {namespace: {code}, xid}
        codes = picked.field("namespace").field("code")
        values = picked.field("xid")
    else:
        codes, values = pa.repeat(pa.scalar(namespace), len(picked)), picked
    keys = pc.binary_join_element_wise(pc.cast(codes, pa.string()), values, SEPARATOR)
    present = pc.is_valid(keys)
    keys, parents = pc.filter(keys, present), pc.filter(parents, present)
    rows.append(parents.to_numpy(zero_copy_only=False).astype(np.int64))
    hashes.append(string_hashes(keys))
