"""What AEP needs to ingest what we publish, derived from the project's own mappings.

One `DatasetSetup` per Campaign dataset (`CAMPAIGN_FLOWS`), from its `CampaignExportDescription`,
and one per offline mapping (`customer_to_aep` `offline_datasets()`, see `offline_setup`):

- the schema: the XDM class and the standard field groups that hold every field the mapping
  writes (`field_homes.compose_for`, looked up in the vendored official schemas);
- identities: the identityMap namespaces come from the column lineage (`identityMap.{campaign}`
  etc., placeholders filled from the settings as the mapping does). The records flag the
  primary identity inside identityMap (`primary: true`), so the primary identity of a dataset is
  that identityMap entry: the Campaign recipient namespace where the dataset carries it, else
  (non_deliverables) the address's own namespace, per record. Identity descriptors
  (`xdm:descriptorIdentity`) are added, never primary, on the standalone fields that hold a
  value the records also carry in identityMap (`FIELD_NAMESPACES`, and a field whose lineage is
  the Campaign identity's): they make those identities visible in AEP's UI without adding one
  identity to the graph (docs/formats.md §i2). Fields inside arrays get none (a descriptor
  names one field, an array holds many);
- Profile enablement (`PROFILE_REASONS`, every dataset, with the reason);
- the landing path and format of the cloud-storage dataflow (docs/formats.md §h3, §i4);
- the data-usage labels of `governance.yaml`, carried to the XDM fields through the lineage
  (documentation: AEP labels are applied in Data Governance, not by these APIs).

Offline datasets: the schema is the mapping's own class and field groups plus identityMap (as
`OfflineMapping.xdm_schema()` composes it; a group no written field needs is left out), the
identityMap namespaces are those of its identity
columns (placeholders filled from the settings as the ingest fills them), primary the one the
mapping marks; a descriptor (never primary) marks an identity column that is also written to a
field. Profile: a Profile mapping always; an event mapping when one of its namespaces keys a
Profile dataset of the plan (its events then reach those profiles), with the reason.

Namespaces: the custom ones the records use (the Campaign recipient namespace, the push-token
namespaces of `push_token_namespaces`, the codes of offline identity columns that are not
standard: Cross-Device, as a CRM id, docs/formats.md §d); standard ones (`STANDARD_NAMESPACES`,
among them the ECID of the Mobile SDK registrations `mobile_push` reads) are never created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription
from rtcdp_assets.campaign_to_aep.export_flow.description import PUBLICATION_EXTENSIONS
from rtcdp_assets.campaign_to_aep.export_flow.xdm_columns import (
    identity_namespaces,
    resolved_lineage,
    xdm_arrow_schema,
)
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_defs
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs
from rtcdp_assets.customer_to_aep.offline_assets import offline_datasets
from rtcdp_assets.customer_to_aep.offline_ingest import OfflineDataset
from rtcdp_assets.customer_to_aep.offline_mapping import CLASSES, FIELD_GROUPS, ITEMS
from rtcdp_assets.platform_setup.aep.field_homes import Composition, compose_for, published_leaves
from rtcdp_assets.shared import governance, push_token_formats
from rtcdp_assets.shared.xdm_conformance import FG_IDENTITY_MAP

CAMPAIGN_FLOWS: tuple[CampaignExportDescription, ...] = (
    broadlog_flow,
    tracking_log_defs.flow,
    non_deliverables_defs.flow,
    preferences_defs.flow,
    profiles_defs.flow,
    push_subscriptions_defs.flow,
)

# Namespaces every sandbox has (docs/formats.md §d): looked up, never created.
STANDARD_NAMESPACES = frozenset(
    {
        "Email",
        "Phone",
        "ECID",
        "Email_LC_SHA256",
        "Phone_SHA256",
        "Phone_E.164",
        "Phone_SHA256_E.164",
        "IDFA",
        "GAID",
    }
)
# The standard XDM fields that hold an identity value of a standard namespace (the Email and
# Phone data types; Adobe's descriptor examples use exactly these two, docs/formats.md §i2).
FIELD_NAMESPACES: Mapping[str, str] = {
    "personalEmail.address": "Email",
    "mobilePhone.number": "Phone",
}
# The identity of the Mobile SDK's push registrations that `aep_push_tokens` (mobile_push)
# reads from AEP's dataset export (identityMap.ECID): standard, so nothing to create; their
# pushNotificationDetails use the same field group as push_subscriptions.
MOBILE_SDK_NAMESPACE = "ECID"
# Identity Service idType of each custom namespace (docs/formats.md §d: COOKIE, DEVICE,
# CROSS_DEVICE, EMAIL, PHONE are the API's custom types).
CAMPAIGN_ID_TYPE = "CROSS_DEVICE"
PUSH_TOKEN_ID_TYPE = "DEVICE"  # noqa: S105 (an identity type, not a password)

PROFILE_REASONS: Mapping[str, str] = {
    "broadlog": (
        "ExperienceEvents of sends and bounces: Campaign engagement for segmentation "
        "(docs/formats.md §f5); mind 5,000 events per profile and 90 batches a day (§e1)."
    ),
    "tracking_log": ("ExperienceEvents of opens and clicks, for segmentation on engagement (§f5)."),
    "non_deliverables": (
        "Address status (blocked / quarantined) on the profile, so audiences can leave "
        "undeliverable addresses out; Campaign stays the source of truth (§f1)."
    ),
    "preferences": "Consents (`consents.marketing.*`) that Profile enforces at activation (§c5).",
    "profiles": (
        "The Campaign profile attributes the union schema and audiences use; Campaign is the "
        "source of truth for profiles (§f1)."
    ),
    "push_subscriptions": (
        "pushNotificationDetails on the profile, beside the Mobile SDK's registrations "
        "(`mobile_push`); the same field group, so both routes compare like with like."
    ),
    "offline_orders": (
        "ExperienceEvents of purchases (commerce), keyed by Email with the Campaign external ID "
        "beside it, so audiences can use what a person bought; mind 5,000 events per profile (§e1)."
    ),
    "loyalty_members": (
        "Loyalty attributes (`loyalty.*`) on the profile keyed by the Campaign external ID; no "
        "names or addresses, which the Campaign profiles own (§f1)."
    ),
}
# The reason of an offline dataset whose mapping PROFILE_REASONS does not name yet.
OFFLINE_PROFILE_REASON = "Attributes of the customer's {dataset} file on the profile ({source})."
OFFLINE_EVENT_REASON = (
    "ExperienceEvents of the customer's {dataset} file, whose identities ({linked}) key Profile "
    "datasets of this plan: for segmentation on them (§e1: 5,000 events per profile)."
)
OFFLINE_ID_TYPE = "CROSS_DEVICE"  # a CRM id (docs/formats.md §d); a person's id across devices


@dataclass(frozen=True)
class NamespaceSetup:
    code: str
    name: str
    id_type: str
    description: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class IdentityDescriptor:
    path: str  # dotted dataset-form path
    namespace: str
    primary: bool = False

    @property
    def source_property(self) -> str:
        """The descriptor's `xdm:sourceProperty`: `/personalEmail/address`."""
        return "/" + self.path.replace(".", "/")


