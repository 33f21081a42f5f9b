"""The tiny project of the registry UI's page tests (described in ``conftest.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.local import LocalEngine
from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64, SqlSource
from featurestore.config import CONFIG_FILE_NAME, render_default_config
from featurestore.store import FeatureStore
from featurestore.validation import validate_project


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def tiny_definitions() -> list[object]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,), description="A card holder")
    transactions = FileSource(
        name="transactions", path="data/transactions.parquet", timestamp_field="ts", description="Card payments"
    )
    big = SqlSource(
        name="big_spenders",
        query="SELECT customer_id, ts, amount >= 50 AS big_spender FROM transactions",
        sources=(transactions,),
        timestamp_field="ts",
    )
    stats = FeatureView(
        name="customer_stats",
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=3650),
        transformation="""
            SELECT customer_id, CAST(date_trunc('day', ts) + INTERVAL 1 DAY AS TIMESTAMP) AS as_of,
                   sum(amount) AS spend_1d, count(*) AS txn_count_1d
            FROM transactions GROUP BY ALL
        """,
        features=(
            Feature("spend_1d", Float64, description="Card spend during the previous day", tags=("spend",)),
            Feature("txn_count_1d", Int64, description="Card transactions during the previous day"),
        ),
        description="Daily card activity per customer, known at midnight",
        owner="risk@example.com",
        tags=("domain:cards",),
    )
    flags = FeatureView(
        name="customer_flags",
        entities=(customer,),
        source=big,
        timestamp_field="ts",
        ttl=timedelta(days=30),
        features=(Feature("big_spender", Int64, description="Whether the payment was 50 or more"),),
        transformation="SELECT customer_id, ts, CAST(big_spender AS BIGINT) AS big_spender FROM big_spenders",
        description="Flags of remarkable customers",
        owner="crm@example.com",
    )
    churn = FeatureService(name="churn", features=(stats,), description="Features of the churn model")
    return [customer, transactions, big, stats, flags, churn]


def write_tiny_project(root: Path, *, run: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE_NAME).write_text(render_default_config("shop"))
    (root / "data").mkdir(exist_ok=True)
    ts = pa.timestamp("us", tz="UTC")
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([1, 1, 2], pa.int64()),
                "ts": pa.array([utc(2024, 3, 1, 10), utc(2024, 3, 2, 9), utc(2024, 3, 1, 8)], ts),
                "amount": [10.0, 7.0, 100.0],
            }
        ),
        root / "data" / "transactions.parquet",
    )
    objects = tiny_definitions()
    with FeatureStore(root) as store:
        engine = LocalEngine(store)
        store.apply(objects, schema_resolver=engine.infer_schema)
        if run:
            views = {v.name: v for v in validate_project(objects).feature_views}
            engine.run("customer_stats", definitions=views, progress=False)
    return root
