"""A run's computed rows held as files instead of in memory: :class:`DayFiles`.

The embedded engine writes what it computes as one Parquet file per UTC date of the event time,
in the view's schema (``etl/local.py``); the quality gate and the statistics read those files
with DuckDB (``quality/files.py``) and the offline store publishes them as they are. So a run's
memory depends on a day's rows at most, not on the window's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class DayFiles:
    """Rows of a view as Parquet files, date (``YYYY-MM-DD``) → file, in the view's schema.

    ``rows``: how many rows the files hold. ``unique``: whether the writer made sure that no two
    rows share the entity keys and the event time (the engine keeps one of each)."""

    files: Mapping[str, Path]
    rows: int
    unique: bool = False

    @property
    def paths(self) -> list[Path]:
        """The files in date order (the rows' order: by date, then as written)."""
        return [self.files[day] for day in sorted(self.files)]

    @property
    def num_rows(self) -> int:
        return self.rows

    def sql(self) -> str:
        """A DuckDB table expression reading every file (an empty frame has none: do not call)."""
        from featurestore.sql import literal

        if not self.files:
            raise ValueError("an empty frame has no files to read")
        listed = ", ".join(literal(p) for p in self.paths)
        return f"read_parquet([{listed}])"

    def read(self, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
        """The rows in memory as one Arrow table of ``schema`` (or its ``columns``), in order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns])
        parts = [pq.ParquetFile(p).read(columns=wanted.names).cast(wanted) for p in self.paths]
        return pa.concat_tables(parts) if parts else wanted.empty_table()
