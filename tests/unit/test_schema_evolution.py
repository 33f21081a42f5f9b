"""Reads after a view's features changed: files and online rows written under an older version
of the view still read, by name.

``customer_stats`` was first published with ``spend``, ``n`` and ``tier`` (the partition of
2024-03-01); then ``score`` and ``since`` were added and a run published 2024-03-02 with them. A
training set, reference data (``as_of``) and the consistency checker read both: a feature added
since is null in the rows of files written before it; a feature removed since is not read.
Online, a row written before a feature was added serves it as null with status ``null``, as the
training set reads it offline (``missing`` stays the status of an entity without a row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from published_files import publish_by_hand
from tiny_projects import utc

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64, String, Timestamp
from featurestore.consistency import check_consistency
from featurestore.errors import UnreadableValueError
from featurestore.lookup import FeatureStatus, LookupPlan
from featurestore.offline.parquet import ParquetOfflineStore
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.retrieval import ViewRequest, as_of, normalize_spine, training_set
from featurestore.schema import view_schema
from featurestore.types import UTC_TIMESTAMP

CUSTOMER = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
SOURCE = FileSource(name="transactions", path="transactions.parquet", timestamp_field="ts")


def version(*features: Feature) -> FeatureView:
    return FeatureView(
        name="customer_stats",
        entities=(CUSTOMER,),
        source=SOURCE,
        timestamp_field="ts",
        ttl=timedelta(days=30),
        features=features,
    )


SPEND, N, TIER = Feature("spend", Float64), Feature("n", Int64), Feature("tier", String)
SCORE, SINCE = Feature("score", Float64), Feature("since", Timestamp)
OLD = version(SPEND, N, TIER)
NEW = version(SPEND, N, TIER, SCORE, SINCE)
"""``score`` and ``since`` added."""
SHRUNK = version(SPEND, SCORE)
"""``n`` and ``tier`` removed."""

DAY1, DAY2 = utc(2024, 3, 1, 12), utc(2024, 3, 2, 12)
OLD_ROWS = [
    {"customer_id": 1, "ts": DAY1, "spend": 10.0, "n": 1, "tier": "a"},
    {"customer_id": 2, "ts": DAY1, "spend": 20.0, "n": 2, "tier": "b"},
]
NEW_ROWS = [
    {"customer_id": 1, "ts": DAY2, "spend": 11.0, "n": 3, "tier": "c", "score": 0.5, "since": utc(2020, 1, 1)},
]


def table(view: FeatureView, records: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(records), schema=view_schema(view))


@pytest.fixture
def offline(tmp_path: Path) -> ParquetOfflineStore:
    """The view's files: 03-01 written by the old version (no score, no since), 03-02 by the new."""
    store = ParquetOfflineStore(tmp_path / "offline")
    publish_by_hand(store.root, NEW.name, {date(2024, 3, 1): table(OLD, OLD_ROWS)}, DAY1)
    publish_by_hand(store.root, NEW.name, {date(2024, 3, 2): table(NEW, NEW_ROWS)}, DAY2)
    return store


@pytest.fixture
def old_only(tmp_path: Path) -> ParquetOfflineStore:
    """Only files of the old version: no file has the added features yet."""
    store = ParquetOfflineStore(tmp_path / "old_only")
    publish_by_hand(store.root, NEW.name, {date(2024, 3, 1): table(OLD, OLD_ROWS)}, DAY1)
    return store


def training(offline: ParquetOfflineStore, view: FeatureView, spine: list[tuple[int, datetime]]) -> pa.Table:
    requests = [ViewRequest(view, view.feature_names)]
    rows = pa.table(
        {
            "customer_id": pa.array([c for c, _ in spine], pa.int64()),
            "ts": pa.array([t for _, t in spine], UTC_TIMESTAMP),
        }
    )
    return training_set(normalize_spine(rows, "ts", requests), "ts", requests, {view.name: offline.files(view)})


def test_the_test_files_are_the_stores_layout(offline: ParquetOfflineStore) -> None:
    assert [f.parent.name for f in offline.files(NEW)] == ["date=2024-03-01", "date=2024-03-02"]
    assert offline.watermark(NEW) == DAY2


def test_a_training_set_reads_an_added_feature_as_null_in_older_files(offline: ParquetOfflineStore) -> None:
    result = training(offline, NEW, [(1, utc(2024, 3, 1, 18)), (2, utc(2024, 3, 3)), (1, utc(2024, 3, 3))])
    assert result.schema.field("score").type == pa.float64()
    assert result.schema.field("since").type == UTC_TIMESTAMP
    assert result.select(["spend", "n", "tier", "score", "since"]).to_pylist() == [
        {"spend": 10.0, "n": 1, "tier": "a", "score": None, "since": None},  # the old file's row
        {"spend": 20.0, "n": 2, "tier": "b", "score": None, "since": None},
        {"spend": 11.0, "n": 3, "tier": "c", "score": 0.5, "since": utc(2020, 1, 1)},  # the new file's row
    ]


