"""How the pages show times, durations and counts: UTC always, with the age relative to now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC (a naive datetime is taken as UTC already)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def utc_text(when: datetime | date | None) -> str:
    """``2024-03-01 12:00:05 UTC``; a date as ``2024-03-01``; ``—`` for nothing."""
    if when is None:
        return "—"
    if not isinstance(when, datetime):
        return when.isoformat()
    return as_utc(when).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_time(value: object) -> datetime | None:
    """A datetime from an ISO 8601 text (as reports keep them); ``None`` when it is not one."""
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def utc_iso(when: datetime) -> str:
    """Machine-readable UTC time for ``<time datetime=...>``: ``2024-03-01T12:00:05Z``."""
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def relative_age(when: datetime, now: datetime | None = None) -> str:
    """How long ago (or ahead) ``when`` is: ``just now``, ``45 s ago``, ``12 min ago``,
    ``3 h ago``, ``5 d ago``, ``in 2 h``."""
    delta = (now or datetime.now(UTC)) - as_utc(when)
    future = delta < timedelta(0)
    text = duration_text(abs(delta.total_seconds()), coarse=True)
    if text is None:
        return "just now"
    return f"in {text}" if future else f"{text} ago"


def duration_text(seconds: float | None, *, coarse: bool = False) -> str | None:
    """A duration for people: ``0.42 s``, ``12.3 s``, ``4 min``, ``3 h``, ``2 d``. ``coarse``
    drops the fractions and calls anything under 5 s nothing (``None``)."""
    if seconds is None:
        return None
    if coarse and seconds < 5:
        return None
    if seconds < 60:
        return f"{seconds:.0f} s" if coarse else (f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s")
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def ttl_text(delta: timedelta) -> str:
    """A TTL: ``2 days``, ``6 hours``, ``90 minutes``, ``3650 days``."""
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


def count_text(n: int | float | None) -> str:
    """``1,234,567``; ``—`` for nothing."""
    if n is None:
        return "—"
    return f"{n:,}" if isinstance(n, int) else f"{n:,.4g}"


def number_text(x: float | int | None) -> str:
    """A statistic: up to 4 significant digits, thousands separated; ``—`` for nothing."""
    if x is None:
        return "—"
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e15):
        return f"{int(x):,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"
