"""The Hive offline store, written by the Spark engine: one table per view in the project's
database, partitioned by date, each run swapping exactly its window's partitions after it has
written everything; the SDK reads the same rows through the manifest, without Spark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from spark_projects import (
    ALL_ROWS,
    NEWEST_ONLINE,
    TRANSACTIONS,
    VIEW,
    definitions,
    hive_offline,
    new_project,
    offline_rows,
    online_rows,
    utc,
    write_transactions,
)

from etl.spark import SparkEngine
from featurestore.errors import RunError
from featurestore.offline.hive import HiveOfflineStore
from featurestore.store import FeatureStore


def run(store: FeatureStore, spark: Any, **window: Any) -> Any:
    return SparkEngine(store, spark=spark).run(VIEW, definitions=definitions(store), progress=False, **window)


def table_rows(spark: Any, store: FeatureStore) -> list[tuple[Any, ...]]:
    offline = store.offline_store
    assert isinstance(offline, HiveOfflineStore)
    rows = spark.table(offline.table(VIEW)).toArrow()
    return sorted(zip(*(rows.column(c).to_pylist() for c in ("customer_id", "as_of", "spend", "n")), strict=True))


def partitions(spark: Any, store: FeatureStore) -> dict[str, str]:
    """Date -> location of the table's partitions, as the metastore has them."""
    offline = store.offline_store
    assert isinstance(offline, HiveOfflineStore)
    out = {}
    for (spec,) in spark.sql(f"SHOW PARTITIONS {offline.table(VIEW)}").collect():
        day = spec.split("=", 1)[1]
        info = spark.sql(f"DESCRIBE FORMATTED {offline.table(VIEW)} PARTITION (`date` = DATE '{day}')").collect()
        out[day] = next(r.data_type for r in info if r.col_name == "Location")
    return out


@pytest.mark.parametrize("table_type", ["external", "managed"])
def test_a_run_writes_a_hive_table_partitioned_by_date(tmp_path: Path, spark: Any, table_type: str) -> None:
    root = new_project(tmp_path / "cards", offline=hive_offline(table_type=table_type))
    with FeatureStore(root) as store:
        result = run(store, spark)
        assert result.rows_offline == 6
        offline = store.offline_store
        assert isinstance(offline, HiveOfflineStore)
        assert table_rows(spark, store) == ALL_ROWS
        # The SDK reads the same rows through the manifest, and online holds the newest.
        assert offline_rows(store) == ALL_ROWS
        assert online_rows(store) == NEWEST_ONLINE
        located = partitions(spark, store)
        assert sorted(located) == ["2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"]
        for day, location in located.items():
            assert location.endswith(f"/{VIEW}/date={day}/{result.run_id}")
        info = {r.col_name: r.data_type for r in spark.sql(f"DESCRIBE FORMATTED {offline.table(VIEW)}").collect()}
        assert info["Type"] == table_type.upper()
        assert info["Provider"] == "hive"
        if table_type == "managed":
            assert offline.root == offline.warehouse / f"{offline.database}.db"


def test_a_window_swaps_exactly_its_partitions(tmp_path: Path, spark: Any) -> None:
    root = new_project(tmp_path / "cards", offline=hive_offline())
    with FeatureStore(root) as store:
        first = run(store, spark)
        before = partitions(spark, store)
        write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])
        second = run(store, spark, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
        after = partitions(spark, store)
        assert {d for d in after if after[d] != before[d]} == {"2024-03-03"}
        assert after["2024-03-03"].endswith(second.run_id)
        assert after["2024-03-02"].endswith(first.run_id)
        expected = [r if r[0] != 3 else (3, utc(2024, 3, 3), 6.0, 1) for r in ALL_ROWS]
        assert table_rows(spark, store) == expected == offline_rows(store)

        # A window whose rows are gone: blocked (an empty source must not delete what is
        # published), then accepted: its partition is dropped, the others stay.
        write_transactions(root, [t for t in TRANSACTIONS if t[1] < utc(2024, 3, 4)])
        with pytest.raises(RunError, match="--allow-row-drop"):
            run(store, spark, start=utc(2024, 3, 5), end=utc(2024, 3, 6))
        assert table_rows(spark, store) == expected == offline_rows(store)
        run(store, spark, start=utc(2024, 3, 5), end=utc(2024, 3, 6), allow_row_drop=True)
        assert sorted(partitions(spark, store)) == ["2024-03-02", "2024-03-03", "2024-03-04"]
        assert table_rows(spark, store) == [r for r in expected if r[1] != utc(2024, 3, 5)] == offline_rows(store)


def test_a_failed_run_leaves_the_table_as_it_was(tmp_path: Path, spark: Any) -> None:
    root = new_project(tmp_path / "cards", offline=hive_offline())
    with FeatureStore(root) as store:
        run(store, spark)
        before = partitions(spark, store), table_rows(spark, store)
        write_transactions(root, [*TRANSACTIONS, (None, utc(2024, 3, 4, 9), 2.0)])
        with pytest.raises(RunError, match="null 'customer_id'"):
            run(store, spark)
        assert (partitions(spark, store), table_rows(spark, store)) == before
        assert offline_rows(store) == ALL_ROWS


def test_the_metastore_converges_to_the_manifest_at_the_next_run(tmp_path: Path, spark: Any) -> None:
    root = new_project(tmp_path / "cards", offline=hive_offline())
    with FeatureStore(root) as store:
        run(store, spark)
        offline = store.offline_store
        assert isinstance(offline, HiveOfflineStore)
        # As if a run had died between its metastore swap and its manifest's: a partition the
        # manifest does not have.
        spark.sql(f"ALTER TABLE {offline.table(VIEW)} DROP PARTITION (`date` = DATE '2024-03-04')")
        spark.sql(f"ALTER TABLE {offline.table(VIEW)} ADD PARTITION (`date` = DATE '2024-01-01') LOCATION '{tmp_path}'")
        run(store, spark, start=utc(2024, 3, 5), end=utc(2024, 3, 6))
        assert sorted(partitions(spark, store)) == ["2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"]
        assert table_rows(spark, store) == ALL_ROWS


def test_the_embedded_engine_refuses_a_hive_store_before_writing_anything(tmp_path: Path) -> None:
    # In a process of its own: no SparkSession is active there (in this one, the Hive store
    # would publish through the tests' session).
    root = new_project(tmp_path / "cards", offline=hive_offline(), engine={"type": "local"})
    exe = Path(sys.executable).with_name("featurestore")
    proc = subprocess.run(
        [str(exe), "-C", str(root), "run", VIEW, "--no-progress"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    assert "--engine spark" in proc.stderr, proc.stdout + proc.stderr
    with FeatureStore(root) as store:
        assert not store.offline_store.files(VIEW)
        assert not [p for p in store.offline_store.view_dir(VIEW).rglob("*") if p.is_file()]
        (record,) = store.registry.list_runs(store.project, VIEW)
        assert record.status == "failed"
