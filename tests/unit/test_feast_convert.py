"""``convert`` of reader-shaped Feast documents, written by hand (no Feast needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.config import ProjectConfig
from featurestore.definitions import FeatureView
from featurestore.feast_import import convert, write_project
from featurestore.project_files import load_definitions

COMMON: dict[str, Any] = {"description": "", "owner": "", "tags": {}}


def _field(name: str, value_type: str) -> dict[str, Any]:
    return {"name": name, "value_type": value_type, "dtype": value_type.title(), "description": "", "tags": {}}


def _document(data: Path, folder: Path, join_keys: list[str]) -> dict[str, Any]:
    """Feast's template as the reader gives it when Feast's inference failed: the view's schema omits
    the key column, so its entity_columns are empty; the source has a created timestamp."""
    return {
        "feast_version": "0.67.0",
        "repository": str(folder),
        "inference_error": "could not read the data",
        "config": {"project": "drivers", "provider": "local", "online_store": {"type": "sqlite"}},
        "entities": [{**COMMON, "name": "driver", "join_keys": join_keys, "value_type": "INT64"}],
        "data_sources": [
            {
                **COMMON,
                "name": "driver_stats",
                "kind": "file",
                "path": str(data),
                "resolved_path": str(data),
                "uri": False,
                "file_format": "ParquetFormat",
                "timestamp_field": "event_timestamp",
                "created_timestamp_column": "created",
                "field_mapping": {},
            }
        ],
        "feature_views": [
            {
                **COMMON,
                "class": "FeatureView",
                "name": "driver_hourly_stats",
                "entities": ["driver"],
                "entity_columns": [],
                "features": [_field("conv_rate", "DOUBLE")],
                "ttl_seconds": 86400.0,
                "online": True,
                "batch_source": "driver_stats",
                "stream_source": "",
            }
        ],
        "feature_services": [],
    }


def test_created_timestamp_dedupe_keeps_each_entity_when_feast_gave_no_entity_columns(tmp_path: Path) -> None:
    """Two drivers with rows at the same event time both survive the created-timestamp SQL; of one
    driver's two rows at one time, the one created last is kept (as Feast does)."""
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    table = pa.table(
        {
            "driver_id": pa.array([1001, 1002, 1001], pa.int64()),
            "event_timestamp": pa.array([at, at, at], pa.timestamp("us", tz="UTC")),
            "created": pa.array(
                [datetime(2026, 1, 1, 13, tzinfo=UTC), at, datetime(2026, 1, 1, 14, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "conv_rate": pa.array([0.1, 0.2, 0.3], pa.float64()),
        }
    )
    data = tmp_path / "driver_stats.parquet"
    pq.write_table(table, data)
    result = convert(_document(data, tmp_path, ["driver_id"]))
    write_project(result, tmp_path / "out")
    (view,) = [o for o in load_definitions(ProjectConfig.load(tmp_path / "out")) if isinstance(o, FeatureView)]
    assert isinstance(view.transformation, str)
    with duckdb.connect() as con:
        con.register("driver_stats", table)
        rows = con.execute(f"SELECT driver_id, conv_rate FROM ({view.transformation}) ORDER BY driver_id").fetchall()
    assert rows == [(1001, 0.3), (1002, 0.2)]


def test_a_view_without_any_join_key_is_refused_and_reported(tmp_path: Path) -> None:
    result = convert(_document(tmp_path / "driver_stats.parquet", tmp_path, []))
    assert "driver_hourly_stats" not in result.features
    no_equivalent = result.report.markdown().split("## No equivalent")[1]
    assert "feature view `driver_hourly_stats`: neither its schema nor its entities name a join key" in no_equivalent
