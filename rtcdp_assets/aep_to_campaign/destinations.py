"""Audience members → one file per activation destination, each under an identity contract.

    audience_membership ──▶ destination_exports ──(blocking checks)──▶ destination_exports_published
     members after an        one CSV per destination,                  aep_landing zone:
     export                  rejects by reason (warehouse)             destinations/<destination>/
                                                                       <audience>/<stamp>/… + .done

The blueprint activates an audience to three kinds of destination. What each may receive is an
**identity contract**, declared as data in `CONTRACTS` (namespaces from adobe-formats §d):

| destination | column              | namespace            | fed by                  | form        |
|-------------|---------------------|----------------------|-------------------------|-------------|
| email       | email               | Email                | member `email`          | trim+lower  |
| sms         | phone_e164          | Phone_E.164          | Campaign `mobile_phone` | E.164       |
| social_ads  | email_lc_sha256     | Email_LC_SHA256      | member `email`          | SHA-256     |
| social_ads  | phone_sha256_e164   | Phone_SHA256_E.164   | Campaign `mobile_phone` | SHA-256     |

(social_ads: the phone is optional, "when available"; every other identity is required.)

AEP audience exports carry no phone number, so the phone comes from the member's Campaign
profile (Campaign is the source of truth for profiles, §f1), matched on the join identity
exactly like the Campaign import; a key shared by several recipients gives no phone rather than
someone else's.

**Normalisation.** Email: trim, lower-case, then one `@` with a dotted domain and no spaces.
Phone: spaces, dashes, dots and parentheses removed, a leading international `00` becomes `+`,
then `+<country code><number>`, 7 to 15 digits, first digit not 0. A national number without a
country code is `invalid_phone`: guessing the country from the profile would send texts to the
wrong person when the guess is wrong.

**Hashing** (hashed identities only): SHA-256 of the normalised value, lower-case hex. A value
that already looks like a hash (64 characters, or 32+ hex digits; no plain phone or email looks
like that) is kept when it is exactly 64 lower-case hex digits, and rejected as `wrong_hash`
otherwise (upper-case, MD5/SHA-1 length, not hex): re-hashing a hash would ship an identity no
platform can match. A plain value where a hash is required is hashed, never rejected, so a
social_ads file never holds a plain email or phone.

**Rejects.** A row failing any identity of a destination's contract is left out of that
destination's file with the first failing reason in contract order: `missing_identity:<ns>`,
`invalid_email`, `invalid_phone`, `wrong_hash`. Per destination, current members in (`exited`
rows are no longer members and are not activated) = rows exported + rows rejected by reason.

Warehouse: `destination_exports/<audience>/<stamp>/` holds `<destination>_<audience>_<stamp>.csv`
per destination (CSV as in campaign_import: UTF-8, header, `\\n`, quoted only where needed, rows
in member-key order), `rejects.parquet` (destination, key, namespace, reason) and `manifest.json`
(files with SHA-256 and columns, counts per destination), written last.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import hashlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dagster import (
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    in_process_executor,
    multi_asset_check,
)

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone, join
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports import (
    AUDIENCE_MEMBERSHIP,
    GROUP,
    audience_membership,
    audience_partitions,
    export_stamp_for_run,
    read_index,
    read_members,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import import csv_bytes, upload_verified
from rtcdp_assets.shared.governance import usage_policy_result

DESTINATION_EXPORTS = "destination_exports"
PUBLISHED = "destination_exports_published"
LANDING_FOLDER = "destinations"
GOVERNANCE_PREFIX = "destination_"  # governance.yaml dataset of destination d: destination_<d>

Kind = Literal["email", "phone"]

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
E164_RE = r"^\+[1-9][0-9]{6,14}$"
SHA256_RE = r"^[0-9a-f]{64}$"
# 64 characters of anything, or a long run of hex digits: too long for a phone (15 digits) and
# without the `@` of an email, so the sender meant a hash.
LOOKS_HASHED_RE = r"^(?:[^@]{64}|[0-9A-Fa-f]{32,})$"
PHONE_SEPARATORS_RE = r"[\s\-.()]"

REJECTS_SCHEMA = pa.schema(
    [
        ("destination", pa.string()),
        ("key", pa.string()),
        ("namespace", pa.string()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class Identity:
    """One identity a destination receives: its column, namespace, source and form."""

    column: str  # column of the destination file
    namespace: str  # AEP identity namespace symbol (adobe-formats §d)
    source: str  # column of the member sources (see `member_sources`)
    kind: Kind
    hashed: bool
    required: bool = True


@dataclass(frozen=True)
class Contract:
    destination: str
    description: str
    identities: tuple[Identity, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(i.column for i in self.identities)

    @property
    def sources(self) -> tuple[str, ...]:
        """Member fields whose data the file carries (hashed or not): what governance labels."""
        return tuple(dict.fromkeys(i.source for i in self.identities))


CONTRACTS: tuple[Contract, ...] = (
    Contract(
        "email",
        "Email service provider: the plain email, trimmed and lower-cased.",
        (Identity("email", "Email", "email", "email", hashed=False),),
    ),
    Contract(
        "sms",
        "SMS provider: the mobile phone in E.164.",
        (Identity("phone_e164", "Phone_E.164", "mobile_phone", "phone", hashed=False),),
    ),
    Contract(
        "social_ads",
        "Advertising platform: hashed identities only, never a plain email or phone.",
        (
            Identity("email_lc_sha256", "Email_LC_SHA256", "email", "email", hashed=True),
            Identity(
                "phone_sha256_e164",
                "Phone_SHA256_E.164",
                "mobile_phone",
                "phone",
                hashed=True,
                required=False,
            ),
        ),
    ),
)
CONTRACTS_BY_NAME: Mapping[str, Contract] = {c.destination: c for c in CONTRACTS}


def file_name(destination: str, audience_id: str, stamp: str) -> str:
    return f"{destination}_{audience_id}_{stamp}.csv"


# --------------------------------------------------------------------------------------------
# Normalisation, hashing and validation (vectorised; hashing per value)
# --------------------------------------------------------------------------------------------
def normalise_email(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(normalised email or null, valid) for non-empty values."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    valid = pc.fill_null(pc.match_substring_regex(text, EMAIL_RE), False)
    return text, valid


def normalise_phone(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(E.164 candidate, valid) for non-empty values."""
    text = pc.replace_substring_regex(values, PHONE_SEPARATORS_RE, "")
    text = pc.replace_substring_regex(text, r"^00", "+")
    valid = pc.fill_null(pc.match_substring_regex(text, E164_RE), False)
    return text, valid


