"""Campaign recipients an audience is matched against (latest version of each, from the
`profiles` partitions) and the suppressed email addresses.
"""

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from dagster import Failure
from pyarrow import acero

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    CAMPAIGN_COLUMNS,
    campaign_key_expression,
    normalise_keys,
)
from rtcdp_assets.shared.ingest import LINE_NUMBER, SOURCE_FILE
from rtcdp_assets.shared.suppression import load_suppression


def load_email_suppression(warehouse: Warehouse) -> pd.Series:
    """Suppressed email address -> reason (the first reason by name when there are several)."""
    table = load_suppression(warehouse, ("email",))
    return pd.Series(
        table.column("reason").to_pylist(),
        index=pd.Index(table.column("address").to_pylist(), name="address"),
        name="reason",
        dtype=object,
    )


# pandas sorts a missing last_modified after every date, so such a version wins; so here.
_MISSING_MODIFIED = pa.scalar(np.iinfo(np.int64).max, pa.timestamp("us", tz="UTC"))
RECIPIENT_COLUMNS = ["recipient_id", "external_id", "email"]
JOIN_KEY = "join_key"  # the recipients' normalised join identity, added by the match


def _semi_join(
    files: Sequence[Path],
    columns: list[str],
    key: str,
    right: pa.Table,
    key_expression: pc.Expression | None = None,
) -> pa.Table:
    """`columns` (+ the partition's index) of the profile rows whose `key` is in `right`.

    One Arrow hash join: the table of `right` (the small side) is built once, and the profiles
    are scanned and probed batch by batch in parallel; only matching rows are kept in memory.
    With `key_expression`, the key is that expression of the row (a normalised identity),
    computed in the scan's projection as column `key`.
    """
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    names = [*columns, "_partition"]
    fields = [pc.field(c) for c in columns] + [pc.field("__fragment_index")]
    if key_expression is not None:
        names.append("join_key")
        fields.append(key_expression)
        key = "join_key"
    # Small batches, little read-ahead: the scan must not run far ahead of the probing, or
    # the queued batches (not the matches) set the peak memory.
    options = acero.ScanNodeOptions(
        dataset, columns=columns, batch_size=128 * 1024, batch_readahead=2, fragment_readahead=1
    )
    scan = acero.Declaration.from_sequence(
        [
            acero.Declaration("scan", options),
            acero.Declaration("project", acero.ProjectNodeOptions(fields, names)),
        ]
    )
    join = acero.Declaration(
        "hashjoin",
        acero.HashJoinNodeOptions("left semi", left_keys=[key], right_keys=[right.column_names[0]]),
        inputs=[scan, acero.Declaration("table_source", acero.TableSourceNodeOptions(right))],
    )
    return join.to_table()


@contextmanager
def _profile_files(warehouse: Warehouse, partitions: set[str]) -> Iterator[list[Path]]:
    """Local copies of the materialized `profiles` partitions (the source of truth)."""
    with ExitStack() as stack:
        files = []
        for pk in sorted(partitions):
            local = stack.enter_context(warehouse.local_copy("profiles", pk, "data.parquet"))
            if local is not None:
                files.append(local)
        if not files:
            raise Failure(
                description="No Campaign profiles are materialized: without the source of truth "
                "no member can be matched, so nothing is imported. Materialize `profiles` first."
            )
        yield files


def _latest_of(
    files: Sequence[Path],
    handed_over: list[pa.Table],
    wanted_columns: list[str] = RECIPIENT_COLUMNS,
) -> pa.Table:
    """`wanted_columns` (recipient_id, external_id, email) of the latest version of each wanted
    recipient.

    The wanted ids come in a list the function empties, so that no caller frame keeps them
    alive while the versions are ranked: at 10 M members they are hundreds of MiB of the peak.
    """
    wanted = handed_over.pop()
    # Only what the ranking needs: the scan queues batches while the join builds its table of
    # the wanted ids (9 M at 10 M members), so every column carried here adds to the peak.
    columns = ["recipient_id", "last_modified", SOURCE_FILE, LINE_NUMBER]
    versions = _semi_join(files, columns, "recipient_id", wanted)
    del wanted
    winners = versions.filter(_latest_versions(versions)).select(
        ["_partition", SOURCE_FILE, LINE_NUMBER]
    )
    del versions
    release_memory()
    return _rows_at(files, winners, wanted_columns)


def _rows_at(files: Sequence[Path], places: pa.Table, columns: list[str]) -> pa.Table:
    """`columns` of the profile rows at `places` (_partition = index in `files`, source file,
    line: one row each), one partition file at a time, so memory holds one file's columns."""
    parts: list[pa.Table] = []
    partition = places.column("_partition")
    for i, path in enumerate(files):
        mine = places.filter(pc.equal(partition, i)).select([SOURCE_FILE, LINE_NUMBER])
        if not mine.num_rows:
            continue
        rows = pq.read_table(path, columns=[*columns, SOURCE_FILE, LINE_NUMBER])
        found = rows.join(mine, keys=[SOURCE_FILE, LINE_NUMBER], join_type="left semi")
        parts.append(found.select(columns))
        del rows, found
    if not parts:
        schema = pq.read_schema(files[0])  # `_profile_files` never hands over an empty list
        return pa.schema([schema.field(c) for c in columns]).empty_table()
    return pa.concat_tables(parts, promote_options="permissive")


def match_campaign_recipients(
    warehouse: Warehouse, partitions: set[str], member_keys: pa.ChunkedArray, join_identity: str
) -> pa.Table:
    """recipient_id, external_id, email and the normalised join identity (`join_key`) of the
    Campaign recipients a member could match (keys as `join_identities.normalise_keys`).

    The result is the latest version of each recipient (greatest last_modified, then the last
    row in read order), restricted to recipients that have a version whose join identity is
    one of `member_keys`, without holding every profile in memory: pass 1 scans identity +
    recipient_id and keeps the recipients seen under a member's identity; pass 2 scans every
    version of those recipients, so a newer version under another identity still wins.
    """
    return match_handed_over_keys(warehouse, partitions, [member_keys], join_identity)


