"""The offline store as Hive tables: one table per feature view, partitioned by date.

The tables hold the same rows as the Parquet store, in the same manifest-driven layout with one
folder per run inside each date partition (a Hive partition is a folder, and a run's file must
not share it with the file it replaces while readers may still read that one)::

    <root>/<view>/date=2024-03-01/<run id>/part-0.parquet   the partition's data, one run's folder
    <root>/<view>/_manifest.json                              what the SDK reads (see parquet.py)

``<root>`` is the configured ``path`` for external tables (the default), or the database's
folder in the Spark warehouse (``<warehouse>/<database>.db``) for managed tables.

Two kinds of readers, two ways to see a run all at once:

* The SDK (training sets, reference data, consistency checks, the datamart API) reads the files
  through the manifest with DuckDB, exactly like the Parquet store's; no Spark needed. A run
  becomes visible to it in one ``os.replace`` of the manifest.
* Spark, Hive, Trino... read the table through the metastore. A run swaps each partition of its
  window to its new folder (``ALTER TABLE ... PARTITION ... SET LOCATION``) and drops the window's
  partitions that became empty, only after everything was written: a failed run changes nothing.

The metastore is part of this store's publish: ``commit`` points the metastore's partitions at
the run's folders, then swaps the manifest; ``recover`` (at the start of every run and repair)
brings the metastore in line with the manifest, so it converges even after a crash between the
two. Talking to the metastore needs a SparkSession with Hive support: the Spark engine's (the
engine attaches it), so only runs on Spark publish here.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from featurestore.definitions import FeatureView
from featurestore.errors import ConfigError, RunError
from featurestore.offline import PublishIntent
from featurestore.offline.parquet import MANIFEST, PARTITION_COLUMN, ParquetOfflineStore, ParquetStagedPublish
from featurestore.types import ValueType

if TYPE_CHECKING:
    from featurestore.config import HiveOfflineConfig, ProjectConfig

log = logging.getLogger(__name__)

TABLE_TYPES = ("external", "managed")
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


def _local_path(location: str) -> Path:
    """A metastore location (``file:/a/b``) as a path, to compare with the manifest's folders."""
    parsed = urlparse(location)
    return Path(parsed.path if parsed.scheme in ("file", "") else location).resolve()


