"""The demo's model loop (steps 10 and 11 of ``demo.py``): train from the saved training dataset,
log it and the model to MLflow, record the versions in the registry, and serve them over HTTP.

MLflow runs without a server here: the ``mlflow-skinny`` client keeps its tracking store and
model registry in a SQLite file and the models' artifacts in a folder, both under the project's
``data/mlflow`` (:func:`tracking_uri`). The datamart, a separate process, finds the models
through the same file (``MLFLOW_TRACKING_URI`` in its environment).
"""

from __future__ import annotations

import logging
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from featurestore.config import ProjectConfig
from featurestore.mlflow_link import log_training_dataset, record_model_version
from featurestore.model_serving import set_model_traffic
from featurestore.store import FeatureStore

EXPERIMENT = "bank_credit_default"
LABEL = "defaulted"
SPLIT = {1: 80, 2: 20}
SHADOW = 3


@dataclass(frozen=True)
class Recipe:
    """How one model version is trained; the same recipe on the same rows gives the same model."""

    description: str
    params: Mapping[str, Any]


RECIPES = {
    1: Recipe("gradient boosting, 150 iterations (step 5's model)", {"max_iter": 150, "learning_rate": 0.05}),
    2: Recipe("gradient boosting, 300 shallower iterations (the challenger)", {"max_iter": 300, "max_depth": 3}),
    3: Recipe(
        "version 1's recipe again, on the dataset fetched back (the shadow)", {"max_iter": 150, "learning_rate": 0.05}
    ),
}


def tracking_uri(project: Path) -> str:
    """MLflow's tracking and registry store of the demo: a SQLite file in ``data/mlflow``."""
    return f"sqlite:///{project / 'data' / 'mlflow' / 'mlflow.db'}"


def create_store_in_background(project: Path) -> subprocess.Popen[bytes]:
    """Create the demo's MLflow store in another process while steps 1 to 9 run: MLflow creates
    a new SQLite store by running all its migrations, 15 s on two cores loaded by other work."""
    folder = project / "data" / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    code = "import sys; from mlflow.tracking import MlflowClient; MlflowClient(sys.argv[1]).search_experiments()"
    with open(folder / "create.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-c", code, tracking_uri(project)], stdout=log, stderr=log)


def prepare_mlflow(project: Path) -> str:
    """Point MLflow at the demo's store and make its experiment, whose artifacts (the models)
    go to ``data/mlflow/artifacts``; quiet MLflow's own logging. Returns the experiment's id."""
    import mlflow

    # MLflow logs at INFO while it creates its tables, and warns at each sklearn model saved as a
    # pickle (load only pickles you trust: here, the model this process just trained).
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    # Logging a dataset, MLflow infers its schema and warns that integer columns cannot hold
    # missing values at inference: about model signatures, and these models are logged without one.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
    (project / "data" / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(project))
    mlflow.set_registry_uri(tracking_uri(project))
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    artifacts = (project / "data" / "mlflow" / "artifacts").as_uri()
    return str(mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts))


