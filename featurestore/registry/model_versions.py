"""Model versions: which version of a model consumes which feature service and training datasets.

A model registered in MLflow's model registry has numbered versions, each produced by a run. When
a version is recorded (:func:`featurestore.mlflow_link.record_model_version`), the registry keeps
the run, the training datasets that run logged (name and rows' SHA-256), their feature service and
each view's version they were built from, with the lineage edges ``training_dataset → model`` in
the same transaction (the ``feature_service → model`` edge is the model's own, see
:meth:`~featurestore.registry.definitions.Definitions.register_model`).

Recording a version whose datasets are of a feature service registers the model as that service's
consumer in the same transaction, with the audit entries: all of it or none. A model consumes one
service, and its ``service`` tokens read that one: a version of another service is refused unless
the switch is asked for (``switch_service``), since it would move the model, and its tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.registry.access import _audit
from featurestore.registry.datasets import DATASET_KIND
from featurestore.registry.definitions import check_model, register_model_in
from featurestore.registry.locks import lock_project
from featurestore.registry.schema import lineage_t, model_versions_t, models_t


class ModelServiceSwitchError(InvalidRequestError):
    """A model version's datasets are of another feature service than the model consumes, and
    switching the model to it was not asked for. ``current`` and ``requested`` name the two."""

    def __init__(self, model: str, version: int, current: str, requested: str) -> None:
        self.current = current
        self.requested = requested
        super().__init__(
            f"Model '{model}' consumes feature service '{current}', but its version {version} was trained on "
            f"datasets of feature service '{requested}'. Recording it would switch the model to '{requested}', "
            f"and the model's service tokens could then no longer read '{current}'. To switch, record the version "
            f"again with switch_service=True (CLI: --switch-service); otherwise train it on datasets of '{current}'"
        )


@dataclass(frozen=True)
class ModelVersionDataset:
    """A training dataset a model version's run logged: its name and its rows' SHA-256."""

    name: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


@dataclass(frozen=True)
class ModelVersionRecord:
    """One version of a model as the registry records it: the MLflow run that produced it
    (``mlflow_run_id``), where MLflow keeps it (``model_uri``), the training datasets its run
    logged, the feature service they were built from (None for datasets of feature references)
    and each feature view's version then."""

    project: str
    model: str
    version: int
    mlflow_run_id: str
    model_uri: str
    feature_service: str | None
    view_versions: Mapping[str, int]
    datasets: tuple[ModelVersionDataset, ...]
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "model": self.model,
            "version": self.version,
            "mlflow_run_id": self.mlflow_run_id,
            "model_uri": self.model_uri,
            "feature_service": self.feature_service,
            "view_versions": dict(self.view_versions),
            "datasets": [d.to_dict() for d in self.datasets],
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