@dataclass(frozen=True)
class LandingSource:
    """Where the cloud-storage source reads: Azure Blob or S3, from the landing zone config."""

    kind: str  # "azure" | "s3"
    container: str  # Blob container or S3 bucket
    prefix: str = ""

    def folder(self, *parts: str) -> str:
        """`/<container>/<prefix>/<parts...>`: the source connection's path form."""
        segments = [self.container, *self.prefix.strip("/").split("/"), *parts]
        return "/" + "/".join(s.strip("/") for s in segments if s.strip("/"))


@dataclass(frozen=True)
class DatasetSetup:
    dataset: str
    record_kind: str
    composition: Composition
    identity_map_namespaces: tuple[str, ...]
    primary_namespaces: tuple[str, ...]  # one, or the per-record choices (non_deliverables)
    descriptors: tuple[IdentityDescriptor, ...]
    profile_reason: str
    source_folder: str
    file_pattern: str
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = "Campaign"  # who the records come from, for descriptions

    @property
    def schema_title(self) -> str:
        return f"rtcdp-dagster {self.dataset}"

    @property
    def dataset_name(self) -> str:
        return f"rtcdp-dagster {self.dataset}"

    @property
    def profile_enabled(self) -> bool:
        return bool(self.profile_reason)


@dataclass(frozen=True)
class AepBlueprint:
    datasets: tuple[DatasetSetup, ...]
    namespaces: tuple[NamespaceSetup, ...]
    landing: LandingSource
    publication_format: str  # the setting: parquet | json-lines
    source_data_format: str  # the dataflow's data.format: parquet | json (docs/formats.md §h3)
    standard_namespaces_used: tuple[str, ...]