def sha256_hex(values: pa.Array) -> pa.Array:
    return pa.array(
        [None if v is None else hashlib.sha256(v.encode()).hexdigest() for v in values.to_pylist()],
        pa.string(),
    )


def _is_missing(values: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.fill_null(pc.equal(trimmed, ""), True)


def evaluate_identity(identity: Identity, values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(exported value or null, reason or null) per row for one identity of a contract.

    An optional identity that is missing exports an empty value with no reason."""
    values = pc.cast(values, pa.string())
    missing = _is_missing(values)
    if identity.kind == "email":
        normalised, valid = normalise_email(values)
        invalid_reason = "invalid_email"
    else:
        normalised, valid = normalise_phone(values)
        invalid_reason = "invalid_phone"
    null_str = pa.scalar(None, pa.string())
    if identity.hashed:
        trimmed = pc.utf8_trim_whitespace(values)
        looks_hashed = pc.fill_null(pc.match_substring_regex(trimmed, LOOKS_HASHED_RE), False)
        good_hash = pc.fill_null(pc.match_substring_regex(trimmed, SHA256_RE), False)
        plain_ok = pc.and_(pc.invert(looks_hashed), valid)
        hashed = sha256_hex(pc.if_else(plain_ok, normalised, null_str))
        value = pc.if_else(good_hash, trimmed, hashed)
        reason = pc.if_else(
            looks_hashed,
            pc.if_else(good_hash, null_str, "wrong_hash"),
            pc.if_else(valid, null_str, invalid_reason),
        )
    else:
        value = pc.if_else(valid, normalised, null_str)
        reason = pc.if_else(valid, null_str, invalid_reason)
    missing_reason = f"missing_identity:{identity.namespace}" if identity.required else None
    reason = pc.if_else(missing, pa.scalar(missing_reason, pa.string()), reason)
    value = pc.if_else(missing, null_str, value)
    return value, reason


@dataclass
class ContractResult:
    destination: str
    exported: pa.Table  # the contract's columns, strings ("" for a missing optional identity)
    rejects: pa.Table  # REJECTS_SCHEMA
    rows_in: int

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return count_by_reason(self.rejects)

    def reconciliation(self) -> dict[str, Any]:
        rejected = sum(self.rejected_by_reason.values())
        return {
            "rows_in": self.rows_in,
            "exported": self.exported.num_rows,
            "rejected": self.rejected_by_reason,
            "balanced": self.rows_in == self.exported.num_rows + rejected,
        }


def count_by_reason(rejects: pa.Table) -> dict[str, int]:
    if rejects.num_rows == 0:
        return {}
    counts = pc.value_counts(rejects.column("reason")).to_pylist()
    return {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: c["values"])}


def apply_contract(contract: Contract, sources: pa.Table) -> ContractResult:
    """Split the member sources (key + source columns) into the destination's rows and rejects."""
    reason = pa.nulls(sources.num_rows, pa.string())
    namespace = pa.nulls(sources.num_rows, pa.string())
    columns: dict[str, pa.Array] = {}
    for identity in contract.identities:
        value, why = evaluate_identity(identity, sources.column(identity.source).combine_chunks())
        # The first failing identity in contract order names the reject.
        first = pc.and_(pc.is_null(reason), pc.is_valid(why))
        namespace = pc.if_else(first, pa.scalar(identity.namespace), namespace)
        reason = pc.coalesce(reason, why)
        columns[identity.column] = pc.fill_null(value, "")
    ok = pc.is_null(reason)
    exported = pa.table(columns).filter(ok)
    failed = pc.invert(ok)
    rejects = pa.table(
        {
            "destination": pa.array([contract.destination] * sources.num_rows, pa.string()),
            "key": pc.cast(sources.column("key"), pa.string()),
            "namespace": namespace,
            "reason": reason,
        },
        schema=REJECTS_SCHEMA,
    ).filter(failed)
    return ContractResult(contract.destination, exported, rejects, sources.num_rows)


# --------------------------------------------------------------------------------------------
# Member sources: the members of the export plus their Campaign mobile phone
# --------------------------------------------------------------------------------------------
def campaign_phones(
    warehouse: Warehouse, profile_partitions: set[str], join_identity: str
) -> dict[str, str]:
    """Join identity → mobile phone of the latest version of each Campaign recipient; keys held
    by several recipients are left out so nobody is texted under someone else's identity."""
    key_column = "email" if join_identity == "email" else "external_id"
    tables = []
    for pk in sorted(profile_partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                cols = ["recipient_id", key_column, "mobile_phone", "last_modified"]
                tables.append(pq.read_table(local, columns=cols))
    if not tables:
        return {}
    df = pa.concat_tables(tables).to_pandas()
    df = df.sort_values("last_modified", kind="stable").drop_duplicates("recipient_id", keep="last")
    keys = df[key_column].str.strip().str.lower() if key_column == "email" else df[key_column]
    df = df.assign(_key=keys).dropna(subset=["_key"])
    counts = df["_key"].value_counts()
    df = df[df["_key"].map(counts) == 1].dropna(subset=["mobile_phone"])
    return dict(zip(df["_key"], df["mobile_phone"], strict=True))


def member_sources(members: pa.Table, phones: Mapping[str, str]) -> pa.Table:
    """Current members (not `exited`), sorted by key: key, email, mobile_phone."""
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


# --------------------------------------------------------------------------------------------
# Staging
# --------------------------------------------------------------------------------------------
def build_destination_exports(
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    profile_partitions: set[str],
    audience_id: str,
    stamp: str,
) -> dict[str, Any]:
    if read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"].get(stamp) is None:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} is not applied to the "
            "membership yet; materialize audience_membership for it first."
        )
    sources = member_sources(
        read_members(warehouse, audience_id, stamp),
        campaign_phones(warehouse, profile_partitions, audience_settings.join_identity),
    )
    folder = f"{audience_id}/{stamp}"
    files, counts, rejects = [], {}, []
    with tempfile.TemporaryDirectory(prefix="rtcdp-destinations-") as tmp:
        for contract in CONTRACTS:
            result = apply_contract(contract, sources)
            name = file_name(contract.destination, audience_id, stamp)
            data = csv_bytes(result.exported, contract.columns)
            local = Path(tmp) / name
            local.write_bytes(data)
            warehouse.put_file(DESTINATION_EXPORTS, folder, name, local)
            files.append(
                {
                    "destination": contract.destination,
                    "name": name,
                    "rows": result.exported.num_rows,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "columns": list(contract.columns),
                    "namespaces": [i.namespace for i in contract.identities],
                }
            )
            counts[contract.destination] = result.reconciliation()
            rejects.append(result.rejects)
        local = Path(tmp) / "rejects.parquet"
        pq.write_table(pa.concat_tables(rejects), local, compression="zstd")
        warehouse.put_file(DESTINATION_EXPORTS, folder, "rejects.parquet", local)
    manifest = {
        "audience_id": audience_id,
        "export_stamp": stamp,
        "members": sources.num_rows,
        "files": files,
        "counts": counts,
    }
    # Written last: the manifest is what says the staged files are complete.
    warehouse.put_json(DESTINATION_EXPORTS, folder, "manifest.json", manifest)
    return manifest


def read_destination_manifest(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    manifest = warehouse.get_json(DESTINATION_EXPORTS, f"{audience_id}/{stamp}", "manifest.json")
    if manifest is None:
        raise Failure(description=f"No staged destination files for {audience_id} {stamp}.")
    return manifest


@asset(
    name=DESTINATION_EXPORTS,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet", "csv"},
    deps=[
        audience_membership,
        # Phones come from the Campaign profiles, whatever window brought them.
        AssetDep(AssetKey("profiles"), partition_mapping=AllPartitionMapping()),
    ],
    description=(
        "The audience's current members as one CSV per activation destination (email, sms, "
        "social_ads), each holding exactly its identity contract's columns; rows that cannot "
        "meet the contract are rejected with a reason. Checked before it is published."
    ),
)
def destination_exports(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    manifest = build_destination_exports(
        warehouse,
        audience_settings,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        audience_id,
        stamp,
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(f["rows"] for f in manifest["files"]),
            "export_stamp": stamp,
            "members": manifest["members"],
            "files": MetadataValue.json(manifest["files"]),
            "counts": MetadataValue.json(manifest["counts"]),
            "warehouse_path": warehouse.path(DESTINATION_EXPORTS, audience_id, stamp),
        }
    )


def publish_destination_exports(
    warehouse: Warehouse, aep_landing: DropZone, audience_id: str, stamp: str
) -> list[dict[str, Any]]:
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    published = []
    for f in manifest["files"]:
        target = join(LANDING_FOLDER, f["destination"], audience_id, stamp, f["name"])
        marker = {
            "file": f["name"],
            "destination": f["destination"],
            "rows": f["rows"],
            "bytes": f["bytes"],
            "sha256": f["sha256"],
            "columns": f["columns"],
            "namespaces": f["namespaces"],
            "audience_id": audience_id,
            "export_stamp": stamp,
        }
        entry = upload_verified(
            warehouse,
            aep_landing,
            (DESTINATION_EXPORTS, f"{audience_id}/{stamp}", f["name"]),
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
    kinds={"azure", "csv"},
    deps=[destination_exports],
    description=(
        "The checked destination files of the export, written atomically to the AEP landing "
        "zone under destinations/<destination>/<audience>/<stamp>/, each followed by `.done`."
    ),
)
def destination_exports_published(
    context: AssetExecutionContext, warehouse: Warehouse, aep_landing: DropZone
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    published = publish_destination_exports(warehouse, aep_landing, audience_id, stamp)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(p["rows"] for p in published),
            "files": MetadataValue.json(published),
            "aep_landing": aep_landing.describe(),
        }
    )


# --------------------------------------------------------------------------------------------
# Checks (blocking: a failure keeps the files off the landing zone)
# --------------------------------------------------------------------------------------------
EXPORTS_KEY = AssetKey(DESTINATION_EXPORTS)


def read_staged_file(warehouse: Warehouse, audience_id: str, stamp: str, name: str) -> pa.Table:
    with warehouse.local_copy(DESTINATION_EXPORTS, f"{audience_id}/{stamp}", name) as local:
        if local is None:
            raise Failure(description=f"Staged destination file {name} is missing.")
        # Every value as text: an identity must never be reinterpreted as a number.
        with local.open("rb") as fh:
            header = fh.readline().decode().rstrip("\n").split(",")
        options = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        return pacsv.read_csv(local, convert_options=options)


def identity_contract_violations(contract: Contract, staged: pa.Table) -> dict[str, int]:
    """Rows of a staged file breaking its contract, by reason (recomputed from the file)."""
    violations: dict[str, int] = {}

    def add(reason: str, mask: pa.Array) -> None:
        n = int(pc.sum(pc.fill_null(mask, False)).as_py() or 0)
        if n:
            violations[reason] = violations.get(reason, 0) + n

    if tuple(staged.column_names) != contract.columns:
        violations[f"wrong_columns:{','.join(staged.column_names)}"] = max(staged.num_rows, 1)
        return violations
    for identity in contract.identities:
        values = staged.column(identity.column).combine_chunks()
        missing = pc.equal(values, "")
        if identity.required:
            add(f"missing_identity:{identity.namespace}", missing)
        present = pc.invert(missing)
        if identity.hashed:
            add(
                "wrong_hash",
                pc.and_(present, pc.invert(pc.match_substring_regex(values, SHA256_RE))),
            )
            # A plain identity on a hashed-only destination is the one mistake that cannot be
            # taken back once the file is out.
            _, plain_email = normalise_email(values)
            _, plain_phone = normalise_phone(values)
            add("plain_identity", pc.and_(present, pc.or_(plain_email, plain_phone)))
        else:
            normalise = normalise_email if identity.kind == "email" else normalise_phone
            normalised, valid = normalise(values)
            reason = "invalid_email" if identity.kind == "email" else "invalid_phone"
            add(reason, pc.and_(present, pc.invert(valid)))
            add(
                f"not_normalised:{identity.namespace}",
                pc.and_(valid, pc.not_equal(values, normalised)),
            )
    return violations


def identity_contract_result(
    warehouse: Warehouse, audience_id: str, stamp: str
) -> AssetCheckResult:
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    stored_rejects = warehouse.read_table(
        DESTINATION_EXPORTS, f"{audience_id}/{stamp}", "rejects.parquet"
    )
    by_destination: dict[str, Any] = {}
    passed = True
    for f in manifest["files"]:
        contract = CONTRACTS_BY_NAME[f["destination"]]
        staged = read_staged_file(warehouse, audience_id, stamp, f["name"])
        violations = identity_contract_violations(contract, staged)
        rejects = stored_rejects.filter(
            pc.equal(stored_rejects.column("destination"), f["destination"])
        )
        rejected = count_by_reason(rejects)
        # Recounted from what is stored, not taken from the manifest.
        balanced = manifest["members"] == staged.num_rows + sum(rejected.values())
        passed = passed and not violations and balanced
        by_destination[f["destination"]] = {
            "rows_in": manifest["members"],
            "exported": staged.num_rows,
            "rejected_by_reason": rejected,
            "balanced": balanced,
            "violations": violations,
        }
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="identity_contract",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "destinations": MetadataValue.json(by_destination),
            "wrong_hash_rejected": sum(
                d["rejected_by_reason"].get("wrong_hash", 0) for d in by_destination.values()
            ),
        },
    )


