"""Audience members joined to Campaign recipients by identity: imported, excluded (suppressed)
and quarantined rows.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import acero

from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    CAMPAIGN_COLUMNS,
    normalise_keys,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    EXCLUDED_SCHEMA,
    QUARANTINE_SCHEMA,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.iso_times import iso_seconds
from rtcdp_assets.aep_to_campaign.campaign_audience_import.recipient_matching import (
    JOIN_KEY,
    RECIPIENT_COLUMNS,
    release_memory,
)


@dataclass
class ImportRows:
    imported: pa.Table  # IMPORT_COLUMNS + key, in_export; sorted by recipient_id
    excluded: pa.Table  # EXCLUDED_SCHEMA
    quarantined: pa.Table  # QUARANTINE_SCHEMA


MEMBER_COLUMNS = ["key", "external_id", "email", "status", "last_qualification_time", "in_export"]


def _strings(n: int, value: str) -> pa.Array:
    # One value on every row: a dictionary of one entry (1 byte a row, not len(value) bytes).
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), [value])


def identity_matches(
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
    release_memory()
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

    `recipients` holds the latest version of each recipient (recipient_id, external_id, email,
    and `join_key`, or the Campaign column of the identity to normalise); only those whose
    identity is a member's need to be there.
    """
    return join_handed_over(
        [members, recipients],
        suppressed,
        join_identity,
        (audience_id, audience_name, export_time),
        for_csv=False,
    )


def join_handed_over(
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
    recipients = {name: handed_over[1].column(name) for name in RECIPIENT_COLUMNS}
    if JOIN_KEY in handed_over[1].column_names:
        recipients[JOIN_KEY] = handed_over[1].column(JOIN_KEY)
    elif matched is None:
        campaign_column = handed_over[1].column(CAMPAIGN_COLUMNS[join_identity])
        recipients[JOIN_KEY] = normalise_keys(join_identity, campaign_column)
    members = {name: handed_over[0].column(name) for name in MEMBER_COLUMNS}
    handed_over.clear()
    audience_id, audience_name, export_time = constants
    matches, first_of_member = matched or identity_matches(members["key"], recipients[JOIN_KEY])
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
    # Arrow's take and the numpy of `iso_seconds` release the GIL: the columns are built on
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
                pool.submit(lambda part: iso_seconds(times.take(part)), part)
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
