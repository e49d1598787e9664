"""UTC timestamps as `YYYY-MM-DDTHH:MM:SSZ` text, vectorised."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _pad(values: pa.Array, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(values, pa.string()), width=width, padding="0")


def iso_seconds(timestamps: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`YYYY-MM-DDTHH:MM:SSZ` of UTC timestamps (seconds truncated, as pandas' strftime does).

    The text is laid out byte by byte in numpy from the civil date of each value: several
    times faster than Arrow's strftime, which converts time zones value by value, and than
    joining padded field strings. Years outside 1000-9999 take strftime's path.
    """
    values = timestamps.combine_chunks() if isinstance(timestamps, pa.ChunkedArray) else timestamps
    unit = getattr(values.type, "unit", None)
    n = len(values)
    if (
        not pa.types.is_timestamp(values.type)
        or values.type.tz not in (None, "UTC", "+00:00")
        or unit not in _UNITS_PER_SECOND
    ):
        return _iso_seconds_by_fields(values)
    valid = (
        pc.is_valid(values).to_numpy(zero_copy_only=False)
        if values.null_count
        else np.ones(n, dtype=bool)
    )
    raw = values.buffers()[1]
    if raw is None or n * _ISO_WIDTH >= 1 << 31:
        return _iso_seconds_by_fields(values)
    seconds = np.frombuffer(raw, dtype=np.int64, count=n, offset=values.offset * 8)[valid]
    seconds = seconds // _UNITS_PER_SECOND[unit]  # floor: 1969-12-31T23:59:59.5 is :59
    days, clock = np.divmod(seconds, 86400)
    year, month, day = _civil_from_days(days)
    if year.size and (year.min() < 1000 or year.max() > 9999):
        return _iso_seconds_by_fields(values)
    hour, rest = np.divmod(clock, 3600)
    minute, second = np.divmod(rest, 60)
    text = np.empty((year.size, _ISO_WIDTH), dtype=np.uint8)
    text[:] = np.frombuffer(b"0000-00-00T00:00:00Z", dtype=np.uint8)
    century, year = np.divmod(year, 100)
    for column, field in (
        (0, century),
        (2, year),
        (5, month),
        (8, day),
        (11, hour),
        (14, minute),
        (17, second),
    ):
        text[:, column : column + 2] = _TWO_DIGITS[field]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid, out=offsets[1:])
    offsets *= _ISO_WIDTH
    bitmap = pa.array(valid).buffers()[1] if len(text) < n else None
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(text), bitmap, n - len(text)
    )


_ISO_WIDTH = len("YYYY-MM-DDTHH:MM:SSZ")
# "00" … "99" as rows of two ASCII digits: one gather writes both digits of a field.
_TWO_DIGITS = np.array([divmod(i, 10) for i in range(100)], dtype=np.uint8) + ord("0")
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01 (H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _iso_seconds_by_fields(timestamps: pa.Array) -> pa.Array:
    years = pc.year(timestamps)
    low, high = pc.min_max(years).values()
    if low.is_valid and (low.as_py() < 1000 or high.as_py() > 9999):
        seconds = pc.cast(pc.floor_temporal(timestamps, unit="second"), pa.timestamp("s", tz="UTC"))
        text = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
        return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    day = pc.binary_join_element_wise(
        _pad(years, 4), _pad(pc.month(timestamps), 2), _pad(pc.day(timestamps), 2), "-"
    )
    clock = pc.binary_join_element_wise(
        _pad(pc.hour(timestamps), 2),
        _pad(pc.minute(timestamps), 2),
        _pad(pc.second(timestamps), 2),
        ":",
    )
    joined = pc.binary_join_element_wise(pc.binary_join_element_wise(day, clock, "T"), "Z", "")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
