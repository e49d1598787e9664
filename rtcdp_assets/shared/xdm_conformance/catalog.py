"""The XDM schema catalog: component ids, the vendored tree and its closure.

The ids are the real ``$id`` values of the adobe/xdm tree (file paths in comments).
``VENDORED_ROOTS`` is the one list ``scripts/vendor_xdm.py`` copies the closure of into
``rtcdp_assets/shared/xdm_schemas/``; ``RTCDP_XDM_ROOT`` points the validator at another copy.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

# components/classes/experienceevent.schema.json
EXPERIENCE_EVENT: Final = "https://ns.adobe.com/xdm/context/experienceevent"
# components/classes/profile.schema.json
PROFILE: Final = "https://ns.adobe.com/xdm/context/profile"
# components/fieldgroups/experience-event/experienceevent-directmarketing.schema.json
FG_DIRECT_MARKETING: Final = "https://ns.adobe.com/xdm/context/experienceevent-directmarketing"
# extensions/adobe/experience/campaign/experienceevent-campaign-delivery-log.schema.json
FG_CAMPAIGN_DELIVERY_LOG: Final = (
    "https://ns.adobe.com/experience/campaign/experienceevent-campaign-delivery-log"
)
# extensions/adobe/experience/campaign/experienceevent-campaign-tracking-log.schema.json
FG_CAMPAIGN_TRACKING_LOG: Final = (
    "https://ns.adobe.com/experience/campaign/experienceevent-campaign-tracking-log"
)
# components/fieldgroups/profile/profile-person-details.schema.json ("Demographic Details":
# person.name, birth date, gender)
FG_PROFILE_PERSON_DETAILS: Final = "https://ns.adobe.com/xdm/context/profile-person-details"
# components/fieldgroups/profile/profile-personal-details.schema.json ("Personal Contact
# Details": personalEmail, mobilePhone, homeAddress, ...)
FG_PROFILE_PERSONAL_DETAILS: Final = "https://ns.adobe.com/xdm/context/profile-personal-details"
# components/fieldgroups/profile/profile-push-details.schema.json (pushNotificationTokens;
# deprecated upstream in favour of the next one, kept for datasets still built on it)
FG_PROFILE_PUSH_DETAILS: Final = "https://ns.adobe.com/xdm/context/profile-push-details"
# components/fieldgroups/profile/profile-push-notification-details.schema.json
FG_PROFILE_PUSH_NOTIFICATION_DETAILS: Final = (
    "https://ns.adobe.com/xdm/context/profile-push-notification-details"
)
# components/fieldgroups/profile/profile-consents.schema.json ("Consent and Preference Details",
# built on components/datatypes/consent/consent-preferences.schema.json)
FG_PROFILE_CONSENTS: Final = "https://ns.adobe.com/xdm/mixins/profile-consents"
# components/fieldgroups/experience-event/experienceevent-commerce.schema.json ("Commerce
# Details": commerce.order, commerce.purchases, productListItems)
FG_COMMERCE: Final = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
# components/fieldgroups/profile/profile-loyalty-details.schema.json ("Loyalty Details")
FG_PROFILE_LOYALTY: Final = "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details"
# components/fieldgroups/shared/identitymap.schema.json
FG_IDENTITY_MAP: Final = "https://ns.adobe.com/xdm/context/identitymap"
# components/fieldgroups/shared/segmentation.schema.json ("Segment Membership Details")
FG_PROFILE_SEGMENTATION: Final = "https://ns.adobe.com/xdm/context/profile-segmentation"

# The single list the vendoring script copies the closure of; keep code and files in step.
VENDORED_ROOTS: Final[tuple[str, ...]] = (
    EXPERIENCE_EVENT,
    PROFILE,
    FG_DIRECT_MARKETING,
    FG_CAMPAIGN_DELIVERY_LOG,
    FG_CAMPAIGN_TRACKING_LOG,
    FG_PROFILE_PERSON_DETAILS,
    FG_PROFILE_PERSONAL_DETAILS,
    FG_PROFILE_PUSH_DETAILS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    FG_PROFILE_CONSENTS,
    FG_IDENTITY_MAP,
    FG_PROFILE_SEGMENTATION,
    FG_COMMERCE,
    FG_PROFILE_LOYALTY,
)

ROOT_ENV_VAR: Final = "RTCDP_XDM_ROOT"
VENDORED_ROOT: Final = Path(__file__).resolve().parents[1] / "xdm_schemas"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    if root is None:
        root = os.environ.get(ROOT_ENV_VAR) or VENDORED_ROOT
    return Path(root).resolve()


@functools.lru_cache(maxsize=8)
def schema_index(root: Path) -> dict[str, Path]:
    """$id -> file of every ``*.schema.json`` under ``root``."""
    index: dict[str, Path] = {}
    for path in sorted(root.rglob("*.schema.json")):
        schema_id = json.loads(path.read_text(encoding="utf-8")).get("$id")
        if schema_id in index:
            raise ValueError(f"duplicate $id {schema_id}: {index[schema_id]} and {path}")
        if schema_id:
            index[schema_id] = path
    if not index:
        raise FileNotFoundError(f"no *.schema.json under {root}")
    return index


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key == "meta:extends" and isinstance(value, list):
                yield from value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def schema_closure(root: Path, schema_ids: Iterable[str]) -> dict[str, Path]:
    """The files ``schema_ids`` need: every ``$ref`` and ``meta:extends``, transitively."""
    index = schema_index(root)
    closure: dict[str, Path] = {}
    pending = list(schema_ids)
    while pending:
        schema_id = pending.pop().split("#", 1)[0]
        if not schema_id or schema_id in closure:
            continue  # "" is a same-document "#/definitions/..." reference
        if schema_id not in index:
            raise KeyError(
                f"{schema_id} is not under {root}; add it to VENDORED_ROOTS and run "
                "scripts/vendor_xdm.py, or point RTCDP_XDM_ROOT at the full XDM tree"
            )
        closure[schema_id] = index[schema_id]
        document = json.loads(index[schema_id].read_text(encoding="utf-8"))
        pending.extend(_references(document))
    return closure
