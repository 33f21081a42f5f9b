"""Runs of the Spark engine on ``local[2]`` with the Parquet offline store, through the same run
pipeline as the embedded engine (``etl.runs``): the same rows offline and online, the same run
record, windows replaced exactly, online derived from offline (an older window leaves the newer
rows, a retracted row moves online back), and a failed run publishing nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spark_projects import (
    ALL_ROWS,
    NEWEST_ONLINE,
    TRANSACTIONS,
    VIEW,
    definitions,
    new_project,
    offline_rows,
    online_rows,
    tree,
    utc,
    write_transactions,
)

from etl.local import LocalEngine
from etl.spark import SparkEngine
from featurestore.errors import RunError
from featurestore.store import FeatureStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return new_project(tmp_path / "cards")


@pytest.fixture
def store(root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(root) as s:
        yield s


def run(store: FeatureStore, spark: Any, **window: Any) -> Any:
    return SparkEngine(store, spark=spark).run(VIEW, definitions=definitions(store), progress=False, **window)


def test_a_run_publishes_the_same_rows_offline_and_online_as_the_embedded_engine(
    store: FeatureStore, spark: Any, tmp_path: Path
) -> None:
    result = run(store, spark)
    assert (result.status, result.rows_offline, result.rows_online) == ("succeeded", 6, 3)
    assert result.watermark == utc(2024, 3, 5)
    assert offline_rows(store) == ALL_ROWS
    assert online_rows(store) == NEWEST_ONLINE

    # The Parquet store's own layout and manifest: one file per date partition, named by the run.
    base = store.offline_store.view_dir(VIEW)
    manifest = json.loads((base / "_manifest.json").read_text())
    assert manifest["partitions"] == {
        d: f"date={d}/{result.run_id}.parquet" for d in ("2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05")
    }
    assert manifest["watermark"] == utc(2024, 3, 5).isoformat()
    assert not (base / "_staging").exists()

    # The embedded engine, on a twin project, publishes the very same.
    with FeatureStore(new_project(tmp_path / "twin", engine={"type": "local"})) as twin:
        LocalEngine(twin).run(VIEW, definitions=definitions(twin), progress=False)
        assert offline_rows(twin) == offline_rows(store)
        assert online_rows(twin) == online_rows(store)


def test_the_run_is_recorded_like_the_embedded_engines(store: FeatureStore, spark: Any) -> None:
    result = run(store, spark, start=utc(2024, 3, 2), end=utc(2024, 3, 4))
    assert (result.rows_computed, result.rows_offline, result.rows_online) == (4, 4, 3)
    (record,) = store.registry.list_runs(store.project, VIEW)
    assert (record.id, record.status, record.engine, record.view_version) == (result.run_id, "succeeded", "spark", 1)
    assert (record.window_start, record.window_end) == (utc(2024, 3, 2), utc(2024, 3, 4))
    assert (record.rows_computed, record.rows_offline, record.rows_online) == (4, 4, 3)
    assert record.watermark == utc(2024, 3, 3)
    assert {"compute_s", "offline_stage_s", "online_write_s", "offline_publish_s"} <= set(record.timings)
    assert result.quality == "passed"  # the quality gate ran (a view without expectations passes)
    assert store.registry.watermark(store.project, VIEW) == utc(2024, 3, 3)
    # The SDK's consistency check finds online equal to offline.
    assert store.check_consistency(VIEW, sample=None).consistent


def test_windows_replace_exactly_their_rows_and_reruns_are_idempotent(
    store: FeatureStore, spark: Any, root: Path
) -> None:
    run(store, spark, start=utc(2024, 3, 1), end=utc(2024, 3, 4))
    run(store, spark, start=utc(2024, 3, 4), end=utc(2024, 3, 6))
    assert offline_rows(store) == ALL_ROWS
    assert online_rows(store) == NEWEST_ONLINE

    # Customer 3's transaction was booked twice as large; a window ending mid-day keeps the
    # rows of its boundary partition that lie outside it.
    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])
    run(store, spark, start=utc(2024, 3, 2, 12), end=utc(2024, 3, 3, 12))
    expected = [r if r[0] != 3 else (3, utc(2024, 3, 3), 6.0, 1) for r in ALL_ROWS]
    assert offline_rows(store) == expected
    assert online_rows(store)[3] == (utc(2024, 3, 3), 6.0, 1)
    before = offline_rows(store), online_rows(store)
    run(store, spark, start=utc(2024, 3, 2, 12), end=utc(2024, 3, 3, 12))
    assert (offline_rows(store), online_rows(store)) == before


def test_a_backfill_of_an_older_window_leaves_the_newer_values_online(store: FeatureStore, spark: Any) -> None:
    newer = run(store, spark, start=utc(2024, 3, 4), end=utc(2024, 3, 6))
    assert (newer.rows_online, newer.entities_affected) == (2, 2)
    older = run(store, spark, start=utc(2024, 3, 2), end=utc(2024, 3, 4))
    # Customers 1, 2 and 3 are in the older window: each set to its latest offline row over all
    # partitions, the newer one for customers 1 and 2.
    assert (older.rows_online, older.rows_online_removed, older.entities_affected) == (3, 0, 3)
    assert online_rows(store) == NEWEST_ONLINE
    assert offline_rows(store) == ALL_ROWS
    assert store.registry.watermark(store.project, VIEW) == utc(2024, 3, 5)


def test_a_rerun_retracting_a_row_moves_online_back_to_the_older_one(
    store: FeatureStore, spark: Any, root: Path
) -> None:
    run(store, spark)
    # Customer 1's transaction of 03-04 was never made: its row of 03-05 goes, online goes back.
    write_transactions(root, [t for t in TRANSACTIONS if t[1] != utc(2024, 3, 4, 8)])
    result = run(store, spark, start=utc(2024, 3, 4), end=utc(2024, 3, 6))
    assert (result.rows_before, result.rows_offline, result.rows_online_removed) == (2, 1, 0)
    assert offline_rows(store) == [r for r in ALL_ROWS if r[:2] != (1, utc(2024, 3, 5))]
    assert online_rows(store) == {**NEWEST_ONLINE, 1: (utc(2024, 3, 3), 7.0, 1)}
    assert store.check_consistency(VIEW, sample=None).consistent


def test_a_failed_run_publishes_nothing_and_is_recorded_with_its_error(
    store: FeatureStore, spark: Any, root: Path
) -> None:
    run(store, spark)
    offline_before, online_before = tree(store.offline_store.view_dir(VIEW)), online_rows(store)
    # A transaction without a customer: the computed row has a null key, which a run refuses.
    write_transactions(root, [*TRANSACTIONS, (None, utc(2024, 3, 4, 9), 2.0)])
    with pytest.raises(RunError, match="null 'customer_id'"):
        run(store, spark)
    assert tree(store.offline_store.view_dir(VIEW)) == offline_before
    assert online_rows(store) == online_before
    failed, succeeded = store.registry.list_runs(store.project, VIEW)
    assert (failed.status, succeeded.status) == ("failed", "succeeded")
    assert failed.error is not None and "null 'customer_id'" in failed.error


def test_a_transformation_spark_cannot_run_fails_the_run_with_spark_s_reason(tmp_path: Path, spark: Any) -> None:
    sql = '"SELECT customer_id, ts AS as_of, no_such_column AS spend, 1 AS n FROM transactions"'
    with FeatureStore(new_project(tmp_path / "bad", transformation=sql)) as store:
        with pytest.raises(RunError, match="no_such_column"):
            run(store, spark)
        (record,) = store.registry.list_runs(store.project, VIEW)
        assert record.status == "failed"
        assert not store.offline_store.files(VIEW)


def test_a_pandas_transformation_runs_per_entity_and_gives_the_sql_rows(tmp_path: Path, spark: Any) -> None:
    root = new_project(tmp_path / "pandas", transformation="daily")
    with FeatureStore(root) as store:
        result = run(store, spark)
        assert result.rows_offline == 6
        assert offline_rows(store) == ALL_ROWS
        assert online_rows(store) == NEWEST_ONLINE
