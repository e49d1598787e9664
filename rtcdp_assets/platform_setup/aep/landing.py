"""Which landing container the dataflows read: from the landing zone resource, else from the
variables that configure it (`AEP_LANDING_ZONE`, `AEP_LANDING_CONTAINER` / `_BUCKET`,
`AEP_LANDING_PREFIX`, as `resources.zone_for_role` reads them)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from resources.drop_zones import DropZone
from rtcdp_assets.platform_setup.aep.blueprint import LandingSource

DEFAULT_CONTAINER = "aep-landing"  # .env.example's AEP_LANDING_CONTAINER


def landing_from_env(env: Mapping[str, str] | None = None) -> LandingSource:
    env = os.environ if env is None else env
    if env.get("AEP_LANDING_ZONE", "").strip().lower() == "s3":
        bucket = env.get("AEP_LANDING_BUCKET", "")
        return LandingSource("s3", bucket, env.get("AEP_LANDING_PREFIX", ""))
    return LandingSource(
        "azure",
        env.get("AEP_LANDING_CONTAINER") or DEFAULT_CONTAINER,
        env.get("AEP_LANDING_PREFIX", ""),
    )


def landing_from_zone(zone: DropZone, env: Mapping[str, str] | None = None) -> LandingSource:
    """The zone's own container or bucket; a local folder (embedded) has none, so the
    variables (or the default container name) stand in."""
    bucket = getattr(zone, "bucket", None)
    if isinstance(bucket, str) and bucket:
        return LandingSource("s3", bucket, str(getattr(zone, "prefix", "") or ""))
    container = getattr(zone, "container", None)
    if isinstance(container, str) and container:
        return LandingSource("azure", container, str(getattr(zone, "prefix", "") or ""))
    return landing_from_env(env)
