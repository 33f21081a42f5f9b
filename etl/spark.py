"""The Spark engine: the same feature views, run on Spark, for data that outgrows one machine.

The engine computes and writes files; the run itself (the quality gate, the offline publish
including the Hive metastore, deriving online from offline, the run's record) is the pipeline's,
in ``etl/runs.py``, the same as for the embedded engine:

1. **Compute** the view over its window: a SQL transformation (written in DuckDB's dialect, as
   every definition is) runs as Spark SQL after translation (``etl/spark_sql.py``); a pandas
   transformation runs once per entity with ``applyInArrow`` over the join keys, so it must
   compute an entity's rows from that entity's source rows only. Duplicate (keys, event time)
   rows are resolved as locally: the later row of the transformation's output wins. The rows are
   written once, one Parquet file per date, and read back: the quality gate (Spark SQL
   aggregations, ``quality/spark.py``) and the offline files see the same materialized rows.
2. **Write partitions**: those files, handed to the offline store (or the quarantine's remaining
   rows written anew).

Training sets (:meth:`SparkEngine.get_training_set`) have the embedded engine's point-in-time
semantics without an as-of join: the spine and the view's rows are unioned, and a window over
each entity ordered by time carries the latest feature row to each spine row.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.runs import RunResult, run_view
from etl.spark_session import spark_session
from etl.spark_sql import to_spark_sql
from featurestore.config import SparkEngineConfig
from featurestore.definitions import FeatureService, FeatureView, FileSource, Source, SqlSource, StoredTransformation
from featurestore.errors import InvalidRequestError, RunError
from featurestore.offline.hive import HiveOfflineStore
from featurestore.partitions import read_files
from featurestore.retrieval import ViewRequest, normalize_spine, output_names, resolve_features
from featurestore.schema import conform
from featurestore.store import FeatureStore
from featurestore.types import ValueType

with warnings.catch_warnings():
    # pyspark warns that it "does not yet fully support pandas >= 3.0.0"; conversions both ways
    # work for the types we use (NOTES.md), and the differential tests check the values.
    warnings.simplefilter("ignore", FutureWarning)
    from pyspark.sql import Column, DataFrame, SparkSession, Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

log = logging.getLogger(__name__)

STAGING = "_staging"
"""Folder beside a view's partitions where a run's Spark job writes before its files are moved."""

_SPARK_TYPES: dict[ValueType, T.DataType] = {
    ValueType.INT64: T.LongType(),
    ValueType.FLOAT64: T.DoubleType(),
    ValueType.STRING: T.StringType(),
    ValueType.BOOL: T.BooleanType(),
    ValueType.TIMESTAMP: T.TimestampType(),
}


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def spark_type(value_type: ValueType) -> T.DataType:
    return _SPARK_TYPES[value_type]


def spark_schema(view: FeatureView) -> T.StructType:
    """The view's rows as Spark types: join keys, event time, features (as ``view_schema``)."""
    fields = [T.StructField(k, spark_type(t)) for k, t in view.key_schema.items()]
    fields.append(T.StructField(view.timestamp_field, T.TimestampType()))
    fields.extend(T.StructField(f.name, spark_type(f.dtype)) for f in view.features)
    return T.StructType(fields)


def _spark_error(err: BaseException) -> str:
    """The useful line of a Spark error: its message without the JVM stack or Python traceback."""
    text = str(err)
    raised = re.findall(r"^(?:featurestore\.errors\.)?\w*Error: (.+)$", text, flags=re.MULTILINE)
    if raised and "Traceback" in text:
        return str(raised[-1])
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _write_partitioned(rows: DataFrame, view: FeatureView, folder: Path) -> None:
    """Rows as Parquet in ``folder/__date=YYYY-MM-DD/``, one task per date: so one file per date
    partition, as the offline stores' layout wants."""
    day = F.date_format(F.col(_quote(view.timestamp_field)), "yyyy-MM-dd")
    rows.withColumn("__date", day).repartition("__date").write.partitionBy("__date").parquet(str(folder))


def _as_utc_timestamp(col: Column, data_type: T.DataType) -> Column:
    if isinstance(data_type, T.TimestampType):
        return col
    # TIMESTAMP_NTZ, DATE and strings are read as UTC (the session's time zone), as locally.
    return col.cast(T.TimestampType())


