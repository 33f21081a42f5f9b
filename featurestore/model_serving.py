"""The model server: predictions of the model versions recorded in the registry, on features read online.

A model version recorded by :func:`featurestore.mlflow_link.record_model_version` names where
MLflow keeps it (``models:/NAME/VERSION``) and the feature service it was trained on. A
:class:`ModelServer` loads each version once per process (``mlflow.pyfunc.load_model``, under a
lock per version, so concurrent first requests load it once), reads that service's features
online in process (:meth:`FeatureStore.get_online_features`), predicts, and answers each
entity's prediction with the version that made it and each feature's value status.

Which version serves an entity: the one asked for, else the model's traffic setting in the
registry (:func:`set_model_traffic`, ``featurestore model-traffic``), else the newest recorded
version. A split gives each version a percentage; an entity's share is decided by a hash of the
model's name and the entity's key (:func:`bucket_of`), not at random, so an entity always gets
the same version while the split stands. A shadow version predicts for every entity too: its
predictions are logged (logger ``featurestore.model_serving.shadow``, one line per request) and
counted (:meth:`ModelServer.shadow_stats`), never returned, and its failure never fails the request.

Batch scoring (:func:`score`, ``featurestore score``) reads the same feature service offline
(:meth:`FeatureStore.get_training_set`, point in time for a spine, or every entity as of a date)
and predicts with the same versions, chosen by the same hash.

MLflow is imported only when a model is loaded: ``import featurestore`` stays light.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.lookup import EntityRows, OnlineResponse
from featurestore.registry.model_traffic import ModelTrafficRecord
from featurestore.registry.model_versions import ModelVersionRecord
from featurestore.registry.schema import now

if TYPE_CHECKING:
    import pandas as pd

    from featurestore.store import FeatureStore

log = logging.getLogger(__name__)
shadow_log = logging.getLogger(f"{__name__}.shadow")

BUCKETS = 10_000
"""An entity's hash falls in one of this many buckets; a version with p % of the traffic owns
p * BUCKETS / 100 of them."""
PredictModel = Any
"""A loaded model: anything with ``predict(pandas.DataFrame)`` (an MLflow ``PyFuncModel``)."""


def bucket_of(model: str, key: str) -> int:
    """The bucket (0 to BUCKETS - 1) of an entity of ``model``: a stable hash of both, the same in
    every process and release (BLAKE2b, not Python's salted ``hash``)."""
    digest = hashlib.blake2b(f"{model}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def version_for(model: str, key: str, split: Mapping[int, int]) -> int:
    """The version of ``split`` (version -> percentage, summing to 100) serving the entity ``key``."""
    bucket = bucket_of(model, key)
    upper = 0
    for version, percent in sorted(split.items()):
        upper += percent * BUCKETS // 100
        if bucket < upper:
            return version
    return max(split)  # unreachable when the percentages sum to 100


def entity_key(keys: Mapping[str, Sequence[Any]], i: int) -> str:
    """Entity ``i`` of the key columns as one string (columns by name, values as text)."""
    return "\x1f".join(f"{name}={keys[name][i]}" for name in sorted(keys))


@dataclass(frozen=True)
class Prediction:
    """A model's predictions for a batch of entities, in request order: each entity's
    ``predictions`` value and the ``versions`` that made it; ``features`` the values served to
    the model, each with its status (present, null, missing, expired, invalid) per entity."""

    model: str
    keys: dict[str, list[Any]]
    predictions: list[Any]
    versions: list[int]
    features: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    shadow: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "entities": self.keys,
            "predictions": self.predictions,
            "versions": self.versions,
            "features": {
                name: {"values": values, "statuses": self.statuses[name]} for name, values in self.features.items()
            },
        }


@dataclass
class ShadowStats:
    """What a model's shadow version did in this process: predictions made (entities), of which
    equal to the served ones, requests whose shadow failed, and the seconds it spent."""

    predictions: int = 0
    agreed: int = 0
    failures: int = 0
    seconds: float = 0.0


@dataclass
class _Cached:
    at: float
    value: Any


class ModelServer:
    """Predicts with the model versions recorded in ``store``'s registry (see the module's text).

    ``loader`` loads a model from its ``models:/`` URI (default ``mlflow.pyfunc.load_model``,
    against MLflow's configured tracking server); ``ttl``: seconds the registry's versions and
    traffic settings are cached (the store's definitions TTL by default)."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        loader: Callable[[str], PredictModel] | None = None,
        ttl: float | None = None,
    ) -> None:
        self.store = store
        self._loader = loader or _load_pyfunc
        self._ttl = store._definitions_ttl if ttl is None else ttl
        self._lock = threading.Lock()
        self._load_locks: dict[tuple[str, int], threading.Lock] = {}
        self._models: dict[tuple[str, int], PredictModel] = {}
        self._versions: dict[str, _Cached] = {}
        self._traffic = _Cached(-1e18, {})
        self.loads: dict[tuple[str, int], int] = {}
        """How many times each version was loaded in this process (once, unless it was evicted)."""
        self._shadow: dict[tuple[str, int], ShadowStats] = {}

    # ---------------------------------------------------------------- registry, cached

    def versions(self, model: str) -> dict[int, ModelVersionRecord]:
        """The model's recorded versions, by number (cached ``ttl`` seconds)."""
        t = time.monotonic()
        cached = self._versions.get(model)
        if cached is None or t - cached.at > self._ttl:
            records = self.store.registry.list_model_versions(self.store.project, model=model)
            cached = _Cached(t, {r.version: r for r in records})
            if records:  # an unknown name is not kept: requests naming anything must not grow the cache
                self._versions[model] = cached
        versions: dict[int, ModelVersionRecord] = cached.value
        return versions

    def traffic(self, model: str) -> ModelTrafficRecord | None:
        """The model's traffic setting, if any (cached ``ttl`` seconds)."""
        t = time.monotonic()
        if t - self._traffic.at > self._ttl:
            settings = {r.model: r for r in self.store.registry.list_model_traffic(self.store.project)}
            self._traffic = _Cached(t, settings)
        setting: ModelTrafficRecord | None = self._traffic.value.get(model)
        return setting

    def _known(self, model: str) -> dict[int, ModelVersionRecord]:
        versions = self.versions(model)
        if not versions:
            models = sorted({r.model for r in self.store.registry.list_model_versions(self.store.project)})
            err = NotFoundError("model", model, project=self.store.project, candidates=models)
            known = ", ".join(models) or "none yet"
            err.args = (
                f"{err} Models with recorded versions: {known}. Record a version registered in MLflow with "
                "'featurestore mlflow register MODEL VERSION'.",
            )
            raise err
        return versions

    def version(self, model: str, version: int) -> ModelVersionRecord:
        """The recorded ``version`` of ``model``; NotFoundError naming the model's versions if none."""
        versions = self._known(model)
        if version not in versions:
            err = NotFoundError("model version", f"{model}/{version}", project=self.store.project)
            err.args = (
                f"{err} Model '{model}' has versions {', '.join(map(str, sorted(versions)))}: call one of them, "
                "or record this one from MLflow with 'featurestore mlflow register'.",
            )
            raise err
        return versions[version]

    # ---------------------------------------------------------------- models, loaded once

    def model(self, record: ModelVersionRecord) -> PredictModel:
        """The loaded model of ``record``, loaded once per process (concurrent callers wait for it)."""
        key = (record.model, record.version)
        found = self._models.get(key)
        if found is not None:
            return found
        with self._lock:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            found = self._models.get(key)
            if found is None:
                started = time.perf_counter()
                found = self._loader(record.model_uri)
                self._models[key] = found
                self.loads[key] = self.loads.get(key, 0) + 1
                log.info(
                    "loaded model %s version %s from %s in %.2f s",
                    record.model,
                    record.version,
                    record.model_uri,
                    time.perf_counter() - started,
                )
        return found

    # ---------------------------------------------------------------- predictions

    def predict(
        self, model: str, entity_rows: EntityRows, *, version: int | None = None, consumer: str = "sdk"
    ) -> Prediction:
        """Predict for each entity of ``entity_rows`` (key columns, as for online lookups) with
        ``version``, or with the version the model's traffic gives each entity (see the module)."""
        versions = self._known(model)
        setting = None if version is not None else self.traffic(model)
        if version is not None:
            split: Mapping[int, int] = {self.version(model, version).version: 100}
        elif setting is not None:
            split = setting.split
        else:
            split = {max(versions): 100}
        shadow = setting.shadow if setting is not None else None
        for v in (*split, *([shadow] if shadow is not None else [])):
            self.version(model, v)  # a version removed since the split was set: named

        records = {v: versions[v] for v in split}
        services = {v: _service_of(r) for v, r in records.items()}
        responses: dict[str, OnlineResponse] = {}
        for service in dict.fromkeys(services.values()):
            responses[service] = self.store.get_online_features(
                service, entity_rows, consumer=consumer, log_served=False
            )
        first = responses[services[next(iter(split))]]
        n = len(next(iter(first.keys.values()), []))
        if len(split) == 1:
            chosen = [next(iter(split))] * n
        else:
            chosen = [version_for(model, entity_key(first.keys, i), split) for i in range(n)]

        predictions: list[Any] = [None] * n
        for v, record in records.items():
            rows = [i for i, c in enumerate(chosen) if c == v]
            if not rows:
                continue
            frame = _frame(_features_table(responses[services[v]]), rows if len(rows) < n else None)
            for i, value in zip(rows, _predict(self.model(record), frame, record), strict=True):
                predictions[i] = value

        features: dict[str, list[Any]] = {}
        statuses: dict[str, list[str]] = {}
        for response in responses.values():
            for name, values in response.columns.items():
                features.setdefault(name, values)
                statuses.setdefault(name, [str(s) for s in response.statuses[name]])
        served_log = self.store.serving_log
        if served_log is not None:  # the vectors predicted on, with each entity's version (featurestore skew)
            served_log.log_prediction(
                self.store, responses, consumer=consumer, model=model, versions=chosen, services=services
            )
        if shadow is not None:
            self._run_shadow(model, versions[shadow], entity_rows, first.keys, predictions, chosen, consumer)
        return Prediction(model, first.keys, predictions, chosen, features, statuses, shadow)

    def _run_shadow(
        self,
        model: str,
        record: ModelVersionRecord,
        entity_rows: EntityRows,
        keys: Mapping[str, list[Any]],
        served: list[Any],
        chosen: list[int],
        consumer: str,
    ) -> None:
        """Predict with the shadow version, log and count; never raise (it must not fail the request)."""
        with self._lock:
            stats = self._shadow.setdefault((model, record.version), ShadowStats())
        started = time.perf_counter()
        try:
            response = self.store.get_online_features(
                _service_of(record), entity_rows, consumer=consumer, log_served=False
            )
            shadowed = _predict(self.model(record), _frame(_features_table(response), None), record)
        except Exception:  # the shadow's failure is logged and counted, never the caller's
            with self._lock:
                stats.failures += 1
                stats.seconds += time.perf_counter() - started
            shadow_log.exception("shadow version %s of model %s failed", record.version, model)
            return
        agreed = sum(1 for a, b in zip(shadowed, served, strict=True) if a == b)
        with self._lock:
            stats.predictions += len(shadowed)
            stats.agreed += agreed
            stats.seconds += time.perf_counter() - started
        shadow_log.info(
            "shadow model=%s version=%s entities=%d agreed=%d served_versions=%s keys=%s predictions=%s served=%s",
            model,
            record.version,
            len(shadowed),
            agreed,
            sorted(set(chosen)),
            dict(keys),
            shadowed,
            served,
            extra={
                "model": model,
                "shadow_version": record.version,
                "keys": dict(keys),
                "shadow_predictions": shadowed,
                "served_predictions": served,
                "served_versions": chosen,
            },
        )

    def shadow_stats(self) -> dict[tuple[str, int], ShadowStats]:
        """Each (model, shadow version)'s counts in this process."""
        with self._lock:
            return {k: ShadowStats(**vars(v)) for k, v in self._shadow.items()}


# ---------------------------------------------------------------------- traffic settings


def parse_split(text: str) -> dict[int, int]:
    """``"1=90,2=10"`` -> ``{1: 90, 2: 10}``; InvalidRequestError saying the expected form otherwise."""
    split: dict[int, int] = {}
    for part in text.split(","):
        version, sep, percent = part.strip().partition("=")
        if not sep or not version.strip().isdigit() or not percent.strip().isdigit():
            raise InvalidRequestError(
                f"traffic split {text!r}: {part.strip()!r} is not VERSION=PERCENT; write e.g. '1=90,2=10'"
            )
        if int(version) in split:
            raise InvalidRequestError(f"traffic split {text!r} names version {int(version)} twice")
        split[int(version)] = int(percent)
    return split


def set_model_traffic(
    store: FeatureStore, model: str, split: Mapping[int, int], *, shadow: int | None = None, actor: str | None = None
) -> ModelTrafficRecord:
    """Set how ``model``'s predictions divide between its versions: ``split`` maps versions to
    whole percentages summing to 100 (a version with 0 % is refused: leave it out); ``shadow``, a
    version not in the split, predicts alongside and is logged, never returned. Every version
    must be recorded in the registry. Audited as ``model_traffic.set``."""
    from featurestore.auth import local_actor

    server = ModelServer(store, ttl=0)
    for v in (*split, *([shadow] if shadow is not None else [])):
        server.version(model, v)
    problems = [f"version {v} has {p} %" for v, p in split.items() if p <= 0 or p > 100]
    if not split or problems or sum(split.values()) != 100:
        shown = ", ".join(f"{v}={p}" for v, p in sorted(split.items())) or "nothing"
        raise InvalidRequestError(
            f"traffic split of model '{model}' ({shown}): give each served version a whole percentage above 0, "
            f"summing to 100 (they sum to {sum(split.values())}){'; ' + ', '.join(problems) if problems else ''}"
        )
    if shadow is not None and shadow in split:
        raise InvalidRequestError(
            f"version {shadow} of model '{model}' is in the split: a shadow version is one that serves no traffic; "
            "take it out of the split or shadow another"
        )
    who = actor or local_actor()
    record = store.registry.set_model_traffic(ModelTrafficRecord(store.project, model, dict(split), shadow, now(), who))
    store.registry.record_audit(
        store.project,
        who,
        "model_traffic.set",
        f"model:{model}",
        {"split": record.to_dict()["split"], "shadow": shadow},
    )
    return record


# ---------------------------------------------------------------------- batch scoring


def score(
    store: FeatureStore,
    model: str,
    *,
    spine: Any = None,
    as_of: datetime | date | None = None,
    version: int | None = None,
    timestamp_column: str = "event_timestamp",
    server: ModelServer | None = None,
    consumer: str = "score",
) -> pa.Table:
    """Predictions for a spine's entities at its times (point in time, as a training set), or
    for every entity of the model's feature service as of a date, read offline with the same
    feature service and predicted by the same versions, each entity's chosen by the same hash as
    online (no shadow). Returns the spine's columns (or keys and ``event_timestamp``), the
    features, ``version`` and ``prediction``."""
    if (spine is None) == (as_of is None):
        raise InvalidRequestError(
            "score needs a spine or an as-of date (one of them): give {argument}", argument="spine"
        )
    server = server or ModelServer(store, ttl=0)
    versions = server._known(model)
    setting = None if version is not None else server.traffic(model)
    if version is not None:
        split: Mapping[int, int] = {server.version(model, version).version: 100}
    elif setting is not None:
        split = setting.split
    else:
        split = {max(versions): 100}
    records = {v: server.version(model, v) for v in split}
    services = {_service_of(r) for r in records.values()}
    if len(services) > 1:
        raise InvalidRequestError(
            f"the versions of model '{model}' in its split read different feature services ({', '.join(sorted(services))}): "
            "score one version at a time with {argument}",
            argument="version",
        )
    (service,) = services
    if spine is None:
        assert as_of is not None
        spine = _every_entity(store, service, as_of)
        timestamp_column = "event_timestamp"
    table = store.get_training_set(spine, service, timestamp_column=timestamp_column, consumer=consumer)
    features = _service_features(store, service)
    keys = _service_keys(store, service)
    key_columns = {k: table.column(k).to_pylist() for k in keys}
    n = table.num_rows
    if len(split) == 1:
        chosen = [next(iter(split))] * n
    else:
        chosen = [version_for(model, entity_key(key_columns, i), split) for i in range(n)]
    inputs = table.select(features)
    predictions: list[Any] = [None] * n
    for v, record in records.items():
        rows = [i for i, c in enumerate(chosen) if c == v]
        if rows:
            frame = _frame(inputs, rows if len(rows) < n else None)
            for i, value in zip(rows, _predict(server.model(record), frame, record), strict=True):
                predictions[i] = value
    table = table.append_column("version", pa.array(chosen, pa.int64()))
    return table.append_column("prediction", pa.array(predictions))


def _every_entity(store: FeatureStore, service: str, as_of: datetime | date) -> pa.Table:
    """One spine row per entity any of the service's views knows as of ``as_of``, at that time."""
    from featurestore.times import aware_time

    at = aware_time(as_of, "The as-of date")
    keys = _service_keys(store, service)
    seen: dict[tuple[Any, ...], None] = {}
    for view in _service_views(store, service):
        table = store.get_reference_data(view, at, consumer="score")
        missing = [k for k in keys if k not in table.column_names]
        if missing:
            raise InvalidRequestError(
                f"feature service '{service}' joins views on different keys ({', '.join(keys)}; view '{view}' lacks "
                f"{', '.join(missing)}): score it with a spine of every key, {{argument}}",
                argument="spine",
            )
        columns = [table.column(k).to_pylist() for k in keys]
        seen.update(dict.fromkeys(zip(*columns, strict=True)))
    ordered = sorted(seen)
    data: dict[str, Any] = {k: [row[i] for row in ordered] for i, k in enumerate(keys)}
    data["event_timestamp"] = pa.array([at] * len(ordered), pa.timestamp("us", tz="UTC"))
    return pa.table(data)


def _service_views(store: FeatureStore, service: str) -> list[str]:
    return list(dict.fromkeys(r.view.name for r in store._resolve(service)))


def _service_keys(store: FeatureStore, service: str) -> list[str]:
    return list(dict.fromkeys(k for r in store._resolve(service) for k in r.view.key_schema))


def _service_features(store: FeatureStore, service: str) -> list[str]:
    from featurestore.retrieval import output_names

    return list(output_names(store._resolve(service), False).values())


# ---------------------------------------------------------------------- helpers


def _load_pyfunc(uri: str) -> PredictModel:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri)


