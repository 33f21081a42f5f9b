"""What the registry gives back are typed, frozen records: features, models, lineage edges and
runs (with what a run did online), and the datamart serves them as JSON."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datamart.app import create_app
from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64
from featurestore.registry import FeatureRecord, LineageEdge, ModelRecord, Registry, RunRecord
from featurestore.store import FeatureStore
from featurestore.validation import validate_project

with warnings.catch_warnings():
    # Starlette warns on importing its TestClient that it wants `httpx2`; it works on httpx (see tests/api/conftest.py).
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient

PROJECT = "cards"
CUSTOMER = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
TRANSACTIONS = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")
SPEND = FeatureView(
    name="customer_spend",
    entities=(CUSTOMER,),
    source=TRANSACTIONS,
    timestamp_field="ts",
    ttl=timedelta(days=30),
    owner="risk",
    features=(
        Feature("spend_30d", Float64, description="Card spend", tags=("money",)),
        Feature("txn_count_30d", Int64, owner="ops"),
    ),
)
SCORING = FeatureService(name="scoring", features=(SPEND,))


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    """A fresh registry on SQLite, then on PostgreSQL (``registry_url`` in tests/conftest.py)."""
    reg = Registry(registry_url)
    reg.apply(PROJECT, validate_project([CUSTOMER, TRANSACTIONS, SPEND, SCORING]))
    yield reg
    reg.close()


def test_features_models_and_lineage_are_frozen_records(registry: Registry) -> None:
    assert registry.list_features(PROJECT) == [
        FeatureRecord("customer_spend", "spend_30d", "float64", "Card spend", "risk", ("money",)),
        FeatureRecord("customer_spend", "txn_count_30d", "int64", "", "ops", ()),
    ]
    registry.register_model(PROJECT, "fraud_gbm", "scoring", "Fraud risk")
    (model,) = registry.list_models(PROJECT)
    assert model == ModelRecord("fraud_gbm", "scoring", "Fraud risk")
    assert model.to_dict() == {"name": "fraud_gbm", "feature_service": "scoring", "description": "Fraud risk"}
    assert sorted(registry.lineage(PROJECT), key=lambda e: (e.src_kind, e.dst_kind)) == [
        LineageEdge("entity", "customer", "feature_view", "customer_spend"),
        LineageEdge("feature_service", "scoring", "model", "fraud_gbm"),
        LineageEdge("feature_view", "customer_spend", "feature_service", "scoring"),
        LineageEdge("source", "transactions", "feature_view", "customer_spend"),
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.name = "other"  # type: ignore[misc]


def test_a_run_records_the_entities_it_derived_and_removed_online(registry: Registry) -> None:
    done = registry.start_run(PROJECT, "customer_spend", engine="local", window_start=None, window_end=None)
    registry.finish_run(
        done,
        status="succeeded",
        rows_computed=10,
        rows_offline=10,
        rows_online=7,
        watermark=datetime(2024, 3, 1, tzinfo=UTC),
        entities_affected=8,
        rows_online_removed=1,
    )
    failed = registry.start_run(PROJECT, "customer_spend", engine="local", window_start=None, window_end=None)
    registry.finish_run(failed, status="failed", error="RunError: no rows")

    record = registry.get_run(done)
    assert isinstance(record, RunRecord)
    assert (record.entities_affected, record.rows_online_removed) == (8, 1)
    as_json = record.to_dict()
    assert (as_json["entities_affected"], as_json["rows_online_removed"]) == (8, 1)
    assert as_json["watermark"] == "2024-03-01T00:00:00+00:00"
    # Not given: not known.
    assert (registry.get_run(failed).entities_affected, registry.get_run(failed).rows_online_removed) == (None, None)


def test_the_datamart_serves_a_runs_online_counts(tmp_path: Path) -> None:
    (tmp_path / "featurestore.yaml").write_text(f"project: {PROJECT}\n")
    with FeatureStore(tmp_path) as store:
        store.registry.apply(PROJECT, validate_project([CUSTOMER, TRANSACTIONS, SPEND, SCORING]))
        run_id = store.registry.start_run(PROJECT, SPEND.name, engine="local", window_start=None, window_end=None)
        store.registry.finish_run(run_id, status="succeeded", rows_online=3, entities_affected=3, rows_online_removed=2)
        store.register_model("fraud_gbm", "scoring", "Fraud risk")
        with TestClient(create_app(store)) as client:
            (run,) = client.get(f"/v1/feature-views/{SPEND.name}").json()["runs"]
            models = client.get("/v1/models").json()
            edges = client.get("/v1/lineage").json()["edges"]
            quality = client.get(f"/v1/runs/{run_id}/quality").json()
    assert (run["id"], run["entities_affected"], run["rows_online_removed"]) == (run_id, 3, 2)
    assert quality["run"]["entities_affected"] == 3
    assert models == [{"name": "fraud_gbm", "feature_service": "scoring", "description": "Fraud risk"}]
    assert {"src_kind": "feature_service", "src_name": "scoring", "dst_kind": "model", "dst_name": "fraud_gbm"} in edges
