"""AEP audience members → the file a Campaign import workflow loads (Campaign: source of truth).

    audience_membership ──▶ campaign_audience_import ──(blocking checks)──▶ …_published
     members after an        joined to Campaign `profiles`:            uploaded atomically to the
     export                  staged import file + quarantine           Campaign SFTP import folder,
                             + exclusions (warehouse)                  then `<name>.done`

Campaign is the source of truth for profiles (adobe-formats §f1): an AEP member whose join
identity (`audience_settings.join_identity`: the Campaign external ID, or the lower-cased email)
matches no Campaign recipient never reaches Campaign; it goes to the quarantine with the reason
`not_in_campaign` (`ambiguous_campaign_profile` when several recipients share the identity, so
nobody is imported under the wrong recipient). A member whose Campaign email address is in the
`suppression_list` (quarantined, denylisted or opted out) is excluded with that reason
(`quarantine`, `denylisted`, `opted_out`), whatever its membership status.

Campaign recipients are every `profiles` partition materialized so far, the latest version of
each recipient (by `last_modified`). Without any profiles partition, or without a materialized
`suppression_list`, the import fails rather than guess.

**The import file.** CSV, UTF-8 (no BOM), comma, header line, `"`-quoting only where a value
holds a comma, a quote or a line break (quotes doubled), `\\n` line ends, rows sorted by
`recipient_id` (as text) so a re-run writes the same bytes:

| column                  | content                                                             |
|-------------------------|---------------------------------------------------------------------|
| recipient_id            | Campaign recipient key (iRecipientId / PKey): reconcile on this     |
| external_id             | Campaign external ID of the recipient (sExternalId)                 |
| email                   | Campaign email address of the recipient, lower-cased                |
| audience_id             | AEP audience (segment) ID                                           |
| audience_name           | `audience_settings.audience_names[audience_id]`, else empty         |
| membership_status       | realized (entered with this export) / existing / exited (left)      |
| last_qualification_time | AEP lastQualificationTime, ISO 8601 UTC, empty if not exported      |
| export_time             | time of the AEP export, ISO 8601 UTC                                |

The file holds the whole membership after the export (realized and existing) plus the members
who left with it (exited), so a workflow may either replace the Campaign list with the rows that
are not `exited` or apply the file as a delta. Name: `aep_audience_<audience id>_<export stamp
YYYYMMDD_HHMMSS>.csv` in `settings.campaign_import_folder`; beyond `max_rows_per_file` rows the
next parts are `..._2.csv`, `..._3.csv`. Each part is uploaded under a temporary name and renamed
(`write_atomic`); after it, `<part name>.done` is written, a JSON object with `file`, `rows`,
`bytes`, `sha256`, `part`, `parts`, `audience_id`, `audience_name`, `export_id`, `export_time`
and `columns`. A Campaign workflow should: collect `*.done` files, read the CSV the marker
names, check its row count, load it (Data loading: UTF-8, comma, header), reconcile on
`recipient_id` against nms:recipient with "reject" for unknown keys (never create), and update
the list of the audience.

Warehouse: `campaign_audience_import/<audience id>/<stamp>/` holds the staged file(s),
`quarantine.parquet` (key, external_id, email, status, reason, in_export), `excluded.parquet`
(key, recipient_id, email, status, reason, in_export) and `manifest.json` (files with SHA-256,
counts by reason, the per-export reconciliation), written last.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import hashlib
import json
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pyarrow import acero

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone, Entry, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports import (
    AUDIENCE_MEMBERSHIP,
    GROUP,
    SEGMENT_EXPORTS,
    audience_membership,
    audience_partitions,
    export_stamp_for_run,
    read_export_record,
    read_index,
)
from rtcdp_assets.shared.ingest import LINE_NUMBER, SOURCE_FILE
from rtcdp_assets.shared.masking import masked_preview

CAMPAIGN_IMPORT = "campaign_audience_import"
PUBLISHED = "campaign_audience_import_published"
IMPORT_COLUMNS = (
    "recipient_id",
    "external_id",
    "email",
    "audience_id",
    "audience_name",
    "membership_status",
    "last_qualification_time",
    "export_time",
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("external_id", pa.string()),
        ("email", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("in_export", pa.bool_()),
    ]
)
EXCLUDED_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("recipient_id", pa.string()),
        ("email", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("in_export", pa.bool_()),
    ]
)


def import_file_names(audience_id: str, stamp: str, parts: int) -> list[str]:
    base = f"aep_audience_{audience_id}_{stamp}"
    return [f"{base}.csv" if i == 1 else f"{base}_{i}.csv" for i in range(1, parts + 1)]


# --------------------------------------------------------------------------------------------
# Inputs: Campaign recipients and the suppression list
# --------------------------------------------------------------------------------------------
def load_email_suppression(warehouse: Warehouse) -> pd.Series:
    """Suppressed email address -> reason (the first reason by name when there are several)."""
    with warehouse.local_copy("suppression_list", "current", "data.parquet") as local:
        if local is None:
            raise Failure(
                description="`suppression_list` is not materialized: importing without it could "
                "target quarantined or opted-out addresses. Materialize it first."
            )
        table = pq.read_table(local, columns=["channel", "address", "reason"])
    df = table.to_pandas()
    df = df[df["channel"] == "email"].sort_values(["address", "reason"], kind="stable")
    return df.drop_duplicates("address").set_index("address")["reason"]


# --------------------------------------------------------------------------------------------
# The join
# --------------------------------------------------------------------------------------------
@dataclass
class ImportRows:
    imported: pa.Table  # IMPORT_COLUMNS + key, in_export; sorted by recipient_id
    excluded: pa.Table  # EXCLUDED_SCHEMA
    quarantined: pa.Table  # QUARANTINE_SCHEMA


# pandas sorts a missing last_modified after every date, so such a version wins; so here.
_MISSING_MODIFIED = pa.scalar(np.iinfo(np.int64).max, pa.timestamp("us", tz="UTC"))
_RECIPIENT_COLUMNS = ["recipient_id", "external_id", "email"]


def _semi_join(files: Sequence[Path], columns: list[str], key: str, right: pa.Table) -> pa.Table:
    """`columns` (+ the partition's index) of the profile rows whose `key` is in `right`.

    One Arrow hash join: the table of `right` (the small side) is built once, and the profiles
    are scanned and probed batch by batch in parallel; only matching rows are kept in memory.
    """
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    names = [*columns, "_partition"]
    fields = [pc.field(c) for c in columns] + [pc.field("__fragment_index")]
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


def _latest_of(files: Sequence[Path], handed_over: list[pa.Table]) -> pa.Table:
    """recipient_id, external_id, email of the latest version of each wanted recipient.

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
    _release_memory()
    return _rows_at(files, winners, _RECIPIENT_COLUMNS)


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
    """recipient_id, external_id, email of the Campaign recipients a member could match.

    The result is the latest version of each recipient (greatest last_modified, then the last
    row in read order), restricted to recipients that have a version whose join identity is
    one of `member_keys`, without holding every profile in memory: pass 1 scans identity +
    recipient_id and keeps the recipients seen under a member's identity; pass 2 scans every
    version of those recipients, so a newer version under another identity still wins.
    """
    return _match_campaign_recipients(warehouse, partitions, [member_keys], join_identity)


def _match_campaign_recipients(
    warehouse: Warehouse,
    partitions: set[str],
    handed_over: list[pa.ChunkedArray],
    join_identity: str,
) -> pa.Table:
    """`match_campaign_recipients` of the member keys in `handed_over`, which it empties: no
    caller frame keeps them alive (hundreds of MiB at 10 M members) after the first pass."""
    key_column = "email" if join_identity == "email" else "external_id"
    with _profile_files(warehouse, partitions) as files:
        keys = pa.table({"key": handed_over.pop()})
        seen = _semi_join(files, ["recipient_id", key_column], key_column, keys)
        del keys
        wanted = [pa.table({"wanted": pc.unique(seen.column("recipient_id").combine_chunks())})]
        del seen
        _release_memory()
        return _latest_of(files, wanted)


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


def _release_memory() -> None:
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


_MEMBER_COLUMNS = ["key", "external_id", "email", "status", "last_qualification_time", "in_export"]


def _pad(values: pa.Array, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(values, pa.string()), width=width, padding="0")


def _iso_seconds(timestamps: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`YYYY-MM-DDTHH:MM:SSZ` of UTC timestamps (seconds truncated, as pandas' strftime does).

    The text is laid out byte by byte in numpy from the civil date of each value: several
    times faster than Arrow's strftime, which converts time zones value by value, and than
    joining padded field strings. Years outside 1000-9999 take strftime's path.
    """
    values = timestamps.combine_chunks() if isinstance(timestamps, pa.ChunkedArray) else timestamps
    unit = getattr(values.type, "unit", None)
    n = len(values)
    if (
        not pa.types.is_timestamp(values.type)
        or values.type.tz not in (None, "UTC", "+00:00")
        or unit not in _UNITS_PER_SECOND
    ):
        return _iso_seconds_by_fields(values)
    valid = (
        pc.is_valid(values).to_numpy(zero_copy_only=False)
        if values.null_count
        else np.ones(n, dtype=bool)
    )
    raw = values.buffers()[1]
    if raw is None or n * _ISO_WIDTH >= 1 << 31:
        return _iso_seconds_by_fields(values)
    seconds = np.frombuffer(raw, dtype=np.int64, count=n, offset=values.offset * 8)[valid]
    seconds = seconds // _UNITS_PER_SECOND[unit]  # floor: 1969-12-31T23:59:59.5 is :59
    days, clock = np.divmod(seconds, 86400)
    year, month, day = _civil_from_days(days)
    if year.size and (year.min() < 1000 or year.max() > 9999):
        return _iso_seconds_by_fields(values)
    hour, rest = np.divmod(clock, 3600)
    minute, second = np.divmod(rest, 60)
    text = np.empty((year.size, _ISO_WIDTH), dtype=np.uint8)
    text[:] = np.frombuffer(b"0000-00-00T00:00:00Z", dtype=np.uint8)
    century, year = np.divmod(year, 100)
    for column, field in (
        (0, century),
        (2, year),
        (5, month),
        (8, day),
        (11, hour),
        (14, minute),
        (17, second),
    ):
        text[:, column : column + 2] = _TWO_DIGITS[field]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid, out=offsets[1:])
    offsets *= _ISO_WIDTH
    bitmap = pa.array(valid).buffers()[1] if len(text) < n else None
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(text), bitmap, n - len(text)
    )


_ISO_WIDTH = len("YYYY-MM-DDTHH:MM:SSZ")
# "00" … "99" as rows of two ASCII digits: one gather writes both digits of a field.
_TWO_DIGITS = np.array([divmod(i, 10) for i in range(100)], dtype=np.uint8) + ord("0")
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01 (H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _iso_seconds_by_fields(timestamps: pa.Array) -> pa.Array:
    years = pc.year(timestamps)
    low, high = pc.min_max(years).values()
    if low.is_valid and (low.as_py() < 1000 or high.as_py() > 9999):
        seconds = pc.cast(pc.floor_temporal(timestamps, unit="second"), pa.timestamp("s", tz="UTC"))
        text = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
        return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    day = pc.binary_join_element_wise(
        _pad(years, 4), _pad(pc.month(timestamps), 2), _pad(pc.day(timestamps), 2), "-"
    )
    clock = pc.binary_join_element_wise(
        _pad(pc.hour(timestamps), 2),
        _pad(pc.minute(timestamps), 2),
        _pad(pc.second(timestamps), 2),
        ":",
    )
    joined = pc.binary_join_element_wise(pc.binary_join_element_wise(day, clock, "T"), "Z", "")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _strings(n: int, value: str) -> pa.Array:
    # One value on every row: a dictionary of one entry (1 byte a row, not len(value) bytes).
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), [value])


def _identity_matches(
    member_keys: pa.ChunkedArray, recipient_keys: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray]:
    """For each member key: how many recipients have it, and the row of one of them (else -1).

    One Arrow hash join of (key, member row) with (key, recipient row): Acero builds and probes
    it on every core, where `index_in` hashes on one. Null keys match nothing.
    """
    n = len(member_keys)
    members = pa.table(
        {"key": member_keys.cast(recipient_keys.type), "member": np.arange(n, dtype=np.int64)}
    )
    recipients = pa.table(
        {"key": recipient_keys, "recipient": np.arange(len(recipient_keys), dtype=np.int64)}
    )
    # The members are the build side: built and probed that way round the join is twice as fast.
    pairs = acero.Declaration(
        "hashjoin",
        acero.HashJoinNodeOptions(
            "inner",
            left_keys=["key"],
            right_keys=["key"],
            left_output=["recipient"],
            right_output=["member"],
        ),
        inputs=[
            acero.Declaration("table_source", acero.TableSourceNodeOptions(recipients)),
            acero.Declaration("table_source", acero.TableSourceNodeOptions(members)),
        ],
    ).to_table()
    del members, recipients
    _release_memory()
    member = pairs.column("member").to_numpy()
    matches = np.bincount(member, minlength=n)
    position = np.full(n, -1, dtype=np.int64)
    position[member] = pairs.column("recipient").to_numpy()
    return matches, position


def join_members(
    members: pa.Table,
    recipients: pa.Table,
    suppressed: pd.Series,
    join_identity: str,
    audience_id: str,
    audience_name: str,
    export_time: str,
) -> ImportRows:
    """Members (MEMBERS_SCHEMA, sorted by key) joined to Campaign recipients by identity.

    `recipients` holds the latest version of each recipient (recipient_id, external_id, email);
    only those whose identity is a member's need to be there.
    """
    return _join_members(
        [members, recipients],
        suppressed,
        join_identity,
        (audience_id, audience_name, export_time),
        for_csv=False,
    )


def _join_members(
    handed_over: list[pa.Table],
    suppressed: pd.Series,
    join_identity: str,
    constants: tuple[str, str, str],
    *,
    for_csv: bool,
    matched: tuple[np.ndarray, np.ndarray] | None = None,
) -> ImportRows:
    """`join_members` of the [members, recipients] in `handed_over`, which it empties.

    Each input column is dropped after its last use, so that no caller frame keeps the
    inputs alive while the outputs grow: at 10 M members they are about 1.4 GiB. `for_csv`:
    `imported` as `build_import` writes it, without `key` and with last_qualification_time
    still timestamps (formatted slice by slice as the CSV is written).
    """
    recipients = {name: handed_over[1].column(name) for name in _RECIPIENT_COLUMNS}
    members = {name: handed_over[0].column(name) for name in _MEMBER_COLUMNS}
    handed_over.clear()
    audience_id, audience_name, export_time = constants
    key_column = "email" if join_identity == "email" else "external_id"
    matches, first_of_member = matched or _identity_matches(members["key"], recipients[key_column])
    del matched
    # A key several Campaign recipients share is ambiguous: nobody is imported under it.
    is_ambiguous = matches > 1
    found = matches == 1
    del matches

    missing = pa.array(~found)
    quarantined = pa.Table.from_arrays(
        [
            *(members[c].filter(missing) for c in ("key", "external_id", "email", "status")),
            pa.DictionaryArray.from_arrays(
                pa.array(is_ambiguous[~found].astype(np.int8)),
                ["not_in_campaign", "ambiguous_campaign_profile"],
            ).cast(pa.string()),
            members["in_export"].filter(missing),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    del missing, is_ambiguous, members["external_id"], members["email"]

    found_at = np.flatnonzero(found)
    position = first_of_member[found_at]
    del found, first_of_member
    campaign_email = recipients["email"].take(position)
    addresses = pa.array(suppressed.index.to_numpy(dtype=object), pa.string())
    suppressed_reasons = pa.array(suppressed.to_numpy(dtype=object), pa.string())
    hit = pc.index_in(campaign_email, value_set=addresses, skip_nulls=True)
    is_excluded = pc.is_valid(hit).to_numpy(zero_copy_only=False)
    excluded_at = found_at[is_excluded]
    excluded = pa.Table.from_arrays(
        [
            members["key"].take(excluded_at),
            recipients["recipient_id"].take(position[is_excluded]),
            # The address Campaign would send to is the one that is suppressed.
            campaign_email.filter(pa.array(is_excluded)),
            members["status"].take(excluded_at),
            pc.take(suppressed_reasons, hit).filter(pa.array(is_excluded)),
            members["in_export"].take(excluded_at),
        ],
        schema=EXCLUDED_SCHEMA,
    )
    del campaign_email, hit, excluded_at

    # Sorted by recipient_id: find the order first, then take every column once in it.
    kept_at, kept_position = found_at[~is_excluded], position[~is_excluded]
    del found_at, position, is_excluded
    recipient_id = recipients.pop("recipient_id").take(kept_position)
    order = pc.sort_indices(recipient_id).to_numpy()
    kept_at, kept_position = kept_at[order], kept_position[order]
    n = kept_at.size
    if for_csv:
        del members["key"]
    times = members.pop("last_qualification_time")
    # Arrow's take and the numpy of `_iso_seconds` release the GIL: the columns are built on
    # every core at once instead of one after the other.
    with ThreadPoolExecutor(max(1, pa.cpu_count())) as pool:
        built = {
            "recipient_id": pool.submit(recipient_id.take, order),
            "external_id": pool.submit(recipients.pop("external_id").take, kept_position),
            "email": pool.submit(recipients.pop("email").take, kept_position),
            "membership_status": pool.submit(members.pop("status").take, kept_at),
            "in_export": pool.submit(members.pop("in_export").take, kept_at),
        }
        if for_csv:
            built["last_qualification_time"] = pool.submit(times.take, kept_at)
        else:
            built["key"] = pool.submit(members.pop("key").take, kept_at)
            # in slices: the text of all rows at once would raise the peak
            text = [
                pool.submit(lambda part: _iso_seconds(times.take(part)), part)
                for part in np.array_split(kept_at, max(1, -(-n // 1_000_000)))
            ]
        del recipient_id, order
        columns = {name: future.result() for name, future in built.items()}
        if not for_csv:
            columns["last_qualification_time"] = pa.chunked_array(
                [f.result() for f in text], pa.string()
            )
    imported = pa.table(
        {
            "recipient_id": columns["recipient_id"],
            "external_id": columns["external_id"],
            "email": columns["email"],
            "audience_id": _strings(n, audience_id),
            "audience_name": _strings(n, audience_name),
            "membership_status": columns["membership_status"],
            "last_qualification_time": columns["last_qualification_time"],
            "export_time": _strings(n, export_time),
            **({} if for_csv else {"key": columns["key"]}),
            "in_export": columns["in_export"],
        }
    )
    return ImportRows(
        imported=imported,
        excluded=excluded,
        quarantined=quarantined,
    )


# --------------------------------------------------------------------------------------------
# Writing CSV: vectorised, quoting only what needs it
# --------------------------------------------------------------------------------------------
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
    return _write_csv(table, path, columns)


def _write_csv(
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


def _iso_times(part: pa.Table) -> pa.Table:
    at = part.schema.get_field_index("last_qualification_time")
    return part.set_column(
        at, "last_qualification_time", _iso_seconds(part.column("last_qualification_time"))
    )


# --------------------------------------------------------------------------------------------
# Reconciliation per export
# --------------------------------------------------------------------------------------------
def reconcile_export(
    export_record: Mapping[str, Any],
    membership: Mapping[str, Any],
    imported_in_export: int,
    excluded_in_export: Mapping[str, int],
    quarantined_in_export: Mapping[str, int],
) -> dict[str, Any]:
    """rows in the export files = imported + excluded by reason + quarantined by reason."""
    excluded = {
        "duplicate_member": membership["duplicate_member"],
        "exited_non_member": membership["exited_non_member"],
        **excluded_in_export,
    }
    quarantined = {**export_record["reasons"], **quarantined_in_export}
    excluded = {k: int(v) for k, v in sorted(excluded.items()) if v}
    quarantined = {k: int(v) for k, v in sorted(quarantined.items()) if v}
    accounted = imported_in_export + sum(excluded.values()) + sum(quarantined.values())
    return {
        "rows_in": export_record["rows_in"],
        "imported": imported_in_export,
        "excluded": excluded,
        "quarantined": quarantined,
        "accounted": accounted,
        "balanced": accounted == export_record["rows_in"],
    }


def _count_by_reason(table: pa.Table) -> dict[str, int]:
    in_export = table.filter(pc.fill_null(table.column("in_export"), False))
    if in_export.num_rows == 0:
        return {}
    return {
        item["values"]: item["counts"]
        for item in pc.value_counts(in_export.column("reason")).to_pylist()
    }


# --------------------------------------------------------------------------------------------
# The assets
# --------------------------------------------------------------------------------------------
def build_import(
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    profile_partitions: set[str],
    audience_id: str,
    stamp: str,
) -> dict[str, Any]:
    record = read_export_record(warehouse, audience_id, stamp)
    membership = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"].get(stamp)
    if membership is None:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} is not applied to the "
            "membership yet; materialize audience_membership for it first."
        )
    name = audience_settings.audience_names.get(audience_id, "")
    suppressed = load_email_suppression(warehouse)
    with warehouse.local_copy(
        AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet"
    ) as f:
        if f is None:
            raise FileNotFoundError(f"members.parquet of {audience_id}/{stamp}")
        # The keys first: matching needs only them, and the other columns can wait for it.
        recipients = _match_campaign_recipients(
            warehouse,
            profile_partitions,
            [pq.read_table(f, columns=["key"]).column("key")],
            audience_settings.join_identity,
        )
        # Matched before the other member columns are read: the hash join's tables then sit
        # next to the keys only.
        matched = _identity_matches(
            pq.read_table(f, columns=["key"]).column("key"),
            recipients.column(
                "email" if audience_settings.join_identity == "email" else "external_id"
            ),
        )
        _release_memory()
        members = pq.read_table(f, columns=_MEMBER_COLUMNS)
    # Handed over, not kept here: the join drops each column after its last use.
    tables = [members, recipients]
    del members, recipients
    rows = _join_members(
        tables,
        suppressed,
        audience_settings.join_identity,
        (audience_id, name, record["export_time"]),
        for_csv=True,
        matched=matched,
    )
    _release_memory()
    imported = rows.imported
    total = imported.num_rows
    limit = audience_settings.max_rows_per_file
    n_parts = max(1, -(-total // limit))
    names = import_file_names(audience_id, stamp, n_parts)
    files = []
    with tempfile.TemporaryDirectory(prefix="rtcdp-import-") as tmp:
        table = imported.select(list(IMPORT_COLUMNS))
        for i, file_name in enumerate(names):
            part = table.slice(i * limit, limit)
            local = Path(tmp) / file_name
            size, sha256 = _write_csv(part, local, IMPORT_COLUMNS, _iso_times)
            warehouse.put_file(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", file_name, local)
            files.append(
                {
                    "name": file_name,
                    "part": i + 1,
                    "rows": part.num_rows,
                    "bytes": size,
                    "sha256": sha256,
                }
            )
        for file_name, out in (
            ("quarantine.parquet", rows.quarantined),
            ("excluded.parquet", rows.excluded),
        ):
            local = Path(tmp) / file_name
            pq.write_table(out, local, compression="zstd")
            warehouse.put_file(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", file_name, local)
    reconciliation = reconcile_export(
        record,
        membership,
        _true_count(imported.column("in_export")),
        _count_by_reason(rows.excluded),
        _count_by_reason(rows.quarantined),
    )
    manifest = {
        "audience_id": audience_id,
        "audience_name": name,
        "export_id": record["export_id"],
        "export_stamp": stamp,
        "export_time": record["export_time"],
        "join_identity": audience_settings.join_identity,
        "columns": list(IMPORT_COLUMNS),
        "files": files,
        "rows": total,
        "rows_by_status": _all_counts(imported.column("membership_status")),
        "rows_from_previous_state": total - _true_count(imported.column("in_export")),
        "excluded": _all_reasons(rows.excluded),
        "quarantined": _all_reasons(rows.quarantined),
        "reconciliation": reconciliation,
    }
    # Written last: the manifest is what says the staged import is complete.
    warehouse.put_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json", manifest)
    return manifest


def _true_count(values: pa.ChunkedArray) -> int:
    return int(pc.sum(pc.fill_null(values, False).cast(pa.int64())).as_py() or 0)


def _all_counts(values: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(values.drop_null()).to_pylist()
    return {
        item["values"]: int(item["counts"]) for item in sorted(counts, key=lambda i: i["values"])
    }


def _all_reasons(table: pa.Table) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    return {
        item["values"]: item["counts"]
        for item in sorted(
            pc.value_counts(table.column("reason")).to_pylist(), key=lambda i: i["values"]
        )
    }


def read_import_manifest(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    manifest = warehouse.get_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json")
    if manifest is None:
        raise Failure(description=f"No staged Campaign import for audience {audience_id} {stamp}.")
    return manifest


@asset(
    name=CAMPAIGN_IMPORT,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet", "csv"},
    deps=[
        audience_membership,
        # Every audience is matched against all Campaign recipients, whatever window brought them.
        AssetDep(AssetKey("profiles"), partition_mapping=AllPartitionMapping()),
        AssetKey("suppression_list"),
    ],
    description=(
        "Audience members joined to Campaign profiles, as the staged Campaign import file; "
        "members without a Campaign profile are quarantined (`not_in_campaign`), suppressed "
        "addresses excluded with their reason. Checked before it is uploaded."
    ),
)
def campaign_audience_import(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    manifest = build_import(
        warehouse,
        audience_settings,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        audience_id,
        stamp,
    )
    quarantine = warehouse.read_table(
        CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "quarantine.parquet"
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest["rows"],
            "export_id": manifest["export_id"],
            "files": MetadataValue.json(manifest["files"]),
            "rows_by_status": MetadataValue.json(manifest["rows_by_status"]),
            "excluded_by_reason": MetadataValue.json(manifest["excluded"]),
            "quarantined_by_reason": MetadataValue.json(manifest["quarantined"]),
            "reconciliation": MetadataValue.json(manifest["reconciliation"]),
            "quarantine_preview": MetadataValue.md(
                masked_preview(quarantine, {"email", "key", "external_id"})
            ),
            "warehouse_path": warehouse.path(CAMPAIGN_IMPORT, audience_id, stamp),
        }
    )


def upload_verified(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    staged: tuple[str, str, str],
    target: str,
    sha256: str,
    marker: Mapping[str, Any],
) -> Entry:
    """Upload a staged import file to Campaign only if its bytes are still the ones the checks
    passed, atomically, then its `.done` marker (the marker says the file is complete)."""
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
        entry = campaign_sftp.write_atomic(target, local)
    campaign_sftp.write_bytes(
        f"{target}.done", json.dumps(dict(marker), indent=2, sort_keys=True).encode()
    )
    return entry


def publish_import(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    audience_id: str,
    stamp: str,
) -> list[dict[str, Any]]:
    manifest = read_import_manifest(warehouse, audience_id, stamp)
    published = []
    for f in manifest["files"]:
        target = join(settings.campaign_import_folder, f["name"])
        marker = {
            "file": f["name"],
            "rows": f["rows"],
            "bytes": f["bytes"],
            "sha256": f["sha256"],
            "part": f["part"],
            "parts": len(manifest["files"]),
            "audience_id": audience_id,
            "audience_name": manifest["audience_name"],
            "export_id": manifest["export_id"],
            "export_time": manifest["export_time"],
            "columns": manifest["columns"],
        }
        entry = upload_verified(
            warehouse,
            campaign_sftp,
            (CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", f["name"]),
            target,
            f["sha256"],
            marker,
        )
        published.append({"path": target, "rows": f["rows"], "bytes": entry.size})
    return published


@asset(
    name=PUBLISHED,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"sftp", "csv"},
    deps=[campaign_audience_import],
    description=(
        "The checked Campaign import file(s) of the export, uploaded atomically to the Campaign "
        "SFTP import folder, each followed by its `.done` completion marker."
    ),
    pool="campaign_sftp",
)
def campaign_audience_import_published(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    published = publish_import(warehouse, campaign_sftp, settings, audience_id, stamp)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(p["rows"] for p in published),
            "import_files": MetadataValue.json(published),
            "campaign_sftp": campaign_sftp.describe(),
            "segment_exports_record": f"{SEGMENT_EXPORTS}/{audience_id}/{stamp}/export.json",
        }
    )
