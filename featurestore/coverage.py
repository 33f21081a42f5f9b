"""What time range a view's data covers, to tell a user whose window, as-of time or spine
selected nothing where the data actually is.

Used only once a command found no rows (a run or a validation over an empty window, reference
data as of a time before the data, a training set whose spine matched nothing), so it may read
file statistics the hot paths never need.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from featurestore.definitions import FeatureView, FileSource
from featurestore.sql import cursor, quote
from featurestore.sql import literal as sql_literal


@dataclass(frozen=True)
class DataRange:
    """The first and last event time of some rows (UTC)."""

    first: datetime
    last: datetime

    def __str__(self) -> str:
        return f"{_moment(self.first)}..{_moment(self.last)}"


def _moment(value: datetime) -> str:
    """A date when the time is midnight UTC, else the time to the second."""
    value = value.astimezone(UTC)
    if value == value.replace(hour=0, minute=0, second=0, microsecond=0):
        return f"{value:%Y-%m-%d}"
    return f"{value:%Y-%m-%d %H:%M:%S}"


def duration_text(value: timedelta) -> str:
    """A TTL in words: "2 days", "36 hours", "90 minutes"."""
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def window_text(start: datetime | None, end: datetime | None) -> str:
    """``[start, end)`` in words: "between 2024-03-01 and 2024-03-08", "before ...", "from ..."."""
    if start is not None and end is not None:
        return f"between {_moment(start)} and {_moment(end)}"
    if end is not None:
        return f"before {_moment(end)}"
    if start is not None:
        return f"from {_moment(start)} on"
    return "at all"


def _range_of(paths: Sequence[Path | str], column: str, reader: str) -> DataRange | None:
    if not paths:
        return None
    con = cursor()
    try:
        files = "[" + ", ".join(sql_literal(p) for p in paths) + "]"
        row = con.execute(
            f"SELECT CAST(min({quote(column)}) AS TIMESTAMPTZ), CAST(max({quote(column)}) AS TIMESTAMPTZ) "
            f"FROM {reader}({files})"
        ).fetchone()
    finally:
        con.close()
    if row is None or row[0] is None:
        return None
    return DataRange(row[0].astimezone(UTC), row[1].astimezone(UTC))


def published_range(view: FeatureView, files: Sequence[Path]) -> DataRange | None:
    """The event times of the view's published rows (its offline files), or ``None`` when it has none."""
    return _range_of(files, view.timestamp_field, "read_parquet")


def source_range(view: FeatureView, root: Path) -> DataRange | None:
    """The timestamps of the view's source rows when the source is a file with a timestamp field
    (``root`` resolves a relative path), else ``None``: a SQL source would have to be computed."""
    source = view.source
    if not isinstance(source, FileSource) or not source.timestamp_field:
        return None
    path = Path(source.path)
    path = path if path.is_absolute() else root / path
    if not any(glob.iglob(str(path), recursive=True)):
        return None
    reader = "read_parquet" if source.file_format == "parquet" else "read_csv_auto"
    return _range_of([path], source.timestamp_field, reader)


def describe_range(view: FeatureView, *, root: Path, files: Sequence[Path]) -> str:
    """Where the view's data is, in words: its source's time range when the source is a file, and
    the range of the rows it has published."""
    parts = []
    source = source_range(view, root)
    if source is not None:
        parts.append(f"its source '{view.source.name}' spans {source}")
    published = published_range(view, files)
    parts.append(f"its published data spans {published}" if published else "it has published no rows yet")
    return "; ".join(parts)


def rows_with_values(table: pa.Table, feature_columns: Sequence[str]) -> int:
    """How many rows of a training set got at least one feature value (not all null)."""
    if not feature_columns or table.num_rows == 0:
        return 0
    any_value = None
    for column in feature_columns:
        valid = pc.is_valid(table.column(column))
        any_value = valid if any_value is None else pc.or_(any_value, valid)
    return int(pc.sum(pc.cast(any_value, pa.int64())).as_py() or 0)


def column_range(table: pa.Table, column: str) -> DataRange | None:
    """The range of a timestamp column of ``table`` (e.g. a spine's), or ``None`` when it is empty
    or not a timestamp."""
    if column not in table.column_names or not pa.types.is_timestamp(table.schema.field(column).type):
        return None
    bounds = pc.min_max(table.column(column)).as_py()
    if bounds["min"] is None:
        return None
    first, last = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (bounds["min"], bounds["max"]))
    return DataRange(first, last)
