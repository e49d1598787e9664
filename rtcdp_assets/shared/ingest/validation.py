"""Validation with compute kernels: each value read as text, typed, or given a reason code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared.ingest.model import ARROW_TYPES, ExportFormat, Layout

_INT_RE = r"^[+-]?[0-9]{1,18}$"
# ISO 8601 date-times as Campaign writes them: `2026-11-23 08:00:00`, with an optional `T`,
# fraction and offset. A missing offset means the configured Campaign time zone.
_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
_TS_OFFSET_RE = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
_EMAIL_RE = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"
_BOOL_TRUE = ["1", "true", "yes", "y"]
_BOOL_FALSE = ["0", "false", "no", "n", ""]


Rule = tuple[pa.Array, str, str]  # (failed mask, reason code, source column)
# A dataset's own rules over its typed values, for what one field alone cannot tell (a push
# token's format depends on the platform column): (failed mask, reason code, canonical field).
# They run after the field rules, so a row keeps the reason of its first field-level fault.
RowRules = Callable[[pa.RecordBatch], Sequence[tuple[pa.Array, str, str]]]
# A dataset's normalised values of some fields, from the typed batch once the rules have judged
# it (an address in the form its row's channel publishes it): canonical field -> new values.
RowValues = Callable[[pa.RecordBatch], Mapping[str, pa.Array]]


def _first_reasons(rules: list[Rule], n: int) -> tuple[pa.Array, pa.Array]:
    """Reason and column of each row's first failing rule, in rule order.

    Almost every row is good, so the rules are OR-ed once and the first failing rule is only
    worked out for the few bad rows (an if_else per rule over every row cost more than the
    validation itself).
    """
    none = pa.nulls(n, pa.string())
    masks = [pc.fill_null(mask, False) for mask, _, _ in rules]
    if not masks:
        return none, none
    bad = masks[0]
    for mask in masks[1:]:
        bad = pc.or_(bad, mask)
    if not pc.any(bad).as_py():
        return none, none
    rows = pc.indices_nonzero(bad)
    reasons: list[str | None] = [None] * len(rows)
    columns: list[str | None] = [None] * len(rows)
    for mask, (_, code, src) in zip(masks, rules, strict=True):
        for i, failed in enumerate(pc.take(mask, rows).to_pylist()):
            if failed and reasons[i] is None:
                reasons[i], columns[i] = code, src
    return (
        pc.replace_with_mask(none, bad, pa.array(reasons, pa.string())),
        pc.replace_with_mask(none, bad, pa.array(columns, pa.string())),
    )


_NULL_STRING = pa.scalar(None, pa.string())


# Fast paths on the raw bytes of string arrays. Each gives exactly what the compute kernel it
# stands in for gives, and hands the batch to that kernel whenever its shortcut does not apply.
def _string_buffers(
    values: pa.Array, type_: pa.DataType | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Zero-copy views of the offsets and bytes of a `string` array (or of `type_`, which has
    the same layout: `binary`); None for other arrays."""
    if values.type != (type_ or pa.string()) or len(values) == 0:
        return None
    _, offsets_buf, data_buf = values.buffers()
    if offsets_buf is None:
        return None
    offsets = np.frombuffer(
        offsets_buf, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4
    )
    data = np.empty(0, np.uint8) if data_buf is None else np.frombuffer(data_buf, dtype=np.uint8)
    return offsets, data


def _trimmed(values: pa.Array) -> pa.Array:
    """`utf8_trim_whitespace`, skipped when no value could change.

    Trimming copies every value, yet exports almost never pad them. Unicode whitespace is a
    control or space byte (<= 0x20) or a multi-byte sequence (>= 0x80), so a column whose values
    neither start nor end with such a byte is returned as is.
    """
    buffers = _string_buffers(values)
    if buffers is None or values.null_count:
        return pc.utf8_trim_whitespace(values)
    offsets, data = buffers
    if data.size == 0:
        return values
    # For an empty value these read a neighbour's byte (checked anyway) or, clipped at the
    # buffer's ends, some other byte: at worst a needless trim, never a missed one.
    first = data.take(offsets[:-1], mode="clip")
    last = data.take(offsets[1:] - 1, mode="clip")
    # uint8 arithmetic wraps: a byte passes only if it lies in 0x21..0x7F.
    plain = np.uint8(0x5F)
    if ((first - np.uint8(0x21)) >= plain).any() or ((last - np.uint8(0x21)) >= plain).any():
        return pc.utf8_trim_whitespace(values)
    return values


