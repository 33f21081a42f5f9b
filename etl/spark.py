"""The Spark engine: the same feature views, run on Spark, for data that outgrows one machine.

A run does what the embedded engine's does (``etl/local.py``), with the same outcome:

1. **Compute** the view over its window: a SQL transformation (written in DuckDB's dialect, as
   every definition is) runs as Spark SQL after translation (``etl/spark_sql.py``); a pandas
   transformation runs once per entity with ``applyInArrow`` over the join keys, so it must
   compute an entity's rows from that entity's source rows only. Duplicate (keys, event time)
   rows are resolved as locally: the later row of the transformation's output wins.
2. **Stage offline**: the rows (plus the rows of the window's boundary partitions that lie
   outside the window) are written as one Parquet file per date partition into a staging folder
   beside the view, then moved into the store's layout: still invisible to readers.
3. **Write online** from the executors, partition by partition (``mapInArrow``), the newest row
   per entity read back from the staged files, so online and offline hold the same rows. The
   stores keep "newer event time wins". The embedded SQLite store is one file on the driver's
   machine: it is written by one task in one transaction (all or nothing, as locally), which
   works in ``local[*]`` and on a cluster whose executors share the driver's filesystem; use
   Redis or Cassandra on a real cluster.
4. **Publish offline** at once: the Parquet store's manifest swap; for the Hive store, the
   metastore's partitions of the window are pointed at the new folders first, then the manifest.

It holds the view's publish lock from start to end and records the run in the registry, as the
embedded engine does; a failure publishes nothing offline and records the run as failed.

Training sets (:meth:`SparkEngine.get_training_set`) have the embedded engine's point-in-time
semantics without an as-of join: the spine and the view's rows are unioned, and a window over
each entity ordered by time carries the latest feature row to each spine row.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.local import ONLINE_BATCH_ROWS
from etl.runs import RunResult, check_window, recorded_run, view_to_run
from etl.spark_sql import to_spark_sql
from featurestore.config import ProjectConfig, SparkEngineConfig
from featurestore.definitions import FeatureService, FeatureView, FileSource, Source, SqlSource, StoredTransformation
from featurestore.errors import InvalidRequestError, RunError
from featurestore.offline.hive import PARTITION_COLUMN, HiveOfflineStore
from featurestore.offline.parquet import ParquetOfflineStore, StagedPublish
from featurestore.retrieval import ViewRequest, normalize_spine, output_names, resolve_features
from featurestore.schema import conform, view_schema
from featurestore.store import FeatureStore, create_online_store
from featurestore.types import ValueType
from quality.checked_run import check_run

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

DEFAULT_CONF: dict[str, str] = {
    # Every time is UTC: a CAST(ts AS DATE) must not depend on where the driver runs.
    "spark.sql.session.timeZone": "UTC",
    # Parquet timestamps as the Parquet store writes them (INT64 µs, UTC), not Spark's INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}

_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = fatal
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.hive.name = org.apache.hadoop.hive
logger.hive.level = error
logger.metastore.name = org.apache.spark.sql.hive
logger.metastore.level = error
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = error
logger.shutdown.name = org.apache.spark.util.ShutdownHookManager
logger.shutdown.level = error
logger.blockmanager.name = org.apache.spark.storage.BlockManager
logger.blockmanager.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
"""

_SPARK_TYPES: dict[ValueType, T.DataType] = {
    ValueType.INT64: T.LongType(),
    ValueType.FLOAT64: T.DoubleType(),
    ValueType.STRING: T.StringType(),
    ValueType.BOOL: T.BooleanType(),
    ValueType.TIMESTAMP: T.TimestampType(),
}
_HIVE_TYPES = {
    ValueType.INT64: "BIGINT",
    ValueType.FLOAT64: "DOUBLE",
    ValueType.STRING: "STRING",
    ValueType.BOOL: "BOOLEAN",
    ValueType.TIMESTAMP: "TIMESTAMP",
}


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _log4j_file() -> Path:
    path = Path(tempfile.gettempdir()) / "featurestore-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_LOG4J)
        os.replace(tmp, path)
    return path


