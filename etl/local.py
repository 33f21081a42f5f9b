"""The embedded engine: DuckDB (SQL transformations) and pandas (function transformations).

A run computes a view over a window, checks it with the quality gate (``quality``: the view's
expectations, then statistics of what it publishes), then publishes the *same* frame to the
offline store (Parquet, atomic per run) and the online store (latest row per entity, newer event
time wins), and records one run in the registry. When anything fails, a blocking expectation
included, nothing is published and the run is recorded as failed with its error.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from etl.runs import RunResult, check_window, recorded_run, view_to_run
from featurestore.definitions import FeatureView, FileSource, Source, SqlSource, StoredTransformation
from featurestore.errors import FeatureStoreError, RunError
from featurestore.online import OnlineStore, WriteStats
from featurestore.schema import conform
from featurestore.sql import connect as duckdb_connect
from featurestore.store import FeatureStore
from quality.checked_run import check_run


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class LocalEngine:
    """Runs feature views in this process. ``root`` resolves relative source paths."""

    name = "local"

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
            if not any(path.parent.glob(path.name)):
                raise RunError(f"Source '{source.name}': no file matches '{path}'; check the path in its definition")
            reader = "read_parquet" if source.file_format == "parquet" else "read_csv_auto"
            body = f"SELECT * FROM {reader}({_literal(path)})"
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

    def compute(self, view: FeatureView, start: datetime | None = None, end: datetime | None = None) -> pa.Table:
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
    ) -> RunResult:
        """Compute the view over ``[start, end)``, check it with the quality gate and publish it
        offline and online in one run. ``quarantine`` (default: the project's
        ``quality.quarantine``) sets rows failing blocking expectations aside instead of failing
        the run."""
        check_window(start, end)
        view = view_to_run(self.store, view_name, definitions)
        offline = self.store.offline_store
        online_store = self.store.online_store if view.online else None
        with recorded_run(self.store, view, engine=self.name, start=start, end=end, progress=progress) as run:
            timings, bar = run.timings, run.bar
            t0 = time.perf_counter()
            bar.set_postfix_str("computing")
            frame = self.compute(view, start, end)
            timings["compute_s"] = time.perf_counter() - t0
            bar.set_postfix_str(f"checking {frame.num_rows:,} rows")
            checked = check_run(self.store, view, frame, run_id=run.run_id, end=end, quarantine=quarantine)
            frame = checked.frame
            timings.update(checked.timings)
            bar.update()
            t0 = time.perf_counter()
            bar.set_postfix_str(f"writing {frame.num_rows:,} rows offline")
            staged = offline.stage(view, frame, start=start, end=end, run_id=run.run_id)
            run.on_failure(staged.abort)
            timings["offline_stage_s"] = time.perf_counter() - t0
            bar.update()
            t0 = time.perf_counter()
            stats = None
            if online_store is not None:
                online_rows = _latest(frame, list(view.join_keys), newest_by=view.timestamp_field)
                bar.set_postfix_str(f"writing {online_rows.num_rows:,} rows online")
                run.online_started = True
                stats = _write_online(online_store, view, online_rows, progress)
            timings["online_write_s"] = time.perf_counter() - t0
            bar.update()
            watermark = pc.max(frame.column(view.timestamp_field)).as_py() if frame.num_rows else None
            t0 = time.perf_counter()
            staged.commit()
            timings["offline_publish_s"] = time.perf_counter() - t0
            bar.update()
            run.succeeded(
                rows_computed=checked.rows_computed,
                rows_offline=frame.num_rows,
                rows_online=stats.written if stats else 0,
                rows_online_skipped_older=stats.skipped_older if stats else 0,
                watermark=watermark,
                quality=checked.report.status,
                rows_quarantined=checked.rows_quarantined,
            )
        return run.result


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


ONLINE_BATCH_ROWS = 10_000


def _write_online(store: OnlineStore, view: FeatureView, rows: pa.Table, progress: bool) -> WriteStats:
    """Write a run's newest row per entity online.

    A store whose write is one transaction (``transactional_writes``, e.g. SQLite) gets all rows
    in one call, so a failure leaves it exactly as before. Other stores (Redis, Cassandra) get
    batches with a progress bar; if one fails, the batches before it stay written. Those rows are
    this run's values and every write obeys "newer event time wins", so re-running the window
    converges to the same online state as an uninterrupted run (the consistency tests show it).
    """
    if getattr(store, "transactional_writes", False) or rows.num_rows <= ONLINE_BATCH_ROWS:
        return store.write(view, rows)
    written = skipped = 0
    with tqdm(total=rows.num_rows, desc=f"online {view.name}", unit="row", disable=not progress, leave=False) as bar:
        for batch in rows.to_batches(max_chunksize=ONLINE_BATCH_ROWS):
            stats = store.write(view, pa.Table.from_batches([batch], schema=rows.schema))
            written += stats.written
            skipped += stats.skipped_older
            bar.update(batch.num_rows)
    return WriteStats(written=written, skipped_older=skipped)
