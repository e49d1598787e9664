"""`destination_identities` on `profiles_xdm` (ERROR, not blocking): the published profiles
carry every identity an activation destination needs (rtcdp_assets/shared/
destination_identities.py `DESTINATION_NEEDS`, namespaces from
`destination_identity_namespaces`).

Per needed identity it counts the profiles that have its source field (`personalEmail.address`
for the email forms, `mobilePhone.number` for the phone forms) and those whose identityMap
carries the namespace. It fails when a needed role has no namespace in the settings, when the
records have no such namespace at all although profiles have the source field, or when not
one of those profiles carries it (e.g. every phone is national and no
`phone_default_country_code` is set). A partition without any source value for a role says so
and passes: there is nothing to carry. Not blocking: the profiles are still worth publishing
without one destination's identity; the failure names what a destination will miss.

Counts only: no identity value reaches the metadata.

No `from __future__ import annotations` here: Dagster reads the decorated functions' annotations.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    multi_asset_check,
)

from asset_checks.check_descriptions import count, listing, of
from asset_checks.partition_reconciliation import partition_check_spec
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription
from rtcdp_assets.shared.destination_identities import (
    DESTINATION_IDENTITIES,
    DESTINATION_NEEDS,
    needed_roles,
)

BATCH_ROWS = 64 * 1024
# The XDM field holding each source column's value on the profile record.
SOURCE_FIELDS = {"email": ("personalEmail", "address"), "mobile_phone": ("mobilePhone", "number")}


@dataclass
class RoleTally:
    role: str
    namespace: str
    with_source: int = 0
    carrying: int = 0
    namespace_in_records: bool = False

    @property
    def failure(self) -> str:
        """Why this role fails, or '' when it passes."""
        if not self.namespace:
            return f"{self.role}: no namespace in destination_identity_namespaces"
        if not self.with_source:
            return ""
        if not self.namespace_in_records:
            return f"{self.namespace}: not in the published identityMap"
        if not self.carrying:
            return f"{self.namespace}: carried by none of {count(self.with_source)} profiles"
        return ""


def build_destination_identities_check(flow: CampaignExportDescription) -> AssetChecksDefinition:
    spec = partition_check_spec(
        "destination_identities",
        flow.xdm_key,
        "Every identity an activation destination needs (email, E.164 phone, their SHA-256 "
        "hashes; namespaces from `destination_identity_namespaces`) is in the published "
        "profiles' identityMap: fails when a needed namespace is absent, or carried by none of "
        "the profiles that have its source field.",
        blocking=False,
        source="Activation destinations' identity contracts (aep_to_campaign/destinations, "
        "docs/formats.md §d): AEP exports only identities the profile carries",
        limit="each needed namespace carried by > 0 % of the profiles with its source field",
    )

    @multi_asset_check(specs=[spec], name=f"{flow.xdm_dataset}_destination_identity_checks")
    def destination_identity_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        batches = warehouse.iter_batches(
            flow.xdm_dataset,
            context.partition_key,
            batch_size=BATCH_ROWS,
            columns=["identityMap", *{f for f, _ in SOURCE_FIELDS.values()}],
        )
        yield destination_identities_result(flow.xdm_dataset, batches, settings)

    return destination_identity_checks


def _present(batch: pa.RecordBatch, path: tuple[str, ...]) -> pa.Array:
    """True where the record has a value at `path` (a missing column: nowhere)."""
    if path[0] not in batch.schema.names:
        return pa.array([False] * batch.num_rows)
    values = batch.column(path[0])
    for name in path[1:]:
        if not pa.types.is_struct(values.type) or values.type.get_field_index(name) < 0:
            return pa.array([False] * batch.num_rows)
        values = pc.struct_field(values, name)
    return pc.is_valid(values)


def _carries(batch: pa.RecordBatch, namespace: str) -> pa.Array | None:
    """True where identityMap holds at least one id in `namespace`; None: no such namespace."""
    if "identityMap" not in batch.schema.names:
        return None
    column = batch.column("identityMap")
    if not pa.types.is_struct(column.type) or column.type.get_field_index(namespace) < 0:
        return None
    lists = pc.struct_field(column, namespace)
    return pc.fill_null(pc.greater(pc.list_value_length(lists), 0), False)


def tally_roles(batches: Iterable[pa.RecordBatch], settings: PipelineSettings) -> list[RoleTally]:
    names = settings.destination_identity_namespaces
    tallies = [RoleTally(role, names.get(role, "")) for role in needed_roles()]
    for batch in batches:
        for tally in tallies:
            source = _present(batch, SOURCE_FIELDS[DESTINATION_IDENTITIES[tally.role].source])
            tally.with_source += int(pc.sum(source).as_py() or 0)
            carried = _carries(batch, tally.namespace) if tally.namespace else None
            if carried is None:
                continue
            tally.namespace_in_records = True
            tally.carrying += int(pc.sum(pc.and_(carried, source)).as_py() or 0)
    return tallies


def destination_identities_result(
    dataset: str, batches: Iterable[pa.RecordBatch], settings: PipelineSettings
) -> AssetCheckResult:
    tallies = tally_roles(batches, settings)
    failures = [t.failure for t in tallies if t.failure]
    needs = {
        t.role: sorted(d for d, roles in DESTINATION_NEEDS.items() if t.role in roles)
        for t in tallies
    }
    lines = [
        f"{t.namespace or t.role} ({listing(needs[t.role])}): "
        + (
            of(t.carrying, t.with_source, "profiles with the source field")
            if t.with_source
            else "no profile here has the source field"
        )
        for t in tallies
    ]
    return AssetCheckResult(
        asset_key=AssetKey(dataset),
        check_name="destination_identities",
        passed=not failures,
        severity=AssetCheckSeverity.ERROR,
        description=("Missing: " + "; ".join(failures) + ". " if failures else "")
        + "; ".join(lines),
        metadata={
            "failures": len(failures),
            **{
                f"{t.role}/{key}": value
                for t in tallies
                for key, value in (
                    ("namespace", t.namespace),
                    ("profiles_with_source", t.with_source),
                    ("profiles_carrying", t.carrying),
                )
            },
        },
    )