def _under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands the Python driver its gateway.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(
    config: ProjectConfig, engine: SparkEngineConfig | None = None, *, hive: HiveOfflineStore | None = None
) -> SparkSession:
    """The process's SparkSession, created from the project's config when there is none yet:
    ``engine.master`` (``local[*]`` unless ``spark-submit`` gave one), ``engine.conf``, quiet
    logs, UTC, and the Hive metastore of ``hive`` (Derby in its folder, or its URI)."""
    engine = engine or (config.engine if isinstance(config.engine, SparkEngineConfig) else SparkEngineConfig())
    active = SparkSession.getActiveSession()
    if active is not None:
        if hive is not None and active.conf.get("spark.sql.catalogImplementation", "in-memory") != "hive":
            raise RunError(
                "The Hive offline store needs a SparkSession with Hive support, but this process already "
                "runs one without it; build it with .enableHiveSupport() or let the engine create it"
            )
        return active
    master = engine.master or ("" if _under_spark_submit() else "local[*]")
    if master.startswith("local") or "127.0.0.1" in master or "localhost" in master:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers run this interpreter, which has the project installed (pyspark reads the
    # variable, not the spark.pyspark.python setting, when it starts the context itself).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf: dict[str, str] = {
        **DEFAULT_CONF,
        "spark.app.name": f"featurestore-{config.project}",
        # Executors run Python with this interpreter, which has the project installed.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    java_options = [f"-Dlog4j2.configurationFile=file:{_log4j_file()}"]
    if hive is not None:
        hive.metastore.mkdir(parents=True, exist_ok=True)
        hive.warehouse.mkdir(parents=True, exist_ok=True)
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.sql.warehouse.dir"] = str(hive.warehouse)
        if hive.metastore_uri:
            conf["spark.hadoop.hive.metastore.uris"] = hive.metastore_uri
        else:
            url = f"jdbc:derby:;databaseName={hive.metastore / 'metastore_db'};create=true"
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = url
            java_options.append(f"-Dderby.system.home={hive.metastore}")
    for key, value in engine.conf.items():
        conf[key] = str(value).lower() if isinstance(value, bool) else str(value)
    user_options = conf.get("spark.driver.extraJavaOptions", "")
    conf["spark.driver.extraJavaOptions"] = " ".join([*java_options, user_options]).strip()
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if hive is not None:
        builder = builder.enableHiveSupport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    if hive is not None and not hive.metastore_uri and session.sparkContext._jvm is not None:
        # Derby writes derby.log in its home, read when the metastore first boots; a JVM started
        # before (by an earlier session in this process) lacks the -D option above.
        session.sparkContext._jvm.java.lang.System.setProperty("derby.system.home", str(hive.metastore))
    return session


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


def _local_path(location: str) -> Path:
    """A metastore location (``file:/a/b``) as a path, to compare with the manifest's folders."""
    parsed = urlparse(location)
    return Path(parsed.path if parsed.scheme in ("file", "") else location).resolve()


class SparkEngine:
    """Runs feature views on Spark (see the module docs). ``spark``: an existing session to use
    (tests share one); otherwise one is created from the project's config on first use."""

    name = "spark"

    def __init__(
        self, store: FeatureStore, *, spark: SparkSession | None = None, config: SparkEngineConfig | None = None
    ) -> None:
        self.store = store
        self.root = store.config.root
        engine = store.config.engine
        self.config = config or (engine if isinstance(engine, SparkEngineConfig) else SparkEngineConfig())
        self._spark = spark

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
            if not any(path.parent.glob(path.name)):
                raise RunError(f"Source '{source.name}': no file matches '{path}'; check the path in its definition")
            reader = self.spark.read
            if source.file_format == "parquet":
                frame = reader.parquet(str(path))
            else:
                frame = reader.option("header", True).option("inferSchema", True).csv(str(path))
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

    def compute(self, view: FeatureView, start: datetime | None = None, end: datetime | None = None) -> DataFrame:
        """The view's rows with event time in ``[start, end)``, conformed, one per (keys, event
        time), the later row of the transformation's output winning (as locally). Rows with a null
        key or event time are kept whatever their time, for :meth:`run` to refuse them."""
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
        staging = offline.view_dir(view) / STAGING

        def remove_staging() -> list[Path]:  # under the lock: only this run stages
            found = staging.exists()
            shutil.rmtree(staging, ignore_errors=True)
            return [staging] if found else []

        with recorded_run(
            self.store,
            view,
            engine=self.name,
            start=start,
            end=end,
            progress=progress,
            remove_leftovers=remove_staging,
            describe_error=_spark_error,
        ) as run:
            run.on_failure(remove_staging)
            timings, bar = run.timings, run.bar
            run_dir = staging / run.run_id
            if isinstance(offline, HiveOfflineStore):
                # Converge after a crash between a metastore swap and the manifest's.
                self._sync_metastore(offline, view, offline.partition_locations(view))
            t0 = time.perf_counter()
            bar.set_postfix_str("computing and staging offline")
            # The computed rows are written once, then read back: every later step (the
            # quality gate, offline, online) sees the same materialized rows.
            computed_dir = run_dir / "computed"
            _write_partitioned(self.compute(view, start, end), view, computed_dir)
            self._refuse_nulls(view, computed_dir)
            timings["compute_s"] = time.perf_counter() - t0
            bar.set_postfix_str("checking")
            computed = self._read_staged(view, computed_dir)
            checked = check_run(self.store, view, computed, run_id=run.run_id, end=end, quarantine=quarantine)
            timings.update(checked.timings)
            bar.update()
            t0 = time.perf_counter()
            final_dir = computed_dir
            kept = self._kept_rows(offline, view, start=start, end=end)
            if checked.rows_quarantined or kept is not None:
                final_dir = run_dir / "publish"
                publish = checked.frame if kept is None else kept.unionByName(checked.frame)
                _write_partitioned(publish, view, final_dir)
            rows, watermark = self._staged_stats(view, final_dir, start=start, end=end)
            staged = self._stage(
                offline, view, final_dir, run.run_id, rows=rows, watermark=watermark, start=start, end=end
            )
            if isinstance(offline, HiveOfflineStore):

                def restore_metastore() -> None:  # best effort: the next run converges anyway
                    with contextlib.suppress(Exception):
                        self._sync_metastore(offline, view, offline.partition_locations(view))

                run.on_failure(restore_metastore)
            run.on_failure(staged.abort)
            timings["offline_stage_s"] = time.perf_counter() - t0
            bar.update()
            t0 = time.perf_counter()
            written = skipped = 0
            if view.online:
                bar.set_postfix_str("writing online from the executors")
                run.online_started = True
                written, skipped = self._write_online(view, staged, start=start, end=end)
            timings["online_write_s"] = time.perf_counter() - t0
            bar.update()
            t0 = time.perf_counter()
            if isinstance(offline, HiveOfflineStore):
                after = offline.partition_locations(view)
                base = offline.view_dir(view).resolve()
                for day in staged.removed_partitions:
                    after.pop(day, None)
                after.update({day: (base / rel).parent for day, rel in staged.new_partitions.items()})
                self._sync_metastore(offline, view, after)
            staged.commit()
            timings["offline_publish_s"] = time.perf_counter() - t0
            bar.update()
            remove_staging()
            run.succeeded(
                rows_computed=checked.rows_computed,
                rows_offline=rows,
                rows_online=written,
                rows_online_skipped_older=skipped,
                watermark=watermark,
                quality=checked.report.status,
                rows_quarantined=checked.rows_quarantined,
            )
        return run.result

    @staticmethod
    def _boundary_days(start: datetime | None, end: datetime | None) -> set[str]:
        """Date partitions the window covers only in part: their rows outside it are kept."""
        days = set()
        if start is not None and start.astimezone(UTC).time() != datetime.min.time():
            days.add(start.astimezone(UTC).date().isoformat())
        if end is not None and end.astimezone(UTC).time() != datetime.min.time():
            days.add(end.astimezone(UTC).date().isoformat())
        return days

    def _kept_rows(
        self, offline: ParquetOfflineStore, view: FeatureView, *, start: datetime | None, end: datetime | None
    ) -> DataFrame | None:
        """The published rows of the window's boundary partitions that lie outside the window:
        the run rewrites those partitions and keeps them (as the Parquet store's ``stage``)."""
        base = offline.view_dir(view)
        days = self._boundary_days(start, end)
        files = [str(f) for f in offline.files(view) if f.relative_to(base).parts[0][5:] in days]
        if not files:
            return None
        ts = F.col(_quote(view.timestamp_field))
        outside = F.lit(False)
        if start is not None:
            outside = outside | (ts < F.lit(start))
        if end is not None:
            outside = outside | (ts >= F.lit(end))
        return self.spark.read.schema(spark_schema(view)).parquet(*files).where(outside)

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

    def _staged_stats(
        self, view: FeatureView, run_dir: Path, *, start: datetime | None, end: datetime | None
    ) -> tuple[int, datetime | None]:
        """Rows of the run's window and their newest event time."""
        staged = self._read_staged(view, run_dir)
        ts = F.col(_quote(view.timestamp_field))
        in_window = F.lit(True)
        if start is not None:
            in_window = in_window & (ts >= F.lit(start))
        if end is not None:
            in_window = in_window & (ts < F.lit(end))
        aggregates = [F.count(F.when(in_window, 1)).alias("rows"), F.max(F.when(in_window, ts)).alias("watermark")]
        stats = staged.agg(*aggregates).collect()[0].asDict()
        watermark = stats["watermark"]
        if isinstance(watermark, datetime):
            # Spark hands back naive datetimes in the session's time zone (UTC).
            watermark = watermark.replace(tzinfo=UTC) if watermark.tzinfo is None else watermark.astimezone(UTC)
        return int(stats["rows"]), watermark

    def _stage(
        self,
        offline: ParquetOfflineStore,
        view: FeatureView,
        run_dir: Path,
        run_id: str,
        *,
        rows: int,
        watermark: datetime | None,
        start: datetime | None,
        end: datetime | None,
    ) -> StagedPublish:
        """Move the staged files into the store's layout (still invisible: the manifest has not
        changed) and describe the publish as the Parquet store's own ``stage`` would."""
        existing: dict[str, str] = offline._manifest(view)["partitions"]
        if start is None and end is None:
            affected = set(existing)
        else:
            lo = (start or datetime.min.replace(tzinfo=UTC)).astimezone(UTC).date()
            hi = (end - timedelta(microseconds=1) if end else datetime.max.replace(tzinfo=UTC)).astimezone(UTC).date()
            affected = {d for d in existing if lo <= datetime.fromisoformat(d).date() <= hi}
        staged = StagedPublish(offline, view, run_id, {}, [], rows, watermark=watermark)
        base = offline.view_dir(view)
        try:
            for folder in sorted(run_dir.glob("__date=*")):
                day = folder.name[len("__date=") :]
                parts = sorted(folder.glob("*.parquet"))
                if not parts:
                    continue
                rel = (
                    offline.partition_file(day, run_id)
                    if isinstance(offline, HiveOfflineStore)
                    else f"{PARTITION_COLUMN}={day}/{run_id}.parquet"
                )
                target = base / rel
                for d in reversed([*target.relative_to(base).parents][:-1]):
                    if not (base / d).exists():
                        (base / d).mkdir()
                        staged.created_dirs.append(base / d)
                staged.staged_files.append(target)  # before moving: abort removes it too
                if len(parts) == 1:
                    os.replace(parts[0], target)
                else:  # more than one task wrote the date (never with the repartition above)
                    pq.write_table(pa.concat_tables([pq.read_table(p) for p in parts]), target)
                staged.new_partitions[day] = rel
            staged.removed_partitions.extend(sorted(affected - set(staged.new_partitions)))
        except BaseException:
            staged.abort()
            raise
        return staged

    def _write_online(
        self, view: FeatureView, staged: StagedPublish, *, start: datetime | None, end: datetime | None
    ) -> tuple[int, int]:
        """Write the newest row per entity of the run's rows online, from the executors."""
        base = staged.store.view_dir(view)
        files = [str(base / rel) for rel in staged.new_partitions.values()]
        if not files:
            return 0, 0
        rows = self.spark.read.schema(spark_schema(view)).parquet(*files)
        ts = F.col(_quote(view.timestamp_field))
        if start is not None:
            rows = rows.where(ts >= F.lit(start))
        if end is not None:
            rows = rows.where(ts < F.lit(end))
        newest = Window.partitionBy(*[_quote(k) for k in view.join_keys]).orderBy(ts.desc())
        rows = rows.withColumn("__n", F.row_number().over(newest)).where("__n = 1").drop("__n")
        online = self.store.online_store
        transactional = bool(getattr(online, "transactional_writes", False))
        if transactional:
            # One task, one transaction: all or nothing, as the embedded engine writes it. (A
            # SQLite file is also written by one writer at a time.)
            rows = rows.coalesce(1)
        config = self.store.config
        stub = _storable(view)
        schema = view_schema(view)

        def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            store = create_online_store(config)
            written = skipped = 0
            try:
                pending: list[pa.RecordBatch] = []
                for batch in batches:
                    pending.append(batch)
                    if not transactional and sum(b.num_rows for b in pending) >= ONLINE_BATCH_ROWS:
                        stats = store.write(stub, pa.Table.from_batches(pending).cast(schema))
                        written, skipped, pending = written + stats.written, skipped + stats.skipped_older, []
                if pending:
                    stats = store.write(stub, pa.Table.from_batches(pending).cast(schema))
                    written, skipped = written + stats.written, skipped + stats.skipped_older
            finally:
                store.close()
            yield pa.RecordBatch.from_pydict({"written": [written], "skipped": [skipped]})

        result = rows.mapInArrow(write, "written long, skipped long").agg(
            F.sum("written").alias("written"), F.sum("skipped").alias("skipped")
        )
        totals = result.collect()[0]
        return int(totals["written"] or 0), int(totals["skipped"] or 0)

    # ------------------------------------------------------------------ Hive metastore

    def _sync_metastore(self, store: HiveOfflineStore, view: FeatureView, partitions: Mapping[str, Path]) -> None:
        """Make the view's Hive table exist with the view's schema, and its partitions exactly
        ``partitions`` (date -> folder): adds, location swaps and drops, nothing else touched."""
        spark = self.spark
        table = store.table(view)
        db_location = store.root if store.table_type == "managed" else store.warehouse / f"{store.database}.db"
        if not spark.catalog.databaseExists(store.database):
            spark.sql(
                f"CREATE DATABASE IF NOT EXISTS {_quote(store.database)} LOCATION {_sql_string(str(db_location))}"
            )
        columns = [(f.name, _HIVE_TYPES[vt]) for f, vt in self._typed_fields(view)]
        if spark.catalog.tableExists(f"{store.database}.{view.name.lower()}"):
            have = [
                (c.name, c.dataType.upper())
                for c in spark.catalog.listColumns(f"{store.database}.{view.name.lower()}")
                if not c.isPartition
            ]
            if have != [(n.lower(), t) for n, t in columns]:
                if store.table_type == "managed":
                    raise RunError(
                        f"Feature view '{view.name}': its columns changed, but its managed Hive table {table} has "
                        "the old ones, and dropping a managed table deletes its data. Drop it yourself "
                        f"(DROP TABLE {table}) to start the view afresh, or use external tables"
                    )
                log.info("feature view '%s': its Hive table's columns changed; recreating %s", view.name, table)
                spark.sql(f"DROP TABLE {table}")  # external: the files stay
        kind = "EXTERNAL TABLE" if store.table_type == "external" else "TABLE"
        location = f" LOCATION {_sql_string(str(store.view_dir(view).resolve()))}" if kind == "EXTERNAL TABLE" else ""
        ddl_columns = ", ".join(f"{_quote(n)} {t}" for n, t in columns)
        spark.sql(
            f"CREATE {kind} IF NOT EXISTS {table} ({ddl_columns}) "
            f"PARTITIONED BY ({_quote(PARTITION_COLUMN)} DATE) STORED AS PARQUET{location}"
        )
        current = self._partition_locations(store, view)
        wanted = {day: path.resolve() for day, path in partitions.items()}

        def spec(day: str) -> str:
            return f"PARTITION ({_quote(PARTITION_COLUMN)} = DATE {_sql_string(day)})"

        to_add = [d for d in sorted(wanted) if d not in current]
        to_move = [d for d in sorted(wanted) if d in current and current[d] != wanted[d]]
        to_drop = [d for d in sorted(current) if d not in wanted]
        for chunk in range(0, len(to_add), 100):
            adds = " ".join(f"{spec(d)} LOCATION {_sql_string(str(wanted[d]))}" for d in to_add[chunk : chunk + 100])
            spark.sql(f"ALTER TABLE {table} ADD IF NOT EXISTS {adds}")
        for d in to_move:
            spark.sql(f"ALTER TABLE {table} {spec(d)} SET LOCATION {_sql_string(str(wanted[d]))}")
        for chunk in range(0, len(to_drop), 100):
            drops = ", ".join(spec(d) for d in to_drop[chunk : chunk + 100])
            spark.sql(f"ALTER TABLE {table} DROP IF EXISTS {drops}")
        if to_add or to_move or to_drop:
            spark.catalog.refreshTable(f"{store.database}.{view.name.lower()}")

    @staticmethod
    def _typed_fields(view: FeatureView) -> list[tuple[T.StructField, ValueType]]:
        types = [*view.key_schema.values(), ValueType.TIMESTAMP, *(f.dtype for f in view.features)]
        return list(zip(spark_schema(view).fields, types, strict=True))

    def _partition_locations(self, store: HiveOfflineStore, view: FeatureView) -> dict[str, Path]:
        """The table's partitions and their folders, as the metastore has them (one call)."""
        jvm = self.spark.sparkContext._jvm
        if jvm is None:  # pragma: no cover - a running session has a JVM
            raise RunError("The SparkSession has stopped")
        catalog = self.spark._jsparkSession.sessionState().catalog().externalCatalog()
        partitions = catalog.listPartitions(store.database, view.name.lower(), jvm.scala.Option.empty())
        out: dict[str, Path] = {}
        for i in range(partitions.size()):
            p = partitions.apply(i)
            out[str(p.spec().apply(PARTITION_COLUMN))] = _local_path(str(p.location()))
        return out

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