def data_usage_policy_result() -> AssetCheckResult:
    """One blocking result over every destination: governance evaluates the member fields each
    file carries, hashed or not (a label stays with the data through hashing)."""
    per_destination = {}
    passed = True
    for contract in CONTRACTS:
        result = usage_policy_result(f"{GOVERNANCE_PREFIX}{contract.destination}", contract.sources)
        passed = passed and result.passed
        per_destination[contract.destination] = {
            k: getattr(v, "value", v) for k, v in result.metadata.items()
        }
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="data_usage_policy",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "destinations": MetadataValue.json(per_destination),
            "violations": MetadataValue.json(
                [v for d in per_destination.values() for v in d["violations"]]
            ),
        },
    )


CHECK_SPECS = [
    AssetCheckSpec(
        name="identity_contract",
        asset=EXPORTS_KEY,
        blocking=True,
        partitions_def=audience_partitions,
        description=(
            "Every row of every destination file carries each required namespace of its "
            "contract, normalised (email trimmed + lower-case, phone E.164) or hashed (64 "
            "lower-case hex); no plain email or phone in a hashed-only file; rows in = exported "
            "+ rejected by reason per destination. Blocks publication."
        ),
        metadata={
            "guardrail/source": "AEP identity namespaces and hashing (adobe-formats §d)",
            "guardrail/limit": "0 contract violations, 0 plain identities on social_ads",
        },
    ),
    AssetCheckSpec(
        name="data_usage_policy",
        asset=EXPORTS_KEY,
        blocking=True,
        partitions_def=audience_partitions,
        description=(
            "The data-usage policies of asset_checks/governance.yaml allow each destination "
            "(`destination_<name>`) to receive the member fields its file carries. Blocks "
            "publication."
        ),
        metadata={
            "guardrail/source": "pattern: data-usage labels enforced on destinations (§e4, §e5)",
            "guardrail/limit": "0 policy violations",
        },
    ),
]


@multi_asset_check(specs=CHECK_SPECS, name="destination_exports_checks")
def destination_exports_checks(
    context: AssetCheckExecutionContext, warehouse: Warehouse
) -> Iterator[AssetCheckResult]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    yield identity_contract_result(warehouse, audience_id, stamp)
    yield data_usage_policy_result()


# --------------------------------------------------------------------------------------------
# What the lead wires in
# --------------------------------------------------------------------------------------------
@dataclass
class DestinationDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[Any]
    jobs: list[Any]


def _build_destination_defs(
    assets: Sequence[AssetsDefinition], checks: Sequence[Any]
) -> DestinationDefinitions:
    job = define_asset_job(
        "destination_export_job",
        selection=AssetSelection.assets(*assets).without_checks() | AssetSelection.checks(*checks),
        executor_def=in_process_executor,
        description="Build, check and publish the destination files of one audience export "
        "(the export named in the run tags, else the latest processed one).",
    )
    return DestinationDefinitions(assets=list(assets), asset_checks=list(checks), jobs=[job])


destination_defs = _build_destination_defs(
    [destination_exports, destination_exports_published], [destination_exports_checks]
)