def _service_of(record: ModelVersionRecord) -> str:
    if record.feature_service is None:
        raise InvalidRequestError(
            f"model '{record.model}' version {record.version} was trained on a dataset of feature references, not a "
            "feature service: the model server reads a feature service online. Train it on a dataset of a feature "
            "service and record that version"
        )
    return record.feature_service


def _features_table(response: OnlineResponse) -> pa.Table | pd.DataFrame:
    """The served features with their declared types (a null is NaN in a float column, not
    ``None`` in an object column): a pandas frame over one 2-D float64 array when every feature
    is a float (2.7x faster than through Arrow, 0.18 against 0.49 ms for 100 x 10), else an
    Arrow table."""
    if all(pa.types.is_floating(response.types[name]) for name in response.columns):
        import numpy as np
        import pandas as pd

        names = list(response.columns)
        values = np.array([response.columns[name] for name in names], dtype=np.float64).T
        return pd.DataFrame(values.reshape(-1, len(names)), columns=names, copy=False)
    return pa.table({name: pa.array(values, response.types[name]) for name, values in response.columns.items()})


def _frame(table: pa.Table | pd.DataFrame, rows: list[int] | None) -> pd.DataFrame:
    """The model's input: ``table``'s rows (all, or those of ``rows``) as a typed pandas frame."""
    if isinstance(table, pa.Table):
        if rows is not None:
            table = table.take(pa.array(rows, pa.int64()))
        return table.to_pandas()
    return table if rows is None else table.iloc[rows].reset_index(drop=True)


