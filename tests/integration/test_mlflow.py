"""MLflow round trip (issue 16, part 2) against a real MLflow tracking server on 127.0.0.1.

``infra/mlflow/start.sh`` starts the server (installing MLflow in its own venv, ``.mlflow-venv``,
when missing: its pins conflict with ours, see ``infra/mlflow/install.sh``) on a port of its own
with a fresh SQLite store and artifact folder; the client is ``mlflow-skinny`` in our venv. A tiny
project (``daily_spend`` of card transactions, feature service ``spend_model``) saves a training
dataset, a run logs it (:func:`featurestore.mlflow_link.log_training_dataset`), trains a
scikit-learn model on its rows and registers it in MLflow's model registry; recording the version
(:func:`~featurestore.mlflow_link.record_model_version`) puts model version → service → dataset
in our registry and view → dataset → model in the lineage. A server that does not start fails
the tests, never skips them.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl.local import LocalEngine
from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64
from featurestore.errors import FeatureStoreError, InvalidRequestError, NotFoundError
from featurestore.store import FeatureStore
from tests.unit.test_cli import featurestore
from tests.unit.tiny_projects import UTC_US, new_project, utc, write_parquet

pytestmark = [
    pytest.mark.mlflow,
    # MLflow's pyfunc wrapper warns, when a model is logged, that it cannot validate "Any" inputs
    # (its own type hints, not ours): a warning about MLflow's internals, not this code.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
]

REPO = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("FEATURESTORE_TEST_MLFLOW_PORT", "15505"))
START_TIMEOUT_S = 1200  # a cold install of MLflow into .mlflow-venv, then the server's start
SERVICE = "spend_model"
VIEW = "daily_spend"
TRANSACTIONS = [
    (1, utc(2024, 3, 1, 10), 10.0),
    (1, utc(2024, 3, 2, 9), 7.0),
    (2, utc(2024, 3, 1, 8), 100.0),
    (2, utc(2024, 3, 3, 20), 50.0),
    (3, utc(2024, 3, 2, 11), 3.0),
    (4, utc(2024, 3, 2, 15), 80.0),
]


def _script(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "infra" / "mlflow" / f"{action}.sh")],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tracking server's URL; the server is stopped after this module's tests."""
    import mlflow

    env = {"MLFLOW_PORT": str(PORT), "MLFLOW_STATE": str(tmp_path_factory.mktemp("mlflow-server"))}
    started = _script("start", env)
    if started.returncode != 0:
        pytest.fail(
            f"infra/mlflow/start.sh (MLFLOW_PORT={PORT}) exited {started.returncode}\n"
            f"--- stdout\n{started.stdout}\n--- stderr\n{started.stderr}",
            pytrace=False,
        )
    uri = f"http://127.0.0.1:{PORT}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(before)
        _script("stop", env)


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
            SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of,
                   sum(amount) AS spend, count(*) AS n
            FROM transactions GROUP BY ALL
        """,
        features=(Feature("spend", Float64), Feature("n", Int64)),
    )
    return [customer, transactions, view, FeatureService(name=SERVICE, features=(view,))]


def spine(customers: list[int]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(customers, pa.int64()),
            "event_timestamp": pa.array([utc(2024, 3, 5)] * len(customers), UTC_US),
            "label": [int(c % 2 == 0) for c in customers],
        }
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = new_project(tmp_path / "cards", "cards")
    write_parquet(
        root / "data" / "transactions.parquet",
        {
            "customer_id": pa.array([r[0] for r in TRANSACTIONS], pa.int64()),
            "ts": pa.array([r[1] for r in TRANSACTIONS], UTC_US),
            "amount": [r[2] for r in TRANSACTIONS],
        },
    )
    with FeatureStore(root) as store:
        store.apply(definitions())
        views = {d.name: d for d in definitions() if isinstance(d, FeatureView)}
        assert LocalEngine(store).run(VIEW, definitions=views, progress=False).status == "succeeded"
        store.create_training_dataset("spend_train", spine([1, 2, 3, 4]), SERVICE)
        store.create_training_dataset("spend_train_v2", spine([1, 2, 3, 4, 2, 4]), SERVICE)
    return root


@pytest.fixture
def store(root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(root) as s:
        yield s


def unique(prefix: str) -> str:
    """A model or experiment name of its own: the server outlives one test."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def train_and_register(store: FeatureStore, dataset: str, model_name: str, *, log: bool = True) -> tuple[str, int]:
    """In a new run: log ``dataset`` (unless not ``log``), fit a logistic regression on its saved
    rows, log and register it as ``model_name``. Returns the run's id and the version."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from featurestore.mlflow_link import log_training_dataset

    rows = store.get_training_dataset(dataset).rows.to_pandas()
    with mlflow.start_run() as run:
        if log:
            log_training_dataset(store, dataset, targets="label")
        model = LogisticRegression().fit(rows[["spend", "n"]], rows["label"])
        # cloudpickle: the sklearn flavor's default, skops, is not installed (nor needed here).
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    assert info.registered_model_version is not None
    return run.info.run_id, int(info.registered_model_version)


def test_a_logged_dataset_and_a_registered_version_link_mlflow_and_the_registry(
    tracking_uri: str, store: FeatureStore
) -> None:
    import mlflow

    from featurestore.mlflow_link import SOURCE_TYPE, logged_datasets, record_model_version

    mlflow.set_experiment(unique("spend"))
    saved = store.get_training_dataset("spend_train").record
    model_name = unique("spend_classifier")
    run_id, version = train_and_register(store, "spend_train", model_name)

    # MLflow's run names the dataset, with its hash, as its training input, and links back.
    run = mlflow.get_run(run_id)
    (logged,) = [i for i in run.inputs.dataset_inputs if i.dataset.source_type == SOURCE_TYPE]
    assert logged.dataset.name == "spend_train"
    assert logged.dataset.digest == saved.rows_sha256[:32]
    assert {t.key: t.value for t in logged.tags} == {
        "mlflow.data.context": "training",
        "featurestore.dataset_sha256": saved.rows_sha256,
    }
    (source,) = logged_datasets(run)
    assert source["sha256"] == saved.rows_sha256
    assert (source["project"], source["dataset"], source["feature_service"]) == ("cards", "spend_train", SERVICE)
    assert source["view_versions"] == {VIEW: 1}
    assert '"num_rows": 4' in logged.dataset.profile
    assert run.data.tags["featurestore.dataset"] == "spend_train"
    assert run.data.tags["featurestore.dataset_sha256"] == saved.rows_sha256
    assert run.data.tags["featurestore.feature_service"] == SERVICE
    assert run.data.tags["featurestore.project"] == "cards"

    # Our registry: model version -> run, service, views' versions and dataset.
    recorded = record_model_version(store, model_name, version, actor="ana@example")
    assert store.registry.get_model_version("cards", model_name, version) == recorded
    assert (recorded.mlflow_run_id, recorded.feature_service) == (run_id, SERVICE)
    assert recorded.view_versions == {VIEW: 1}
    assert [(d.name, d.sha256) for d in recorded.datasets] == [("spend_train", saved.rows_sha256)]
    assert recorded.model_uri == f"models:/{model_name}/{version}"
    assert {m.name: m.feature_service for m in store.registry.list_models("cards")}[model_name] == SERVICE
    # The model MLflow keeps is the one trained on those rows: it loads and predicts them.
    loaded = mlflow.pyfunc.load_model(recorded.model_uri)
    rows = store.get_training_dataset("spend_train").rows.to_pandas()
    assert len(loaded.predict(rows[["spend", "n"]])) == 4

    # Lineage: view -> dataset -> model, and service -> model.
    edges = {(e.src_kind, e.src_name, e.dst_kind, e.dst_name) for e in store.registry.lineage("cards")}
    assert ("feature_view", VIEW, "training_dataset", "spend_train") in edges
    assert ("training_dataset", "spend_train", "model", model_name) in edges
    assert ("feature_service", SERVICE, "model", model_name) in edges

    # A second version trained on another dataset: both datasets feed the model, each version
    # names its own; recording a version again changes nothing.
    run_2, version_2 = train_and_register(store, "spend_train_v2", model_name)
    assert version_2 == version + 1
    second = record_model_version(store, model_name, str(version_2))
    assert [d.name for d in second.datasets] == ["spend_train_v2"]
    assert second.mlflow_run_id == run_2
    again = record_model_version(store, model_name, version, actor="ana@example")
    assert (again.datasets, again.mlflow_run_id) == (recorded.datasets, recorded.mlflow_run_id)
    assert [r.version for r in store.registry.list_model_versions("cards", model=model_name)] == [version, version_2]
    edges = {(e.src_kind, e.src_name, e.dst_kind, e.dst_name) for e in store.registry.lineage("cards")}
    assert {("training_dataset", d, "model", model_name) for d in ("spend_train", "spend_train_v2")} <= edges
    audit = store.registry.audit_log("cards", action="model_version.record")
    assert {a.target for a in audit} >= {f"model:{model_name}/{version}", f"model:{model_name}/{version_2}"}


def test_unknown_datasets_models_and_versions_are_named(tracking_uri: str, store: FeatureStore) -> None:
    import mlflow

    from featurestore.mlflow_link import log_training_dataset, record_model_version

    mlflow.set_experiment(unique("errors"))
    with pytest.raises(NotFoundError, match=r"Training dataset 'spend_trian' not found .*Did you mean 'spend_train'"):
        log_training_dataset(store, "spend_trian", run_id="0" * 32)
    with pytest.raises(InvalidRequestError, match=r"No MLflow run is active .*run_id="):
        log_training_dataset(store, "spend_train")
    with pytest.raises(NotFoundError, match=r"MLflow run '0+' not found"):
        log_training_dataset(store, "spend_train", run_id="0" * 32)

    model_name = unique("errors_model")
    _, version = train_and_register(store, "spend_train", model_name)
    with pytest.raises(NotFoundError, match=rf"MLflow model version '{model_name}/9' not found.*'{model_name}/1'"):
        record_model_version(store, model_name, 9)
    with pytest.raises(NotFoundError, match=rf"MLflow registered model '{model_name}x' not found.*'{model_name}'"):
        record_model_version(store, f"{model_name}x", version)
    with pytest.raises(InvalidRequestError, match=r"'latest' of model .* is not a version number"):
        record_model_version(store, model_name, "latest")

    # A version whose run logged no dataset of ours: says which run and what to do.
    bare = unique("bare_model")
    bare_run, bare_version = train_and_register(store, "spend_train", bare, log=False)
    with pytest.raises(FeatureStoreError, match=f"run {bare_run} .* logged no training dataset .*log-dataset"):
        record_model_version(store, bare, bare_version)
    assert store.registry.find_model_version("cards", bare, bare_version) is None
    with pytest.raises(NotFoundError, match=rf"Model version '{bare}/{bare_version}' not found"):
        store.registry.get_model_version("cards", bare, bare_version)


def test_the_cli_logs_a_dataset_and_records_the_version(tracking_uri: str, root: Path) -> None:
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    experiment = unique("cli")
    logged = featurestore("-C", root, "mlflow", "log-dataset", "spend_train", "--experiment", experiment)
    assert logged.code == 0, logged.err
    assert "logged training dataset spend_train (4 rows, sha256 " in logged.out
    run_id = logged.out.split("to MLflow run ")[1].split()[0]
    with FeatureStore(root) as store:
        rows = store.get_training_dataset("spend_train").rows.to_pandas()
    model_name = unique("cli_model")
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_id=run_id):  # resumes the run the CLI created
        model = LogisticRegression().fit(rows[["spend", "n"]], rows["label"])
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    version = info.registered_model_version

    registered = featurestore("-C", root, "mlflow", "register", model_name, str(version))
    assert registered.code == 0, registered.err
    assert f"recorded model {model_name} version {version} (MLflow run {run_id})" in registered.out
    assert "feature service spend_model (daily_spend v1); training datasets spend_train" in registered.out
    listed = featurestore("-C", root, "mlflow", "versions", model_name)
    assert f"{model_name}/{version}  service=spend_model  datasets=spend_train  run={run_id}" in listed.out

    unknown = featurestore("-C", root, "mlflow", "log-dataset", "spend_tarin", "--experiment", experiment)
    assert unknown.code == 1
    assert "Training dataset 'spend_tarin' not found in project 'cards'. Did you mean 'spend_train'" in unknown.err
    missing = featurestore("-C", root, "mlflow", "register", model_name, "7")
    assert missing.code == 1
    assert f"MLflow model version '{model_name}/7' not found" in missing.err
