"""Push subscription rows: app registrations of recipients (nms:appSubscriptionRcp)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_dev.sample_data.batches import _distinct_sample, _Plan, _References, _Source, _timestamps
from rtcdp_dev.sample_data.common import (
    POOL_SIZE,
    Column,
    int_strings,
    rng_for,
    ts_strings,
    weighted_choice,
    window_index,
)
from rtcdp_dev.sample_data.recipients import _CREATED_FIRST, _CREATED_LAST, recipient_pool

_SUBSCRIPTION_ID_BASE = 20_000_000
PUSH_APPS = ("com.example.shop", "com.example.loyalty")
_PUSH_APP_WEIGHTS = (0.7, 0.3)
_PUSH_PLATFORMS = (("apns", 0.55), ("fcm", 0.45))  # iOS / Android share of the devices
_PUSH_SHARE = 0.35  # recipients (with an external ID) who installed an app
_OPT_IN_SHARE = 0.9
_B64URL = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8
)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _random_text(rng: np.random.Generator, alphabet: np.ndarray, n: int, width: int) -> list[str]:
    codes = alphabet[rng.integers(0, alphabet.size, size=(n, width))]
    return [row.tobytes().decode() for row in codes]


def push_tokens_for(rng: np.random.Generator, platforms: Sequence[str]) -> list[str]:
    """Device tokens in each platform's real shape: APNs 64 hex characters; FCM an instance
    ID, a colon and an `APA91b…` registration part (163 characters)."""
    n = len(platforms)
    apns = _random_text(rng, _HEX, n, 64)
    instance = _random_text(rng, _B64URL, n, 22)
    body = _random_text(rng, _B64URL, n, 134)
    return [
        apns[i] if p != "fcm" else f"{instance[i]}:APA91b{body[i]}" for i, p in enumerate(platforms)
    ]


@dataclass(frozen=True)
class PushDevices:
    """The app installations of one seed: who, which app, which platform, which token."""

    who: np.ndarray  # pool indices of the subscribers, increasing
    apps: list[str]
    platforms: list[str]  # apns / fcm
    tokens: list[str]
    registered: np.ndarray  # epoch s of the registration


@lru_cache(maxsize=8)
def push_devices(seed: int, size: int = POOL_SIZE) -> PushDevices:
    """One device per subscriber, the same in every file of the seed. Only recipients with an
    external ID subscribe: the subscriber key is that ID, the profile's AEP identity."""
    pool = recipient_pool(seed, size)
    rng = rng_for(seed, "push-devices")
    has_key = np.asarray(pc.not_equal(pool.external_ids, "").to_numpy(zero_copy_only=False))
    who = np.flatnonzero(has_key & (rng.random(size) < _PUSH_SHARE))
    return _devices_of(rng, who)


@lru_cache(maxsize=2)
def further_push_devices(seed: int, size: int, round_number: int) -> PushDevices:
    """Round r >= 1: one more device per subscriber of `push_devices(seed, size)` (another
    phone, a tablet, the other app), the same in every file of the seed. Only exports with
    more rows than subscribers reach them: other datasets know the first devices alone."""
    if round_number < 1:
        raise ValueError("round 0 is push_devices")
    who = push_devices(seed, size).who
    return _devices_of(rng_for(seed, "push-devices", round_number), who)


def _devices_of(rng: np.random.Generator, who: np.ndarray) -> PushDevices:
    n = who.size
    apps = [PUSH_APPS[i] for i in weighted_choice(rng, n, _PUSH_APP_WEIGHTS)]
    platforms = [
        _PUSH_PLATFORMS[i][0] for i in weighted_choice(rng, n, [w for _, w in _PUSH_PLATFORMS])
    ]
    tokens = push_tokens_for(rng, platforms)
    registered = rng.integers(_CREATED_FIRST, _CREATED_LAST, n, dtype=np.int64)
    return PushDevices(who, apps, platforms, tokens, registered)


def _push_platform_codes() -> dict[str, str]:
    """apns / fcm -> the platform value the export writes (PipelineSettings defaults)."""
    by_label: dict[str, str] = {}
    for code, label in PipelineSettings().push_platform_codes.items():
        by_label.setdefault(label, code)
    return by_label


def _push_subscriptions_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    pool = plan.pool
    devices = push_devices(plan.seed, pool.size)
    subscribers = devices.who.size
    platform_code = _push_platform_codes()
    # One row per subscription and file, the changed ones: row p is device chosen[p] of round
    # p // subscribers (round 0: push_devices; then one more device per subscriber a round),
    # so a subscription never comes twice, at any row count, and the XDM `_id` (subscription
    # ID and last change) never repeats.
    chosen = _distinct_sample(
        rng_for(plan.seed, "push-subscriptions", window_index(plan.window)), rows, subscribers
    )
    opt_in = pa.array(["0", "1"])

    def round_columns(round_number: int, device: np.ndarray) -> dict[str, Column]:
        of_round = (
            devices
            if round_number == 0
            else further_push_devices(plan.seed, pool.size, round_number)
        )
        dev = pa.array(device)
        who = of_round.who[device]
        who_arr = pa.array(who)
        return {
            # Round r's IDs follow round r - 1's: pool indices are < pool.size.
            "subscription_id": int_strings(_SUBSCRIPTION_ID_BASE + round_number * pool.size + who),
            "subscriber_key": pool.external_ids.take(who_arr),
            "recipient_id": pool.recipient_ids.take(who_arr),
            "app_id": pa.array(of_round.apps).take(dev),
            "platform": pa.array([platform_code[p] for p in of_round.platforms]).take(dev),
            "token": pa.array(of_round.tokens).take(dev),
            "registered": of_round.registered[device],
        }

    def columns(rng: np.random.Generator, r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        # Rounds are consecutive stretches of rows: one set of columns per stretch.
        first_round, last_round = r0 // subscribers, (r0 + n - 1) // subscribers
        parts = [
            round_columns(
                k,
                chosen[max(r0, k * subscribers) : min(r0 + n, (k + 1) * subscribers)],
            )
            for k in range(first_round, last_round + 1)
        ]
        modified = _timestamps(rng, n, lo, hi)
        joined: dict[str, Column] = {
            name: (
                np.concatenate([p[name] for p in parts])
                if name == "registered"
                else pa.concat_arrays([p[name] for p in parts])
            )
            for name in parts[0]
        }
        registered = joined.pop("registered")
        return {
            **joined,
            "registration_date": ts_strings(np.minimum(registered, modified)),
            "last_modified": ts_strings(modified),
            "opted_in": opt_in.take(pa.array((rng.random(n) < _OPT_IN_SHARE).astype(np.int64))),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)
