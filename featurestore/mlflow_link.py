"""MLflow: a saved training dataset as an MLflow run's input, and model versions in our registry.

Two steps link a model to what it was trained on:

1. :func:`log_training_dataset` logs a saved training dataset (see
   :mod:`featurestore.training_datasets`) as an MLflow run's input: an MLflow dataset built from
   the saved rows, whose source (type ``featurestore``) names our registry, the project, the
   dataset, its rows' SHA-256, its feature service and each view's version; the run gets tags
   linking back (``featurestore.dataset``, ``featurestore.dataset_sha256``,
   ``featurestore.feature_service``, ``featurestore.project``).
2. :func:`record_model_version`, after a model version is registered in MLflow's model registry
   (``mlflow.register_model``, or ``log_model(registered_model_name=...)``), reads that version,
   finds its run and the training datasets the run logged, checks each against our registry
   (same project, same rows' hash), and records which model version consumes which feature
   service, views' versions and datasets (:mod:`featurestore.registry.model_versions`), with the
   lineage ``feature_service → model`` and ``training_dataset → model``.

MLflow is imported here only inside the functions (``mlflow-skinny``, the client, from the
``mlflow`` extra): ``import featurestore`` stays light. The tracking server is the one
``tracking_uri`` names, else MLflow's own setting (``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurestore.errors import FeatureStoreError, InvalidRequestError, NotFoundError, StoreUnavailableError
from featurestore.registry.model_versions import ModelVersionDataset, ModelVersionRecord
from featurestore.registry.schema import now
from featurestore.secrets import redact_url

if TYPE_CHECKING:
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.tracking import MlflowClient

    from featurestore.registry import TrainingDatasetRecord
    from featurestore.store import FeatureStore

SOURCE_TYPE = "featurestore"
"""The source type of the MLflow datasets :func:`log_training_dataset` logs."""
TAG_PROJECT = "featurestore.project"
TAG_DATASET = "featurestore.dataset"
TAG_DATASET_SHA256 = "featurestore.dataset_sha256"
TAG_FEATURE_SERVICE = "featurestore.feature_service"
DIGEST_LENGTH = 32
"""MLflow keeps a dataset's digest in at most 36 characters: the first 32 hex digits of the rows'
SHA-256 (the whole hash is in the source and the tags)."""


@dataclass(frozen=True)
class LoggedDataset:
    """A training dataset logged as an MLflow run's input."""

    run_id: str
    experiment_id: str
    dataset: str
    sha256: str
    digest: str
    feature_service: str | None
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "dataset": self.dataset,
            "sha256": self.sha256,
            "digest": self.digest,
            "feature_service": self.feature_service,
            "rows": self.rows,
        }


def dataset_source(store: FeatureStore, record: TrainingDatasetRecord) -> dict[str, Any]:
    """What the MLflow dataset's source says: where the dataset is in our registry (its URL with
    any password redacted), and what it was built from."""
    return {
        "registry": redact_url(store.registry.url),
        "project": record.project,
        "dataset": record.name,
        "sha256": record.rows_sha256,
        "feature_service": record.feature_service,
        "view_versions": dict(sorted(record.view_versions.items())),
        "rows_file": record.rows_file,
    }