def split_by_time(rows: pd.DataFrame, timestamp_column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The earliest 75 % of applications to train on, the latest 25 % to test on (as step 5)."""
    cut = rows[timestamp_column].quantile(0.75)
    return rows[rows[timestamp_column] < cut], rows[rows[timestamp_column] >= cut]


def train_versions(
    config: ProjectConfig,
    project: Path,
    model_name: str,
    dataset: str,
    rows: pd.DataFrame,
    features: list[str],
    seed: int,
    creating: subprocess.Popen[bytes],
) -> dict[int, float]:
    """Train each recipe on ``rows`` (the saved dataset's), each in an MLflow run that logs the
    dataset as its input and the model, registered as a version of ``model_name``; then record
    each version in our registry (``creating``: the process creating MLflow's store, waited
    for). Returns each version's test AUC."""
    import mlflow
    import mlflow.sklearn

    t0 = time.perf_counter()
    if creating.wait() != 0:
        raise SystemExit(f"MLflow could not create its store; see {project / 'data' / 'mlflow' / 'create.log'}")
    waited = time.perf_counter() - t0
    experiment_id = prepare_mlflow(project)
    print(
        f"   MLflow's store, created in the background since step 1 (waited {waited:.1f}s more), and experiment "
        f"{EXPERIMENT} ready in {time.perf_counter() - t0:.1f}s"
    )
    train, test = split_by_time(rows, "applied_at")
    aucs: dict[int, float] = {}
    with FeatureStore(config) as store:
        for expected, recipe in RECIPES.items():
            model = HistGradientBoostingClassifier(random_state=seed, **recipe.params)
            model.fit(train[features], train[LABEL])
            auc = float(roc_auc_score(test[LABEL], model.predict_proba(test[features])[:, 1]))
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{model_name} {expected}") as run:
                logged = log_training_dataset(store, dataset, targets=LABEL)
                mlflow.log_params({"trained_on": dataset, **recipe.params})
                mlflow.log_metric("test_auc", auc)
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=model_name,
                    # The served prediction is the probability of each class: [no default, default].
                    pyfunc_predict_fn="predict_proba",
                    serialization_format="cloudpickle",
                    pip_requirements=["scikit-learn"],
                )
            version = int(info.registered_model_version)
            if version != expected:
                raise SystemExit(f"MLflow registered version {version} of {model_name}, expected {expected}")
            record = record_model_version(store, model_name, version, actor="demo")
            aucs[version] = auc
            views = ", ".join(f"{v} v{n}" for v, n in sorted(record.view_versions.items()))
            print(
                f"   version {version}: {recipe.description}: AUC {auc:.3f}; MLflow run {run.info.run_id[:8]} logged "
                f"dataset {logged.dataset} (digest {logged.digest[:12]}); recorded: feature service "
                f"{record.feature_service} ({views}), datasets {', '.join(d.name for d in record.datasets)}"
            )
    return aucs


def set_traffic(config: ProjectConfig, model_name: str) -> None:
    """Versions 1 and 2 split 80/20, version 3 in shadow (``featurestore model-traffic``)."""
    with FeatureStore(config) as store:
        set_model_traffic(store, model_name, SPLIT, shadow=SHADOW, actor="demo")
    split = ",".join(f"{v}={p}" for v, p in SPLIT.items())
    print(f"   featurestore model-traffic {model_name} --split {split} --shadow {SHADOW}")


@dataclass
class Traffic:
    """What the predictions over HTTP gave: each customer's version, latencies, statuses."""

    versions: dict[int, int]
    predictions: Counter[int]
    """Predictions made by each version, over every request (the first one's 20 customers too)."""
    sticky: int
    repeated: int
    statuses: Counter[int]
    predict_ms: list[float]
    lookup_ms: list[float]
    cold_s: float
    checked: int


def send_traffic(
    base: str, token: str, model_name: str, service: str, customers: list[int], *, repeats: int, features: list[str]
) -> Traffic:
    """One prediction per customer over HTTP (``POST /v1/models/{model}/predict``), then the first
    ``repeats`` customers again; a plain online lookup of the same customer after each prediction
    is the floor the predictions' latency is compared with. The first request (which loads the
    models in the datamart) is timed apart. A few predictions are checked against the MLflow
    model of the version that served them, run here on the features the response returned."""
    import mlflow.pyfunc

    headers = {"Authorization": f"Bearer {token}"}
    predict_url = f"{base}/v1/models/{model_name}/predict"
    lookup_url = f"{base}/v1/online-features"
    statuses: Counter[int] = Counter()
    predictions: Counter[int] = Counter()
    served: dict[int, int] = {}
    sticky = 0
    predict_ms: list[float] = []
    lookup_ms: list[float] = []
    loaded: dict[int, Any] = {}
    checked = 0
    with httpx.Client(headers=headers, timeout=120) as http:
        t0 = time.perf_counter()
        first = http.post(predict_url, json={"entities": {"customer_id": customers[:20]}})
        cold_s = time.perf_counter() - t0
        statuses[first.status_code] += 1
        first.raise_for_status()
        predictions.update(first.json()["versions"])
        for i, cid in enumerate([*customers, *customers[:repeats]]):
            body = {"entities": {"customer_id": [cid]}}
            t0 = time.perf_counter()
            answer = http.post(predict_url, json=body)
            predict_ms.append((time.perf_counter() - t0) * 1000)
            statuses[answer.status_code] += 1
            t0 = time.perf_counter()
            lookup = http.post(lookup_url, json={"features": service, "entities": {"customer_id": [cid]}})
            lookup_ms.append((time.perf_counter() - t0) * 1000)
            if answer.status_code != 200 or lookup.status_code != 200:
                raise SystemExit(f"prediction for customer {cid}: HTTP {answer.status_code} {answer.text[:300]}")
            result = answer.json()
            (version,) = result["versions"]
            predictions[version] += 1
            if i < len(customers):
                served[cid] = version
            else:
                sticky += served[cid] == version
            if checked < 5:
                checked += _check_prediction(model_name, result, features, loaded, mlflow.pyfunc.load_model)
        missing = http.post(
            f"{base}/v1/models/{model_name}/versions/9/predict", json={"entities": {"customer_id": [1]}}
        )
        statuses[missing.status_code] += 1
        print(
            f"   POST /v1/models/{model_name}/versions/9/predict: HTTP {missing.status_code}: {missing.json()['message']}"
        )
    return Traffic(
        dict(Counter(served.values())), predictions, sticky, repeats, statuses, predict_ms, lookup_ms, cold_s, checked
    )


def _check_prediction(
    model_name: str, result: dict[str, Any], features: list[str], loaded: dict[int, Any], load: Any
) -> int:
    """1 when the served prediction equals the MLflow model's own on the served features, else exit."""
    (version,) = result["versions"]
    if version not in loaded:
        loaded[version] = load(f"models:/{model_name}/{version}")
    frame = pd.DataFrame({f: result["features"][f]["values"] for f in features})
    expected = np.asarray(loaded[version].predict(frame)).tolist()
    if expected != result["predictions"]:
        raise SystemExit(f"served prediction {result['predictions']} != MLflow model {version}'s {expected}")
    return 1


def shadow_counts(base: str, token: str, model_name: str) -> dict[str, float]:
    """The shadow version's counters on the datamart's ``/v1/metrics`` (Prometheus text)."""
    text = httpx.get(f"{base}/v1/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    counts: dict[str, float] = {}
    for name in ("predictions", "agreed", "failures"):
        found = re.search(
            rf'^featurestore_shadow_{name}_total{{[^}}]*model="{model_name}"[^}}]*version="{SHADOW}"[^}}]*}} (\S+)$',
            text,
            re.M,
        )
        counts[name] = float(found.group(1)) if found else 0.0
    return counts


def report_traffic(traffic: Traffic, shadow: Mapping[str, float]) -> None:
    """Print what the traffic showed, and stop the demo if it is not what the split promises."""
    total = sum(traffic.versions.values())
    shares = ", ".join(
        f"version {v} {n} ({100 * n / total:.1f} %, set {SPLIT[v]} %)" for v, n in sorted(traffic.versions.items())
    )
    print(f"   {total} customers, each predicted once: {shares}")
    print(
        f"   the first {traffic.repeated} customers asked again: {traffic.sticky} got the same version (sticky per "
        "entity); HTTP statuses " + ", ".join(f"{s}: {n}" for s, n in sorted(traffic.statuses.items()))
    )
    print(
        f"   first request (20 customers; the datamart imported MLflow and loaded the versions): {traffic.cold_s:.2f}s;"
        f" then one customer per request over {len(traffic.predict_ms)} calls: predict p50 "
        f"{statistics.median(traffic.predict_ms):.2f} ms, p95 {np.percentile(traffic.predict_ms, 95):.2f} ms; "
        f"plain online lookup of the same customers p50 {statistics.median(traffic.lookup_ms):.2f} ms, "
        f"p95 {np.percentile(traffic.lookup_ms, 95):.2f} ms"
    )
    print(f"   {traffic.checked} served predictions equal the MLflow model's own on the features returned")
    by_1 = traffic.predictions[1]
    print(
        f"   shadow version {SHADOW} (from /v1/metrics): {shadow['predictions']:.0f} predictions logged, never "
        f"returned, {shadow['failures']:.0f} failures; {shadow['agreed']:.0f} equal to the served one, as many "
        f"as version 1 served ({by_1}): retrained from the saved dataset, version 1's recipe gives the same model"
    )
    if traffic.sticky != traffic.repeated:
        raise SystemExit("a customer asked twice was served by two versions")
    if set(traffic.versions) != set(SPLIT) or any(
        abs(100 * n / total - SPLIT[v]) > 10 for v, n in traffic.versions.items()
    ):
        raise SystemExit(f"the versions served ({traffic.versions}) do not follow the split {SPLIT}")
    if shadow["failures"] or shadow["predictions"] != sum(traffic.predictions.values()):
        raise SystemExit(f"the shadow version did not predict for every entity served: {shadow}")
    if shadow["agreed"] != by_1:
        raise SystemExit(f"version {SHADOW}, version 1's recipe on the same saved rows, differs from version 1")
