"""Non-deliverables rows: quarantine entries (nms:address) changed in the window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from resources.settings import PipelineSettings
from rtcdp_dev.sample_data.batches import _Plan, _References, _Source, _timestamps, _uniform_ints
from rtcdp_dev.sample_data.common import Column, int_strings, ts_strings, weighted_choice
from rtcdp_dev.sample_data.recipients import RecipientDetails, recipient_details

_DAY = 86_400
_ADDRESS_ID_BASE = 10_000_000
_ADDRESS_CHANNELS = (("email", 0.86), ("sms", 0.14))
_ADDRESS_STATUSES = (
    ("quarantine", 0.44),
    ("with_errors", 0.34),
    ("denylisted", 0.08),
    ("valid", 0.14),
)
# How long before the exported change the last error happened, per status: just now for a
# new error; for `valid`, the release 10 days after a soft error or 30 after "mailbox full" (§b5).
_LAST_ERROR_AGE = {
    "quarantine": (0, 900),
    "with_errors": (0, 900),
    "denylisted": (0, 900),
    "valid": (10 * _DAY, 40 * _DAY),
}


@dataclass(frozen=True)
class _AddressEntry:
    channel: str
    status: str
    reason: str  # failureReason (§b3), consistent with the status: hard, soft, denylisted
    text: str  # as the MTA or SMS provider wrote it (no commas: values are not quoted)
    errors: tuple[int, int]  # iErrorCount range
    history: tuple[int, int]  # seconds from the first error (creation) to the last one
    weight: float  # share within its channel and status


_ADDRESS_ENTRIES: tuple[_AddressEntry, ...] = tuple(
    _AddressEntry(channel, status, reason, text, errors, (days[0] * _DAY, days[1] * _DAY), w)
    for channel, status, reason, text, errors, days, w in (
        # Hard bounces quarantine at once ...
        ("email", "quarantine", "1", "550 5.1.1 User unknown", (1, 1), (0, 0), 0.45),
        ("email", "quarantine", "4", "550 5.2.1 Mailbox disabled", (1, 1), (0, 0), 0.12),
        ("email", "quarantine", "20", "554 5.7.1 Message rejected", (1, 1), (0, 0), 0.05),
        # ... soft errors after the 5th try (§b3), which are retried until then.
        ("email", "quarantine", "5", "552 5.2.2 Mailbox full", (5, 6), (1, 9), 0.2),
        ("email", "quarantine", "3", "421 4.4.2 Connection timed out", (5, 6), (1, 9), 0.1),
        ("email", "quarantine", "2", "Invalid domain: no MX record", (5, 6), (1, 9), 0.08),
        ("email", "with_errors", "5", "452 4.2.2 Mailbox full", (1, 4), (0, 9), 0.45),
        ("email", "with_errors", "3", "421 4.4.2 Connection timed out", (1, 4), (0, 9), 0.3),
        ("email", "with_errors", "2", "Invalid domain: DNS lookup failed", (1, 4), (0, 9), 0.15),
        ("email", "with_errors", "20", "451 4.7.1 Greylisted - retry later", (1, 4), (0, 9), 0.1),
        # Spam complaints (feedback loop) set Denylisted on the address (§b5).
        ("email", "denylisted", "8", "Spam complaint (feedback loop)", (1, 1), (0, 0), 0.85),
        ("email", "denylisted", "20", "554 5.7.1 Refused as spam", (1, 1), (0, 0), 0.15),
        # Released: valid again, the counter cleared, the last error kept.
        ("email", "valid", "5", "552 5.2.2 Mailbox full", (0, 0), (0, 20), 0.6),
        ("email", "valid", "3", "421 4.4.2 Connection timed out", (0, 0), (0, 9), 0.4),
        ("sms", "quarantine", "1", "Unknown subscriber", (1, 1), (0, 0), 1.0),
        ("sms", "with_errors", "3", "Absent subscriber", (1, 4), (0, 9), 1.0),
        ("sms", "denylisted", "8", "STOP received", (0, 0), (0, 0), 1.0),  # SMS STOP (§b5)
        ("sms", "valid", "3", "Absent subscriber", (0, 0), (0, 9), 1.0),
    )
)


def _codes_by_label(codes: Mapping[str, str]) -> dict[str, str]:
    return {label: code for code, label in codes.items()}


def _non_deliverables_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    settings = PipelineSettings()
    status_code = _codes_by_label(settings.address_status_codes)
    channel_code = _codes_by_label(settings.address_channel_codes)
    channels = [c for c, _ in _ADDRESS_CHANNELS]
    statuses = [s for s, _ in _ADDRESS_STATUSES]
    entries = _ADDRESS_ENTRIES
    # Entry indices (and weights) per (channel, status) group, group = channel * 4 + status.
    groups = [
        [i for i, e in enumerate(entries) if (e.channel, e.status) == (c, s)]
        for c in channels
        for s in statuses
    ]
    assert all(groups), "every channel and status needs an entry"
    reasons = pa.array([e.reason for e in entries])
    texts = pa.array([e.text for e in entries])
    errors_lo = np.array([e.errors[0] for e in entries], dtype=np.int64)
    errors_hi = np.array([e.errors[1] for e in entries], dtype=np.int64)
    history_lo = np.array([e.history[0] for e in entries], dtype=np.int64)
    history_hi = np.array([e.history[1] for e in entries], dtype=np.int64)
    age_lo = np.array([_LAST_ERROR_AGE[s][0] for s in statuses], dtype=np.int64)
    age_hi = np.array([_LAST_ERROR_AGE[s][1] for s in statuses], dtype=np.int64)
    channel_vocab = pa.array([channel_code[c] for c in channels])
    status_vocab = pa.array([status_code[s] for s in statuses])
    pool = plan.pool
    details = recipient_details(plan.seed, pool.size)
    # Emails first, then mobile numbers: index who + size * channel.
    addresses = pa.concat_arrays([pool.emails, details.mobile_phones])
    # Keys (second, address) of the rows so far in the last batch's last second: with more
    # rows than seconds in a batch, the next batch's first second can be that one.
    carried: list[np.ndarray] = [np.empty(0, np.int64)]

    def columns(rng: np.random.Generator, _r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        modified = _timestamps(rng, n, lo, hi)
        channel = weighted_choice(rng, n, [w for _, w in _ADDRESS_CHANNELS])
        # Quarantine is per address (§b5): emails of anyone, numbers of people who have one.
        anyone = rng.integers(0, pool.size, size=n)
        mobile = details.with_mobile[rng.integers(0, details.with_mobile.size, size=n)]
        who = np.where(channel == 1, mobile, anyone)
        status = weighted_choice(rng, n, [w for _, w in _ADDRESS_STATUSES])
        entry = np.zeros(n, dtype=np.int64)
        group = channel * len(statuses) + status
        for g, members in enumerate(groups):
            rows_g = np.flatnonzero(group == g)
            pick = weighted_choice(rng, rows_g.size, [entries[i].weight for i in members])
            entry[rows_g] = np.asarray(members, dtype=np.int64)[pick]
        error_count = _uniform_ints(rng, errors_lo[entry], errors_hi[entry])
        last_error = modified - _uniform_ints(rng, age_lo[status], age_hi[status])
        # One error: the entry was created by it; more: by the first of them.
        first_error = _uniform_ints(rng, history_lo[entry], history_hi[entry])
        created = last_error - np.where(error_count == 1, 0, first_error)
        # Last of the draws, so that a batch without a repeat keeps the values it always had.
        who = _distinct_addresses(rng, who, channel, modified, carried, pool.size, details)
        take = pa.array(entry)
        return {
            "address_id": int_strings(_ADDRESS_ID_BASE + who * len(channels) + channel),
            "address": addresses.take(pa.array(who + pool.size * channel)),
            "channel": channel_vocab.take(pa.array(channel)),
            "status": status_vocab.take(pa.array(status)),
            "failure_reason": reasons.take(take),
            "error_count": int_strings(error_count),
            "error_text": texts.take(take),
            "last_error": ts_strings(last_error),
            "created": ts_strings(created),
            "last_modified": ts_strings(modified),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)


def _distinct_addresses(
    rng: np.random.Generator,
    who: np.ndarray,
    channel: np.ndarray,
    modified: np.ndarray,
    carried: list[np.ndarray],
    size: int,
    details: RecipientDetails,
) -> np.ndarray:
    """`who`, with each row that repeats an earlier row's address (`address_id`) in the same
    second given another person of its channel: the XDM `_id` is built from `address_id` and
    `last_modified` (non_deliverables_to_xdm), so such a row would repeat an `_id`. Rows are
    redrawn only where a repeat exists. `carried[0]` holds the keys of the earlier rows in
    the previous batch's last second; it becomes those of this batch's last second."""
    channels = len(_ADDRESS_CHANNELS)
    stride = size * channels  # key = second * stride + address index (who * 2 + channel)
    capacity = np.array([size, details.with_mobile.size], dtype=np.int64)
    earlier = carried[0]
    keys = modified * stride + who * channels + channel
    # A second holds each address once at most: refuse what cannot be made unique.
    per_second = np.concatenate(
        [earlier // stride * channels + earlier % channels, modified * channels + channel]
    )
    slots, counts = np.unique(per_second, return_counts=True)
    if (counts > capacity[slots % channels]).any():
        raise ValueError(
            "more non_deliverables rows in one second than addresses of their channel: "
            "ask for fewer rows or a longer window"
        )
    who = who.copy()
    while True:
        _, first = np.unique(np.concatenate([earlier, keys]), return_index=True)
        repeated = np.ones(earlier.size + keys.size, dtype=bool)
        repeated[first] = False
        again = np.flatnonzero(repeated[earlier.size :])
        if not again.size:
            break
        anyone = rng.integers(0, size, size=again.size)
        mobile = details.with_mobile[rng.integers(0, details.with_mobile.size, size=again.size)]
        who[again] = np.where(channel[again] == 1, mobile, anyone)
        keys[again] = modified[again] * stride + who[again] * channels + channel[again]
    if modified.size:
        # Dates rise through the file, and a later batch starts at this one's last second
        # at the earliest: earlier batches can have filled that second too.
        last = modified[-1] * stride
        carried[0] = np.concatenate([earlier[earlier >= last], keys[keys >= last]])
    return who