def _identity_setup(
    flow: CampaignExportDescription, settings: PipelineSettings, leaves: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[IdentityDescriptor, ...]]:
    lineage = resolved_lineage(flow, settings)
    in_map = tuple(p.split(".", 1)[1] for p in lineage if p.startswith("identityMap."))
    campaign = settings.campaign_identity_namespace
    primary = (campaign,) if campaign in in_map else in_map
    campaign_columns = lineage.get(f"identityMap.{campaign}")
    descriptors: list[IdentityDescriptor] = []
    for path in leaves:
        if "[]" in path or path.startswith("identityMap"):
            continue
        namespace = FIELD_NAMESPACES.get(path)
        if namespace is None and campaign_columns and lineage.get(path) == campaign_columns:
            namespace = campaign
        if namespace in in_map:
            descriptors.append(IdentityDescriptor(path, namespace))
    return in_map, primary, tuple(descriptors)


def _labels(
    flow: CampaignExportDescription, settings: PipelineSettings
) -> dict[str, tuple[str, ...]]:
    rules = governance.load()
    out: dict[str, tuple[str, ...]] = {}
    for path, columns in resolved_lineage(flow, settings).items():
        labels = set().union(*rules.field_labels(flow.dataset, columns).values())
        if labels:
            out[path] = tuple(sorted(labels))
    return out


def dataset_setup(
    flow: CampaignExportDescription, settings: PipelineSettings, landing: LandingSource
) -> DatasetSetup:
    leaves = published_leaves(xdm_arrow_schema(flow, settings))
    in_map, primary, descriptors = _identity_setup(flow, settings, leaves)
    return DatasetSetup(
        dataset=flow.dataset,
        record_kind=flow.record_kind,
        composition=compose_for(flow.xdm_class, leaves),
        identity_map_namespaces=in_map,
        primary_namespaces=primary,
        descriptors=descriptors,
        profile_reason=PROFILE_REASONS.get(flow.dataset, ""),
        source_folder=landing.folder(settings.aep_landing_folder, flow.dataset),
        file_pattern=file_pattern(flow.dataset, settings),
        labels=_labels(flow, settings),
    )


def file_pattern(dataset: str, settings: PipelineSettings) -> str:
    """The dataflow's file pattern: the extension selects the data files, so `_manifest.json`
    beside them is never ingested (docs/formats.md §h3); JSON Lines files also carry the
    dataset prefix for the same reason. Campaign and offline datasets name files alike."""
    extension = PUBLICATION_EXTENSIONS[settings.aep_publication_format]
    return f"*{extension}" if extension != ".json" else f"{dataset}_*{extension}"


def _offline_leaves(ds: OfflineDataset) -> list[str]:
    """Every field the mapping writes, in the schema-path form (a list leaf without `[]`)."""
    mapping = ds.mapping
    leaves = ["_id", *(["eventType"] if mapping.record == "event" else [])]
    leaves += [c.target for c in mapping.columns if c.target is not None]
    leaves += [*mapping.constants, "identityMap.*[].id", "identityMap.*[].primary"]
    return list(dict.fromkeys(leaves))


