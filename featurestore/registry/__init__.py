"""The registry: every definition, its versions, lineage, runs and usage, in any SQLAlchemy database.

SQLite by default (one file, no server); PostgreSQL or any other SQLAlchemy URL for teams.
Definitions are stored as their JSON specs so that readers (the datamart, the UI) rebuild the
same frozen objects without importing the project's Python files. Opening a registry brings its
database to the schema this release reads (see :mod:`featurestore.registry.migration`); teams
that upgrade explicitly call :func:`upgrade`.

By concern: :mod:`~featurestore.registry.apply` (applying definitions),
:mod:`~featurestore.registry.definitions` (reading them, models, lineage),
:mod:`~featurestore.registry.runs` (runs, watermarks, quality, consistency checks),
:mod:`~featurestore.registry.usage` (usage events and statistics),
:mod:`~featurestore.registry.alerts` (alert incidents and their deliveries),
:mod:`~featurestore.registry.datasets` (named training datasets),
:mod:`~featurestore.registry.model_versions` (model versions and the datasets they were trained on),
:mod:`~featurestore.registry.model_traffic` (how the model server splits a model's traffic),
:mod:`~featurestore.registry.requests` (feature requests, their votes and history),
:mod:`~featurestore.registry.source_probes` (each source's latest probe),
:mod:`~featurestore.registry.duplicates` (features found to duplicate others),
:mod:`~featurestore.registry.records` (what they return) and
:mod:`~featurestore.registry.schema` (the tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.errors import StoreUnavailableError
from featurestore.registry.access import Access
from featurestore.registry.alerts import Alerts
from featurestore.registry.apply import Apply
from featurestore.registry.datasets import DatasetInput, Datasets, TrainingDatasetRecord
from featurestore.registry.definitions import Definitions
from featurestore.registry.duplicates import Duplicates
from featurestore.registry.migration import HEAD, ensure_schema
from featurestore.registry.model_traffic import ModelTraffic, ModelTrafficRecord
from featurestore.registry.model_versions import ModelVersionDataset, ModelVersionRecord, ModelVersions
from featurestore.registry.records import (
    AlertDelivery,
    AlertIncident,
    ApplyReport,
    AuditRecord,
    FeatureRecord,
    LineageEdge,
    ModelRecord,
    RunRecord,
    TokenRecord,
    UsageEvent,
    ViewVersion,
)
from featurestore.registry.requests import FeatureRequestRecord, FeatureRequests
from featurestore.registry.runs import Runs
from featurestore.registry.schema import (
    UTCDateTime,
    alert_deliveries_t,
    alert_incidents_t,
    api_tokens_t,
    audit_t,
    consistency_t,
    entities_t,
    features_t,
    lineage_t,
    metadata,
    models_t,
    run_quality_t,
    runs_t,
    services_t,
    sources_t,
    training_datasets_t,
    usage_daily_t,
    usage_t,
    view_versions_t,
    views_t,
)
from featurestore.registry.source_probes import SourceProbes
from featurestore.registry.usage import Usage
from featurestore.secrets import redact_url

__all__ = [
    "AlertDelivery",
    "AlertIncident",
    "ApplyReport",
    "AuditRecord",
    "DatasetInput",
    "FeatureRecord",
    "FeatureRequestRecord",
    "LineageEdge",
    "ModelRecord",
    "ModelTrafficRecord",
    "ModelVersionDataset",
    "ModelVersionRecord",
    "Registry",
    "RunRecord",
    "TokenRecord",
    "TrainingDatasetRecord",
    "UTCDateTime",
    "UsageEvent",
    "ViewVersion",
    "alert_deliveries_t",
    "alert_incidents_t",
    "api_tokens_t",
    "audit_t",
    "consistency_t",
    "entities_t",
    "features_t",
    "lineage_t",
    "metadata",
    "models_t",
    "run_quality_t",
    "runs_t",
    "services_t",
    "sources_t",
    "training_datasets_t",
    "upgrade",
    "usage_daily_t",
    "usage_t",
    "view_versions_t",
    "views_t",
]


class Registry(
    Access,
    Alerts,
    Apply,
    Datasets,
    Definitions,
    Duplicates,
    FeatureRequests,
    ModelTraffic,
    ModelVersions,
    Runs,
    SourceProbes,
    Usage,
):
    """Definitions, versions, lineage, runs, usage, alert incidents, training datasets and model
    versions of every project in one database. Opening it brings the database to the current schema (creating it
    when empty)."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = engine or sa.create_engine(url, **_engine_options(parsed))
        except sa.exc.SQLAlchemyError as err:
            raise StoreUnavailableError("Registry", _safe_url(url), str(err).splitlines()[0]) from err
        try:
            ensure_schema(self._engine)
        except BaseException as err:
            if engine is None:  # ours: close its pooled connections rather than leave them to the GC
                self._engine.dispose()
            if isinstance(err, sa.exc.SQLAlchemyError):
                raise StoreUnavailableError("Registry", _safe_url(url), str(err).splitlines()[0]) from err
            raise

    def close(self) -> None:
        self._engine.dispose()


def upgrade(url: str) -> str:
    """Bring the registry database at ``url`` to the schema this release reads (creating it when
    empty) and return its revision. Opening a :class:`Registry` does the same; this is for teams
    that upgrade explicitly, e.g. in a deployment step before the servers start."""
    Registry(url).close()
    return HEAD


def _engine_options(url: sa.URL) -> dict[str, Any]:
    """SQLite: wait up to 30 s for another process's write (Python's default is 5 s), as
    concurrent applies take the database's write lock one after the other (see
    :mod:`featurestore.registry.locks`); a ``timeout`` in the URL wins."""
    if url.get_backend_name() == "sqlite" and "timeout" not in url.query:
        return {"connect_args": {"timeout": 30.0}}
    return {}


def _safe_url(url: str) -> str:
    return redact_url(url)  # any scheme, and a URL SQLAlchemy cannot parse too