def match_handed_over_keys(
    warehouse: Warehouse,
    partitions: set[str],
    handed_over: list[pa.ChunkedArray],
    join_identity: str,
) -> pa.Table:
    """`match_campaign_recipients` of the member keys in `handed_over`, which it empties: no
    caller frame keeps them alive (hundreds of MiB at 10 M members) after the first pass."""
    key_column = CAMPAIGN_COLUMNS[join_identity]
    # A plain external ID is joined as stored; email and phone through their normalisation.
    expression = None if join_identity == "external_id" else campaign_key_expression(join_identity)
    columns = RECIPIENT_COLUMNS + ([key_column] if key_column not in RECIPIENT_COLUMNS else [])
    with _profile_files(warehouse, partitions) as files:
        keys = pa.table({"key": handed_over.pop()})
        seen = _semi_join(files, ["recipient_id", key_column], key_column, keys, expression)
        del keys
        wanted = [pa.table({"wanted": pc.unique(seen.column("recipient_id").combine_chunks())})]
        del seen
        release_memory()
        latest = _latest_of(files, wanted, columns)
    keyed = latest.append_column(JOIN_KEY, normalise_keys(join_identity, latest.column(key_column)))
    return keyed.select([*RECIPIENT_COLUMNS, JOIN_KEY])


def recipients_by_id(
    warehouse: Warehouse, partitions: set[str], recipient_ids: pa.Array | pa.ChunkedArray
) -> pd.DataFrame:
    """recipient_id, external_id, email of the latest version of just these recipients: what a
    check over an import file needs, in memory bounded by the file rather than by Campaign."""
    with _profile_files(warehouse, partitions) as files:
        schema = pq.read_schema(files[0])
        ids = pc.unique(pa.chunked_array([recipient_ids]).combine_chunks())
        wanted = [pa.table({"wanted": ids.cast(schema.field("recipient_id").type)})]
        return _latest_of(files, wanted).to_pandas()


def release_memory() -> None:
    # Arrow's allocator keeps freed pages for reuse; between the phases of a match they would
    # only add up to the peak, so they go back to the system.
    pa.default_memory_pool().release_unused()


def _dense_rank(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _latest_versions(versions: pa.Table) -> pa.Array:
    """Mask of the latest version of each recipient.

    That is the greatest last_modified, then the row that comes last when the partitions are
    read in key order: within a partition the asset writes rows in (source file, line) order.
    """
    n = versions.num_rows
    if n == 0:
        return pa.array(np.zeros(0, dtype=bool))
    group, groups = _group_numbers(versions.column("recipient_id"))
    modified = pc.fill_null(versions.column("last_modified"), _MISSING_MODIFIED)
    stamps = modified.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    del modified
    read_order = _read_order(versions)
    # Two maxima per group, each one scatter over the rows (no sort): the newest stamp, then
    # the last in read order among the rows that have it.
    lowest = np.iinfo(np.int64).min
    newest = np.full(groups, lowest, dtype=np.int64)
    np.maximum.at(newest, group, stamps)
    tied = np.flatnonzero(stamps == newest[group])
    del stamps, newest
    last = np.full(groups, lowest, dtype=np.int64)
    np.maximum.at(last, group[tied], read_order[tied])
    winners = tied[read_order[tied] == last[group[tied]]]
    # One row per group even if two rows share a read position (never in ingested data).
    one = np.full(groups, -1, dtype=np.int64)
    one[group[winners]] = winners
    latest = np.zeros(n, dtype=bool)
    latest[one[one >= 0]] = True
    return pa.array(latest)


def _group_numbers(ids: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """A number per row, the same for equal ids (nulls together), and how many there are.

    From the sorted ids, a new number where the id changes: Arrow sorts 9 M short strings
    several times faster than it hashes them (dictionary_encode or group_by).
    """
    order = pc.sort_indices(ids)
    ordered = ids.take(order).combine_chunks()
    n = len(ordered)
    after, before = ordered.slice(1), ordered.slice(0, n - 1)
    changed = pc.coalesce(
        pc.not_equal(after, before), pc.not_equal(pc.is_null(after), pc.is_null(before))
    )
    del ordered, after, before
    numbers = np.zeros(n, dtype=np.int64)
    np.cumsum(changed.to_numpy(zero_copy_only=False), out=numbers[1:])
    group = np.empty(n, dtype=np.int64)
    group[order.to_numpy()] = numbers
    return group, int(numbers[-1]) + 1 if n else 0


def _read_order(versions: pa.Table) -> np.ndarray:
    """A number per row that grows with (partition, source file by name, line): one int64 built
    from the three when it fits, else the row's rank in that order."""
    source = versions.column(SOURCE_FILE).combine_chunks().dictionary_encode()
    source_rank = _dense_rank(np.asarray(source.dictionary.to_pylist(), dtype=object))
    sources = source_rank[source.indices.to_numpy(zero_copy_only=False)]
    del source
    partition = versions.column("_partition").to_numpy().astype(np.int64)
    line = versions.column(LINE_NUMBER).to_numpy()
    n_sources = len(source_rank) or 1
    low, high = int(line.min()), int(line.max())
    if low >= 0 and (int(partition.max()) + 1) * n_sources * (high + 1) < 1 << 62:
        return (partition * n_sources + sources) * (high + 1) + line
    n = len(line)
    order = np.lexsort((line, sources, partition))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n, dtype=np.int64)
    return position
