"""Reading definitions back: entities, sources, feature views and their versions, feature
services, features, models and lineage. Definitions are stored as their JSON specs, so readers
(the datamart, the UI) rebuild the same frozen objects without importing the project's files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.definitions import Entity, FeatureService, FeatureView, Source, name_problems, source_from_spec
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.registry.locks import lock_project
from featurestore.registry.records import FeatureRecord, LineageEdge, ModelRecord, ViewVersion
from featurestore.registry.schema import (
    entities_t,
    features_t,
    lineage_t,
    models_t,
    now,
    services_t,
    sources_t,
    view_versions_t,
    views_t,
)

MODEL_DESCRIPTION_MAX_LENGTH = 2000
"""Characters of a model's description (the API, the SDK and the CLI refuse a longer one)."""


def check_model(name: str, description: str = "") -> None:
    """Raise :class:`InvalidRequestError` unless ``name`` is a valid model name (letters, digits
    and underscores, as every name of a project) and ``description`` is not too long."""
    problems = name_problems("Model", name)
    if problems:
        raise InvalidRequestError(f"{problems[0]} (e.g. '{_suggested_name(name)}')")
    if len(description) > MODEL_DESCRIPTION_MAX_LENGTH:
        raise InvalidRequestError(
            f"The description of model '{name}' has {len(description):,} characters; give at most "
            f"{MODEL_DESCRIPTION_MAX_LENGTH:,}"
        )


def _suggested_name(name: str) -> str:
    fixed = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    return fixed if fixed[:1].isalpha() else f"model_{fixed}"


