"""Delivery channels of broadLog and trackingLog rows: which channel, is the address valid for it,
and the address as XDM carries it (email lower-cased, phone numbers in E.164, push tokens as
`push_token_formats` compares them).

Where the channel comes from (docs/formats.md §b7): the delivery's `messageType`, which an
export workflow adds to each log row (`[delivery/@messageType]`: Classic column `iMessageType`;
Campaign Standard `messageType`, or `deliveryType` as in Adobe's privacy export of both logs).
Values are numeric codes (`PipelineSettings.address_channel_codes`: 0 email, 1 SMS, 2 phone,
3 direct mail, 4 fax, Standard 40 push; the Classic iOS / Android codes are UNCONFIRMED
settings) or Campaign Standard's enumeration names (`STANDARD_CHANNEL_NAMES`). An export without
the column, or a row with an empty value, takes the dataset's default channel (a setting).

Everything here is vectorised over Arrow arrays: no Python loop per row.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_assets.shared import push_token_formats, xdm
from rtcdp_assets.shared.ingest import _EMAIL_RE

EMAIL, SMS, PHONE, FAX, DIRECT_MAIL = "email", "sms", "phone", "fax", "direct_mail"
PUSH, PUSH_IOS, PUSH_ANDROID = "push", "push_ios", "push_android"
PHONE_CHANNELS = frozenset({SMS, PHONE, FAX})
PUSH_CHANNELS = frozenset({PUSH, PUSH_IOS, PUSH_ANDROID})
CHANNELS = frozenset({EMAIL, DIRECT_MAIL, *PHONE_CHANNELS, *PUSH_CHANNELS})
# Campaign Standard nms:delivery `messageType` enumeration names (docs/formats.md §b7);
# "other" (120) is deliberately absent: a row of an unknown channel is rejected, not guessed.
STANDARD_CHANNEL_NAMES = {
    "email": EMAIL,
    "sms": SMS,
    "phone": PHONE,
    "paper": DIRECT_MAIL,
    "fax": FAX,
    "pushNotification": PUSH,
}

UNKNOWN_CHANNEL = "unknown_channel"
INVALID_EMAIL = "invalid_email"
INVALID_PHONE_NUMBER = "invalid_phone_number"
INVALID_PUSH_TOKEN = push_token_formats.INVALID_PUSH_TOKEN
MISSING_REQUIRED_VALUE = "missing_required_value"

# E.164: '+', a country code that does not start with 0, at most 15 digits in all. Seven is
# the shortest complete number in use (small territories' 4-digit numbers after a 3-digit code).
_E164_RE = r"^\+[1-9][0-9]{6,14}$"
# What people and CRMs put between digits; removed before the number is judged.
_PHONE_SEPARATORS_RE = r"[ \t\-.()/]"
_NULL_TEXT = pa.scalar(None, pa.string())


def channel_codes(settings: PipelineSettings) -> dict[str, str]:
    """Every value a channel column may hold → channel label (codes win over names)."""
    codes = {code: label for code, label in settings.address_channel_codes.items()}
    return {**STANDARD_CHANNEL_NAMES, **{c: lb for c, lb in codes.items() if lb in CHANNELS}}


def channel_labels(raw: pa.Array, settings: PipelineSettings, default: str) -> pa.Array:
    """The channel label of each row: `default` where the value is missing (null or empty),
    null where it is a code no setting knows."""
    raw = _text(raw)
    trimmed = pc.utf8_trim_whitespace(raw)
    missing = pc.fill_null(pc.equal(pc.utf8_length(trimmed), 0), True)
    labels = xdm.lookup(trimmed, channel_codes(settings))
    return pc.if_else(missing, pa.scalar(default, pa.string()), labels)


def is_channel(labels: pa.Array, channels: frozenset[str] | str) -> pa.Array:
    """True where the row's channel is one of `channels` (false for unknown channels)."""
    wanted = sorted({channels} if isinstance(channels, str) else channels)
    return pc.fill_null(pc.is_in(labels, value_set=pa.array(wanted, pa.string())), False)


def e164(numbers: pa.Array, default_country_code: str = "") -> pa.Array:
    """Phone numbers in E.164 (`+33612345678`); null where the value cannot be one.

    Separators (blanks, dashes, dots, brackets, slashes) go; a `00` international prefix
    becomes `+`. A national number (neither `+` nor `00`) gets `+<default_country_code>` after
    its one leading trunk `0` is dropped; without a default country code it stays invalid.
    """
    text = pc.utf8_trim_whitespace(_text(numbers))
    compact = pc.replace_substring_regex(text, _PHONE_SEPARATORS_RE, "")
    compact = pc.replace_substring_regex(compact, r"^00", "+")
    if default_country_code:
        national = pc.invert(pc.fill_null(pc.starts_with(compact, "+"), True))
        local = pc.replace_substring_regex(compact, r"^0", "")
        prefixed = pc.binary_join_element_wise(f"+{default_country_code}", local, "")
        compact = pc.if_else(national, prefixed, compact)
    ok = pc.fill_null(pc.match_substring_regex(compact, _E164_RE), False)
    return pc.if_else(ok, compact, _NULL_TEXT)


