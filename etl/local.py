"""The embedded engine: DuckDB (SQL transformations) and pandas (function transformations).

The engine computes a view's rows over a window as an Arrow table and writes them as one
Parquet file per date; everything else about a run (the quality gate, the offline publish,
deriving online from offline, the run's record) is the pipeline's, in ``etl/runs.py``.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.runs import RunResult, run_view
from featurestore.definitions import FeatureView, FileSource, Source, SqlSource, StoredTransformation
from featurestore.errors import FeatureStoreError, RunError
from featurestore.schema import conform
from featurestore.sql import connect as duckdb_connect
from featurestore.sql import quote as _quote
from featurestore.store import FeatureStore


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class LocalEngine:
    """Runs feature views in this process. ``root`` resolves relative source paths."""

    name = "local"
    quality_backend = "arrow"

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.root = store.config.root

    # ------------------------------------------------------------------ computing

    def _register_source(
        self,
        con: duckdb.DuckDBPyConnection,
        source: Source,
        *,
        lower: datetime | None,
        upper: datetime | None,
        done: set[str],
    ) -> None:
        if source.name in done:
            return
        if isinstance(source, FileSource):
            path = Path(source.path)
            path = path if path.is_absolute() else self.root / path
            if not any(glob.iglob(str(path), recursive=True)):
                raise RunError(f"Source '{source.name}': no file matches '{path}'; check the path in its definition")
            # Files of a glob matched by column name: one written before a column was added (or
            # another view's output, whose pushed rows carry __pushed_at) reads the column as null.
            if source.file_format == "parquet":
                body = f"SELECT * FROM read_parquet({_literal(path)}, union_by_name = true)"
            else:
                body = f"SELECT * FROM read_csv_auto({_literal(path)})"
        elif isinstance(source, SqlSource):
            for up in source.sources:
                self._register_source(con, up, lower=None, upper=upper, done=done)
            body = source.query
        else:  # pragma: no cover - definitions reject other types
            raise RunError(f"Source '{source}' has an unknown kind")
        conditions = []
        if source.timestamp_field and upper is not None:
            conditions.append(f"{_quote(source.timestamp_field)} < $upper")
        if source.timestamp_field and lower is not None:
            conditions.append(f"{_quote(source.timestamp_field)} >= $lower")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        params = {}
        if "$upper" in where:
            params["upper"] = upper
        if "$lower" in where:
            params["lower"] = lower
        try:
            # A view cannot take parameters: materialize the filtered rows once as a table.
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_quote(source.name)} AS SELECT * FROM ({body}){where}", params)
        except duckdb.Error as err:
            raise RunError(f"Source '{source.name}' cannot be read: {err}") from err
        done.add(source.name)

    def _transform(self, con: duckdb.DuckDBPyConnection, view: FeatureView, *, limit: int | None = None) -> pa.Table:
        t = view.transformation
        source_sql = f"SELECT * FROM {_quote(view.source.name)}" + (f" LIMIT {limit}" if limit is not None else "")
        try:
            if t is None:
                return con.sql(source_sql).to_arrow_table()
            if isinstance(t, StoredTransformation):
                raise RunError(
                    f"Feature view '{view.name}' was loaded from the registry; run it from the project's definition files"
                )
            if isinstance(t, str):
                sql = f"SELECT * FROM ({t}) LIMIT {limit}" if limit is not None else t
                return con.sql(sql).to_arrow_table()
            frame = con.execute(source_sql).df()
            result = t(frame)
            if not isinstance(result, pd.DataFrame):
                raise RunError(
                    f"Feature view '{view.name}': the transformation returned {type(result).__name__}, not a pandas DataFrame"
                )
            return pa.Table.from_pandas(result, preserve_index=False)
        except duckdb.Error as err:
            raise RunError(f"Feature view '{view.name}': the transformation failed in DuckDB: {err}") from err
        except FeatureStoreError:
            raise
        except Exception as err:
            raise RunError(
                f"Feature view '{view.name}': the transformation raised {type(err).__name__}: {err}"
            ) from err

    def infer_schema(self, view: FeatureView) -> pa.Schema:
        """The schema of the view's transformation output, computed on a few source rows."""
        con = duckdb_connect()
        try:
            self._register_source(con, view.source, lower=None, upper=None, done=set())
            return self._transform(con, view, limit=100).schema
        finally:
            con.close()

    def start(self) -> None:
        """Nothing to start: DuckDB runs in this process."""

    def compute(
        self, view: FeatureView, start: datetime | None = None, end: datetime | None = None, scratch: Path | None = None
    ) -> pa.Table:
        """The view's rows with event time in ``[start, end)``, conformed to its schema, one row
        per (keys, event time): when the transformation emits duplicates, the last one wins."""
        lower = None
        if start is not None and view.source_lookback is not None:
            lower = start - view.source_lookback
        con = duckdb_connect()
        try:
            self._register_source(con, view.source, lower=lower, upper=end, done=set())
            raw = self._transform(con, view)
        finally:
            con.close()
        table = conform(view, raw)
        for col in (*view.join_keys, view.timestamp_field):
            nulls = table.column(col).null_count
            if nulls:
                raise RunError(
                    f"Feature view '{view.name}': {nulls} computed row(s) have a null '{col}'; "
                    "filter them out in the transformation"
                )
        ts = table.column(view.timestamp_field)
        mask = None
        if start is not None:
            mask = pc.greater_equal(ts, pa.scalar(start, ts.type))
        if end is not None:
            upper_mask = pc.less(ts, pa.scalar(end, ts.type))
            mask = upper_mask if mask is None else pc.and_(mask, upper_mask)
        if mask is not None:
            table = table.filter(mask)
        return _latest(table, [*view.join_keys, view.timestamp_field], newest_by=None)

    def write_partitions(self, view: FeatureView, frame: pa.Table, folder: Path) -> Mapping[str, Path]:
        """The rows as one Parquet file per UTC date of their event time."""
        folder.mkdir(parents=True, exist_ok=True)
        if frame.num_rows == 0:
            return {}
        days = pc.cast(frame.column(view.timestamp_field), pa.date32())
        order = pc.sort_indices(days)  # one sort, then a slice per date (not one filter per date)
        frame, days = frame.take(order), days.take(order)
        out = {}
        offset = 0
        for item in pc.value_counts(days).to_pylist():  # in order of appearance: sorted
            day, n = item["values"], item["counts"]
            path = folder / f"{day.isoformat()}.parquet"
            pq.write_table(frame.slice(offset, n), path)
            out[day.isoformat()] = path
            offset += n
        return out

    # ------------------------------------------------------------------ running

    def run(
        self,
        view_name: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        definitions: dict[str, FeatureView] | None = None,
        progress: bool = True,
        quarantine: bool | None = None,
        allow_row_drop: bool = False,
        merge: bool = False,
    ) -> RunResult:
        """Run the view over ``[start, end)`` through the run pipeline (``etl.runs.run_view``)."""
        return run_view(
            self.store,
            self,
            view_name,
            start=start,
            end=end,
            definitions=definitions,
            progress=progress,
            quarantine=quarantine,
            allow_row_drop=allow_row_drop,
            merge=merge,
        )


def _latest(table: pa.Table, partition: list[str], *, newest_by: str | None) -> pa.Table:
    """One row per ``partition`` value, in table order: the row with the newest ``newest_by``
    time (ties: the later row), or without ``newest_by`` simply the later row."""
    if table.num_rows == 0:
        return table
    indexed = table.append_column("__i", pa.array(range(table.num_rows), pa.int64()))
    keys = ", ".join(_quote(k) for k in partition)
    order = f"{_quote(newest_by)} DESC, __i DESC" if newest_by else "__i DESC"
    con = duckdb_connect()
    try:
        con.register("t", indexed)
        sql = f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1 ORDER BY __i"
        out = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    return out.drop_columns(["__i"]).cast(table.schema)
