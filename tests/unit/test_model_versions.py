"""The registry's model versions (migration 0006) without MLflow: recorded, replaced, listed, in
the lineage beside the model's service edge, and named when unknown. The MLflow round trip that
fills them is tests/integration/test_mlflow.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tiny_projects import new_project

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64
from featurestore.errors import NotFoundError
from featurestore.registry import ModelVersionDataset, ModelVersionRecord, Registry
from featurestore.store import FeatureStore

PROJECT = "cards"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    source = FileSource(name="transactions", path="data/t.parquet", timestamp_field="ts")
    view = FeatureView(
        name="daily_spend",
        entities=(customer,),
        source=source,
        ttl=timedelta(days=2),
        features=(Feature("spend", Float64),),
    )
    with FeatureStore(new_project(tmp_path / PROJECT, PROJECT)) as store:
        store.apply([customer, source, view, FeatureService(name="spend_model", features=(view,))])
        yield store.registry


def version(number: int, *datasets: str, run: str = "run1") -> ModelVersionRecord:
    return ModelVersionRecord(
        project=PROJECT,
        model="spend_classifier",
        version=number,
        mlflow_run_id=run,
        model_uri=f"models:/spend_classifier/{number}",
        feature_service="spend_model",
        view_versions={"daily_spend": 1},
        datasets=tuple(ModelVersionDataset(d, d[0] * 64) for d in datasets),
        created_at=datetime(2024, 3, 5, tzinfo=UTC),
        created_by="ana@example",
    )


def edges(registry: Registry) -> set[tuple[str, str, str, str]]:
    return {(e.src_kind, e.src_name, e.dst_kind, e.dst_name) for e in registry.lineage(PROJECT)}


def test_versions_are_recorded_replaced_and_listed_with_their_datasets_in_the_lineage(registry: Registry) -> None:
    registry.register_model(PROJECT, "spend_classifier", "spend_model")
    registry.record_model_version(version(1, "train_a"))
    registry.record_model_version(version(2, "train_b", "eval_b", run="run2"))
    assert registry.get_model_version(PROJECT, "spend_classifier", 1) == version(1, "train_a")
    assert [(r.version, [d.name for d in r.datasets]) for r in registry.list_model_versions(PROJECT)] == [
        (1, ["train_a"]),
        (2, ["train_b", "eval_b"]),
    ]
    # Recording a version again replaces its row, and adds no duplicate edge.
    registry.record_model_version(version(1, "train_a", run="run1b"))
    assert registry.get_model_version(PROJECT, "spend_classifier", 1).mlflow_run_id == "run1b"
    assert len(registry.list_model_versions(PROJECT, model="spend_classifier")) == 2
    assert registry.list_model_versions(PROJECT, model="other") == []
    # Registering the model again (another service, or the same) keeps its datasets' edges.
    registry.register_model(PROJECT, "spend_classifier", "spend_model", "retrained")
    assert {
        ("training_dataset", "train_a", "model", "spend_classifier"),
        ("training_dataset", "train_b", "model", "spend_classifier"),
        ("training_dataset", "eval_b", "model", "spend_classifier"),
        ("feature_service", "spend_model", "model", "spend_classifier"),
    } <= edges(registry)


def test_an_unknown_version_names_the_recorded_ones(registry: Registry) -> None:
    registry.record_model_version(version(1, "train_a"))
    with pytest.raises(NotFoundError, match=r"Model version 'spend_classifier/3' not found .*'spend_classifier/1'"):
        registry.get_model_version(PROJECT, "spend_classifier", 3)
    assert registry.find_model_version(PROJECT, "spend_classifier", 3) is None
