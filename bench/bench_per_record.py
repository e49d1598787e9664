"""Per-record loops replaced by Arrow compute (issue 20 point 5): before and after, same input.

    .venv/bin/python bench/bench_per_record.py [--members 1000000] [--tokens 1000000]
        [--rejects 1000000] [--repeat 3]

Each row of the table times the code an asset or check runs now against the per-record code it
replaced (kept verbatim in tests/per_record_reference.py, which the tests compare it with), on
the same generated input, interleaved round by round; medians. Inputs are generated vectorised:

- destination member sources (`destination_exports`): `profiles` rows with re-versioned
  recipients and shared emails (one Campaign recipient per member plus 20 % older versions),
  and the audience's members (10 % exited, 5 % unknown to Campaign), email join;
- `duplicate_registration` (`aep_push_tokens` check): an `aep_push_tokens` partition of N tokens
  (5 % repeated) and `push_subscriptions` partitions of N tokens, half of them shared; both read
  from a local warehouse, as the check does;
- `raw_json` (the JSON of rejected rows): N typed rejected rows in ingest batches of 65,536, one
  row in 100,000 holding a control character;
- JSON-lines audience exports (`segment_exports`): N members with identityMap (an ECID item and
  an Email item each), the list columns kept as JSON text;
- kept for comparison, not replaced: the SHA-256 of each email in `apply_contract` (Arrow has no
  SHA-256 kernel), as a share of the whole contract.

Absolute figures drift ±25 % between runs on a shared 2-core machine; compare the ratios. The
load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from asset_checks.mobile_push import duplicate_registration as dup  # noqa: E402
from resources.drop_zones import LocalDropZone  # noqa: E402
from resources.settings import PipelineSettings  # noqa: E402
from resources.warehouse import Warehouse  # noqa: E402
from rtcdp_assets.aep_to_campaign.audience_exports.file_reader import _flatten  # noqa: E402
from rtcdp_assets.aep_to_campaign.audience_exports.membership import MEMBERS_SCHEMA  # noqa: E402
from rtcdp_assets.aep_to_campaign.destinations import member_sources as sources  # noqa: E402
from rtcdp_assets.aep_to_campaign.destinations.contracts import (  # noqa: E402
    CONTRACTS_BY_NAME,
    apply_contract,
    sha256_hex,
)
from rtcdp_assets.mobile_push.push_token_records import DATASET as AEP_DATASET  # noqa: E402
from rtcdp_assets.shared import push_token_formats, xdm  # noqa: E402
from rtcdp_assets.shared.row_json import raw_json  # noqa: E402
from tests import per_record_reference as reference  # noqa: E402

AEP_PK = "2026-11-30-04"
# The check's figures the per-record reference also gives.
FIGURES = (
    "aep_tokens",
    "campaign_tokens",
    "tokens_registered_through_both_routes",
    "apps_concerned",
    "campaign_apps_concerned",
)


def _text(prefix: str, numbers: np.ndarray, suffix: str = "") -> pa.Array:
    digits = pc.cast(pa.array(numbers), pa.string())
    return pc.binary_join_element_wise(prefix, digits, suffix, "")


def _apns(numbers: np.ndarray) -> pa.Array:
    """64 hex digits, as an APNs device token."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), 16, "0")
    return pc.binary_join_element_wise("a1b2c3d4e5f6" * 4, digits, "")


def _timed(fn: Callable[[], object], times: list[float]) -> None:
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)


def _compare(
    rounds: int, before: Callable[[], object], after: Callable[[], object]
) -> tuple[float, float]:
    """Median seconds of `before` and `after`, run alternately round by round."""
    old: list[float] = []
    new: list[float] = []
    for _ in range(rounds):
        _timed(before, old)
        _timed(after, new)
    return statistics.median(old), statistics.median(new)