def _database_name(name: str) -> str:
    """A Hive database name from a project name: lower case letters, digits and underscores."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


class HiveOfflineStore(ParquetOfflineStore):
    """Offline store of Hive tables over Parquet files (see the module docs for the layout)."""

    def __init__(
        self,
        root: str | Path,
        *,
        database: str,
        table_type: str = "external",
        warehouse: str | Path = "data/warehouse",
        metastore: str | Path = "data/metastore",
        metastore_uri: str = "",
    ) -> None:
        super().__init__(root)
        if table_type not in TABLE_TYPES:
            raise ConfigError(f"must be one of {list(TABLE_TYPES)}, got {table_type!r}", key="offline_store.table_type")
        self.database = _database_name(database)
        self.table_type = table_type
        self.warehouse = Path(warehouse)
        self.metastore = Path(metastore)
        self.metastore_uri = metastore_uri
        self.spark: Any = None
        """The SparkSession (with Hive support) the metastore is reached through: the Spark
        engine attaches its own; otherwise the process's active session."""

    @classmethod
    def from_config(cls, config: HiveOfflineConfig, project: ProjectConfig) -> HiveOfflineStore:
        database = _database_name(config.database or project.project)
        warehouse = project.resolve(config.warehouse).resolve()
        root = warehouse / f"{database}.db" if config.table_type == "managed" else project.resolve(config.path)
        return cls(
            root,
            database=database,
            table_type=config.table_type,
            warehouse=warehouse,
            metastore=project.resolve(config.metastore).resolve(),
            metastore_uri=config.metastore_uri,
        )

    accepts_pushes = False
    """Its partitions are the metastore's: published by Spark runs, never by a push."""

    def view_dir(self, view: FeatureView | str) -> Path:
        name = view if isinstance(view, str) else view.name
        # A managed table's folder is named by the metastore, which lower-cases names.
        return self.root / (name.lower() if self.table_type == "managed" else name)

    def lock_file(self, view: FeatureView, kind: str = "") -> Path:
        """The view's locks, in files beside (not inside) the view's folder: the metastore creates
        a managed table's folder and wants it empty."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / (f".{view.name}.{kind}.lock" if kind else f".{view.name}.lock")

    def table(self, view: FeatureView | str) -> str:
        """The view's table, quoted for Spark SQL: ``database``.``view``."""
        name = view if isinstance(view, str) else view.name
        return f"`{self.database}`.`{name.lower()}`"

    def partition_file(self, day: str, run_id: str) -> str:
        """Where a run's file of one date partition goes, relative to the view's folder."""
        return f"{PARTITION_COLUMN}={day}/{run_id}/part-0.parquet"

    def partition_locations(self, view: FeatureView | str) -> dict[str, Path]:
        """The folder of each published date partition, as the manifest says: what the
        metastore's partitions must point at."""
        base = self.view_dir(view).resolve()
        return {day: (base / rel).parent for day, rel in sorted(self._manifest(view)["partitions"].items())}

    def remove_orphans(self, view: FeatureView) -> list[Path]:
        """Delete run folders and files no manifest refers to (see the Parquet store)."""
        removed = super().remove_orphans(view)
        base = self.view_dir(view)
        manifest = self._manifest(view)
        known = set(manifest["partitions"].values()) | set(manifest.get("superseded", []))
        for path in sorted(base.glob(f"{PARTITION_COLUMN}=*/*/*")):
            if path.is_file() and str(path.relative_to(base)) not in known:
                path.unlink()
                removed.append(path)
        self._remove_empty_folders(base)
        return removed

    # ------------------------------------------------------------------ publishing, with the metastore

    def _session(self, view: FeatureView) -> Any:
        if self.spark is not None:
            return self.spark
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            session = None
        else:
            session = SparkSession.getActiveSession()
        if session is None:
            raise RunError(
                f"Feature view '{view.name}': the Hive offline store is published by the Spark engine; "
                "run with 'featurestore run --engine spark' (or set 'engine: spark' in featurestore.yaml)"
            )
        return session

    def recover(self, view: FeatureView) -> list[Path]:
        """As the Parquet store, then the metastore brought in line with the manifest (a run that
        died between its metastore swap and its manifest's left them apart)."""
        session = self._session(view)
        removed = super().recover(view)
        self.sync_metastore(view, self.partition_locations(view), session=session)
        return removed

    def _commit(self, staged: ParquetStagedPublish) -> PublishIntent:
        view = staged.view
        after = self.partition_locations(view)
        base = self.view_dir(view).resolve()
        for day in staged.removed_partitions:
            after.pop(day, None)
        after.update({day: (base / rel).parent for day, rel in staged.new_partitions.items()})
        # The metastore first: a crash before the manifest swap is undone by the next recover().
        try:
            self.sync_metastore(view, after)
            intent = super()._commit(staged)
        except BaseException:
            if not staged.committed:  # back to what the manifest still says, before the files go
                with contextlib.suppress(Exception):
                    self.sync_metastore(view, self.partition_locations(view))
            raise
        with contextlib.suppress(OSError):  # tidying only: recover() does it again
            self._remove_empty_folders(self.view_dir(view))
        return intent

    def _revert(self, staged: ParquetStagedPublish) -> None:
        super()._revert(staged)
        try:
            self.sync_metastore(staged.view, self.partition_locations(staged.view))
        except Exception as err:  # the next run's recover() converges anyway
            log.warning("feature view '%s': the metastore could not be reverted yet: %s", staged.view.name, err)

    def sync_metastore(self, view: FeatureView, partitions: Mapping[str, Path], *, session: Any = None) -> None:
        """Make the view's Hive table exist with the view's schema, and its partitions exactly
        ``partitions`` (date -> folder): adds, location swaps and drops, nothing else touched."""
        spark = session or self._session(view)
        table = self.table(view)
        name = f"{self.database}.{view.name.lower()}"
        db_location = self.root if self.table_type == "managed" else self.warehouse / f"{self.database}.db"
        if not spark.catalog.databaseExists(self.database):
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(self.database)} LOCATION {_sql_string(str(db_location))}")
        types = [*view.key_schema.items(), (view.timestamp_field, ValueType.TIMESTAMP)]
        types.extend((f.name, f.dtype) for f in view.features)
        columns = [(n, _HIVE_TYPES[t]) for n, t in types]
        if spark.catalog.tableExists(name):
            have = [(c.name, c.dataType.upper()) for c in spark.catalog.listColumns(name) if not c.isPartition]
            if have != [(n.lower(), t) for n, t in columns]:
                if self.table_type == "managed":
                    raise RunError(
                        f"Feature view '{view.name}': its columns changed, but its managed Hive table {table} has "
                        "the old ones, and dropping a managed table deletes its data. Drop it yourself "
                        f"(DROP TABLE {table}) to start the view afresh, or use external tables"
                    )
                log.info("feature view '%s': its Hive table's columns changed; recreating %s", view.name, table)
                spark.sql(f"DROP TABLE {table}")  # external: the files stay
        kind = "EXTERNAL TABLE" if self.table_type == "external" else "TABLE"
        location = f" LOCATION {_sql_string(str(self.view_dir(view).resolve()))}" if kind == "EXTERNAL TABLE" else ""
        ddl_columns = ", ".join(f"{_quote(n)} {t}" for n, t in columns)
        spark.sql(
            f"CREATE {kind} IF NOT EXISTS {table} ({ddl_columns}) "
            f"PARTITIONED BY ({_quote(PARTITION_COLUMN)} DATE) STORED AS PARQUET{location}"
        )
        current = self._metastore_partitions(spark, view)
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
            spark.catalog.refreshTable(name)

    def _metastore_partitions(self, spark: Any, view: FeatureView) -> dict[str, Path]:
        """The table's partitions and their folders, as the metastore has them (one call)."""
        jvm = spark.sparkContext._jvm
        catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()
        partitions = catalog.listPartitions(self.database, view.name.lower(), jvm.scala.Option.empty())
        out: dict[str, Path] = {}
        for i in range(partitions.size()):
            p = partitions.apply(i)
            out[str(p.spec().apply(PARTITION_COLUMN))] = _local_path(str(p.location()))
        return out

    @staticmethod
    def _remove_empty_folders(base: Path) -> None:
        for d in sorted(base.glob(f"{PARTITION_COLUMN}=*/*"), reverse=True):
            if d.is_dir():
                with contextlib.suppress(OSError):  # not empty
                    d.rmdir()
        for d in base.glob(f"{PARTITION_COLUMN}=*"):
            with contextlib.suppress(OSError):
                d.rmdir()

    def describe(self) -> dict[str, Any]:
        """Where things are, for logs and the demo."""
        return {
            "database": self.database,
            "table_type": self.table_type,
            "root": str(self.root),
            "warehouse": str(self.warehouse),
            "metastore": self.metastore_uri or str(self.metastore),
            "manifest": MANIFEST,
        }
