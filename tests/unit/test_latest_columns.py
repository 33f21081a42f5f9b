"""``ParquetOfflineStore.latest`` (what online is derived from) reads the view's columns by name
without reading every file's schema first: a feature no file has yet (added to the view since)
is found by DuckDB's binder and reads as null; files written before it read it as null too."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from published_files import publish_by_hand

from featurestore.offline.parquet import ParquetOfflineStore
from tests.unit.test_schema_evolution import DAY1, DAY2, NEW, NEW_ROWS, OLD, OLD_ROWS, table


def newest(store: ParquetOfflineStore, keys: Path | None) -> tuple[list[dict[str, object]], list[int]]:
    parts = list(store.latest(NEW, keys, batch_rows=1_000))
    rows = pa.concat_tables([p.rows for p in parts]).sort_by("customer_id").to_pylist()
    removed = sorted(pa.concat_tables([p.removed for p in parts]).column("customer_id").to_pylist())
    return rows, removed


def test_a_feature_no_file_has_yet_reads_as_null(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path / "offline")
    publish_by_hand(store.root, NEW.name, {date(2024, 3, 1): table(OLD, OLD_ROWS)}, DAY1)
    rows, removed = newest(store, None)
    assert rows == [{**r, "score": None, "since": None} for r in OLD_ROWS]
    assert removed == []
    keys = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"customer_id": pa.array([2, 3], pa.int64())}), keys)
    rows, removed = newest(store, keys)
    assert rows == [{**OLD_ROWS[1], "score": None, "since": None}]
    assert removed == [3]  # no row offline


def test_older_files_read_an_added_feature_as_null_beside_newer_ones(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path / "offline")
    publish_by_hand(store.root, NEW.name, {date(2024, 3, 1): table(OLD, OLD_ROWS)}, DAY1)
    publish_by_hand(store.root, NEW.name, {date(2024, 3, 2): table(NEW, NEW_ROWS)}, DAY2)
    rows, _ = newest(store, None)
    assert rows == [NEW_ROWS[0], {**OLD_ROWS[1], "score": None, "since": None}]