def log_training_dataset(
    store: FeatureStore,
    name: str,
    run_id: str | None = None,
    *,
    context: str = "training",
    targets: str | None = None,
    tracking_uri: str | None = None,
) -> LoggedDataset:
    """Log the saved training dataset ``name`` as an input of the MLflow run ``run_id`` (default:
    the active run, ``with mlflow.start_run(): ...``), with ``context`` as its MLflow context and
    ``targets`` as its label column, and tag the run with links back to our registry.

    The MLflow dataset is built from the saved rows (the same bytes :meth:`FeatureStore.
    get_training_dataset` gives); its digest is the rows' SHA-256 (its first 32 digits). An
    unknown dataset name raises :class:`NotFoundError` suggesting near names; no run, or an
    unknown one, raises :class:`InvalidRequestError` / :class:`NotFoundError`."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    dataset = store.get_training_dataset(name)  # unknown: NotFoundError with near names
    record = dataset.record
    if targets is not None and targets not in record.columns:
        raise InvalidRequestError(
            f"Column '{targets}' is not in training dataset '{name}' (its columns: {', '.join(record.columns)}); "
            "give one of them as {argument}, or none",
            argument="targets",
            example="'label'",
        )
    client = _client(tracking_uri)
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise InvalidRequestError(
                f"No MLflow run is active to log training dataset '{name}' to: call it inside "
                "'with mlflow.start_run():', or give the run's id as {argument}",
                argument="run_id",
                example="'<run id>'",
            )
        run_id = active.info.run_id
    run = _get_run(client, run_id, tracking_uri)
    source = _source_class()(dataset_source(store, record))
    frame = dataset.rows.to_pandas()
    mlflow_dataset = from_pandas(
        frame, source=source, targets=targets, name=name, digest=record.rows_sha256[:DIGEST_LENGTH]
    )
    from mlflow.entities import DatasetInput, InputTag

    tags = [
        InputTag(key="mlflow.data.context", value=context),
        InputTag(key=TAG_DATASET_SHA256, value=record.rows_sha256),
    ]
    _call(tracking_uri, client.log_inputs, run_id, [DatasetInput(mlflow_dataset._to_mlflow_entity(), tags)])
    run_tags = {TAG_PROJECT: record.project, TAG_DATASET: name, TAG_DATASET_SHA256: record.rows_sha256}
    if record.feature_service is not None:
        run_tags[TAG_FEATURE_SERVICE] = record.feature_service
    for key, value in run_tags.items():
        _call(tracking_uri, client.set_tag, run_id, key, value)
    return LoggedDataset(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        dataset=name,
        sha256=record.rows_sha256,
        digest=mlflow_dataset.digest,
        feature_service=record.feature_service,
        rows=frame.shape[0],
    )


def logged_datasets(run: Any) -> list[dict[str, Any]]:
    """The sources of the training datasets ``run`` (an MLflow run) logged through
    :func:`log_training_dataset`, in the order logged (a dataset logged twice, once)."""
    found: dict[str, dict[str, Any]] = {}
    for item in run.inputs.dataset_inputs if run.inputs else ():
        if item.dataset.source_type != SOURCE_TYPE:
            continue
        try:
            source = json.loads(item.dataset.source)
        except ValueError:
            continue
        if isinstance(source, dict) and isinstance(source.get("dataset"), str):
            found.setdefault(source["dataset"], source)
    return list(found.values())


def record_model_version(
    store: FeatureStore,
    model_name: str,
    version: int | str,
    *,
    tracking_uri: str | None = None,
    actor: str | None = None,
    switch_service: bool = False,
) -> ModelVersionRecord:
    """Record in our registry that version ``version`` of MLflow's registered model
    ``model_name`` consumes the feature service, views' versions and training datasets that its
    run logged (:func:`log_training_dataset`); call it after ``mlflow.register_model``.

    The model is registered in our registry as a consumer of the datasets' feature service
    (``feature_service → model``) and each dataset feeds it (``training_dataset → model``), in one
    registry transaction with the version's record and their audit entries. A model registered
    as the consumer of another service is not switched to this one (its ``service`` tokens would
    lose the other) unless ``switch_service``: :class:`ModelServiceSwitchError` names both.
    Recording a version again replaces its record. Raises :class:`NotFoundError` for an unknown
    model or version (naming the ones MLflow has) or a dataset our registry does not know, and
    :class:`FeatureStoreError` when the version has no run or its run logged no dataset of ours,
    or a dataset whose hash or project differs from ours."""
    from featurestore.auth import local_actor

    number = _version_number(model_name, version)
    client = _client(tracking_uri)
    model_version = _get_model_version(client, model_name, number, tracking_uri)
    if not model_version.run_id:
        raise FeatureStoreError(
            f"MLflow model version '{model_name}/{number}' was not produced by a run, so no training dataset is "
            "known for it: log the model in a run that logged one (log_training_dataset), then register it"
        )
    run = _get_run(client, model_version.run_id, tracking_uri)
    sources = logged_datasets(run)
    if not sources:
        raise FeatureStoreError(
            f"The run {model_version.run_id} of MLflow model version '{model_name}/{number}' logged no training "
            "dataset of the feature store: call featurestore.mlflow_link.log_training_dataset(store, NAME) in that "
            "run (or 'featurestore mlflow log-dataset NAME --run-id RUN_ID'), then record the version again"
        )
    records = [_checked_dataset(store, source, model_name, number) for source in sources]
    services = sorted({r.feature_service for r in records if r.feature_service is not None})
    if len(services) > 1:
        raise FeatureStoreError(
            f"The run of MLflow model version '{model_name}/{number}' logged training datasets of several feature "
            f"services ({', '.join(services)}): a model version consumes one; log the datasets of one service"
        )
    service = services[0] if services else None
    view_versions: dict[str, int] = {}
    for r in records:
        for view, v in r.view_versions.items():
            view_versions.setdefault(view, v)
    who = actor or local_actor()
    # One registry transaction: the model registered as the service's consumer (refused if it
    # consumes another one, unless switch_service), the version recorded, both audited.
    recorded = store.registry.record_model_version(
        ModelVersionRecord(
            project=store.project,
            model=model_name,
            version=number,
            mlflow_run_id=model_version.run_id,
            model_uri=f"models:/{model_name}/{number}",
            feature_service=service,
            view_versions=view_versions,
            datasets=tuple(ModelVersionDataset(r.name, r.rows_sha256) for r in records),
            created_at=now(),
            created_by=who,
        ),
        switch_service=switch_service,
    )
    store._model_services = (-1e18, {})  # as FeatureStore.register_model: tokens see the service at once
    return recorded


# ---------------------------------------------------------------------- helpers


def _version_number(model_name: str, version: int | str) -> int:
    text = str(version).strip()
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise InvalidRequestError(
            f"MLflow model version '{version}' of model '{model_name}' is not a version number: MLflow numbers "
            "versions 1, 2, 3...; give one as {argument}",
            argument="version",
            example="1",
        )
    return int(text)


def _checked_dataset(
    store: FeatureStore, source: Mapping[str, Any], model_name: str, version: int
) -> TrainingDatasetRecord:
    """The registry's record of a dataset a run logged, checked to be the one the run logged."""
    name = str(source["dataset"])
    where = f"MLflow model version '{model_name}/{version}'"
    if source.get("project") != store.project:
        raise FeatureStoreError(
            f"{where} was trained on training dataset '{name}' of project '{source.get('project')}' "
            f"(registry {source.get('registry')}), not of this project '{store.project}': record it with a store "
            "of that project"
        )
    record = store.registry.find_training_dataset(store.project, name)
    if record is None:
        names = store.registry.training_dataset_names(store.project)
        raise NotFoundError("training dataset", name, project=store.project, candidates=names)
    if source.get("sha256") != record.rows_sha256:
        raise FeatureStoreError(
            f"{where} was trained on training dataset '{name}' with rows of SHA-256 {source.get('sha256')}, but this "
            f"registry's '{name}' has rows of SHA-256 {record.rows_sha256}: the run logged a dataset of another "
            f"registry ({source.get('registry')}); record the version with that registry's store"
        )
    return record