def test_a_training_set_before_any_file_has_the_added_feature(old_only: ParquetOfflineStore) -> None:
    result = training(old_only, NEW, [(1, utc(2024, 3, 2)), (2, utc(2024, 3, 2)), (3, utc(2024, 3, 2))])
    assert result.column("score").to_pylist() == [None, None, None]
    assert result.column("since").type == UTC_TIMESTAMP
    assert result.column("spend").to_pylist() == [10.0, 20.0, None]


def test_a_removed_feature_is_not_read(offline: ParquetOfflineStore) -> None:
    result = training(offline, SHRUNK, [(1, utc(2024, 3, 1, 18)), (1, utc(2024, 3, 3))])
    assert result.column_names == ["customer_id", "ts", "spend", "score"]
    assert result.select(["spend", "score"]).to_pylist() == [
        {"spend": 10.0, "score": None},
        {"spend": 11.0, "score": 0.5},
    ]


def test_reference_data_reads_an_added_feature_as_null_in_older_files(offline: ParquetOfflineStore) -> None:
    before = as_of(NEW, offline.files(NEW), NEW.feature_names, utc(2024, 3, 1, 23))
    assert before.schema == view_schema(NEW)
    assert before.select(["customer_id", "spend", "score", "since"]).to_pylist() == [
        {"customer_id": 1, "spend": 10.0, "score": None, "since": None},
        {"customer_id": 2, "spend": 20.0, "score": None, "since": None},
    ]
    after = as_of(NEW, offline.files(NEW), ["score", "tier"], utc(2024, 3, 3))
    assert after.select(["customer_id", "score", "tier"]).to_pylist() == [
        {"customer_id": 1, "score": 0.5, "tier": "c"},
        {"customer_id": 2, "score": None, "tier": "b"},
    ]
    shrunk = as_of(SHRUNK, offline.files(SHRUNK), SHRUNK.feature_names, utc(2024, 3, 3))
    assert shrunk.column_names == ["customer_id", "ts", "spend", "score"]


def test_a_feature_whose_type_changed_reads_as_the_view_now_declares(offline: ParquetOfflineStore) -> None:
    as_float = version(SPEND, Feature("n", Float64), TIER)
    result = as_of(as_float, offline.files(as_float), ["n"], utc(2024, 3, 3))
    assert result.schema.field("n").type == pa.float64()
    assert result.column("n").to_pylist() == [3.0, 2.0]
    as_int = version(SPEND, N, Feature("tier", Int64))  # "a", "b", "c" are no integers
    with pytest.raises(UnreadableValueError, match=r"'tier' of feature view 'customer_stats'.*featurestore run"):
        as_of(as_int, offline.files(as_int), ["tier"], utc(2024, 3, 3))


def test_online_rows_written_before_a_feature_was_added(tmp_path: Path) -> None:
    online = SqliteOnlineStore(tmp_path / "online.db")
    try:
        online.prepare([OLD])
        online.write(OLD, table(OLD, OLD_ROWS))
        plan = LookupPlan.build([ViewRequest(NEW, NEW.feature_names)])
        response = plan.lookup(online, {"customer_id": [1, 2, 3]}, now=utc(2024, 3, 3))
        assert response.columns["spend"] == [10.0, 20.0, None]
        assert response.statuses["spend"] == [FeatureStatus.PRESENT] * 2 + [FeatureStatus.MISSING]
        for added in ("score", "since"):  # null, as offline; missing only for the entity without a row
            assert response.columns[added] == [None, None, None]
            assert response.statuses[added] == [FeatureStatus.NULL] * 2 + [FeatureStatus.MISSING]
        # A row the new version writes has them.
        online.write(NEW, table(NEW, [{**OLD_ROWS[1], "ts": DAY2, "score": None, "since": utc(2021, 1, 1)}]))
        response = plan.lookup(online, {"customer_id": [1, 2]}, now=utc(2024, 3, 3))
        assert response.columns["since"] == [None, utc(2021, 1, 1)]
        assert response.statuses["since"] == [FeatureStatus.NULL, FeatureStatus.PRESENT]
        # A version without n and tier still reads the old rows.
        shrunk = LookupPlan.build([ViewRequest(SHRUNK, SHRUNK.feature_names)])
        assert shrunk.lookup(online, {"customer_id": [1]}, now=utc(2024, 3, 3)).columns["spend"] == [10.0]
    finally:
        online.close()


def test_the_checker_reads_files_and_rows_of_an_older_version(tmp_path: Path, old_only: ParquetOfflineStore) -> None:
    online = SqliteOnlineStore(tmp_path / "online.db")
    try:
        online.prepare([OLD])
        online.write(OLD, table(OLD, OLD_ROWS))
        report = check_consistency(NEW, old_only, online, DAY1)
        assert report.consistent, report.to_dict()
        assert (report.checked, report.matched) == (2, 2)
        assert check_consistency(SHRUNK, old_only, online, DAY1).consistent
    finally:
        online.close()
