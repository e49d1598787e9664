"""`apply`: send a plan's requests to AEP with OAuth server-to-server credentials.

Credentials come from the environment (`CREDENTIAL_VARIABLES`); the access token comes from
Adobe IMS (`POST <AEP_IMS_URL>/ims/token/v3`, grant `client_credentials`, docs/formats.md §i1).
Every call carries `Authorization: Bearer`, `x-api-key` (the client ID), `x-gw-ims-org-id` and
`x-sandbox-name`.

Idempotent: each object is looked up first (by title, name or code, `ApiRequest.lookup`); only
a missing one is created. The values later requests need (`$id`, `meta:altId`, dataset and
connection IDs) come from the object found or created, so a second run creates nothing and
sends the same references. Before any request, every variable the plan needs is checked: a
missing one stops the run with the list of names, nothing sent.

Secrets (client secret, landing credentials) and the token are never printed, logged or put in
an error: error texts are cut short and scrubbed of every secret value.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtcdp_assets.platform_setup.aep.api_requests import ApiRequest

CREDENTIAL_VARIABLES = (
    "AEP_CLIENT_ID",
    "AEP_CLIENT_SECRET",
    "AEP_ORG_ID",
    "AEP_SANDBOX_NAME",
    "AEP_SCOPES",
)
SECRET_VARIABLES = frozenset({"AEP_CLIENT_SECRET"})
DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com"
DEFAULT_PLATFORM_URL = "https://platform.adobe.io"
PLACEHOLDER = re.compile(r"\{\{([^{}]+)\}\}")
TIMEOUT_SECONDS = 60


class MissingCredentials(Exception):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            "missing environment variables for apply: "
            + ", ".join(names)
            + " (see .env.example, section AEP setup); nothing was sent"
        )
        self.names = tuple(names)


class AepApiError(Exception):
    pass


@dataclass
class Outcome:
    ref: str
    action: str  # "created" | "exists"


@dataclass
class Session:
    """What one apply run knows: the environment, the token, the objects found so far."""

    env: Mapping[str, str]
    now: Callable[[], float] = time.time
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)
    token: str = ""

    @property
    def secrets(self) -> list[str]:
        return [v for k, v in self.env.items() if v and (k in SECRET_VARIABLES or "_SOURCE_" in k)]

    def scrub(self, text: str) -> str:
        for secret in [*self.secrets, self.token]:
            if secret:
                text = text.replace(secret, "•••")
        return text[:300]


def env_needed(requests: Sequence[ApiRequest]) -> list[str]:
    """Every variable apply needs: the credentials and each `{{env:NAME}}` of the plan."""
    names = list(CREDENTIAL_VARIABLES)
    for request in requests:
        for match in PLACEHOLDER.finditer(json.dumps(request.body)):
            if match[1].startswith("env:"):
                names.append(match[1][4:])
    return list(dict.fromkeys(names))


def resolve(value: Any, session: Session) -> Any:
    """`value` with its placeholders filled (recursively through lists and dicts)."""
    if isinstance(value, dict):
        return {k: resolve(v, session) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, session) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name == "now":
            return str(int(session.now()))
        if name.startswith("env:"):
            return session.env[name[4:]]
        ref, _, key = name.partition(".")
        try:
            return str(session.refs[ref][key])
        except KeyError:
            raise AepApiError(f"{name}: no such value from an earlier request") from None

    return PLACEHOLDER.sub(fill, value)


def _call(
    session: Session,
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
) -> Any:
    # The URL is the configured AEP / IMS base (https in production, a local test server).
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        detail = session.scrub(error.read().decode("utf-8", "replace"))
        path = urllib.parse.urlsplit(url).path
        raise AepApiError(f"{method} {path}: HTTP {error.code}: {detail}") from None
    return json.loads(text) if text.strip() else None


def fetch_token(session: Session) -> None:
    env = session.env
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": env["AEP_CLIENT_ID"],
            "client_secret": env["AEP_CLIENT_SECRET"],
            "scope": env["AEP_SCOPES"],
        }
    ).encode()
    ims = env.get("AEP_IMS_URL") or DEFAULT_IMS_URL
    payload = _call(
        session,
        "POST",
        f"{ims.rstrip('/')}/ims/token/v3",
        form,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    session.token = payload["access_token"]


def _platform(
    session: Session, method: str, path: str, body: Any = None, accept: str = "application/json"
) -> Any:
    env = session.env
    headers = {
        "Authorization": f"Bearer {session.token}",
        "x-api-key": env["AEP_CLIENT_ID"],
        "x-gw-ims-org-id": env["AEP_ORG_ID"],
        "x-sandbox-name": env["AEP_SANDBOX_NAME"],
        "Accept": accept,
    }
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"  # JSON Patch too (docs/formats.md §i1)
        data = json.dumps(body).encode()
    base = (env.get("AEP_PLATFORM_URL") or DEFAULT_PLATFORM_URL).rstrip("/")
    return _call(session, method, f"{base}{path}", data, headers)


def _items(payload: Any) -> list[dict[str, Any]]:
    """The objects of a list response, whatever its documented shape: a JSON array (Identity),
    `results` (Schema Registry), `items` (Flow Service), `{id: object}` (Catalog) or
    `{descriptor type: [objects]}` (descriptors)."""
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, dict)]
    if not isinstance(payload, dict):
        return []
    for key in ("results", "items"):
        if isinstance(payload.get(key), list):
            return [p for p in payload[key] if isinstance(p, dict)]
    found: list[dict[str, Any]] = []
    for key, value in payload.items():
        if isinstance(value, dict):
            found.append({"id": key, **value})
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, dict))
    return found


def _find(session: Session, request: ApiRequest) -> dict[str, Any] | None:
    lookup = request.lookup
    payload = _platform(session, "GET", resolve(lookup.path, session), accept=lookup.accept)
    if request.kind == "schema_profile":  # one schema: found when already tagged
        tags = (payload or {}).get(lookup.key) or []
        return payload if lookup.value in tags else None
    also = resolve(lookup.also, session)
    for item in _items(payload):
        if item.get(lookup.key) == lookup.value and all(item.get(k) == v for k, v in also.items()):
            return item
    return None


def _created(request: ApiRequest, payload: Any) -> dict[str, Any]:
    if request.kind == "dataset":  # Catalog answers ["@/dataSets/<id>"]
        return {"id": str(payload[0]).rsplit("/", 1)[-1]}
    return payload if isinstance(payload, dict) else {}


def apply(
    requests: Sequence[ApiRequest],
    env: Mapping[str, str] | None = None,
    now: Callable[[], float] = time.time,
    report: Callable[[str], None] = lambda _line: None,
) -> list[Outcome]:
    """Send the plan: look up, create what is missing, remember the IDs."""
    env = dict(os.environ if env is None else env)
    missing = [name for name in env_needed(requests) if not env.get(name)]
    if missing:
        raise MissingCredentials(missing)
    session = Session(env=env, now=now)
    fetch_token(session)
    outcomes: list[Outcome] = []
    for request in requests:
        found = _find(session, request)
        if found is not None:
            outcome = Outcome(request.ref, "exists")
        else:
            created = _platform(
                session,
                request.method,
                resolve(request.path, session),
                resolve(request.body, session),
            )
            found = _created(request, created)
            outcome = Outcome(request.ref, "created")
        session.refs[request.ref] = found
        outcomes.append(outcome)
        report(f"{outcome.action:8} {request.ref}")
    return outcomes
