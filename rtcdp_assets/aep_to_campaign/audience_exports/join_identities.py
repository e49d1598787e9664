"""How an AEP audience member finds its Campaign recipient: the join identities.

`audience_settings.join_identities` orders the identities a member may be joined by
(`external_id`, `email`, `phone`; default in that order). Each export is joined by the first
one whose column its header carries, and that choice is recorded with the export
(`export.json` `join_identity`, the assets' metadata). An export carrying none of them is
quarantined as `unknown_layout`, the detail naming the identities and columns looked for.

Columns are configured per destination (`external_id_column`, `email_column`,
`phone_column`) as XDM paths or CSV headers; both a path and its CSV form (dots become `_`,
docs/formats.md §a2) are recognised: `personalEmail.address` and `personalEmail_address`,
`mobilePhone.number` and `mobilePhone_number`.

Keys are compared normalised on both sides, AEP's and Campaign's:

- `external_id`: as exported (Campaign's customer key is case-sensitive);
- `email`: trimmed and lower-cased (Campaign's quarantine is case-sensitive and stores lower
  case, docs/formats.md §b2);
- `phone`: E.164. Spaces, dots, dashes and brackets are removed and a leading `00` becomes
  `+`; what is left must be `+` and 7 to 15 digits, the first not 0. A number without an
  international prefix (`06 12 34 56 78`) is not guessed into a country: on AEP's side the
  row is rejected as `invalid_phone`, on Campaign's side the recipient cannot be found by
  phone (and its members are quarantined `not_in_campaign`).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.shared.ingest import UnreadableFile

E164_RE = r"^\+[1-9][0-9]{6,14}$"
PHONE_SEPARATORS_RE = r"[\s\-.()]"

# Identity -> the segment_exports field holding it, and the Campaign `profiles` column.
JOIN_FIELDS = {"external_id": "external_id", "email": "email", "phone": "phone"}
CAMPAIGN_COLUMNS = {"external_id": "external_id", "email": "email", "phone": "mobile_phone"}


def column_forms(column: str) -> list[str]:
    """A configured column and its CSV form (dots → `_`), without repeats."""
    return list(dict.fromkeys([column, column.replace(".", "_")]))


def identity_columns(identity: str, options: AepDestinationOptions) -> list[str]:
    configured = {
        "external_id": options.external_id_column,
        "email": options.email_column,
        "phone": options.phone_column,
    }[identity]
    return column_forms(configured)


def choose_join_identity(
    header: Sequence[str], options: AepDestinationOptions, identities: Sequence[str]
) -> str:
    """The first of `identities` whose column is in `header`; else the file is unreadable."""
    present = set(header)
    for identity in identities:
        if present.intersection(identity_columns(identity, options)):
            return identity
    looked_for = "; ".join(
        f"{identity} ({' or '.join(identity_columns(identity, options))})"
        for identity in identities
    )
    raise UnreadableFile(
        "unknown_layout",
        f"the export carries none of the join identities {looked_for}; "
        f"its columns: {', '.join(header)}",
    )


def normalise_phone(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """(E.164 candidate, valid) per value; nulls stay null and are not valid."""
    text = pc.replace_substring_regex(values, PHONE_SEPARATORS_RE, "")
    text = pc.replace_substring_regex(text, r"^00", "+")
    valid = pc.fill_null(pc.match_substring_regex(text, E164_RE), False)
    return text, valid


def normalise_keys(identity: str, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Join keys as both sides compare them; a phone that is not E.164 becomes null."""
    if identity == "email":
        return pc.utf8_lower(pc.utf8_trim_whitespace(values))
    if identity == "phone":
        text, valid = normalise_phone(values)
        return pc.if_else(valid, text, pa.scalar(None, pa.string()))
    return values


def campaign_key_expression(identity: str) -> pc.Expression:
    """The Campaign recipients' join key, as an Arrow expression over `profiles` rows (the scan
    of 50 M profile rows computes it in its projection, without a copy of the column)."""
    field = pc.field(CAMPAIGN_COLUMNS[identity])
    if identity == "email":
        trimmed = pc.Expression._call("utf8_trim_whitespace", [field])
        return pc.Expression._call("utf8_lower", [trimmed])
    if identity == "phone":
        text = pc.Expression._call(
            "replace_substring_regex",
            [field],
            pc.ReplaceSubstringOptions(PHONE_SEPARATORS_RE, ""),
        )
        return pc.Expression._call(
            "replace_substring_regex", [text], pc.ReplaceSubstringOptions(r"^00", "+")
        )
    return field


def recorded_identity(record: Mapping[str, Any], audience_settings: AudienceSettings) -> str:
    """The join identity an export (export.json, or its entry in a membership or import
    index) was joined by. Exports recorded before the choice was recorded were joined by the
    one identity then configured, which the list now starts with."""
    return str(record.get("join_identity") or audience_settings.join_identities[0])
