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

Only the Spark engine publishes to this store (it holds the metastore connection); the metastore
is brought in line with the manifest at every run, so it converges even after a crash between
the two. This module holds the file side; the metastore side is in ``etl/spark.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import ConfigError, RunError
from featurestore.offline.parquet import MANIFEST, ParquetOfflineStore, StagedPublish

if TYPE_CHECKING:
    from featurestore.config import HiveOfflineConfig, ProjectConfig

TABLE_TYPES = ("external", "managed")
PARTITION_COLUMN = "date"


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

    def view_dir(self, view: FeatureView | str) -> Path:
        name = view if isinstance(view, str) else view.name
        # A managed table's folder is named by the metastore, which lower-cases names.
        return self.root / (name.lower() if self.table_type == "managed" else name)

    @contextmanager
    def lock(self, view: FeatureView) -> Iterator[None]:
        """The view's publish lock, in a file beside (not inside) the view's folder: the
        metastore creates a managed table's folder and wants it empty."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = view if isinstance(view, str) else view.name
        with open(self.root / f".{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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

    def stage(
        self,
        view: FeatureView,
        rows: pa.Table,
        *,
        start: datetime | None,
        end: datetime | None,
        run_id: str | None = None,
    ) -> StagedPublish:
        raise RunError(
            f"Feature view '{view.name}': the Hive offline store is published by the Spark engine; "
            "run with 'featurestore run --engine spark' (or set 'engine: spark' in featurestore.yaml)"
        )

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

    def _commit(self, staged: StagedPublish) -> None:
        super()._commit(staged)
        self._remove_empty_folders(self.view_dir(staged.view))

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
