"""A tiny real project for the quality suites: one feature view, ``accounts``, over rows written
by the test, with the expectations the test declares (as Python text in ``features.py``, so
that the CLI and the SDK load the very same definitions).

The view has no transformation: each source row is a view row (keys ``customer_id``, event time
``ts``), so a test knows exactly which rows a run computes. ``CLEAN`` passes the usual
expectations; ``BAD`` adds three rows that fail them:

* customer 4: balance -5.0 (fails ``InRange("balance", min=0)``),
* customer 5: no segment (fails ``NotNull("segment")``),
* customer 6: balance -1.0 and no segment (fails both).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from etl.local import LocalEngine
from etl.runs import RunResult
from featurestore import Bool, Entity, Feature, FileSource, Float64, Int64, String
from featurestore.config import CONFIG_FILE_NAME, render_default_config
from featurestore.definitions import FeatureView
from featurestore.expectations import Expectation
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project

VIEW = "accounts"
COLUMNS = ("customer_id", "ts", "balance", "segment", "n", "active")
UTC_US = pa.timestamp("us", tz="UTC")
RUN_ENGINES = ("local", "spark")
"""Engines whose runs the run suites exercise: every test of test_runs_quality.py runs on both
(Spark in ``conftest.spark``'s ``local[2]`` session)."""
USUAL = 'NotNull("segment"), InRange("balance", min=0), InSet("segment", ("mass", "affluent", "student")), UniqueKeys()'


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


Row = tuple[int, datetime, float | None, str | None, int | None, bool | None]

CLEAN: list[Row] = [
    (1, utc(2024, 3, 1), 100.0, "mass", 3, True),
    (2, utc(2024, 3, 1), 250.5, "affluent", 1, False),
    (3, utc(2024, 3, 1), 0.0, "student", 0, True),
    (1, utc(2024, 3, 2), 120.0, "mass", 4, True),
    (2, utc(2024, 3, 2), 240.0, "affluent", 2, False),
    (3, utc(2024, 3, 2), 10.0, "student", 1, None),
]
FAILING: list[Row] = [
    (4, utc(2024, 3, 2), -5.0, "mass", 2, True),
    (5, utc(2024, 3, 2), 30.0, None, 1, False),
    (6, utc(2024, 3, 2), -1.0, None, 0, True),
]
BAD: list[Row] = [*CLEAN, *FAILING]

FEATURES = """\
from datetime import timedelta

from featurestore import Bool, Entity, Feature, FeatureView, FileSource, Float64, Int64, String
from featurestore.expectations import (
    Fresh, GxExpectation, InRange, InSet, MatchesRegex, NotNull, RowCount, UniqueKeys,
)

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
accounts_source = FileSource(name="accounts_source", path="data/accounts.parquet", timestamp_field="ts")
accounts = FeatureView(
    name="accounts",
    entities=(customer,),
    source=accounts_source,
    timestamp_field="ts",
    ttl=timedelta(days=3650),
    features=(
        Feature("balance", Float64),
        Feature("segment", String),
        Feature("n", Int64),
        Feature("active", Bool),
    ),
    expectations=({expectations}),
)
"""


def accounts(*expectations: Expectation) -> FeatureView:
    """The ``accounts`` view of the rows below (as the project's), with ``expectations``."""
    return FeatureView(
        name="accounts",
        entities=(Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,)),),
        source=FileSource(name="accounts_source", path="data/accounts.parquet", timestamp_field="ts"),
        timestamp_field="ts",
        ttl=timedelta(days=30),
        features=(
            Feature("balance", Float64),
            Feature("segment", String),
            Feature("n", Int64),
            Feature("active", Bool),
        ),
        expectations=expectations,
    )


def table(rows: Sequence[Row]) -> pa.Table:
    """Rows as the source file (and the view) holds them."""
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], UTC_US),
            "balance": pa.array([r[2] for r in rows], pa.float64()),
            "segment": pa.array([r[3] for r in rows], pa.string()),
            "n": pa.array([r[4] for r in rows], pa.int64()),
            "active": pa.array([r[5] for r in rows], pa.bool_()),
        }
    )


def write_rows(root: Path, rows: Sequence[Row]) -> None:
    path = root / "data" / "accounts.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table(rows), path)


def write_features(root: Path, expectations: str) -> None:
    """``features.py`` with ``expectations``: Python text of expectations separated by commas."""
    listed = f"{expectations}," if expectations.strip() else ""
    (root / "features.py").write_text(FEATURES.replace("{expectations}", listed))


def new_project(
    root: Path, *, expectations: str = USUAL, rows: Sequence[Row] = CLEAN, quality: dict[str, Any] | None = None
) -> Path:
    """A project folder with ``featurestore.yaml`` (plus a ``quality`` section when given),
    ``features.py`` and the source rows, applied to its registry."""
    root.mkdir(parents=True, exist_ok=True)
    config = render_default_config("quality_tests")
    if quality is not None:
        config += yaml.safe_dump({"quality": quality})
    (root / CONFIG_FILE_NAME).write_text(config)
    write_features(root, expectations)
    write_rows(root, rows)
    with FeatureStore(root) as store:
        apply(store)
    return root


def definitions(store: FeatureStore) -> dict[str, FeatureView]:
    return {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}


def apply(store: FeatureStore) -> None:
    store.apply(load_definitions(store.config), schema_resolver=LocalEngine(store).infer_schema)


def run(store: FeatureStore, engine: str = "local", **options: Any) -> RunResult:
    """Run the view on ``engine`` (``local`` or ``spark``), with the project's files' definitions."""
    if engine == "spark":
        from etl.spark import SparkEngine

        return SparkEngine(store).run(VIEW, definitions=definitions(store), progress=False, **options)
    return LocalEngine(store).run(VIEW, definitions=definitions(store), progress=False, **options)


def offline_rows(store: FeatureStore) -> list[tuple[Any, ...]]:
    t = store.offline_store.read(store.get_feature_view(VIEW))
    return sorted(zip(*(t.column(c).to_pylist() for c in COLUMNS), strict=True))


def online_rows(store: FeatureStore) -> dict[int, tuple[Any, ...]]:
    keys = pa.table({"customer_id": pa.array(range(1, 8), pa.int64())})
    t = store.online_store.read(store.get_feature_view(VIEW), keys, ["balance", "segment", "n", "active"])
    return {
        r["customer_id"]: (r["balance"], r["segment"], r["n"], r["active"])
        for r in t.to_pylist()
        if r["balance"] is not None or r["segment"] is not None
    }


def tree_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder (``None``) under ``root``, by relative path."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}
