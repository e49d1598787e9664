"""broadLog rows, and the replay of its draws that other datasets refer to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_dev.sample_data.batches import (
    _FAILURE_TYPE_WEIGHTS,
    _FAILURE_TYPES,
    _REASONS_BY_TYPE,
    _STATUS_CODES,
    _STATUS_WEIGHTS,
    _check_sizes,
    _defects_rng,
    _first_id,
    _Plan,
    _plan,
    _References,
    _slices,
    _Source,
)
from rtcdp_dev.sample_data.common import (
    DEFAULT_BATCH_ROWS,
    Column,
    increasing_ids,
    int_strings,
    rng_for,
    ts_strings,
    weighted_choice,
    window_index,
)
from rtcdp_dev.sample_data.defects import _defect_rows
from rtcdp_dev.sample_data.push_subscriptions_rows import push_devices
from rtcdp_dev.sample_data.recipients import recipient_details

# Channels of the messages (docs/formats.md §b7): most go by email, then SMS to recipients with
# a mobile number, then push to recipients with an app installed.
CHANNELS = ("email", "sms", "push")
_CHANNEL_WEIGHTS = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class _BroadlogDraws:
    """One batch of broadLog rows as numbers, before any text is built: other datasets
    replay these draws to know which messages exist without building the file."""

    ids: np.ndarray
    event: np.ndarray  # tsEvent, epoch s, sorted
    contact: np.ndarray
    modified: np.ndarray
    who: np.ndarray  # pool index
    mixed_case: np.ndarray
    which: np.ndarray  # index into plan.deliveries
    status: np.ndarray  # index into _STATUS_CODES
    ftype_idx: np.ndarray  # 0 = undefined, else 1 + index into _FAILURE_TYPES
    reason_idx: np.ndarray  # index into reason_vocab
    reason_vocab: list[str]
    channel: np.ndarray  # index into CHANNELS
    device: np.ndarray  # push rows: index into push_devices(seed); -1 elsewhere


def _broadlog_draws(
    plan: _Plan, rng: np.random.Generator, n: int, t_lo: int, t_hi: int, id_start: int
) -> _BroadlogDraws:
    """n rows with ids after `id_start` and tsEvent in [t_lo, t_hi). The order of the draws
    is part of the byte-for-byte promise: append new draws, never insert."""
    ids = increasing_ids(rng, id_start, n)
    # Sorted so that ids and event times rise together, as in a table filled by a sequence.
    event = np.sort(rng.integers(t_lo, t_hi, size=n, dtype=np.int64))
    contact = event - rng.integers(0, 900, size=n)  # the delivery started a little earlier
    touched_later = rng.random(n) < 0.3  # e.g. a bounce or MTA feedback updated the log
    modified = np.minimum(event + touched_later * rng.integers(1, 3600, size=n), plan.now_s)
    who = rng.integers(0, plan.pool.size, size=n)
    mixed_case = rng.random(n) < 0.03
    which = weighted_choice(rng, n, [d.weight for d in plan.deliveries])

    status = weighted_choice(rng, n, _STATUS_WEIGHTS)
    failed = np.flatnonzero(status == _STATUS_CODES.index("2"))
    ftype = weighted_choice(rng, failed.size, _FAILURE_TYPE_WEIGHTS)
    ftype_idx = np.zeros(n, dtype=np.int64)
    ftype_idx[failed] = ftype + 1
    reason_vocab = ["0"]
    reason_idx = np.zeros(n, dtype=np.int64)
    for t, name in enumerate(_FAILURE_TYPES):
        rows = failed[ftype == t]
        codes, weights = zip(*_REASONS_BY_TYPE[name], strict=True)
        reason_idx[rows] = len(reason_vocab) + weighted_choice(rng, rows.size, weights)
        reason_vocab.extend(codes)
    # Drawn last, so every draw above stays what it was before channels existed. An SMS goes
    # to someone with a mobile number, a push to someone with a device: those rows change
    # recipient.
    channel = weighted_choice(rng, n, _CHANNEL_WEIGHTS)
    mobiles = recipient_details(plan.seed, plan.pool.size).with_mobile
    devices = push_devices(plan.seed, plan.pool.size)
    sms_who = mobiles[rng.integers(0, mobiles.size, size=n)]
    device = rng.integers(0, devices.who.size, size=n)
    who = np.where(channel == 1, sms_who, np.where(channel == 2, devices.who[device], who))
    return _BroadlogDraws(
        ids=ids,
        event=event,
        contact=contact,
        modified=modified,
        who=who,
        mixed_case=mixed_case,
        which=which,
        status=status,
        ftype_idx=ftype_idx,
        reason_idx=reason_idx,
        reason_vocab=reason_vocab,
        channel=channel,
        device=np.where(channel == 2, device, -1),
    )


def channel_codes(plan: _Plan, d: _BroadlogDraws) -> np.ndarray:
    """The delivery messageType code of each row (the pipeline's default settings: 0 email,
    1 SMS, the push_ios / push_android codes by the device's platform)."""
    by_label = {label: code for code, label in PipelineSettings().address_channel_codes.items()}
    devices = push_devices(plan.seed, plan.pool.size)
    ios = np.array([p != "fcm" for p in devices.platforms], dtype=bool)
    is_ios = np.zeros(d.channel.size, dtype=bool)
    push = d.device >= 0
    is_ios[push] = ios[d.device[push]]
    codes = np.array(
        [by_label["email"], by_label["sms"], by_label["push_android"], by_label["push_ios"]]
    )
    return codes[np.where(push, 2 + is_ios, d.channel)]


def _addresses(plan: _Plan, d: _BroadlogDraws) -> pa.Array:
    """Email (some in mixed case), the mobile number in E.164, or the device token."""
    pool = plan.pool
    emails = pool.addresses(d.who, d.mixed_case)
    phones = recipient_details(plan.seed, pool.size).mobile_phones.take(pa.array(d.who))
    tokens = pa.array(push_devices(plan.seed, pool.size).tokens).take(
        pa.array(np.maximum(d.device, 0))
    )
    return pc.if_else(
        pa.array(d.channel == 1), phones, pc.if_else(pa.array(d.device >= 0), tokens, emails)
    )


def _broadlog_columns(plan: _Plan, d: _BroadlogDraws) -> dict[str, Column]:
    # Numbers are NOT NULL in Campaign (§b1): rows that did not fail carry 0 / 0.
    type_codes = [plan.failure_codes[t] for t in _FAILURE_TYPES]
    ftype_vocab = pa.array([plan.failure_codes["undefined"], *type_codes])
    d_ids = pa.array([str(x.delivery_id) for x in plan.deliveries])
    d_labels = pa.array([x.label for x in plan.deliveries])
    d_ops = pa.array([str(x.operation_id) for x in plan.deliveries])
    take = pa.array(d.which)
    who_arr = pa.array(d.who)
    pool = plan.pool
    return {
        "broadlog_id": int_strings(d.ids),
        "delivery_id": d_ids.take(take),
        "recipient_id": pool.recipient_ids.take(who_arr),
        "external_id": pool.external_ids.take(who_arr),
        "address": _addresses(plan, d),
        "status": pa.array(_STATUS_CODES).take(pa.array(d.status)),
        "failure_type": ftype_vocab.take(pa.array(d.ftype_idx)),
        "failure_reason": pa.array(d.reason_vocab).take(pa.array(d.reason_idx)),
        "event_date": ts_strings(d.event),
        "contact_date": ts_strings(d.contact),
        "last_modified": ts_strings(d.modified),
        "delivery_label": d_labels.take(take),
        "campaign_id": d_ops.take(take),
        "org_unit": pa.scalar(plan.org_unit),
        "channel": pa.array(channel_codes(plan, d)),
    }


def _broadlog_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    last_id = _first_id(plan.window)

    def columns(rng: np.random.Generator, _r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        nonlocal last_id
        draws = _broadlog_draws(plan, rng, n, lo, hi, last_id)
        last_id = int(draws.ids[-1])
        return _broadlog_columns(plan, draws)

    return _Source(columns, plan.t_lo, plan.t_hi)


@dataclass(frozen=True)
class _Sends:
    """broadLog rows a reaction may point to: sent, kept by the pipeline (no defect) and
    engaged: a share of the messages draws all the reactions, as in a real campaign where
    most recipients never open and openers open and click several times."""

    broadlog_ids: np.ndarray
    event: np.ndarray  # tsEvent, epoch s, non-decreasing
    who: np.ndarray  # pool index
    delivery_ids: np.ndarray
    channel_codes: np.ndarray  # the delivery's messageType code (int)

    @property
    def size(self) -> int:
        return int(self.event.size)

    @staticmethod
    def concat(parts: Sequence[_Sends]) -> _Sends:
        return _Sends(
            *(
                np.concatenate([getattr(p, name) for p in parts] or [np.empty(0, np.int64)])
                for name in ("broadlog_ids", "event", "who", "delivery_ids", "channel_codes")
            )
        )


@dataclass(frozen=True)
class _BroadlogFacts:
    recipients: np.ndarray  # sorted pool indices of everyone in the file, defective rows too
    sends: _Sends


_ENGAGED_SHARE = 0.3


@lru_cache(maxsize=8)
def _broadlog_facts(
    seed: int, window: datetime, rows: int, defect_rate: float, t_hi: int
) -> _BroadlogFacts:
    """What the broadLog file of `window` (as `generate_broadlog` / `write_dataset_files`
    make it, default batch size) holds, by replaying its draws without building any text.
    Cached: consecutive trackingLog windows look at the same broadLog windows."""
    # A `now` one second before t_hi gives the broadLog file's own t_hi.
    now = datetime.fromtimestamp(t_hi - 1, UTC)
    plan = _plan("broadlog", window, seed=seed, layout="classic", org_unit="-", now=now)
    _check_sizes(rows, defect_rate, DEFAULT_BATCH_ROWS)
    widx = window_index(window)
    delivery_ids = np.array([d.delivery_id for d in plan.deliveries], dtype=np.int64)
    sent = _STATUS_CODES.index("1")
    seen = np.zeros(plan.pool.size, dtype=bool)
    parts: list[_Sends] = []
    last_id = _first_id(window)
    for b, _r0, n, lo, hi in _slices(rows, DEFAULT_BATCH_ROWS, plan.t_lo, plan.t_hi):
        d = _broadlog_draws(plan, rng_for(seed, plan.dataset, widx, b), n, lo, hi, last_id)
        last_id = int(d.ids[-1])
        seen[d.who] = True
        engaged = rng_for(seed, "tracking-engaged", widx, b).random(n) < _ENGAGED_SHARE
        keep = (d.status == sent) & engaged
        keep[_defect_rows(_defects_rng(plan, b), n, defect_rate)] = False
        codes = channel_codes(plan, d).astype(np.int64)
        parts.append(
            _Sends(
                d.ids[keep], d.event[keep], d.who[keep], delivery_ids[d.which[keep]], codes[keep]
            )
        )
    return _BroadlogFacts(np.flatnonzero(seen), _Sends.concat(parts))


def _broadlog_reference(rows: int, defect_rate: float, refs: _References) -> tuple[int, float]:
    b_rows = rows if refs.broadlog_rows is None else refs.broadlog_rows
    b_rate = defect_rate if refs.broadlog_defect_rate is None else refs.broadlog_defect_rate
    return b_rows, b_rate