def _conformed(frame: DataFrame, view: FeatureView) -> list[Column]:
    """The columns that select and cast a computed frame to the view's schema, as
    ``featurestore.schema.conform`` does locally."""
    types = {f.name: f.dataType for f in frame.schema.fields}
    columns = []
    for field in spark_schema(view).fields:
        if field.name not in types:
            raise RunError(
                f"Feature view '{view.name}': the transformation's output has no column '{field.name}'; "
                f"it has {frame.columns}"
            )
        col = frame[field.name]
        if isinstance(field.dataType, T.TimestampType):
            col = _as_utc_timestamp(col, types[field.name])
        elif types[field.name] != field.dataType:
            col = col.cast(field.dataType)
        if isinstance(field.dataType, T.DoubleType):
            # NaN means "no value": stored as null, as locally.
            col = F.when(F.isnan(col), F.lit(None).cast(T.DoubleType())).otherwise(col)
        columns.append(col.alias(field.name))
    return columns


def _by_value(function: Any) -> None:
    """Ship a transformation defined in a project's definition file by value: executors cannot
    import the module ``load_definitions`` made up for it."""
    from pyspark import cloudpickle

    module = sys.modules.get(getattr(function, "__module__", "") or "")
    if module is not None and module.__name__ not in ("__main__", "builtins"):
        origin = getattr(module, "__file__", "") or ""
        if module.__name__.startswith("_featurestore_defs_") or "site-packages" not in origin:
            with contextlib.suppress(ValueError):  # already registered
                cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


def _storable(view: FeatureView) -> FeatureView:
    """The view as executors need it to write online: without its transformation (a function
    from a definition file need not be picklable)."""
    t = view.transformation
    if t is None or isinstance(t, StoredTransformation):
        return view
    if isinstance(t, str):
        return replace(view, transformation=StoredTransformation(kind="sql", text=t))
    return replace(view, transformation=StoredTransformation(kind="pandas", text=""))


