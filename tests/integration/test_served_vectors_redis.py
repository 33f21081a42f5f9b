"""The served-vector log and skew report on real Redis (issue 16, part 4): the lookups a Redis
online store served are logged, a clean run compares with 0 mismatches, and a value changed in
Redis after the run is reported as ``differs`` with its example."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.local import LocalEngine
from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64
from featurestore.config import CONFIG_FILE_NAME, render_default_config
from featurestore.schema import view_schema
from featurestore.store import FeatureStore

UTC_US = pa.timestamp("us", tz="UTC")
VIEW, SERVICE = "daily_spend", "spend_model"


def definitions() -> list[Any]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    transactions = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")
    view = FeatureView(
        name=VIEW,
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=3650),
        transformation="""
            SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of, sum(amount) AS spend,
                   count(*) AS n
            FROM transactions GROUP BY ALL
        """,
        features=(Feature("spend", Float64), Feature("n", Int64)),
    )
    return [customer, transactions, view, FeatureService(name=SERVICE, features=(view,))]


@pytest.mark.server
@pytest.mark.parametrize("online_store_config", ["redis"], indirect=True)
def test_skew_of_lookups_served_by_redis(tmp_path: Path, online_store_config: dict[str, Any]) -> None:
    root = tmp_path / "cards"
    root.mkdir()
    config = render_default_config("cards").replace("online_store:\n  type: sqlite\n  path: data/online.db\n", "")
    config += f"online_store: {json.dumps(online_store_config)}\n"
    config += 'serving_log: {"sample_rate": 1.0}\n'
    (root / CONFIG_FILE_NAME).write_text(config)
    (root / "data").mkdir()
    day = datetime(2024, 3, 1, 10, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([1, 1, 2, 3], pa.int64()),
                "ts": pa.array([day, day + timedelta(days=1), day, day + timedelta(days=2)], UTC_US),
                "amount": [10.0, 7.0, 100.0, 3.0],
            }
        ),
        root / "data" / "transactions.parquet",
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    with FeatureStore(root) as store:
        assert store.config.online_store.type == "redis"
        store.apply(definitions())
        views = {d.name: d for d in definitions() if isinstance(d, FeatureView)}
        assert LocalEngine(store).run(VIEW, definitions=views, progress=False).status == "succeeded"
        served = store.get_online_features(SERVICE, {"customer_id": [1, 2, 3, 4]})
        assert served.columns["spend"][:3] == [7.0, 100.0, 3.0]
        assert store.serving_log is not None and store.serving_log.flush()
        clean = store.skew_report(SERVICE, since)
        assert (clean.values_compared, clean.mismatches) == (8, 0)

        view = store.get_feature_view(VIEW)
        tampered = pa.table(
            {
                "customer_id": [3],
                "as_of": pa.array([datetime(2024, 3, 4, tzinfo=UTC)], UTC_US),
                "spend": [-1.0],
                "n": [1],
            }
        )
        store.online_store.write(view, tampered.cast(view_schema(view)))
        later = datetime.now(UTC)
        store.get_online_features(SERVICE, {"customer_id": [1, 3]})
        assert store.serving_log.flush()
        report = store.skew_report(SERVICE, later)
    spend = report.feature("spend")
    assert spend.counts == {"match": 1, "late": 0, "differs": 1, "missing_online": 0, "expired": 0}
    (example,) = spend.examples["differs"]
    assert (example["entity"], example["served_value"], example["offline_value"]) == ({"customer_id": 3}, -1.0, 3.0)
    assert report.feature("n").counts["match"] == 2