def _empty_mask(values: pa.Array) -> pa.Array | None:
    """`utf8_length(values) == 0`, or None when no value is empty (the usual case, which then
    costs one comparison of the offsets)."""
    buffers = _string_buffers(values)
    if buffers is None or values.null_count:
        empty = pc.equal(pc.utf8_length(values), 0)
        return empty if pc.any(empty).as_py() else None
    offsets = buffers[0]
    empty_np = offsets[1:] == offsets[:-1]
    return pa.array(empty_np) if empty_np.any() else None


_TS_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_TS_WIDTH = 19  # `YYYY-MM-DD hh:mm:ss`


def _timestamp_shape(values: pa.Array) -> pa.Array:
    """`match_substring_regex(values, _TS_RE)`, checked on the bytes for the form Campaign
    writes (`YYYY-MM-DD hh:mm:ss` or with `T`, always 19 bytes; a fraction or an offset makes
    a value longer). Columns holding any other length go to the regular expression.
    """
    buffers = _string_buffers(values)
    if buffers is None:
        return pc.match_substring_regex(values, _TS_RE)
    offsets, data = buffers
    valid = (
        np.ones(len(values), dtype=bool)
        if values.null_count == 0
        else np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False))
    )
    lengths = np.diff(offsets)
    if (lengths[valid] != _TS_WIDTH).any():
        return pc.match_substring_regex(values, _TS_RE)
    n_valid = int(valid.sum())
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start == n_valid * _TS_WIDTH:
        # Null slots hold no bytes, so the values lie back to back: a view, no gather.
        chars = data[start:end].reshape(n_valid, _TS_WIDTH)
    else:
        chars = data[offsets[:-1][valid, None] + np.arange(_TS_WIDTH)]
    ok = (
        ((chars[:, _TS_DIGITS] - ord("0")) <= 9).all(axis=1)  # uint8: bytes below '0' wrap
        & (chars[:, 4] == ord("-"))
        & (chars[:, 7] == ord("-"))
        & ((chars[:, 10] == ord(" ")) | (chars[:, 10] == ord("T")))
        & (chars[:, 13] == ord(":"))
        & (chars[:, 16] == ord(":"))
    )
    out = np.zeros(len(values), dtype=bool)
    out[valid] = ok
    return pa.array(out, mask=None if values.null_count == 0 else ~valid)


def _lowered(values: pa.Array) -> pa.Array:
    """`utf8_lower`; the ASCII kernel (ten times faster) when every byte is ASCII."""
    buffers = _string_buffers(values)
    if buffers is not None and (buffers[1].size == 0 or buffers[1].max() < 0x80):
        return pc.ascii_lower(values)
    return pc.utf8_lower(values)


def _keep(values: pa.Array, ok: pa.Array) -> pa.Array:
    """`values` where `ok`, null elsewhere; no copy in the common case where all are ok."""
    if pc.all(pc.fill_null(ok, True)).as_py():
        return values
    return pc.if_else(ok, values, pa.scalar(None, values.type))


def _parse_timestamps(values: pa.Array, tz: str) -> pa.Array:
    """Strings already matching `_TS_RE` -> timestamp[us, UTC]; impossible dates -> null."""
    utc = pa.timestamp("us", tz="UTC")
    if (pc.max(pc.binary_length(values)).as_py() or 0) <= _TS_WIDTH:
        # The common form has neither fraction nor offset (those make a value longer), and
        # the cast reads its space separator as it is.
        has_offset = pa.repeat(pa.scalar(False), len(values))
        normalised = values
    else:
        # Only the tail can hold an offset; matching 6 characters beats scanning whole strings.
        has_offset = pc.match_substring_regex(pc.utf8_slice_codeunits(values, -6), _TS_OFFSET_RE)
        normalised = pc.replace_substring(values, " ", "T", max_replacements=1)
    try:
        # Campaign writes one form per export: usually all without offset, sometimes all with.
        if not pc.any(has_offset).as_py():
            naive = pc.cast(normalised, pa.timestamp("us"))
            if tz == "UTC":
                return pc.cast(naive, pa.timestamp("us")).cast(utc)
            local = pc.assume_timezone(
                naive, timezone=tz, ambiguous="earliest", nonexistent="earliest"
            )
            return pc.cast(local, utc)
        if pc.all(pc.fill_null(has_offset, True)).as_py():
            return pc.cast(normalised, utc)
        naive = pc.cast(_keep(normalised, pc.invert(has_offset)), pa.timestamp("us"))
        local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest")
        aware = pc.cast(_keep(normalised, has_offset), utc)
        return pc.coalesce(pc.cast(local, utc), aware)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Rare: a well-formed but impossible date (2026-02-30) fails the whole vectorised
        # cast; fall back to the strict per-value path for this batch only.
        zone = ZoneInfo(tz)
        out: list[datetime | None] = []
        for v in values.to_pylist():
            if v is None:
                out.append(None)
                continue
            try:
                d = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                out.append(None)
                continue
            out.append((d if d.tzinfo else d.replace(tzinfo=zone)).astimezone(UTC))
        return pa.array(out, type=pa.timestamp("us", tz="UTC"))