def offline_dataset_setup(
    ds: OfflineDataset,
    settings: PipelineSettings,
    landing: LandingSource,
    profile_namespaces: frozenset[str],
) -> DatasetSetup:
    """An offline mapping's dataset; `profile_namespaces`: the namespaces that key the plan's
    Profile datasets (an event dataset sharing one reaches those profiles)."""
    mapping = ds.for_settings(settings).mapping
    groups = (*(FIELD_GROUPS[g] for g in mapping.field_groups), FG_IDENTITY_MAP)
    # The mapping's class and, of the field groups its records are validated against, those
    # that hold a field (an ExperienceEvent has identityMap itself, as broadlog's schema shows).
    composition = compose_for(CLASSES[mapping.record], _offline_leaves(ds), candidates=groups)
    identities = [c for c in mapping.identity_columns if c.identity is not None]
    in_map = tuple(dict.fromkeys(c.identity.namespace for c in identities if c.identity))
    primary = tuple(c.identity.namespace for c in identities if c.identity and c.identity.primary)
    if not any(c.required for c in identities if c.identity and c.identity.primary):
        # a record without the primary's value has its first other identity as primary
        # (offline_records), so the primary is chosen per record among these
        primary = tuple(dict.fromkeys((*primary, *in_map)))
    descriptors = tuple(
        IdentityDescriptor(c.path, c.identity.namespace)
        for c in identities
        if c.identity and c.path and ITEMS not in c.path
    )
    reason = PROFILE_REASONS.get(ds.dataset, "")
    linked = sorted(set(in_map) & profile_namespaces)
    if not reason and mapping.record == "profile":
        reason = OFFLINE_PROFILE_REASON.format(dataset=ds.dataset, source=mapping.source)
    elif not reason and linked:
        reason = OFFLINE_EVENT_REASON.format(dataset=ds.dataset, linked=", ".join(linked))
    elif mapping.record == "event" and not linked:
        reason = ""  # its events would reach no profile of this plan
    rules = governance.load()
    labels: dict[str, tuple[str, ...]] = {}
    for column in mapping.columns:
        path = column.target or (
            f"identityMap.{column.identity.namespace}" if column.identity else None
        )
        found_labels = set().union(*rules.field_labels(ds.dataset, [column.column]).values())
        if path and found_labels:
            labels[path] = tuple(sorted(found_labels))
    return DatasetSetup(
        dataset=ds.dataset,
        record_kind=mapping.record,
        composition=composition,
        identity_map_namespaces=in_map,
        primary_namespaces=primary,
        descriptors=descriptors,
        profile_reason=reason,
        source_folder=landing.folder(settings.aep_landing_folder, ds.dataset),
        file_pattern=file_pattern(ds.dataset, settings),
        labels=labels,
        origin="Offline data",
    )


def _namespaces(
    datasets: Sequence[DatasetSetup], settings: PipelineSettings
) -> tuple[NamespaceSetup, ...]:
    names = identity_namespaces(settings)
    token_codes = {
        settings.push_token_namespaces[p]
        for p in push_token_formats.PLATFORMS
        if settings.push_token_namespaces.get(p)
    }
    described = {
        names["subscriber"]: ("Campaign app subscriber", CAMPAIGN_ID_TYPE, "App subscriber key"),
        names["campaign"]: ("Campaign recipient", CAMPAIGN_ID_TYPE, "Campaign external ID"),
        **{
            code: (f"Push token {code}", PUSH_TOKEN_ID_TYPE, "Push device token (APNs / FCM)")
            for code in token_codes
        },
    }
    found: dict[str, list[str]] = {}
    offline_codes: set[str] = set()
    for setup in datasets:
        for code in setup.identity_map_namespaces:
            found.setdefault(code, []).append(setup.dataset)
            if setup.origin != "Campaign":
                offline_codes.add(code)
    for code in offline_codes - set(described):
        # an identity column of an offline mapping, e.g. a CRM id (docs/formats.md §d)
        described[code] = (code, OFFLINE_ID_TYPE, "Identity column of an offline mapping")
    return tuple(
        NamespaceSetup(code, *described.get(code, (code, CAMPAIGN_ID_TYPE, code)), tuple(users))
        for code, users in sorted(found.items())
        if code not in STANDARD_NAMESPACES
    )


def build_blueprint(
    settings: PipelineSettings,
    landing: LandingSource,
    offline: Sequence[OfflineDataset] | None = None,
) -> AepBlueprint:
    """Every Campaign dataset, then every offline mapping (`offline_datasets()` unless given)."""
    campaign = tuple(dataset_setup(flow, settings, landing) for flow in CAMPAIGN_FLOWS)
    offline = offline_datasets() if offline is None else offline
    profile_namespaces = frozenset(
        code for d in campaign if d.record_kind == "profile" for code in d.identity_map_namespaces
    ) | frozenset(
        c.identity.namespace
        for ds in offline
        if ds.mapping.record == "profile"
        for c in ds.for_settings(settings).mapping.identity_columns
        if c.identity is not None
    )
    datasets = campaign + tuple(
        offline_dataset_setup(ds, settings, landing, profile_namespaces) for ds in offline
    )
    used = {code for d in datasets for code in d.identity_map_namespaces}
    return AepBlueprint(
        datasets=datasets,
        namespaces=_namespaces(datasets, settings),
        landing=landing,
        publication_format=settings.aep_publication_format,
        source_data_format="parquet" if settings.aep_publication_format == "parquet" else "json",
        standard_namespaces_used=tuple(
            sorted((used | {MOBILE_SDK_NAMESPACE}) & STANDARD_NAMESPACES)
        ),
    )
