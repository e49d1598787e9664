"""A local stand-in for Adobe IMS and the AEP APIs `apply` calls, shaped like their documented
requests and answers (docs/formats.md §i): stdlib http.server on 127.0.0.1, every request
recorded.

It keeps what was created and answers the lookups from it, so a second apply finds everything.
It also refuses what AEP would refuse: a platform call without the token and the IMS org,
sandbox and API-key headers (401), a body citing a schema, dataset or connection it never
created (400), a second object of the same title, name or code (409).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "test-access-token-5d1e"
STANDARD_NAMESPACES = [
    {"id": 6, "code": "Email", "name": "Email", "idType": "EMAIL", "custom": False},
    {"id": 7, "code": "Phone", "name": "Phone", "idType": "PHONE", "custom": False},
    {"id": 4, "code": "ECID", "name": "ECID", "idType": "COOKIE", "custom": False},
]
SR = "/data/foundation/schemaregistry"
CATALOG = "/data/foundation/catalog"
FLOW = "/data/foundation/flowservice"
IDENTITY = "/data/core/idnamespace/identities"


@dataclass
class Recorded:
    method: str
    path: str  # without the query
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class AepState:
    client_id: str
    org_id: str
    sandbox: str
    requests: list[Recorded] = field(default_factory=list)
    namespaces: list[dict[str, Any]] = field(default_factory=lambda: list(STANDARD_NAMESPACES))
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # altId -> schema
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    flow_objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_with: tuple[int, str] | None = None  # answer every platform create with this

    def writes(self) -> list[Recorded]:
        """Platform requests that change something (creates and patches)."""
        return [r for r in self.requests if r.method != "GET" and not r.path.startswith("/ims")]


def _filter(query: str) -> tuple[str, str] | None:
    """`property=name==X` / `property=title==X` -> (key, value)."""
    prop = parse_qs(query).get("property")
    if not prop:
        return None
    key, _, value = prop[0].partition("==")
    return key, value.strip('"')  # Flow Service quotes the value


class Handler(BaseHTTPRequestHandler):
    state: AepState

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = json.loads(raw) if raw else None
        state = self.state
        state.requests.append(
            Recorded(self.command, unquote(parts.path), parts.query, dict(self.headers), body)
        )
        if parts.path == "/ims/token/v3":
            return self._token(body)
        expected = {
            "Authorization": f"Bearer {TOKEN}",
            "x-api-key": state.client_id,
            "x-gw-ims-org-id": state.org_id,
            "x-sandbox-name": state.sandbox,
        }
        if any(self.headers.get(k) != v for k, v in expected.items()):
            return self._reply(401, {"title": "unauthorized"})
        if body is not None and self.headers.get("Content-Type") != "application/json":
            return self._reply(415, {"title": "Content-Type must be application/json"})
        if self.command != "GET" and state.fail_with:
            status, text = state.fail_with
            return self._reply(status, {"title": "rejected", "detail": text})
        return self._route(self.command, unquote(parts.path), parts.query, body)

    do_GET = do_POST = do_PATCH = do_PUT = _handle  # noqa: N815

    def _token(self, form: dict[str, str]) -> None:
        ok = form.get("grant_type") == "client_credentials" and form.get("client_id") == (
            self.state.client_id
        )
        if not ok or not form.get("client_secret") or not form.get("scope"):
            return self._reply(400, {"error": "invalid_client"})
        return self._reply(
            200, {"access_token": TOKEN, "token_type": "bearer", "expires_in": 86399}
        )

    def _route(self, method: str, path: str, query: str, body: Any) -> None:
        state = self.state
        if path == IDENTITY:
            if method == "GET":
                return self._reply(200, state.namespaces)
            if any(n["code"] == body["code"] for n in state.namespaces):
                return self._reply(409, {"title": "namespace code exists"})
            created = {
                **body,
                "id": 10_000 + len(state.namespaces),
                "custom": True,
                "status": "ACTIVE",
            }
            state.namespaces.append(created)
            return self._reply(200, created)
        if path.startswith(f"{SR}/tenant/schemas"):
            return self._schemas(method, path, query, body)
        if path == f"{SR}/tenant/descriptors":
            if method == "GET":
                return self._reply(200, {"xdm:descriptorIdentity": state.descriptors})
            if not any(s["$id"] == body["xdm:sourceSchema"] for s in state.schemas.values()):
                return self._reply(400, {"title": "unknown xdm:sourceSchema"})
            created = {**body, "@id": uuid.uuid4().hex, "meta:containerId": "tenant"}
            state.descriptors.append(created)
            return self._reply(201, created)
        if path == f"{CATALOG}/dataSets":
            return self._datasets(method, query, body)
        if path.startswith(FLOW + "/"):
            return self._flow(method, path.rsplit("/", 1)[1], query, body)
        return self._reply(404, {"title": f"no route {path}"})

    def _schemas(self, method: str, path: str, query: str, body: Any) -> None:
        state = self.state
        alt_id = path[len(f"{SR}/tenant/schemas") :].strip("/")
        if method == "GET" and not alt_id:
            key, value = _filter(query) or ("title", "")
            hits = [
                {k: s[k] for k in ("$id", "meta:altId", "version", "title")}
                for s in state.schemas.values()
                if s.get(key) == value
            ]
            return self._reply(200, {"results": hits, "_page": {"count": len(hits)}})
        if method == "GET":
            found = state.schemas.get(alt_id)
            return self._reply(200, found) if found else self._reply(404, {"title": "no schema"})
        if method == "POST":
            if any(s["title"] == body["title"] for s in state.schemas.values()):
                return self._reply(409, {"title": "schema title exists"})
            key = uuid.uuid4().hex
            created = {
                **body,
                "$id": f"https://ns.adobe.com/tenant/schemas/{key}",
                "meta:altId": f"_tenant.schemas.{key}",
                "meta:class": body["allOf"][0]["$ref"],
                "version": "1.0",
                "meta:resourceType": "schemas",
            }
            state.schemas[created["meta:altId"]] = created
            return self._reply(201, created)
        if method == "PATCH" and alt_id in state.schemas:
            for op in body:
                state.schemas[alt_id][op["path"].lstrip("/")] = op["value"]
            return self._reply(200, state.schemas[alt_id])
        return self._reply(400, {"title": "bad schema request"})

    def _datasets(self, method: str, query: str, body: Any) -> None:
        state = self.state
        if method == "GET":
            key, value = _filter(query) or ("name", "")
            return self._reply(
                200, {i: d for i, d in state.datasets.items() if d.get(key) == value}
            )
        schema_ids = {s["$id"] for s in state.schemas.values()}
        if body["schemaRef"]["id"] not in schema_ids:
            return self._reply(400, {"title": "unknown schemaRef.id"})
        if any(d["name"] == body["name"] for d in state.datasets.values()):
            return self._reply(409, {"title": "dataset name exists"})
        dataset_id = uuid.uuid4().hex[:24]
        state.datasets[dataset_id] = body
        return self._reply(201, [f"@/dataSets/{dataset_id}"])

    def _flow(self, method: str, collection: str, query: str, body: Any) -> None:
        state = self.state
        items = state.flow_objects.setdefault(collection, [])
        if method == "GET":
            key, value = _filter(query) or ("name", "")
            return self._reply(200, {"items": [i for i in items if i.get(key) == value]})
        known = {i["id"] for objects in state.flow_objects.values() for i in objects}
        cited = [
            body.get("baseConnectionId"),
            *body.get("sourceConnectionIds", []),
            *body.get("targetConnectionIds", []),
        ]
        if any(c and c not in known for c in cited):
            return self._reply(400, {"title": "unknown connection id"})
        dataset_id = (body.get("params") or {}).get("dataSetId")
        if dataset_id is not None and dataset_id not in state.datasets:
            return self._reply(400, {"title": "unknown dataSetId"})
        if any(i["name"] == body["name"] for i in items):
            return self._reply(409, {"title": "name exists"})
        created = {**body, "id": str(uuid.uuid4())}
        items.append(created)
        return self._reply(201, {"id": created["id"], "etag": '"1"'})


class FakeAep:
    """The server in a thread; `url` is its base for both IMS and the platform."""

    def __init__(self, state: AepState) -> None:
        handler = type("BoundHandler", (Handler,), {"state": state})
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAep:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
