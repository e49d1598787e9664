"""The blueprint as API requests, in apply order (endpoints and bodies: docs/formats.md §i).

Each `ApiRequest` names what it creates (`ref`, e.g. `schema:broadlog`), the request that
creates it and the lookup that finds an existing one (by title, name or code). Values known
only once an earlier object exists are placeholders that `apply` fills:

- `{{<ref>.<key>}}`: a value of an earlier object, e.g. `{{schema:broadlog.$id}}`,
  `{{schema:broadlog.meta:altId}}`, `{{dataset:broadlog.id}}`;
- `{{env:NAME}}`: an environment variable (the landing credentials: never in the plan);
- `{{now}}`: the epoch second at apply time (a dataflow's start time).

Order: namespaces → schemas → their Profile tag → identity descriptors → datasets → the base
connection → per dataset a target connection, a source connection and the dataflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from rtcdp_assets.platform_setup.aep.blueprint import AepBlueprint, DatasetSetup

SCHEMA_REGISTRY = "/data/foundation/schemaregistry"
CATALOG = "/data/foundation/catalog"
IDENTITY = "/data/core/idnamespace"
FLOW_SERVICE = "/data/foundation/flowservice"

# Connection specs of the cloud-storage sources, the Data Lake target and the flow spec
# `CloudStorageToAEP` (docs/formats.md §i4).
SOURCE_CONNECTION_SPECS = {
    "azure": "4c10e202-c428-4796-9208-5f1f5732b1cf",
    "s3": "ecadc60c-7455-4d87-84dc-2a0e293d997b",
}
DATA_LAKE_CONNECTION_SPEC = "c604ff05-7f1a-43c0-8e18-33bf874cb11c"
CLOUD_STORAGE_FLOW_SPEC = "9753525b-82c7-4dce-8a9b-5ccfce2b9876"
# The variables `apply` reads for the base connection's credentials (docs/formats.md §i4).
LANDING_AUTH: dict[str, tuple[str, dict[str, str]]] = {
    "azure": ("ConnectionString", {"connectionString": "AEP_SOURCE_BLOB_CONNECTION_STRING"}),
    "s3": (
        "Access Key",
        {"s3AccessKey": "AEP_SOURCE_S3_ACCESS_KEY", "s3SecretKey": "AEP_SOURCE_S3_SECRET_KEY"},
    ),
}
SCHEMA_ACCEPT = "application/vnd.adobe.xed-id+json"
SCHEMA_LOOKUP_ACCEPT = "application/vnd.adobe.xed+json; version=1"
DESCRIPTOR_ACCEPT = "application/vnd.adobe.xdm+json"
XED_CONTENT = "application/vnd.adobe.xed-full+json;version=1"
# Hourly: the flow spec's minimum for `hour`; we publish every 4 h, a run finds nothing new
# in between (docs/formats.md §i4).
SCHEDULE = {"startTime": "{{now}}", "frequency": "hour", "interval": 1}


@dataclass(frozen=True)
class Lookup:
    """How to find an existing object: a GET, then the item whose `key` equals `value`."""

    path: str
    key: str
    value: str
    accept: str = "application/json"
    also: dict[str, str] = field(default_factory=dict)  # more fields the item must have


@dataclass(frozen=True)
class ApiRequest:
    kind: str
    ref: str
    service: str
    method: str
    path: str
    body: Any
    lookup: Lookup
    headers: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiRequest:
        return cls(**{**data, "lookup": Lookup(**data["lookup"])})

    @property
    def file_stem(self) -> str:
        return f"{self.kind}_{self.ref.split(':', 1)[1]}"


def _by_name(path: str, name: str) -> Lookup:
    """Catalog filters with `property=name==<name>`; Flow Service quotes the value
    (`property=name=="CloudStorageToAEP"`, docs/formats.md §i4). The item is matched on its
    name again, so a filter the API ignores finds no wrong object."""
    value = f'"{name}"' if path.startswith(FLOW_SERVICE) else name
    return Lookup(f"{path}?property={quote(f'name=={value}', safe='=')}", "name", name)


def namespace_requests(blueprint: AepBlueprint) -> Iterator[ApiRequest]:
    for ns in blueprint.namespaces:
        yield ApiRequest(
            kind="namespace",
            ref=f"namespace:{ns.code}",
            service="Identity Service",
            method="POST",
            path=f"{IDENTITY}/identities",
            body={
                "name": ns.name,
                "code": ns.code,
                "description": ns.description,
                "idType": ns.id_type,
            },
            lookup=Lookup(f"{IDENTITY}/identities", "code", ns.code),
            description=f"custom namespace {ns.code}, used by {', '.join(ns.used_by)}",
        )


def schema_requests(setup: DatasetSetup) -> Iterator[ApiRequest]:
    ref = f"schema:{setup.dataset}"
    composition = setup.composition
    yield ApiRequest(
        kind="schema",
        ref=ref,
        service="Schema Registry",
        method="POST",
        path=f"{SCHEMA_REGISTRY}/tenant/schemas",
        body={
            "title": setup.schema_title,
            "description": f"{setup.origin} {setup.dataset} records published by rtcdp-dagster.",
            "type": "object",
            "allOf": [{"$ref": c} for c in (composition.class_id, *composition.field_groups)],
        },
        lookup=Lookup(
            f"{SCHEMA_REGISTRY}/tenant/schemas?property="
            + quote(f"title=={setup.schema_title}", safe="="),
            "title",
            setup.schema_title,
            SCHEMA_ACCEPT,
        ),
        description=f"class {composition.class_id} + {len(composition.field_groups)} field groups",
    )
    if setup.profile_enabled:
        yield ApiRequest(
            kind="schema_profile",
            ref=f"schema_profile:{setup.dataset}",
            service="Schema Registry",
            method="PATCH",
            path=f"{SCHEMA_REGISTRY}/tenant/schemas/{{{{{ref}.meta:altId}}}}",
            body=[{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}],
            # found when the schema's meta:immutableTags already holds "union"
            lookup=Lookup(
                f"{SCHEMA_REGISTRY}/tenant/schemas/{{{{{ref}.meta:altId}}}}",
                "meta:immutableTags",
                "union",
                SCHEMA_LOOKUP_ACCEPT,
            ),
            description="enable the schema for Real-Time Customer Profile",
        )
    for descriptor in setup.descriptors:
        yield ApiRequest(
            kind="descriptor",
            ref=f"descriptor:{setup.dataset}{descriptor.source_property.replace('/', '.')}",
            service="Schema Registry",
            method="POST",
            path=f"{SCHEMA_REGISTRY}/tenant/descriptors",
            body={
                "@type": "xdm:descriptorIdentity",
                "xdm:sourceSchema": f"{{{{{ref}.$id}}}}",
                "xdm:sourceVersion": 1,
                "xdm:sourceProperty": descriptor.source_property,
                "xdm:namespace": descriptor.namespace,
                "xdm:property": "xdm:code",
                "xdm:isPrimary": descriptor.primary,
            },
            # found when an identity descriptor of this schema names this property
            lookup=Lookup(
                f"{SCHEMA_REGISTRY}/tenant/descriptors",
                "xdm:sourceProperty",
                descriptor.source_property,
                DESCRIPTOR_ACCEPT,
                also={"@type": "xdm:descriptorIdentity", "xdm:sourceSchema": f"{{{{{ref}.$id}}}}"},
            ),
            description=f"identity {descriptor.namespace} on {descriptor.path}",
        )


def dataset_request(setup: DatasetSetup) -> ApiRequest:
    body: dict[str, Any] = {
        "name": setup.dataset_name,
        "description": f"{setup.origin} {setup.dataset} (rtcdp-dagster publication).",
        "schemaRef": {
            "id": f"{{{{schema:{setup.dataset}.$id}}}}",
            "contentType": "application/vnd.adobe.xed+json;version=1",
        },
    }
    if setup.profile_enabled:
        body["tags"] = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
    return ApiRequest(
        kind="dataset",
        ref=f"dataset:{setup.dataset}",
        service="Catalog",
        method="POST",
        path=f"{CATALOG}/dataSets?requestDataSource=true",
        body=body,
        lookup=_by_name(f"{CATALOG}/dataSets", setup.dataset_name),
        description="Profile-enabled" if setup.profile_enabled else "not Profile-enabled",
    )


def base_connection_request(blueprint: AepBlueprint) -> ApiRequest:
    kind = blueprint.landing.kind
    spec_name, params = LANDING_AUTH[kind]
    name = f"rtcdp-dagster landing ({kind} {blueprint.landing.container})"
    return ApiRequest(
        kind="base_connection",
        ref="base_connection:landing",
        service="Flow Service",
        method="POST",
        path=f"{FLOW_SERVICE}/connections",
        body={
            "name": name,
            "description": "The AEP landing container rtcdp-dagster publishes to.",
            "auth": {
                "specName": spec_name,
                "params": {key: f"{{{{env:{var}}}}}" for key, var in params.items()},
            },
            "connectionSpec": {"id": SOURCE_CONNECTION_SPECS[kind], "version": "1.0"},
        },
        lookup=_by_name(f"{FLOW_SERVICE}/connections", name),
        description="credentials from the environment at apply time, never in the plan",
    )


def flow_requests(blueprint: AepBlueprint, setup: DatasetSetup) -> Iterator[ApiRequest]:
    dataset = setup.dataset
    target_name = f"rtcdp-dagster {dataset} target"
    yield ApiRequest(
        kind="target_connection",
        ref=f"target_connection:{dataset}",
        service="Flow Service",
        method="POST",
        path=f"{FLOW_SERVICE}/targetConnections",
        body={
            "name": target_name,
            "description": f"Data Lake dataset of {dataset}",
            "data": {"schema": {"id": f"{{{{schema:{dataset}.$id}}}}", "version": XED_CONTENT}},
            "params": {"dataSetId": f"{{{{dataset:{dataset}.id}}}}"},
            "connectionSpec": {"id": DATA_LAKE_CONNECTION_SPEC, "version": "1.0"},
        },
        lookup=_by_name(f"{FLOW_SERVICE}/targetConnections", target_name),
    )
    source_name = f"rtcdp-dagster {dataset} source"
    yield ApiRequest(
        kind="source_connection",
        ref=f"source_connection:{dataset}",
        service="Flow Service",
        method="POST",
        path=f"{FLOW_SERVICE}/sourceConnections",
        body={
            "name": source_name,
            "description": f"{setup.source_folder}/ (every partition folder), data files only",
            "baseConnectionId": "{{base_connection:landing.id}}",
            "data": {"format": blueprint.source_data_format},
            # recursive: each partition has its own folder; the pattern keeps _manifest.json out
            "params": {"path": f"{setup.source_folder}/{setup.file_pattern}", "recursive": "true"},
            "connectionSpec": {
                "id": SOURCE_CONNECTION_SPECS[blueprint.landing.kind],
                "version": "1.0",
            },
        },
        lookup=_by_name(f"{FLOW_SERVICE}/sourceConnections", source_name),
    )
    flow_name = f"rtcdp-dagster {dataset}"
    yield ApiRequest(
        kind="flow",
        ref=f"flow:{dataset}",
        service="Flow Service",
        method="POST",
        path=f"{FLOW_SERVICE}/flows",
        body={
            "name": flow_name,
            "description": f"Landing container → {setup.dataset_name}",
            "flowSpec": {"id": CLOUD_STORAGE_FLOW_SPEC, "version": "1.0"},
            "sourceConnectionIds": [f"{{{{source_connection:{dataset}.id}}}}"],
            "targetConnectionIds": [f"{{{{target_connection:{dataset}.id}}}}"],
            # XDM Parquet / XDM JSON needs no mapping set (docs/formats.md §h3)
            "transformations": [],
            "scheduleParams": dict(SCHEDULE),
        },
        lookup=_by_name(f"{FLOW_SERVICE}/flows", flow_name),
    )


def plan_requests(blueprint: AepBlueprint) -> list[ApiRequest]:
    """Every request of the plan, in apply order."""
    requests = list(namespace_requests(blueprint))
    for setup in blueprint.datasets:
        requests.extend(schema_requests(setup))
    requests.extend(dataset_request(setup) for setup in blueprint.datasets)
    requests.append(base_connection_request(blueprint))
    for setup in blueprint.datasets:
        requests.extend(flow_requests(blueprint, setup))
    return requests
