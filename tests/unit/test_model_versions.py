"""The registry's model versions (migration 0006) without MLflow: recorded, replaced, listed, in
the lineage beside the model's service edge, and named when unknown. The MLflow round trip that
fills them is tests/integration/test_mlflow.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from tiny_projects import new_project

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64, mlflow_link
from featurestore.cli import cli
from featurestore.errors import NotFoundError
from featurestore.registry import ModelVersionDataset, ModelVersionRecord, Registry
from featurestore.registry import model_versions as model_versions_module
from featurestore.registry.model_versions import ModelServiceSwitchError
from featurestore.store import FeatureStore

PROJECT = "cards"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
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
        store.apply(
            [
                customer,
                source,
                view,
                FeatureService(name="spend_model", features=(view,)),
                FeatureService(name="fraud_model", features=(view,)),
            ]
        )
        yield store


@pytest.fixture
def registry(store: FeatureStore) -> Registry:
    return store.registry


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


MODEL = "spend_classifier"


def fake_mlflow(monkeypatch: pytest.MonkeyPatch, service: str, run: str = "run1") -> None:
    """MLflow as record_model_version sees it: a version produced by ``run``, which logged one
    training dataset of ``service`` (our registry's record of it, as checked)."""
    dataset = SimpleNamespace(
        name=f"train_{service}", rows_sha256="a" * 64, feature_service=service, view_versions={"daily_spend": 1}
    )
    monkeypatch.setattr(mlflow_link, "_client", lambda uri: None)
    monkeypatch.setattr(mlflow_link, "_get_model_version", lambda *a: SimpleNamespace(run_id=run))
    monkeypatch.setattr(mlflow_link, "_get_run", lambda *a: None)
    monkeypatch.setattr(mlflow_link, "logged_datasets", lambda r: [{"dataset": dataset.name}])
    monkeypatch.setattr(mlflow_link, "_checked_dataset", lambda *a: dataset)


def services(store: FeatureStore) -> dict[str, str]:
    return {m.name: m.feature_service for m in store.registry.list_models(PROJECT)}


def test_a_version_of_another_service_does_not_switch_the_model_silently(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mlflow(monkeypatch, "spend_model")
    mlflow_link.record_model_version(store, MODEL, 1, actor="ana@example")
    assert services(store) == {MODEL: "spend_model"}
    assert store.model_feature_services([MODEL]) == {"spend_model"}

    fake_mlflow(monkeypatch, "fraud_model", run="run2")
    with pytest.raises(ModelServiceSwitchError) as err:
        mlflow_link.record_model_version(store, MODEL, 2, actor="ana@example")
    message = str(err.value)
    assert "consumes feature service 'spend_model'" in message and "feature service 'fraud_model'" in message
    assert "switch_service=True" in message and "--switch-service" in message
    assert services(store) == {MODEL: "spend_model"}
    assert store.registry.find_model_version(PROJECT, MODEL, 2) is None
    assert [a.target for a in store.registry.audit_log(PROJECT, action="model_version.record")] == [f"model:{MODEL}/1"]

    switched = mlflow_link.record_model_version(store, MODEL, 2, actor="ana@example", switch_service=True)
    assert switched.feature_service == "fraud_model"
    assert services(store) == {MODEL: "fraud_model"}
    assert store.model_feature_services([MODEL]) == {"fraud_model"}  # the token cache forgot the old one
    (register, *_) = store.registry.audit_log(PROJECT, action="model.register")
    assert register.detail == {"feature_service": "fraud_model", "previous_feature_service": "spend_model"}
    edges_now = edges(store.registry)
    assert ("feature_service", "fraud_model", "model", MODEL) in edges_now
    assert ("feature_service", "spend_model", "model", MODEL) not in edges_now


def test_the_registration_the_version_and_their_audit_are_one_transaction(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.register_model(MODEL, "spend_model", "churn scores")
    fake_mlflow(monkeypatch, "fraud_model")

    def broken(record: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_versions_module, "_row", broken)  # the version's insert fails
    with pytest.raises(RuntimeError, match="disk full"):
        mlflow_link.record_model_version(store, MODEL, 1, switch_service=True)
    assert services(store) == {MODEL: "spend_model"}  # not switched: rolled back with the insert
    assert store.registry.audit_log(PROJECT, action="model_version.record") == []
    assert len(store.registry.audit_log(PROJECT, action="model.register")) == 1  # register_model's own

    monkeypatch.undo()
    fake_mlflow(monkeypatch, "fraud_model")
    mlflow_link.record_model_version(store, MODEL, 1, switch_service=True)
    (model,) = store.registry.list_models(PROJECT)
    assert (model.feature_service, model.description) == ("fraud_model", "churn scores")


def test_the_cli_switches_the_service_only_with_the_flag(
    store: FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.register_model(MODEL, "spend_model")
    fake_mlflow(monkeypatch, "fraud_model")
    args = ["-C", str(tmp_path / PROJECT), "mlflow", "register", MODEL, "1"]
    refused = CliRunner().invoke(cli, args)
    assert isinstance(refused.exception, ModelServiceSwitchError) and "--switch-service" in str(refused.exception)
    assert services(store) == {MODEL: "spend_model"}
    switched = CliRunner().invoke(cli, [*args, "--switch-service"])
    assert switched.exit_code == 0, switched.output
    assert "feature service fraud_model" in switched.output
    assert services(store) == {MODEL: "fraud_model"}
