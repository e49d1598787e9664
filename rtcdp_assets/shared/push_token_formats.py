"""Mobile push device tokens: formats, identities and the XDM `pushNotificationDetails` item.

Shared by the three places tokens come from: Campaign's app-subscription export
(`push_subscriptions`), Campaign's quarantine list on the push channels (`non_deliverables`)
and the AEP dataset export of the Experience Platform Mobile SDK registrations
(`aep_push_tokens`), so that one token compares equal wherever it was seen.

Token formats (the patterns are `PipelineSettings` fields, so a deployment can tighten them):
- APNs (`apns`, `apnsSandbox`): 32 bytes written as 64 hexadecimal characters. Hex case carries
  no meaning, so APNs tokens are compared and published in lower case.
- FCM (`fcm`): no published format; a permissive pattern (optional instance ID and colon, then
  at least 100 URL-safe base64 characters) catches truncated, spaced or placeholder values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_assets.shared import xdm

PLATFORMS = frozenset({"apns", "apnsSandbox", "fcm"})
APNS_PLATFORMS = frozenset({"apns", "apnsSandbox"})
INVALID_PUSH_TOKEN = "invalid_push_token"  # noqa: S105 - a reject reason, not a secret


def _is_apns(platform: pa.Array) -> pa.Array:
    return pc.fill_null(pc.is_in(platform, value_set=pa.array(sorted(APNS_PLATFORMS))), False)


def normalized(token: pa.Array, platform: pa.Array) -> pa.Array:
    """The token as it is compared and published: APNs lower-cased, FCM unchanged."""
    token = pc.utf8_trim_whitespace(pc.cast(token, pa.string()))
    return pc.if_else(_is_apns(platform), pc.utf8_lower(token), token)


def invalid_tokens(token: pa.Array, platform: pa.Array, settings: PipelineSettings) -> pa.Array:
    """True where a token does not match its platform's format. Rows whose platform is not
    a push platform are not judged here (they fail on their platform instead)."""
    if isinstance(token, pa.ChunkedArray):
        token = token.combine_chunks()
    if isinstance(platform, pa.ChunkedArray):
        platform = platform.combine_chunks()
    token = pc.fill_null(pc.cast(token, pa.string()), "")
    bad = pa.array(np.zeros(len(token), dtype=bool))
    is_fcm = pc.fill_null(pc.equal(platform, "fcm"), False)
    # Each pattern runs only over its own platform's tokens: a regex pass is most of the cost.
    for rows, pattern in (
        (_is_apns(platform), settings.apns_token_pattern),
        (is_fcm, settings.fcm_token_pattern),
    ):
        mine = pc.filter(token, rows)
        if len(mine):
            failed = pc.invert(pc.match_substring_regex(mine, pattern))
            bad = pc.replace_with_mask(bad, rows, failed)
    return bad


def token_identities(
    token: pa.Array, platform: pa.Array, namespaces: Mapping[str, str], *, primary: bool = False
) -> dict[str, pa.Array]:
    """identityMap entries of the tokens: one namespace per platform (two platforms may share
    one). Not primary where the record has a person's identity (the token identifies a
    device, the subscriber the person); primary where the token is the record's only identity
    (a quarantined token in non_deliverables)."""
    values: dict[str, pa.Array] = {}
    for name in sorted(PLATFORMS):
        code = namespaces.get(name)
        if not code:
            continue
        mine = pc.fill_null(pc.equal(platform, name), False)
        item = pc.if_else(mine, token, pa.scalar(None, pa.string()))
        values[code] = item if code not in values else pc.coalesce(values[code], item)
    return {code: xdm.identities(v, primary=primary) for code, v in values.items()}


def identity(namespace: str | pa.Array, xid: pa.Array) -> pa.StructArray:
    """XDM `identity` data type ({namespace: {code}, xid}); null where xid is null."""
    n = len(xid)
    code = xdm.constant(namespace, n, pa.string()) if isinstance(namespace, str) else namespace
    return xdm.struct({"namespace": xdm.struct({"code": code}), "xid": xid}, mask=pc.is_null(xid))


def push_details(
    *,
    app_id: pa.Array,
    token: pa.Array,
    platform: pa.Array,
    denylisted: pa.Array,
    identity_of_token: pa.Array | None = None,
) -> pa.Array:
    """`pushNotificationDetails`: a one-item list per row, null where the row has no token."""
    n = len(token)
    fields: dict[str, pa.Array] = {
        "appID": app_id,
        "token": token,
        "platform": platform,
        "denylisted": denylisted,
    }
    if identity_of_token is not None:
        fields["identity"] = identity_of_token
    items = xdm.struct(fields)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, items, mask=pc.is_null(token))
