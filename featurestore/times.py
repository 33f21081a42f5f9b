"""The one rule for the times users give, on every surface: SDK, CLI, HTTP API and Python client.

A time must say which instant it is: a ``datetime`` with a ``tzinfo``, a timestamp column with a
time zone, or an ISO 8601 string with an offset (``Z``, ``+01:00``). A bare date such as
``2024-03-01`` names a day, not a time of day, and means that day from 00:00 UTC. A date and time
without an offset ("naive") is refused everywhere, with :func:`naive_time_message`: read as UTC,
times written in Paris would shift every point-in-time join by an hour without a word.

Times come back in UTC, except a training set's timestamp column, which is the spine's own
(same type and time zone; a text column comes back as ``timestamp[us, UTC]``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from featurestore.errors import InvalidRequestError

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow and its compute functions (~60 ms of CPU) load with the first time column parsed, not
# with this module, which the SDK's facade imports: a command that parses no column needs neither.

TIME_EXAMPLE = "2024-03-01T12:00:00Z"
DATE_EXAMPLE = "2024-03-01"
TIME_RANGE = "0001-01-01 to 9999-12-31 UTC"
"""The times Python's ``datetime`` (and so the CLI, the SDK's results and JSON answers) holds."""
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999  # TIME_RANGE in µs since 1970


def naive_time_message(subject: str, value: str) -> str:
    """The refusal of a time without an offset, the same on every surface. ``subject`` names what
    held it (``"--as-of"``, ``"The spine's timestamp column 'ts'"``); the example is built from ``value``."""
    shown = value.strip()
    return (
        f"{subject} has no time zone ('{value}'); give timezone-aware times, e.g. in UTC: ISO 8601 strings "
        f"ending in 'Z' or an offset, like '{shown}Z' or '{shown}+01:00', or datetimes with a tzinfo "
        f"(pandas: .dt.tz_localize('UTC')). A bare date, like '{DATE_EXAMPLE}', means 00:00 UTC"
    )


def parse_time(value: str, subject: str) -> datetime:
    """An ISO 8601 time with an offset (or ``Z``), as an aware UTC datetime; a bare date is that
    day from 00:00 UTC. Naive times, unreadable text and times outside years 1-9999 UTC are
    refused with an :class:`InvalidRequestError` naming ``subject``."""
    text = value.strip()
    try:
        if len(text) <= 10:  # a date, e.g. 2024-03-01 or 20240301: a day, not a time of day
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidRequestError(
            f"{subject} has '{value}', which is not an ISO 8601 date or time of years 0001 to 9999; "
            f"give e.g. '{DATE_EXAMPLE}' or '{TIME_EXAMPLE}'"
        ) from err
    if parsed.tzinfo is None:
        raise InvalidRequestError(naive_time_message(subject, value))
    try:
        return parsed.astimezone(UTC)
    except OverflowError as err:
        raise InvalidRequestError(
            f"{subject} has '{value}', which is outside {TIME_RANGE}; give a time in that range"
        ) from err


def aware_time(value: datetime | date, subject: str) -> datetime:
    """A time given as a Python object, as an aware UTC datetime: a ``date`` is that day from
    00:00 UTC; a naive ``datetime`` is refused (see :func:`naive_time_message`)."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidRequestError(naive_time_message(subject, value.isoformat()))
        try:
            return value.astimezone(UTC)
        except OverflowError as err:
            raise InvalidRequestError(
                f"{subject} is {value.isoformat()}, outside {TIME_RANGE}; give a time in that range"
            ) from err
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    raise InvalidRequestError(
        f"{subject} must be a datetime with a tzinfo or a date, e.g. datetime(2024, 3, 1, tzinfo=UTC); "
        f"got {type(value).__name__} {value!r}"
    )


def parse_time_column(col: pa.ChunkedArray | pa.Array, subject: str) -> pa.ChunkedArray | pa.Array:
    """A text column of times as ``timestamp[us, UTC]``, by the rule of :func:`parse_time`. Nulls
    stay null. A value that breaks the rule is refused naming ``subject``, its row and the value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from featurestore.types import UTC_TIMESTAMP

    try:  # Arrow parses ISO 8601 with an offset at C speed, and refuses anything else
        parsed = pc.cast(col, UTC_TIMESTAMP)
        low, high = pc.min_max(pc.cast(parsed, pa.int64())).values()
        if low.as_py() is None or (low.as_py() >= _MIN_US and high.as_py() <= _MAX_US):
            return parsed
        # else a time Arrow holds but Python's datetime cannot: parse_time names its row
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # bare dates only: each day from 00:00 UTC
        return pc.cast(pc.cast(pc.cast(col, pa.date32()), pa.timestamp("us")), UTC_TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    times = [None if v is None else parse_time(v, f"{subject} (row {i})") for i, v in enumerate(col.to_pylist())]
    return pa.array(times, UTC_TIMESTAMP)