def _predict(model: PredictModel, frame: pd.DataFrame, record: ModelVersionRecord) -> list[Any]:
    """The model's predictions as one plain value per row (a dict per row for several outputs)."""
    names = _input_names(model)
    if names is not None:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidRequestError(
                f"model '{record.model}' version {record.version} takes {', '.join(missing)}, which feature service "
                f"'{record.feature_service}' does not give ({', '.join(frame.columns)})"
            )
        frame = frame[names]
    out = model.predict(frame)
    if hasattr(out, "to_dict") and hasattr(out, "columns"):  # a DataFrame
        if len(out.columns) == 1:
            out = out[out.columns[0]]
        else:
            return [dict(r) for r in out.to_dict(orient="records")]
    values = out.tolist() if hasattr(out, "tolist") else list(out)
    if len(values) != len(frame):
        raise InvalidRequestError(
            f"model '{record.model}' version {record.version} gave {len(values)} predictions for {len(frame)} rows"
        )
    return [v.item() if hasattr(v, "item") else v for v in values]


def _input_names(model: PredictModel) -> list[str] | None:
    """The input column names of the model's signature, if it has one with names."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None and hasattr(metadata, "get_input_schema") else None
    if schema is None or not getattr(schema, "has_input_names", lambda: False)():
        return None
    names: list[str] = schema.input_names()
    return names