def on_rows(rows: pa.Array, values: pa.Array, compute: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """`compute` applied to the `rows` (a boolean mask) of `values` only, null elsewhere.

    The phone and push passes are chains of regular expressions: run over the few rows of
    their channel instead of every row, they cost a fraction (most rows are emails)."""
    rows = pc.fill_null(rows, False)
    picked = pc.filter(values, rows)
    out = pa.nulls(len(values), pa.string())
    if not len(picked):
        return out
    return pc.replace_with_mask(out, rows, compute(picked).cast(pa.string()))


def push_platforms(labels: pa.Array, token: pa.Array, settings: PipelineSettings) -> pa.Array:
    """apns / fcm per push row (null elsewhere). Campaign Standard's one push code (40) does
    not say which: a token of the APNs shape (64 hex characters) is an APNs one, else FCM."""
    token = _text(token)

    def generic_platform(tokens: pa.Array) -> pa.Array:
        looks_apns = pc.match_substring_regex(
            pc.utf8_trim_whitespace(tokens), settings.apns_token_pattern
        )
        return pc.if_else(pc.fill_null(looks_apns, False), "apns", "fcm")

    generic = on_rows(is_channel(labels, PUSH), token, generic_platform)
    by_label = pc.if_else(
        is_channel(labels, PUSH_IOS),
        pa.scalar("apns"),
        pc.if_else(is_channel(labels, PUSH_ANDROID), pa.scalar("fcm"), _NULL_TEXT),
    )
    return pc.if_else(is_channel(labels, PUSH), generic, by_label)


def address_rules(
    labels: pa.Array, address: pa.Array, settings: PipelineSettings
) -> list[tuple[pa.Array, str, str]]:
    """(failed mask, reason, canonical field) of each row: unknown channel, then a missing or
    malformed address for its channel. Direct mail needs no address (it is the postal one,
    which is not in the log); any other channel needs one."""
    address = _text(address)
    unknown = pc.is_null(labels)
    present = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(address)), 0), False)
    needs_address = pc.and_(pc.invert(unknown), pc.invert(is_channel(labels, DIRECT_MAIL)))
    rules: list[tuple[pa.Array, str, str]] = [
        (unknown, UNKNOWN_CHANNEL, "channel"),
        (pc.and_(needs_address, pc.invert(present)), MISSING_REQUIRED_VALUE, "address"),
    ]
    email_rows = pc.and_(is_channel(labels, EMAIL), present)
    if pc.any(email_rows).as_py():
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(address))
        ok = pc.fill_null(pc.match_substring_regex(lowered, _EMAIL_RE), False)
        rules.append((pc.and_(email_rows, pc.invert(ok)), INVALID_EMAIL, "address"))
    phone_rows = pc.and_(is_channel(labels, PHONE_CHANNELS), present)
    if pc.any(phone_rows).as_py():
        bad = pc.is_null(phone_numbers(phone_rows, address, settings))
        rules.append((pc.and_(phone_rows, bad), INVALID_PHONE_NUMBER, "address"))
    push_rows = pc.and_(is_channel(labels, PUSH_CHANNELS), present)
    if pc.any(push_rows).as_py():
        platform = push_platforms(labels, address, settings)
        bad = push_token_formats.invalid_tokens(address, platform, settings)
        rules.append((pc.and_(push_rows, bad), INVALID_PUSH_TOKEN, "address"))
    return rules


def normalized_addresses(
    labels: pa.Array, address: pa.Array, settings: PipelineSettings
) -> dict[str, pa.Array]:
    """The address of each row as its identity: `email`, `phone` (E.164) and `push_token`
    (with `push_platform`), each null on rows of other channels."""
    address = pc.utf8_trim_whitespace(_text(address))
    nothing = pa.nulls(len(address), pa.string())
    email = pc.if_else(is_channel(labels, EMAIL), pc.utf8_lower(address), _NULL_TEXT)
    # The phone and token passes (regular expressions) only run when such rows are present.
    phone_rows = is_channel(labels, PHONE_CHANNELS)
    phone = phone_numbers(phone_rows, address, settings)
    platform, token = nothing, nothing
    if pc.any(is_channel(labels, PUSH_CHANNELS)).as_py():
        platform = push_platforms(labels, address, settings)
        rows = pc.is_valid(platform)
        tokens = push_token_formats.normalized(pc.filter(address, rows), pc.filter(platform, rows))
        token = pc.replace_with_mask(nothing, rows, tokens) if len(tokens) else nothing
    return {"email": email, "phone": phone, "push_token": token, "push_platform": platform}


def phone_numbers(rows: pa.Array, address: pa.Array, settings: PipelineSettings) -> pa.Array:
    """E.164 numbers of the `rows` (null elsewhere, and where a number is not valid)."""
    code = settings.phone_default_country_code
    return on_rows(rows, _text(address), lambda numbers: e164(numbers, code))


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if values.type == pa.string() else pc.cast(values, pa.string())
