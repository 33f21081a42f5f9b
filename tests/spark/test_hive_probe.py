"""Probes of a partitioned Hive table through the test session's Spark (``etl/hive_probe.py``):
partitions from the metastore, rows and event-time range counted, a sample without the
sensitive column, partitions selected by a date expression, and a missing table."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from etl.hive_probe import probe_hive_table


def test_a_partitioned_hive_table_is_probed(spark: Any) -> None:
    database = f"probe_{uuid.uuid4().hex[:8]}"
    table = f"{database}.events"
    spark.sql(f"CREATE DATABASE {database}")
    try:
        spark.sql(
            f"CREATE TABLE {table} (customer_id BIGINT, email STRING, ts TIMESTAMP, amount DOUBLE) "
            "USING parquet PARTITIONED BY (dt STRING)"
        )
        spark.sql(
            f"INSERT INTO {table} VALUES "
            "(1, 'a@x', TIMESTAMP '2026-01-01 09:00:00', 1.0, '2026-01-01'), "
            "(2, 'b@x', TIMESTAMP '2026-01-01 10:00:00', 2.0, '2026-01-01'), "
            "(1, 'a@x', TIMESTAMP '2026-01-02 09:00:00', 3.0, '2026-01-02'), "
            "(1, 'a@x', TIMESTAMP '2026-01-05 11:00:00', 4.0, '2026-01-05'), "
            "(2, 'b@x', TIMESTAMP '2026-01-05 12:00:00', 5.0, '2026-01-05')"
        )
        probe = probe_hive_table(spark, table, timestamp_field="ts", sensitive=("EMAIL",), sample_rows=3)
        assert probe.status == "ok", probe.message
        assert [p.path for p in probe.partitions] == ["dt=2026-01-01", "dt=2026-01-02", "dt=2026-01-05"]
        assert probe.partitions[2].values == {"dt": "2026-01-05"}
        assert probe.row_count == 5
        assert (probe.time_min, probe.time_max) == (
            datetime(2026, 1, 1, 9, tzinfo=UTC),
            datetime(2026, 1, 5, 12, tzinfo=UTC),
        )
        assert [n for n, _ in probe.columns] == ["customer_id", "email", "ts", "amount", "dt"]
        assert probe.sensitive == ("email",) and len(probe.sample) == 3  # the tag matched without case
        assert all("email" not in row for row in probe.sample)

        recent = probe_hive_table(
            spark, table, timestamp_field="ts", partitions="dt >= today - 4", today=date(2026, 1, 6)
        )
        assert (recent.status, recent.row_count, recent.selected_partitions) == ("ok", 3, 2)
        assert recent.time_min == datetime(2026, 1, 2, 9, tzinfo=UTC)
        none = probe_hive_table(spark, table, partitions="dt > today", today=date(2026, 1, 6))
        assert none.status == "missing" and "widen the expression" in none.message
        # A value Hive escapes in its paths (':' is %3A in SHOW PARTITIONS) is read unescaped.
        spark.sql(f"INSERT INTO {table} VALUES (3, 'c@x', TIMESTAMP '2026-01-07 08:30:00', 6.0, '2026-01-07T08:30')")
        timed = probe_hive_table(spark, table, timestamp_field="ts", partitions="dt >= '2026-01-07'")
        assert (timed.status, timed.row_count, timed.selected_partitions) == ("ok", 1, 1), timed.message
        assert timed.partitions[-1].values == {"dt": "2026-01-07T08:30"}
    finally:
        spark.sql(f"DROP DATABASE {database} CASCADE")
    gone = probe_hive_table(spark, f"{database}.events")
    assert gone.status == "missing" and "does not exist in the metastore" in gone.message


def test_the_spark_engine_reads_only_the_selected_partitions_of_a_folder(spark: Any, tmp_path: Path) -> None:
    from etl.spark import SparkEngine
    from featurestore.project_files import load_definitions
    from featurestore.store import FeatureStore
    from featurestore.validation import validate_project
    from tests.unit.test_source_probes import DAYS, FEATURES, write_events
    from tests.unit.tiny_projects import new_project

    root = new_project(tmp_path / "shop", "shop")
    write_events(root / "data" / "events")
    days = (date.today() - DAYS[1]).days
    (root / "features.py").write_text(
        FEATURES.replace('timestamp_field="ts",\n', f'timestamp_field="ts", partitions="dt >= today - {days}",\n')
    )
    with FeatureStore(root) as store:
        view = next(v for v in validate_project(load_definitions(store.config)).feature_views if v.name == "spend")
        frame = SparkEngine(store, spark=spark).compute(view, None, None, tmp_path / "scratch")
        rows = sorted((r["customer_id"], r["event_timestamp"].date().isoformat()) for r in frame.collect())
    # The two newest partitions only (2 + 3 rows), as the local engine reads them.
    assert sorted(d for _, d in rows) == ["2026-01-02"] * 2 + ["2026-01-05"] * 3