class SparkEngine:
    """Runs feature views on Spark (see the module docs). ``spark``: an existing session to use
    (tests share one); otherwise one is created from the project's config on first use."""

    name = "spark"
    quality_backend = "spark"

    def __init__(
        self, store: FeatureStore, *, spark: SparkSession | None = None, config: SparkEngineConfig | None = None
    ) -> None:
        self.store = store
        self.root = store.config.root
        engine = store.config.engine
        self.config = config or (engine if isinstance(engine, SparkEngineConfig) else SparkEngineConfig())
        self._spark = spark
        self._materialized: dict[int, Path] = {}
        """Frames :meth:`compute` returned, by id, and the folder of their files."""

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            offline = self.store.offline_store
            hive = offline if isinstance(offline, HiveOfflineStore) else None
            self._spark = spark_session(self.store.config, self.config, hive=hive)
        return self._spark

    # ------------------------------------------------------------------ computing

    def _register_source(
        self, source: Source, *, lower: datetime | None, upper: datetime | None, done: set[str]
    ) -> None:
        if source.name in done:
            return
        if isinstance(source, FileSource):
            path = Path(source.path)
            path = path if path.is_absolute() else self.root / path
            selected = read_files(source, path)  # a folder: its files, of the selected partitions
            if selected is None and not any(glob.iglob(str(path), recursive=True)):
                raise RunError(f"Source '{source.name}': no file matches '{path}'; check the path in its definition")
            reader = self.spark.read
            paths = [str(path)] if selected is None else [str(f) for f in selected]
            if selected is not None:  # column=value folders below the source's folder are columns
                reader = reader.option("basePath", str(path))
            if source.file_format == "parquet":
                frame = reader.parquet(*paths)
            else:
                frame = reader.option("header", True).option("inferSchema", True).csv(paths)
        elif isinstance(source, SqlSource):
            for up in source.sources:
                self._register_source(up, lower=None, upper=upper, done=done)
            frame = self.spark.sql(to_spark_sql(source.query, what=f"Source '{source.name}'"))
        else:  # pragma: no cover - definitions reject other types
            raise RunError(f"Source '{source}' has an unknown kind")
        if source.timestamp_field and upper is not None:
            frame = frame.where(F.col(_quote(source.timestamp_field)) < F.lit(upper))
        if source.timestamp_field and lower is not None:
            frame = frame.where(F.col(_quote(source.timestamp_field)) >= F.lit(lower))
        frame.createOrReplaceTempView(source.name)
        done.add(source.name)

    def _transform(self, view: FeatureView) -> DataFrame:
        t = view.transformation
        if t is None:
            return self.spark.table(_quote(view.source.name))
        if isinstance(t, StoredTransformation):
            raise RunError(
                f"Feature view '{view.name}' was loaded from the registry; run it from the project's definition files"
            )
        if isinstance(t, str):
            return self.spark.sql(to_spark_sql(t, what=f"Feature view '{view.name}'"))
        return self._apply_pandas(view)

    def _apply_pandas(self, view: FeatureView) -> DataFrame:
        source = self.spark.table(_quote(view.source.name))
        missing = [k for k in view.join_keys if k not in source.columns]
        if missing:
            raise RunError(
                f"Feature view '{view.name}': on Spark a pandas transformation runs once per entity (grouped by "
                f"the join keys), but its source '{view.source.name}' lacks {missing}; write it as SQL instead"
            )
        function = view.transformation
        if not callable(function) or isinstance(function, str | StoredTransformation):  # pragma: no cover
            raise RunError(f"Feature view '{view.name}': its transformation is not a pandas function")
        _by_value(function)
        stub = _storable(view)
        name = view.name

        def apply(group: pa.Table) -> pa.Table:
            result = function(group.to_pandas())
            if not isinstance(result, pd.DataFrame):
                raise RunError(
                    f"Feature view '{name}': the transformation returned {type(result).__name__}, not a pandas DataFrame"
                )
            return conform(stub, pa.Table.from_pandas(result, preserve_index=False))

        grouped = source.groupBy(*[_quote(k) for k in view.join_keys])
        return grouped.applyInArrow(apply, spark_schema(view))

    def _computed(self, view: FeatureView, start: datetime | None = None, end: datetime | None = None) -> DataFrame:
        """The view's rows with event time in ``[start, end)``, conformed, one per (keys, event
        time), the later row of the transformation's output winning (as locally). Rows with a null
        key or event time are kept whatever their time, for :meth:`compute` to refuse them."""
        lower = None
        if start is not None and view.source_lookback is not None:
            lower = start - view.source_lookback
        self._register_source(view.source, lower=lower, upper=end, done=set())
        raw = self._transform(view).withColumn("__i", F.monotonically_increasing_id())
        frame = raw.select(*_conformed(raw, view), "__i")
        ts = F.col(_quote(view.timestamp_field))
        unusable = ts.isNull()
        for k in view.join_keys:
            unusable = unusable | F.col(_quote(k)).isNull()
        keep = F.lit(True)
        if start is not None:
            keep = keep & (ts >= F.lit(start))
        if end is not None:
            keep = keep & (ts < F.lit(end))
        frame = frame.where(keep | unusable)
        latest = Window.partitionBy(*[_quote(c) for c in (*view.join_keys, view.timestamp_field)]).orderBy(
            F.col("__i").desc()
        )
        return frame.withColumn("__n", F.row_number().over(latest)).where("__n = 1").drop("__n", "__i")

    # ------------------------------------------------------------------ the pipeline's engine

    def start(self) -> None:
        """Start (or join) the Spark session; a Hive offline store publishes through it."""
        session = self.spark
        offline = self.store.offline_store
        if isinstance(offline, HiveOfflineStore):
            offline.spark = session

    def compute(self, view: FeatureView, start: datetime | None, end: datetime | None, scratch: Path) -> DataFrame:
        """The view's rows (see :meth:`_computed`), written once under ``scratch`` and read back:
        the quality gate and the offline files then see the same materialized rows. Rows with a
        null key or event time are refused, as the embedded engine does."""
        computed = scratch / "computed"
        _write_partitioned(self._computed(view, start, end), view, computed)
        self._refuse_nulls(view, computed)
        frame = self._read_staged(view, computed)
        self._materialized[id(frame)] = computed
        return frame

    def write_partitions(self, view: FeatureView, frame: DataFrame, folder: Path) -> Mapping[str, Path]:
        """One Parquet file per date: the files :meth:`compute` wrote when ``frame`` is its frame
        (nothing quarantined), else ``frame`` written anew."""
        source = self._materialized.pop(id(frame), None)
        if source is None:
            source = folder / "spark"
            _write_partitioned(frame, view, source)
        folder.mkdir(parents=True, exist_ok=True)
        out: dict[str, Path] = {}
        for part_dir in sorted(source.glob("__date=*")):
            day = part_dir.name[len("__date=") :]
            parts = sorted(part_dir.glob("*.parquet"))
            if not parts:
                continue
            target = folder / f"{day}.parquet"
            if len(parts) == 1:
                os.replace(parts[0], target)
            else:  # more than one task wrote the date (never with the repartition of _write_partitioned)
                pq.write_table(pa.concat_tables([pq.read_table(p) for p in parts]), target)
            out[day] = target
        return out

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
        """Run the view over ``[start, end)`` on Spark through the run pipeline (``etl.runs.run_view``)."""
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
            describe_error=_spark_error,
        )

    def _read_staged(self, view: FeatureView, folder: Path) -> DataFrame:
        """Rows written by :func:`_write_partitioned`, without its ``__date`` folders' column.
        With the schema given, a folder without any file (a window without rows) reads as empty."""
        schema = spark_schema(view)
        return self.spark.read.schema(schema).parquet(str(folder)).select(*[_quote(f.name) for f in schema.fields])

    def _refuse_nulls(self, view: FeatureView, folder: Path) -> None:
        """Refuse computed rows with a null key or event time, as the embedded engine does."""
        rows = self._read_staged(view, folder)
        columns = (*view.join_keys, view.timestamp_field)
        counts = rows.agg(*[F.count(F.when(F.col(_quote(c)).isNull(), 1)).alias(c) for c in columns]).collect()[0]
        for col in columns:
            if counts[col]:
                raise RunError(
                    f"Feature view '{view.name}': {counts[col]} computed row(s) have a null '{col}'; "
                    "filter them out in the transformation"
                )

    def hive_table(self, view: str) -> DataFrame:
        """A view's Hive table as a Spark DataFrame (the Hive offline store only)."""
        offline = self.store.offline_store
        if not isinstance(offline, HiveOfflineStore):
            raise InvalidRequestError("The project's offline store is not Hive: read it with the SDK instead")
        return self.spark.table(offline.table(view))

    # ------------------------------------------------------------------ training sets

    def offline_frame(self, view: FeatureView, features: Sequence[str] | None = None) -> DataFrame:
        """A view's published offline rows (through the manifest, as the SDK reads them)."""
        files = [str(f) for f in self.store.offline_store.files(view)]
        columns = [*view.join_keys, view.timestamp_field, *(features if features is not None else view.feature_names)]
        if not files:
            return self.spark.createDataFrame([], spark_schema(view)).select(*[_quote(c) for c in columns])
        return self.spark.read.schema(spark_schema(view)).parquet(*files).select(*[_quote(c) for c in columns])

    def _requests(self, features: Sequence[str] | FeatureService | str) -> list[ViewRequest]:
        if isinstance(features, str) and ":" not in features:
            services = self.store.feature_services()
            if features in services:
                features = services[features]
        if isinstance(features, str):
            features = [features]
        return resolve_features(self.store.feature_views(), features, project=self.store.project)

    def _spine(
        self,
        spine: DataFrame | pa.Table | pd.DataFrame | str | Path,
        timestamp_column: str,
        requests: Sequence[ViewRequest],
    ) -> DataFrame:
        """The spine as a Spark DataFrame with ``__row_id`` (its order), a UTC timestamp and keys
        cast to their entities' types; errors as the SDK's ``normalize_spine`` gives them."""
        if isinstance(spine, pa.Table | pd.DataFrame):
            table = normalize_spine(spine, timestamp_column, requests)
            table = table.append_column("__row_id", pa.array(range(table.num_rows), pa.int64()))
            return self.spark.createDataFrame(table)
        frame = self.spark.read.parquet(str(spine)) if isinstance(spine, str | Path) else spine
        if timestamp_column not in frame.columns:
            raise InvalidRequestError(
                f"The spine has no timestamp column '{timestamp_column}'. It has columns {frame.columns}; "
                "name the column with timestamp_column=..."
            )
        missing = sorted({k for r in requests for k in r.view.join_keys if k not in frame.columns})
        if missing:
            raise InvalidRequestError(
                f"The spine lacks entity key column(s) {missing} needed by the requested features; "
                f"it has columns {frame.columns}"
            )
        ts_type = frame.schema[timestamp_column].dataType
        if isinstance(ts_type, T.TimestampNTZType):
            raise InvalidRequestError(
                f"The spine's timestamp column '{timestamp_column}' has no time zone (TIMESTAMP_NTZ); give "
                "timezone-aware times, e.g. in UTC"
            )
        frame = frame.withColumn(timestamp_column, _as_utc_timestamp(frame[timestamp_column], ts_type))
        for r in requests:
            for key, vtype in r.view.key_schema.items():
                if frame.schema[key].dataType != spark_type(vtype):
                    frame = frame.withColumn(key, frame[key].cast(spark_type(vtype)))
        return frame.withColumn("__row_id", F.monotonically_increasing_id())

    def get_training_set(
        self,
        spine: DataFrame | pa.Table | pd.DataFrame | str | Path,
        features: Sequence[str] | FeatureService | str,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        out: str | Path | None = None,
    ) -> DataFrame:
        """Point-in-time correct features for every spine row, as the SDK's ``get_training_set``
        gives them (same rows, in the spine's order, same values and nulls), computed on Spark.

        ``spine``: a Spark DataFrame, Parquet files (a path), or an Arrow/pandas table. With
        ``out``, the result is also written there as Parquet (read it back with any reader)."""
        requests = self._requests(features)
        names = output_names(requests, full_feature_names)
        frame = self._spine(spine, timestamp_column, requests)
        clash = [n for n in names.values() if n in frame.columns]
        if clash:
            raise InvalidRequestError(
                f"The spine already has column(s) {clash} named like requested features; rename them or ask for "
                "full feature names"
            )
        spine_columns = [c for c in frame.columns if c != "__row_id"]
        spine_ts = F.col(_quote(timestamp_column))
        for r in requests:
            keys = [_quote(k) for k in r.view.join_keys]
            rows = self.offline_frame(r.view, r.features)
            struct = F.struct(
                F.col(_quote(r.view.timestamp_field)).alias("__ts"), *[F.col(_quote(f)) for f in r.features]
            )
            feature_rows = rows.select(*keys, F.col(_quote(r.view.timestamp_field)).alias("__t"), struct.alias("__fv"))
            feature_rows = feature_rows.withColumn("__side", F.lit(0))
            spine_rows = frame.withColumn("__t", spine_ts).withColumn("__side", F.lit(1))
            union = spine_rows.unionByName(feature_rows, allowMissingColumns=True)
            # At an equal time the feature row sorts first: a value "at or before" the spine row.
            window = (
                Window.partitionBy(*keys)
                .orderBy("__t", "__side")
                .rowsBetween(Window.unboundedPreceding, Window.currentRow)
            )
            latest = F.last("__fv", ignorenulls=True).over(window)
            joined = union.withColumn("__m", latest).where("__side = 1")
            ttl_us = int(r.view.ttl.total_seconds() * 1_000_000)
            age_us = F.unix_micros(spine_ts) - F.unix_micros(F.col("__m.__ts"))
            fresh = F.col("__m.__ts").isNotNull() & (age_us <= F.lit(ttl_us))
            for f in r.features:
                joined = joined.withColumn(
                    names[(r.view.name, f)],
                    F.when(fresh, F.col(f"__m.{_quote(f)}")).cast(spark_type(r.view.feature(f).dtype)),
                )
            frame = joined.drop("__m", "__t", "__side", "__fv")
        ordered = [*spine_columns, *names.values()]
        result = frame.orderBy("__row_id").select(*[_quote(c) for c in ordered])
        if out is not None:
            result.write.mode("overwrite").parquet(str(out))
            return self.spark.read.parquet(str(out))
        return result
