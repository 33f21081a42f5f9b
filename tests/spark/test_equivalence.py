"""Differential test: the bank demo's feature views run on the embedded engine and on Spark give
identical offline rows, identical online values and identical training sets (same rows in the
same order, same values, same nulls).

The Spark side is the demo itself, as a user runs it: ``examples/bank/demo.py --engine spark``
(200 customers) publishes Hive tables and goes on to train and score through the datamart API,
then re-runs the last days of one view. The embedded side replays the same runs (same windows,
same order) with the same definitions on a copy of the demo's raw data. Training sets on Spark
are built in this process, from the demo's published rows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from spark_projects import definitions

from etl.local import LocalEngine
from etl.spark import SparkEngine
from featurestore.online import EVENT_TIME_COLUMN
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore

REPO = Path(__file__).resolve().parents[2]
BANK = REPO / "examples" / "bank"
CUSTOMERS = 200
VIEWS = ("customer_spend", "customer_balance", "customer_profile")


@dataclass
class Twins:
    local: FeatureStore
    spark: FeatureStore
    engine: SparkEngine
    raw: Path
    demo_output: str
    rows_after_first_run: dict[str, int]
    """Rows of each view after its first (full) run, replayed locally: what the demo reports of
    its Hive tables before it re-runs the last days of one view."""


def _copy_project(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("featurestore.yaml", "features.py"):
        shutil.copy(BANK / name, root / name)
    return root


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Iterator[Twins]:
    base = tmp_path_factory.mktemp("bank")
    on_spark = _copy_project(base / "spark")
    proc = subprocess.run(
        [
            sys.executable,
            str(BANK / "demo.py"),
            "--project",
            str(on_spark),
            "--customers",
            str(CUSTOMERS),
            "--engine",
            "spark",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    local_root = _copy_project(base / "local")
    shutil.copytree(on_spark / "data" / "raw", local_root / "data" / "raw")
    with FeatureStore(local_root) as local, FeatureStore(on_spark) as spark_store:
        local.apply(load_definitions(local.config), schema_resolver=LocalEngine(local).infer_schema)
        local_views = definitions(local)
        after_first: dict[str, int] = {}
        for name in VIEWS:
            # The demo's runs on Spark, replayed locally in order: a full run, then any windowed
            # re-run (step 8 re-runs the last days of customer_spend, whose lookback drops rows).
            on_spark_runs = sorted(
                spark_store.registry.list_runs(spark_store.project, name), key=lambda r: r.started_at
            )
            for record in on_spark_runs:
                LocalEngine(local).run(
                    name,
                    start=record.window_start,
                    end=record.window_end,
                    definitions=local_views,
                    progress=False,
                )
                after_first.setdefault(name, local.offline_store.read(local.get_feature_view(name)).num_rows)
        yield Twins(
            local=local,
            spark=spark_store,
            engine=SparkEngine(spark_store, spark=spark),
            raw=on_spark / "data" / "raw",
            demo_output=proc.stdout,
            rows_after_first_run=after_first,
        )


def test_the_demo_on_spark_writes_hive_tables_and_serves_what_it_trained_on(twins: Twins) -> None:
    out = twins.demo_output
    assert re.findall(r"online == offline: (\w+)", out) == ["yes"] * 5, out
    for view in VIEWS:
        match = re.search(rf"Hive table bank\.{view}: ([\d,]+) rows in (\d+) date partitions", out)
        assert match, out
        assert int(match.group(1).replace(",", "")) == twins.rows_after_first_run[view] > 0
        runs = twins.spark.registry.list_runs(twins.spark.project, view)
        assert {(r.engine, r.status) for r in runs} == {("spark", "succeeded")}
        assert len(runs) == (2 if view == "customer_spend" else 1)  # the demo re-runs its last days
    data = twins.spark.config.root / "data"
    assert (data / "metastore" / "metastore_db").is_dir()  # the embedded Derby metastore
    # The Hive layout: one folder per run in each date partition, read by the API via the manifest.
    spend_runs = {r.id for r in twins.spark.registry.list_runs(twins.spark.project, "customer_spend")}
    files = twins.spark.offline_store.files("customer_spend")
    not_hive = [str(f.relative_to(data / "offline")) for f in files if f.parent.name not in spend_runs]
    # Every run publishes through the Hive store, the windowed re-run of step 8 included.
    assert files and not_hive == [], f"files outside the Hive layout date=D/<run>/part-0.parquet: {not_hive[:3]}"


def _sorted_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(zip(*(c.to_pylist() for c in table.columns), strict=True), key=repr)


@pytest.mark.parametrize("view", VIEWS)
def test_identical_offline_rows(twins: Twins, view: str) -> None:
    local = twins.local.offline_store.read(twins.local.get_feature_view(view))
    on_spark = twins.spark.offline_store.read(twins.spark.get_feature_view(view))
    assert local.schema == on_spark.schema
    assert local.num_rows > 0
    assert _sorted_rows(local) == _sorted_rows(on_spark)


@pytest.mark.parametrize("view", VIEWS)
def test_identical_online_values(twins: Twins, view: str) -> None:
    keys = pa.table({"customer_id": pa.array(range(CUSTOMERS + 2), pa.int64())})  # 0 and 201: unknown
    fv = twins.local.get_feature_view(view)
    local = twins.local.online_store.read(fv, keys, fv.feature_names)
    on_spark = twins.spark.online_store.read(fv, keys, fv.feature_names)
    assert local.equals(on_spark)
    assert local.column(EVENT_TIME_COLUMN).null_count == 2
    runs = {s: s.registry.list_runs(s.project, view)[0] for s in (twins.local, twins.spark)}
    assert {r.engine for r in runs.values()} == {"local", "spark"}
    assert len({(r.rows_computed, r.rows_offline, r.rows_online, r.watermark) for r in runs.values()}) == 1


def _spine(twins: Twins) -> pa.Table:
    """The credit applications, plus rows no feature reaches: an unknown customer, a time before
    every row, and a time long after (every TTL expired)."""
    apps = pq.read_table(twins.raw / "applications.parquet").select(["application_id", "customer_id", "applied_at"])
    ts_type = apps.schema.field("applied_at").type
    anchor = pc.max(apps.column("applied_at")).as_py()
    extra = pa.table(
        {
            "application_id": pa.array([-1, -2, -3], apps.schema.field("application_id").type),
            "customer_id": pa.array([CUSTOMERS + 5, 1, 2], pa.int64()),
            "applied_at": pa.array([anchor, anchor - timedelta(days=4000), anchor + timedelta(days=5000)], ts_type),
        }
    )
    return pa.concat_tables([apps, extra])


def test_identical_training_sets(twins: Twins, tmp_path: Path) -> None:
    spine = _spine(twins)
    local = twins.local.get_training_set(spine, "credit_default", timestamp_column="applied_at")
    on_spark = twins.engine.get_training_set(spine, "credit_default", timestamp_column="applied_at").toArrow()
    assert on_spark.column_names == local.column_names
    assert on_spark.num_rows == local.num_rows == spine.num_rows
    for name in local.column_names:
        want = local.column(name)
        got = on_spark.column(name).cast(want.type)
        assert got.to_pylist() == want.to_pylist(), name
    features = [c for c in local.column_names if c not in spine.column_names]
    assert all(0 < local.column(f).null_count < local.num_rows for f in features)  # nulls and values both

    # From a Spark DataFrame spine, written as Parquet and read back with pyarrow: the same.
    frame = twins.engine.spark.createDataFrame(spine)
    out = tmp_path / "training"
    twins.engine.get_training_set(frame, "credit_default", timestamp_column="applied_at", out=out)
    written = pq.read_table(out)
    assert written.column_names == local.column_names
    for name in local.column_names:
        assert written.column(name).cast(local.column(name).type).to_pylist() == local.column(name).to_pylist(), name


def test_point_in_time_edges_match_the_embedded_engine(twins: Twins) -> None:
    """At exactly a row's event time the row counts; one microsecond before it does not; at
    exactly the TTL the value is kept, a microsecond later it is withheld; spine rows repeat."""
    fv = twins.local.get_feature_view("customer_balance")
    rows = twins.local.offline_store.read(fv).slice(0, 5)
    ttl = fv.ttl
    times, keys = [], []
    for ts, key in zip(rows.column("ts").to_pylist(), rows.column("customer_id").to_pylist(), strict=True):
        for t in (ts, ts - timedelta(microseconds=1), ts + ttl, ts + ttl + timedelta(microseconds=1), ts):
            times.append(t)
            keys.append(key)
    spine = pa.table({"customer_id": pa.array(keys, pa.int64()), "ts": pa.array(times, pa.timestamp("us", "UTC"))})
    local = twins.local.get_training_set(spine, "customer_balance", timestamp_column="ts")
    on_spark = twins.engine.get_training_set(spine, "customer_balance", timestamp_column="ts").toArrow()
    for name in local.column_names:
        assert on_spark.column(name).cast(local.column(name).type).to_pylist() == local.column(name).to_pylist()
    assert pc.sum(pc.is_null(local.column("balance"))).as_py() > 0