def _client(tracking_uri: str | None) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _address(tracking_uri: str | None) -> str:
    if tracking_uri:
        return tracking_uri
    import mlflow

    return str(mlflow.get_tracking_uri())


def _call(tracking_uri: str | None, method: Any, *args: Any) -> Any:
    """``method(*args)``, with MLflow's failure to reach its server as :class:`StoreUnavailableError`."""
    from mlflow.exceptions import MlflowException, RestException

    try:
        return method(*args)
    except RestException:
        raise
    except MlflowException as err:
        if "API request" in str(err) or "Max retries" in str(err):
            reason = str(err).splitlines()[0]
            raise StoreUnavailableError("MLflow tracking server", _address(tracking_uri), reason) from err
        raise


def _not_found(err: Exception) -> bool:
    from mlflow.exceptions import RestException

    return isinstance(err, RestException) and err.error_code == "RESOURCE_DOES_NOT_EXIST"


def _get_run(client: MlflowClient, run_id: str, tracking_uri: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return _call(tracking_uri, client.get_run, run_id)
    except MlflowException as err:
        if _not_found(err) or getattr(err, "error_code", "") == "INVALID_PARAMETER_VALUE":
            raise NotFoundError("MLflow run", run_id) from err
        raise


def _get_model_version(client: MlflowClient, model_name: str, version: int, tracking_uri: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return _call(tracking_uri, client.get_model_version, model_name, str(version))
    except MlflowException as err:
        if not _not_found(err):
            raise
        cause = err
    models = [m.name for m in _call(tracking_uri, client.search_registered_models)]
    if model_name not in models:
        raise NotFoundError("MLflow registered model", model_name, candidates=models) from cause
    versions = _call(tracking_uri, client.search_model_versions, f"name = '{model_name}'")
    raise NotFoundError(
        "MLflow model version",
        f"{model_name}/{version}",
        candidates=sorted(f"{model_name}/{v.version}" for v in versions),
    ) from cause


_SOURCE_CLASS: Callable[[Mapping[str, Any]], DatasetSource] | None = None


def _source_class() -> Callable[[Mapping[str, Any]], DatasetSource]:
    """The MLflow dataset source of our datasets, defined on first use (it subclasses MLflow's)."""
    global _SOURCE_CLASS
    if _SOURCE_CLASS is None:
        from mlflow.data.dataset_source import DatasetSource

        class FeatureStoreDatasetSource(DatasetSource):
            """A training dataset in a feature store registry (see :func:`dataset_source`)."""

            def __init__(self, spec: Mapping[str, Any]) -> None:
                self.spec = dict(spec)

            @staticmethod
            def _get_source_type() -> str:
                return SOURCE_TYPE

            def load(self) -> Any:
                raise FeatureStoreError(
                    f"Load training dataset '{self.spec.get('dataset')}' with the feature store: "
                    "FeatureStore(...).get_training_dataset(name) (the same bytes, checked against their hash)"
                )

            @staticmethod
            def _can_resolve(raw_source: Any) -> bool:
                return False

            @classmethod
            def _resolve(cls, raw_source: Any) -> FeatureStoreDatasetSource:
                raise NotImplementedError

            def to_dict(self) -> dict[str, Any]:
                return dict(self.spec)

            @classmethod
            def from_dict(cls, source_dict: dict[Any, Any]) -> FeatureStoreDatasetSource:
                return cls(source_dict)

        _SOURCE_CLASS = FeatureStoreDatasetSource
    return _SOURCE_CLASS