class Definitions:
    """The registry's definition reads, and models (registered outside ``apply``)."""

    _engine: Engine

    def projects(self) -> list[str]:
        with self._engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(sa.select(views_t.c.project).distinct())})

    def list_entities(self, project: str) -> list[Entity]:
        return [Entity.from_spec(s) for s in self._specs(entities_t, project).values()]

    def list_sources(self, project: str) -> list[Source]:
        specs = self._specs(sources_t, project)
        built = build_sources(specs)
        return [built[name] for name in specs]

    def list_feature_views(self, project: str) -> list[FeatureView]:
        entities = {e.name: e for e in self.list_entities(project)}
        sources = {s.name: s for s in self.list_sources(project)}
        return [
            FeatureView.from_spec(spec, entities, sources[spec["source"]])
            for spec in self._specs(views_t, project).values()
        ]

    def get_feature_view(self, project: str, name: str) -> FeatureView:
        views = {v.name: v for v in self.list_feature_views(project)}
        if name not in views:
            raise NotFoundError("feature view", name, project=project, candidates=views)
        return views[name]

    def view_version(self, project: str, name: str) -> int:
        """The view's current version (it changes when what the view stores changes)."""
        with self._engine.connect() as conn:
            return current_version(conn, project, name)

    def view_versions(self, project: str, name: str) -> list[ViewVersion]:
        """Every version of the view, oldest first (also of a view since removed)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(view_versions_t)
                .where(view_versions_t.c.project == project, view_versions_t.c.name == name)
                .order_by(view_versions_t.c.version)
            )
            return [ViewVersion(r.version, r.fingerprint, r.changes, r.created_at, json.loads(r.spec)) for r in rows]

    def list_feature_services(self, project: str) -> list[FeatureService]:
        return [FeatureService.from_spec(s) for s in self._specs(services_t, project).values()]

    def get_feature_service(self, project: str, name: str) -> FeatureService:
        services = {s.name: s for s in self.list_feature_services(project)}
        if name not in services:
            raise NotFoundError("feature service", name, project=project, candidates=services)
        return services[name]

    def list_features(self, project: str) -> list[FeatureRecord]:
        """Every feature of the project's views, by view and name."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(features_t)
                .where(features_t.c.project == project)
                .order_by(features_t.c.view, features_t.c.name)
            )
            return [
                FeatureRecord(
                    view=r.view,
                    name=r.name,
                    dtype=r.dtype,
                    description=r.description,
                    owner=r.owner,
                    tags=tuple(json.loads(r.tags)),
                )
                for r in rows
            ]

    # ------------------------------------------------------------------ models and lineage

    def register_model(self, project: str, name: str, feature_service: str, description: str = "") -> None:
        """Record a model as a consumer of a feature service (service → model in the lineage). The
        model's name follows the rule of every name in a project; its description is at most
        :data:`MODEL_DESCRIPTION_MAX_LENGTH` characters."""
        check_model(name, description)
        self.get_feature_service(project, feature_service)
        with self._engine.begin() as conn:
            lock_project(conn, project)  # two registrations of one model: one inserts, the other updates
            register_model_in(conn, project, name, feature_service, description)

    def list_models(self, project: str) -> list[ModelRecord]:
        """The project's registered models, by name."""
        return [
            ModelRecord(name=s["name"], feature_service=s["feature_service"], description=s.get("description", ""))
            for s in self._specs(models_t, project).values()
        ]

    def lineage(self, project: str) -> list[LineageEdge]:
        """Every edge: source → source (SQL sources), source and entity → feature view, feature
        view → feature service, feature service → model."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(lineage_t).where(lineage_t.c.project == project))
            return [LineageEdge(r.src_kind, r.src_name, r.dst_kind, r.dst_name) for r in rows]

    # ------------------------------------------------------------------ helpers

    def _specs(self, table: sa.Table, project: str) -> dict[str, dict[str, Any]]:
        with self._engine.connect() as conn:
            return specs_in(conn, table, project)


def register_model_in(conn: sa.Connection, project: str, name: str, feature_service: str, description: str) -> None:
    """Register (or update) the model ``name`` as a consumer of ``feature_service`` in the
    transaction of ``conn``, which holds the project's lock (:func:`lock_project`); the caller
    checked the name, the description and that the service exists."""
    at = now()
    spec = json.dumps({"name": name, "feature_service": feature_service, "description": description}, sort_keys=True)
    exists = conn.execute(
        sa.select(models_t.c.name).where(models_t.c.project == project, models_t.c.name == name)
    ).first()
    if exists:
        conn.execute(
            models_t.update()
            .where(models_t.c.project == project, models_t.c.name == name)
            .values(spec=spec, updated_at=at)
        )
    else:
        conn.execute(models_t.insert().values(project=project, name=name, spec=spec, created_at=at, updated_at=at))
    conn.execute(  # its service edge only: training datasets' edges are its versions' (model_versions)
        lineage_t.delete().where(
            lineage_t.c.project == project,
            lineage_t.c.src_kind == "feature_service",
            lineage_t.c.dst_kind == "model",
            lineage_t.c.dst_name == name,
        )
    )
    conn.execute(
        lineage_t.insert().values(
            project=project,
            src_kind="feature_service",
            src_name=feature_service,
            dst_kind="model",
            dst_name=name,
        )
    )


def specs_in(conn: sa.Connection, table: sa.Table, project: str) -> dict[str, dict[str, Any]]:
    """The project's definitions of one kind, as specs by name (sorted by name)."""
    rows = conn.execute(sa.select(table.c.name, table.c.spec).where(table.c.project == project).order_by(table.c.name))
    return {r.name: json.loads(r.spec) for r in rows}


def current_version(conn: sa.Connection, project: str, name: str) -> int:
    """The applied view's version, or :class:`NotFoundError` naming the nearest applied views."""
    version = conn.execute(
        sa.select(views_t.c.version).where(views_t.c.project == project, views_t.c.name == name)
    ).scalar()
    if version is None:
        raise NotFoundError("feature view", name, project=project, candidates=specs_in(conn, views_t, project))
    return int(version)


def build_sources(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Source]:
    """Sources rebuilt from their registry specs (by name), each SQL source with its upstream ones."""
    resolved: dict[str, Source] = {}

    def build(name: str) -> Source:
        if name not in resolved:
            spec = specs[name]
            for up in spec.get("sources", []):
                build(up)
            resolved[name] = source_from_spec(spec, resolved)
        return resolved[name]

    for name in specs:
        build(name)
    return resolved