def validate_batch(
    batch: pa.RecordBatch,
    fmt: ExportFormat,
    layout: Layout,
    *,
    tz: str = "UTC",
    allowed_overrides: Mapping[str, frozenset[str]] | None = None,
    row_rules: RowRules | None = None,
    row_values: RowValues | None = None,
) -> tuple[pa.RecordBatch, pa.Array, pa.Array]:
    """Type every canonical field; return (typed batch, reason per row, failing column per row).

    Rows with a null reason are good. The typed batch has a row for every input row (values of
    bad rows are undefined); the caller filters.
    """
    n = batch.num_rows
    by_canonical = {
        layout.columns[name]: name for name in batch.schema.names if name in layout.columns
    }
    rules: list[Rule] = []
    typed: list[pa.Array] = []
    overrides = allowed_overrides or {}
    for f in fmt.fields:
        src = by_canonical.get(f.name)
        if src is None:
            typed.append(pa.nulls(n, ARROW_TYPES[f.kind]))
            continue
        raw = _trimmed(batch.column(src))
        # Clean batches are the rule: a rule whose mask is all false is not kept, and a column
        # without empty values is not copied, which saves most of the kernel calls per batch.
        empty = _empty_mask(raw)
        any_empty = empty is not None
        if f.required and any_empty:
            rules.append((empty, "missing_required_value", src))
        allowed = overrides.get(f.name, f.allowed)
        if allowed is not None:
            known = pc.is_in(raw, value_set=pa.array(sorted(allowed)))
            if not pc.all(known).as_py():
                bad = pc.invert(known)
                rules.append(
                    (pc.and_not(bad, empty) if any_empty else bad, f"unknown_code:{f.name}", src)
                )
        nulled = _keep(raw, pc.invert(empty)) if any_empty else raw
        if f.kind == "int":
            try:  # fast path: a column of clean integers casts in one go
                values = pc.cast(nulled, pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                ok = pc.match_substring_regex(nulled, _INT_RE)
                rules.append((pc.invert(ok), "invalid_integer", src))
                # Arrow's cast refuses an explicit "+" sign that the rule above accepts.
                signless = pc.utf8_ltrim(_keep(nulled, ok), characters="+")
                values = pc.cast(signless, pa.int64())
        elif f.kind == "timestamp":
            ok = _timestamp_shape(nulled)
            shaped = pc.all(pc.fill_null(ok, True)).as_py()
            if not shaped:
                rules.append((pc.invert(ok), "invalid_timestamp", src))
            values = _parse_timestamps(nulled if shaped else _keep(nulled, ok), tz)
            if values.null_count != nulled.null_count or not shaped:
                impossible = pc.and_(ok, pc.is_null(values))
                rules.append((impossible, "invalid_timestamp", src))
        elif f.kind == "date":
            ok = pc.match_substring_regex(nulled, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
            rules.append((pc.invert(ok), "invalid_date", src))
            values = pc.strptime(
                _keep(nulled, ok),
                format="%Y-%m-%d",
                unit="s",
                error_is_null=True,
            ).cast(pa.date32())
            # strptime rolls 2026-02-30 over to March; a round trip catches impossible dates.
            roundtrip = pc.strftime(values, format="%Y-%m-%d")
            impossible = pc.and_(ok, pc.invert(pc.fill_null(pc.equal(roundtrip, nulled), False)))
            rules.append((impossible, "invalid_date", src))
        elif f.kind == "email":
            lowered = _lowered(nulled)
            ok = pc.match_substring_regex(lowered, _EMAIL_RE)
            rules.append((pc.invert(ok), "invalid_email", src))
            values = lowered
        elif f.kind == "bool":
            low = pc.utf8_lower(raw)
            is_true = pc.is_in(low, value_set=pa.array(_BOOL_TRUE))
            ok = pc.or_(is_true, pc.is_in(low, value_set=pa.array(_BOOL_FALSE)))
            rules.append((pc.invert(ok), "invalid_boolean", src))
            values = is_true
        else:
            values = nulled
        typed.append(values)
    names = [f.name for f in fmt.fields]
    typed_batch = pa.RecordBatch.from_arrays(typed, names=names)
    if row_rules is not None:
        for mask, code, name in row_rules(typed_batch):
            rules.append((mask, code, by_canonical.get(name, name)))
    if row_values is not None:
        for name, values in row_values(typed_batch).items():
            at = typed_batch.schema.get_field_index(name)
            typed_batch = typed_batch.set_column(at, name, values)
    reason, column = _first_reasons(rules, n)
    return typed_batch, reason, column
