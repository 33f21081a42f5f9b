"""The model server (issue 16, part 3) against a real MLflow tracking server on 127.0.0.1.

Three versions of one scikit-learn model are trained on saved training datasets, registered in
MLflow and recorded in our registry (as in ``test_mlflow.py``, whose project this reuses, with
300 customers). Versions 1 and 3 learn "spend above 50", version 2 the opposite, so that which
version predicted an entity shows in its prediction. The online store is the embedded one.

``FEATURESTORE_TEST_MLFLOW_URI`` set: the tests use that running server instead of starting one
(for working on them; the server's start takes 45-100 s here).
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamart.app import create_app
from etl.local import LocalEngine
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.model_serving import ModelServer, bucket_of, score, set_model_traffic, version_for
from featurestore.store import FeatureStore
from tests.api.conftest import TestClient  # imported there without its warning about httpx2
from tests.integration.test_mlflow import SERVICE, VIEW, _script, definitions, unique
from tests.unit.test_cli import featurestore
from tests.unit.tiny_projects import UTC_US, new_project, utc, write_parquet

pytestmark = [
    pytest.mark.mlflow,
    # MLflow's pyfunc wrapper warns, when a model is logged, that it cannot validate "Any" inputs
    # (its own type hints, not ours): a warning about MLflow's internals, not this code.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
]

PORT = int(os.environ.get("FEATURESTORE_TEST_MODEL_SERVER_MLFLOW_PORT", "15511"))
CUSTOMERS = 300
ENTITIES = 10_000
AS_OF = utc(2024, 3, 5)


def _amount(customer: int) -> float:
    return float((customer * 37) % 101)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import mlflow

    given = os.environ.get("FEATURESTORE_TEST_MLFLOW_URI")
    env = {"MLFLOW_PORT": str(PORT), "MLFLOW_STATE": str(tmp_path_factory.mktemp("mlflow-server"))}
    if not given:
        started = _script("start", env)
        if started.returncode != 0:
            pytest.fail(
                f"infra/mlflow/start.sh (MLFLOW_PORT={PORT}) exited {started.returncode}\n"
                f"--- stdout\n{started.stdout}\n--- stderr\n{started.stderr}",
                pytrace=False,
            )
    uri = given or f"http://127.0.0.1:{PORT}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(before)
        if not given:
            _script("stop", env)


def _spine(customers: list[int], inverse: bool) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(customers, pa.int64()),
            "event_timestamp": pa.array([AS_OF] * len(customers), UTC_US),
            "label": [int((_amount(c) > 50) != inverse) for c in customers],
        }
    )


def _train(store: FeatureStore, dataset: str, model_name: str) -> int:
    """Log ``dataset``, fit an imputing logistic regression on its rows, register and record it."""
    import mlflow
    import mlflow.sklearn
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from featurestore.mlflow_link import log_training_dataset, record_model_version

    rows = store.get_training_dataset(dataset).rows.to_pandas()
    with mlflow.start_run():
        log_training_dataset(store, dataset, targets="label")
        # Imputed: entities without a row online (status missing) are predicted too.
        model = make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0), LogisticRegression(C=100.0))
        model.fit(rows[["spend", "n"]], rows["label"])
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    assert info.registered_model_version is not None
    return record_model_version(store, model_name, info.registered_model_version).version


@pytest.fixture(scope="module")
def project(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project's folder and a model with versions 1, 2 (inverse labels) and 3."""
    import mlflow

    root = new_project(tmp_path_factory.mktemp("serving") / "cards", "cards")
    customers = list(range(1, CUSTOMERS + 1))
    write_parquet(
        root / "data" / "transactions.parquet",
        {
            "customer_id": pa.array(customers, pa.int64()),
            "ts": pa.array([utc(2024, 3, 1, 10) + timedelta(minutes=c) for c in customers], UTC_US),
            "amount": [_amount(c) for c in customers],
        },
    )
    model_name = unique("spend_classifier")
    mlflow.set_experiment(unique("serving"))
    with FeatureStore(root) as store:
        store.apply(definitions())
        views = {d.name: d for d in definitions() if hasattr(d, "ttl")}
        assert LocalEngine(store).run(VIEW, definitions=views, progress=False).status == "succeeded"
        store.create_training_dataset("train_a", _spine(customers, inverse=False), SERVICE)
        store.create_training_dataset("train_b", _spine(customers, inverse=True), SERVICE)
        assert [_train(store, d, model_name) for d in ("train_a", "train_b", "train_a")] == [1, 2, 3]
    return root, model_name


@pytest.fixture
def store(project: tuple[Path, str]) -> Iterator[FeatureStore]:
    with FeatureStore(project[0]) as s:
        s.registry.clear_model_traffic(s.project, project[1])
        yield s


def _keys(n: int) -> dict[str, list[int]]:
    return {"customer_id": list(range(1, n + 1))}