class ModelVersions:
    """Registry mixin: model versions and their training datasets."""

    _engine: Engine

    def record_model_version(self, record: ModelVersionRecord, *, switch_service: bool = False) -> ModelVersionRecord:
        """Record ``record`` (replacing the row of the same model and version, if any) and the
        lineage edges from each of its datasets to the model, in one transaction with: when the
        version has a feature service, the model registered as its consumer (its description
        kept; :class:`ModelServiceSwitchError` when it consumes another one, unless
        ``switch_service``); the audit entries, by ``record.created_by`` (``model.register``
        when the model's service is new or changed, ``model_version.record``)."""
        c = model_versions_t.c
        key = (c.project == record.project, c.model == record.model, c.version == record.version)
        service = record.feature_service
        if service is not None:
            check_model(record.model)
            self.get_feature_service(record.project, service)  # type: ignore[attr-defined]
        with self._engine.begin() as conn:
            lock_project(conn, record.project)  # the model's service read here is the one replaced
            if service is not None:
                spec = conn.execute(
                    sa.select(models_t.c.spec).where(
                        models_t.c.project == record.project, models_t.c.name == record.model
                    )
                ).scalar()
                current = json.loads(spec) if spec else None
                if current is not None and current["feature_service"] != service and not switch_service:
                    raise ModelServiceSwitchError(record.model, record.version, current["feature_service"], service)
                if current is None or current["feature_service"] != service:
                    register_model_in(
                        conn,
                        record.project,
                        record.model,
                        service,
                        "" if current is None else current.get("description", ""),
                    )
                    detail = {
                        "feature_service": service,
                        "previous_feature_service": current and current["feature_service"],
                    }
                    _audit(conn, record.project, record.created_by, "model.register", f"model:{record.model}", detail)
            conn.execute(model_versions_t.delete().where(*key))
            conn.execute(model_versions_t.insert().values(**_row(record)))
            edges = {
                (r.src_name, r.dst_name)
                for r in conn.execute(
                    sa.select(lineage_t.c.src_name, lineage_t.c.dst_name).where(
                        lineage_t.c.project == record.project,
                        lineage_t.c.src_kind == DATASET_KIND,
                        lineage_t.c.dst_kind == "model",
                    )
                )
            }
            new = [d.name for d in record.datasets if (d.name, record.model) not in edges]
            if new:
                conn.execute(
                    lineage_t.insert(),
                    [
                        {
                            "project": record.project,
                            "src_kind": DATASET_KIND,
                            "src_name": name,
                            "dst_kind": "model",
                            "dst_name": record.model,
                        }
                        for name in dict.fromkeys(new)
                    ],
                )
            _audit(
                conn,
                record.project,
                record.created_by,
                "model_version.record",
                f"model:{record.model}/{record.version}",
                {
                    "mlflow_run_id": record.mlflow_run_id,
                    "feature_service": service,
                    "datasets": [d.name for d in record.datasets],
                },
            )
        return record

    def find_model_version(self, project: str, model: str, version: int) -> ModelVersionRecord | None:
        c = model_versions_t.c
        query = sa.select(model_versions_t).where(c.project == project, c.model == model, c.version == version)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def get_model_version(self, project: str, model: str, version: int) -> ModelVersionRecord:
        """The recorded version, or :class:`NotFoundError` naming the versions recorded."""
        found = self.find_model_version(project, model, version)
        if found is None:
            recorded = [f"{r.model}/{r.version}" for r in self.list_model_versions(project)]
            raise NotFoundError("model version", f"{model}/{version}", project=project, candidates=recorded)
        return found

    def list_model_versions(self, project: str, *, model: str | None = None) -> list[ModelVersionRecord]:
        """The project's recorded model versions (of ``model``, when given), by model then version."""
        c = model_versions_t.c
        query = sa.select(model_versions_t).where(c.project == project)
        if model is not None:
            query = query.where(c.model == model)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query.order_by(c.model, c.version))]


def _row(record: ModelVersionRecord) -> dict[str, Any]:
    return {
        "project": record.project,
        "model": record.model,
        "version": record.version,
        "mlflow_run_id": record.mlflow_run_id,
        "model_uri": record.model_uri,
        "feature_service": record.feature_service,
        "view_versions": json.dumps(dict(record.view_versions), sort_keys=True),
        "datasets": json.dumps([d.to_dict() for d in record.datasets]),
        "created_at": record.created_at,
        "created_by": record.created_by,
    }


def _record(row: sa.Row[Any]) -> ModelVersionRecord:
    return ModelVersionRecord(
        project=row.project,
        model=row.model,
        version=int(row.version),
        mlflow_run_id=row.mlflow_run_id,
        model_uri=row.model_uri,
        feature_service=row.feature_service,
        view_versions={str(k): int(v) for k, v in json.loads(row.view_versions).items()},
        datasets=tuple(ModelVersionDataset(**d) for d in json.loads(row.datasets)),
        created_at=row.created_at,
        created_by=row.created_by,
    )