def member_inputs(members: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    n_profiles = members
    ids = np.arange(n_profiles)
    older = rng.choice(ids, size=n_profiles // 5, replace=False)
    recipient = np.concatenate([ids, older])
    hours = np.concatenate([rng.integers(100, 200, n_profiles), rng.integers(0, 100, len(older))])
    email_no = recipient.copy()
    email_no[rng.choice(len(email_no), size=len(email_no) // 100, replace=False)] = 0  # shared
    profiles = pa.table(
        {
            "recipient_id": pc.cast(pa.array(recipient), pa.string()),
            "email": _text("Person.", email_no, "@Example.com"),
            "mobile_phone": _text("+3361", rng.integers(10_000_000, 99_999_999, len(recipient))),
            "last_modified": pa.array(
                (np.datetime64("2026-11-01T00:00") + hours.astype("timedelta64[h]")).astype(
                    "datetime64[us]"
                ),
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    key_no = np.where(rng.random(members) < 0.05, ids + n_profiles, ids)  # 5 % unknown
    keys = pc.utf8_lower(_text("person.", np.sort(key_no), "@example.com"))
    status = np.where(rng.random(members) < 0.1, "exited", "realized")
    audience = pa.table(
        {
            "key": keys,
            "external_id": pa.nulls(members, pa.string()),
            "email": keys,
            "status": pa.array(status),
            "aep_status": pa.array(status),
            "last_qualification_time": pa.nulls(members, pa.timestamp("us", tz="UTC")),
            "member_since": pa.nulls(members, pa.string()),
            "in_export": pa.array(np.ones(members, dtype=bool)),
        },
        schema=MEMBERS_SCHEMA,
    )
    return profiles, audience


def bench_member_sources(members: int, rounds: int) -> list[tuple]:
    profiles, audience = member_inputs(members)

    def before() -> pa.Table:
        return reference.member_sources(
            audience, reference.campaign_phones(profiles, "email", "email")
        )

    def after() -> pa.Table:
        return sources.member_sources(
            audience, sources.latest_unique_phones(profiles, "email", "email")
        )

    assert before().equals(after())
    b, a = _compare(rounds, before, after)
    rows = [
        (
            "destination member sources",
            f"{members:,} members, {profiles.num_rows:,} profile rows",
            b,
            a,
        )
    ]
    built = after()
    emails = built.column("email").combine_chunks()
    hashing, whole = [], []
    for _ in range(rounds):
        _timed(lambda: sha256_hex(emails), hashing)
        _timed(lambda: [apply_contract(c, built) for c in CONTRACTS_BY_NAME.values()], whole)
    rows.append(
        (
            "kept: SHA-256 per identity (`contracts.sha256_hex`)",
            f"{len(emails):,} emails; share of all contracts",
            statistics.median(whole),
            statistics.median(hashing),
        )
    )
    return rows


def push_warehouse(root: Path, tokens: int, seed: int = 11) -> Warehouse:
    rng = np.random.default_rng(seed)
    warehouse = Warehouse(zone=LocalDropZone(root=str(root / "warehouse")))
    numbers = np.arange(tokens)
    aep_numbers = np.concatenate([numbers, rng.choice(numbers, tokens // 20)])
    apns = rng.random(len(aep_numbers)) < 0.5
    aep_token = pc.if_else(pa.array(apns), _apns(aep_numbers), _text("fcm:APA91b", aep_numbers))
    aep = pa.table(
        {
            "token": aep_token,
            "app_id": pa.array(np.where(apns, "com.example.ios", "com.example.android")),
        }
    )
    local = root / "aep.parquet"
    pq.write_table(aep, local)
    warehouse.put_file(AEP_DATASET, AEP_PK, "data.parquet", local)
    campaign_numbers = numbers + tokens // 2  # half shared with AEP
    apns = rng.random(tokens) < 0.5
    campaign = pa.table(
        {
            "token": pc.if_else(
                pa.array(apns),
                pc.utf8_upper(_apns(campaign_numbers)),
                _text("fcm:APA91b", campaign_numbers),
            ),
            "platform": pa.array(np.where(apns, "iOS", "Android")),
            "app_id": pa.array(np.where(apns, "com.example.ios", "com.example.android")),
        }
    )
    for i, pk in enumerate(("2026-11-29-00", "2026-11-30-00")):
        local = root / f"campaign-{i}.parquet"
        pq.write_table(campaign.slice(i * tokens // 2, tokens // 2 + tokens % 2 * i), local)
        warehouse.put_file(dup.CAMPAIGN_PUSH_DATASET, pk, "data.parquet", local)
    return warehouse


def bench_duplicate_registration(tokens: int, rounds: int, tmp: Path) -> list[tuple]:
    warehouse = push_warehouse(tmp, tokens)
    settings = PipelineSettings()
    partitions = {"2026-11-29-00", "2026-11-30-00"}

    def before() -> dict[str, object]:
        campaign = reference.campaign_tokens(
            (
                push_token_formats.normalized(
                    b.column("token"),
                    xdm.lookup(b.column("platform"), settings.push_platform_codes),
                ),
                b.column("app_id"),
            )
            for pk in sorted(partitions)
            for b in warehouse.iter_batches(dup.CAMPAIGN_PUSH_DATASET, pk)
        )
        return reference.duplicate_registration(
            warehouse.iter_batches(AEP_DATASET, AEP_PK), campaign
        )

    def after() -> dict[str, object]:
        campaign = dup.campaign_tokens(warehouse, settings, partitions)
        result = dup.duplicate_registration_result(warehouse, AEP_PK, campaign)
        return {k: getattr(v, "value", v) for k, v in result.metadata.items() if k in FIGURES}

    expected = before()
    assert after() == expected, (after(), expected)
    b, a = _compare(rounds, before, after)
    return [("duplicate_registration", f"{tokens:,} AEP + {tokens:,} Campaign tokens", b, a)]


def bench_raw_json(rejects: int, rounds: int) -> list[tuple]:
    numbers = np.arange(rejects)
    text = _text("recipient-", numbers)
    odd = numbers % 100_000 == 50_000
    text = pc.if_else(pa.array(odd), _text("bell\x07", numbers), text)
    table = pa.table(
        {
            "recipient_id": text,
            "broadlog_id": pa.array(numbers),
            "status": pa.array(numbers % 3, pa.int32()),
            "event_date": pa.array(
                np.datetime64("2026-11-30T00:00", "us") + numbers.astype("timedelta64[s]"),
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    batches = table.to_batches(max_chunksize=65_536)
    columns = table.column_names

    def before() -> list[pa.Array]:
        return [reference.raw_json(b, columns) for b in batches]

    def after() -> list[pa.Array]:
        return [raw_json(b, columns) for b in batches]

    assert all(x.equals(y) for x, y in zip(before(), after(), strict=True))
    b, a = _compare(rounds, before, after)
    return [("raw_json of rejected rows", f"{rejects:,} rows, 1 in 100,000 odd", b, a)]


def export_table(members: int) -> pa.Table:
    """An AEP JSON-lines audience export as `pyarrow.json` reads it: an email, the audience's
    status, and identityMap with one ECID item and one Email item per member."""
    numbers = np.arange(members)
    emails = _text("person.", numbers, "@example.com")
    offsets = pa.array(np.arange(members + 1, dtype=np.int32))

    def items(ids: pa.Array, state: str, primary: bool) -> pa.Array:
        entries = pa.StructArray.from_arrays(
            [ids, pa.repeat(state, members), pa.array(np.full(members, primary))],
            names=["id", "authenticatedState", "primary"],
        )
        return pa.ListArray.from_arrays(offsets, entries)

    identity_map = pa.StructArray.from_arrays(
        [items(_text("8323", numbers), "ambiguous", True), items(emails, "authenticated", False)],
        names=["ECID", "Email"],
    )
    return pa.table(
        {
            "personalEmail": pa.StructArray.from_arrays([emails], names=["address"]),
            "segmentMembership_status": pa.repeat("realized", members),
            "identityMap": identity_map,
        }
    )


def bench_export_flatten(members: int, rounds: int) -> list[tuple]:
    table = export_table(members)
    assert _flatten(table).equals(reference.flatten_export(table))
    b, a = _compare(rounds, lambda: reference.flatten_export(table), lambda: _flatten(table))
    return [
        ("audience export list columns (`_flatten`)", f"{members:,} members, identityMap", b, a)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--rejects", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows: list[tuple] = []
    rows += bench_member_sources(args.members, args.repeat)
    rows += bench_export_flatten(args.members, args.repeat)
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-per-record-") as tmp:
        rows += bench_duplicate_registration(args.tokens, args.repeat, Path(tmp))
    rows += bench_raw_json(args.rejects, args.repeat)
    print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    print("| code | input | before (per record) | after (Arrow) | before / after |")
    print("|---|---|---|---|---|")
    for name, size, before, after in rows:
        if name.startswith("kept"):
            print(
                f"| {name} | {size} | {before:.2f} s (all contracts) | {after:.2f} s "
                f"(hashing) | {after / before:.0%} of the contracts |"
            )
        else:
            print(
                f"| {name} | {size} | {before:.2f} s | {after:.2f} s | **{before / after:.1f}×** |"
            )


if __name__ == "__main__":
    main()