def test_versions_predict_side_by_side_each_loaded_once(project: tuple[Path, str], store: FeatureStore) -> None:
    import mlflow.pyfunc

    _, model = project
    server = ModelServer(store)
    keys = _keys(CUSTOMERS)
    one = server.predict(model, keys, version=1)
    two = server.predict(model, keys, version=2)
    assert one.versions == [1] * CUSTOMERS and two.versions == [2] * CUSTOMERS
    # Each version predicts what MLflow's model predicts on the features served online.
    online = store.get_online_features(SERVICE, keys)
    assert one.features == online.columns
    assert set(one.statuses["spend"]) == {"present"}
    frame = online.values.to_pandas()[["spend", "n"]]
    assert one.predictions == mlflow.pyfunc.load_model(f"models:/{model}/1").predict(frame).tolist()
    # Versions 1 and 2 learnt opposite labels: they disagree on (nearly) every entity.
    assert sum(a != b for a, b in zip(one.predictions, two.predictions, strict=True)) > 0.9 * CUSTOMERS
    assert one.predictions == [int(_amount(c) > 50) for c in keys["customer_id"]]
    # No traffic setting: the newest version serves.
    default = server.predict(model, keys)
    assert default.versions == [3] * CUSTOMERS
    # Loaded once per version, also when many threads ask for a version first at once.
    fresh = ModelServer(store)
    threads = [threading.Thread(target=fresh.predict, args=(model, _keys(5)), kwargs={"version": 2}) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(3):
        server.predict(model, keys, version=1)
    assert fresh.loads == {(model, 2): 1}
    assert server.loads == {(model, 1): 1, (model, 2): 1, (model, 3): 1}


def test_a_split_holds_its_proportions_and_sticks_to_each_entity(
    project: tuple[Path, str], store: FeatureStore
) -> None:
    _, model = project
    set_model_traffic(store, model, {1: 90, 2: 10}, actor="ana@example")
    server = ModelServer(store)
    keys = _keys(ENTITIES)
    served = server.predict(model, keys)
    share = served.versions.count(2) / ENTITIES
    sigma = math.sqrt(0.1 * 0.9 / ENTITIES)
    assert abs(share - 0.1) <= 3 * sigma, (share, sigma)
    assert set(served.versions) == {1, 2}
    # Each entity's prediction is its version's.
    by_version = {v: server.predict(model, keys, version=v).predictions for v in (1, 2)}
    assert served.predictions == [by_version[v][i] for i, v in enumerate(served.versions)]
    # Sticky: the same entity gets the same version in another batch, order, process (a new
    # server) and alone; not a coin toss per request.
    chosen = dict(zip(keys["customer_id"], served.versions, strict=True))
    shuffled = keys["customer_id"][:]
    random.Random(7).shuffle(shuffled)
    again = ModelServer(store).predict(model, {"customer_id": shuffled[:2000]})
    assert again.versions == [chosen[c] for c in shuffled[:2000]]
    for c in shuffled[:50]:
        assert server.predict(model, {"customer_id": [c]}).versions == [chosen[c]]
    # The rule itself: a bucket of the model's name and the entity's key.
    assert version_for(model, "customer_id=5", {1: 90, 2: 10}) == (1 if bucket_of(model, "customer_id=5") < 9000 else 2)
    assert store.registry.audit_log("cards", action="model_traffic.set")[0].detail == {
        "split": {"1": 90, "2": 10},
        "shadow": None,
    }


def test_a_shadow_version_is_logged_and_never_returned(
    project: tuple[Path, str], store: FeatureStore, caplog: pytest.LogCaptureFixture
) -> None:
    _, model = project
    set_model_traffic(store, model, {1: 50, 3: 50}, shadow=2)
    server = ModelServer(store)
    keys = _keys(CUSTOMERS)
    with caplog.at_level(logging.INFO, logger="featurestore.model_serving.shadow"):
        served = server.predict(model, keys)
    assert 2 not in served.versions and set(served.versions) == {1, 3}
    (record,) = [r for r in caplog.records if r.name == "featurestore.model_serving.shadow"]
    assert record.shadow_version == 2  # type: ignore[attr-defined]
    expected = server.predict(model, keys, version=2).predictions
    assert record.shadow_predictions == expected  # type: ignore[attr-defined]
    assert record.served_predictions == served.predictions  # type: ignore[attr-defined]
    assert f"shadow model={model} version=2 entities={CUSTOMERS}" in record.getMessage()
    stats = server.shadow_stats()[(model, 2)]
    agreed = sum(a == b for a, b in zip(expected, served.predictions, strict=True))
    assert (stats.predictions, stats.agreed, stats.failures) == (CUSTOMERS, agreed, 0)

    # Over HTTP: the same, through the datamart's route.
    with TestClient(create_app(store)) as client:
        with caplog.at_level(logging.INFO, logger="featurestore.model_serving.shadow"):
            answer = client.post(f"/v1/models/{model}/predict", json={"entities": {"customer_id": [1, 2, 3]}})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["versions"] == served.versions[:3]
        assert body["predictions"] == served.predictions[:3]
        assert body["features"]["spend"]["statuses"] == ["present"] * 3
        assert body["entities"] == {"customer_id": [1, 2, 3]}
        metrics = client.get("/v1/metrics").text
        counted = rf'featurestore_requests_total\{{kind="predict",project="cards",status="2xx",target="{model}"\}} 1\.0'
        assert re.search(counted, metrics), metrics
        # The shadow's counts too (3 entities of this request, this app's server).
        shadowed = rf'featurestore_shadow_predictions_total\{{model="{model}",project="cards",version="2"\}} 3\.0'
        assert re.search(shadowed, metrics), metrics


def test_unknown_models_and_versions_are_named(project: tuple[Path, str], store: FeatureStore) -> None:
    _, model = project
    server = ModelServer(store)
    with pytest.raises(NotFoundError, match=rf"Model '{model}x' not found in project 'cards'.*{model}"):
        server.predict(f"{model}x", _keys(1))
    with pytest.raises(NotFoundError, match=rf"Model version '{model}/9' not found.* has versions 1, 2, 3"):
        server.predict(model, _keys(1), version=9)
    with pytest.raises(NotFoundError, match=r"has versions 1, 2, 3"):
        set_model_traffic(store, model, {1: 50, 7: 50})
    with pytest.raises(InvalidRequestError, match=r"summing to 100 \(they sum to 110\)"):
        set_model_traffic(store, model, {1: 60, 2: 50})
    with pytest.raises(InvalidRequestError, match=r"version 2 .* is in the split"):
        set_model_traffic(store, model, {1: 50, 2: 50}, shadow=2)
    with TestClient(create_app(store)) as client:
        unknown = client.post(f"/v1/models/{model}x/predict", json={"entities": {"customer_id": [1]}})
        assert unknown.status_code == 404
        assert model in unknown.json()["message"]
        version = client.post(f"/v1/models/{model}/versions/9/predict", json={"entities": {"customer_id": [1]}})
        assert version.status_code == 404
        assert "has versions 1, 2, 3" in version.json()["message"]
        called = client.post(f"/v1/models/{model}/versions/2/predict", json={"entities": {"customer_id": [1, 2]}})
        assert called.status_code == 200 and called.json()["versions"] == [2, 2]


def test_batch_scoring_equals_online_scoring(project: tuple[Path, str], store: FeatureStore, tmp_path: Path) -> None:
    root, model = project
    set_model_traffic(store, model, {1: 50, 2: 50})
    online = ModelServer(store).predict(model, _keys(CUSTOMERS))
    batch = score(store, model, as_of=AS_OF)
    assert batch.num_rows == CUSTOMERS
    rows = {r["customer_id"]: r for r in batch.to_pylist()}
    compared = 0
    for i, c in enumerate(online.keys["customer_id"]):
        row = rows[c]
        # Entities whose online and offline values agree get the same version and prediction.
        if online.features["spend"][i] == row["spend"] and online.features["n"][i] == row["n"]:
            compared += 1
            assert (row["version"], row["prediction"]) == (online.versions[i], online.predictions[i]), c
    assert compared == CUSTOMERS  # nothing ran since: every entity agrees
    # A spine: point in time, so a time before the data scores on no features (imputed).
    spine = pa.table(
        {"customer_id": pa.array([1, 2], pa.int64()), "event_timestamp": pa.array([AS_OF, utc(2024, 1, 1)], UTC_US)}
    )
    early = score(store, model, spine=spine, version=1)
    assert early.column("spend").to_pylist()[1] is None
    assert early.column("version").to_pylist() == [1, 1]
    by_one = ModelServer(store).predict(model, {"customer_id": [1]}, version=1).predictions
    assert early.column("prediction").to_pylist()[0] == by_one[0]

    # The CLI: model-traffic shows and sets the split; score writes a file.
    shown = featurestore("-C", root, "model-traffic", model)
    assert shown.code == 0, shown.err
    assert f"model {model}: version 1 50 %, version 2 50 %" in shown.out
    out = tmp_path / "scores.parquet"
    scored = featurestore("-C", root, "score", model, "--as-of", "2024-03-05", "--out", out)
    assert scored.code == 0, scored.err
    assert pq.read_table(out).column("prediction").to_pylist() == batch.column("prediction").to_pylist()
    both = featurestore("-C", root, "score", model, "--out", out)
    assert both.code != 0 and "--spine FILE or --as-of DATE" in both.err
    bad = featurestore("-C", root, "model-traffic", model, "--split", "1=90,2=20")
    assert bad.code == 1 and "they sum to 110" in bad.err
    changed = featurestore("-C", root, "model-traffic", model, "--split", "1=90,2=10", "--shadow", "3")
    assert changed.code == 0, changed.err
    assert "version 1 90 %, version 2 10 %; shadow version 3" in changed.out
