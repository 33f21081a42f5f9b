"""``apply``: make the registry hold exactly a project's definitions, versioning feature views.

A view gets a new version when its schema fingerprint changes (a feature added or removed, a new
transformation, a source reading something else). A change the offline history cannot absorb is
refused instead, with every such problem of the apply in one :class:`DefinitionError`: a feature
or join key changing type, or the timestamp field changing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.definitions import FeatureView, Project, Source, source_definition
from featurestore.errors import DefinitionError
from featurestore.registry.definitions import build_sources, specs_in
from featurestore.registry.locks import lock_project
from featurestore.registry.records import ApplyReport
from featurestore.registry.schema import (
    entities_t,
    features_t,
    lineage_t,
    now,
    services_t,
    sources_t,
    view_versions_t,
    views_t,
)


class Apply:
    """The registry's ``apply``."""

    _engine: Engine

    def apply(self, project: str, definitions: Project) -> ApplyReport:
        """Make the registry hold exactly these definitions; views get a new version when their
        schema fingerprint changes. Runs, usage and version history are kept. Raises
        :class:`DefinitionError` (and changes nothing) when a view changes a feature's or a join
        key's type, or its timestamp field."""
        report = ApplyReport()
        at = now()
        with self._engine.begin() as conn:
            # Serialized with other applies of the project (other processes): versions are
            # numbered from what the previous apply committed.
            lock_project(conn, project)
            history = _version_specs(conn, project, [v.name for v in definitions.feature_views])
            problems = too_long_for_the_registry(project, definitions)
            problems += history_breaking_changes(history, specs_in(conn, entities_t, project), definitions)
            if problems:
                raise DefinitionError(problems)
            old_sources = build_sources(specs_in(conn, sources_t, project))
            groups: list[tuple[sa.Table, str, Sequence[Any]]] = [
                (entities_t, "entity", definitions.entities),
                (sources_t, "source", definitions.sources),
                (services_t, "feature service", definitions.feature_services),
            ]
            for table, kind, objs in groups:
                _apply_group(conn, project, table, kind, objs, at, report)
            _apply_views(conn, project, definitions.feature_views, old_sources, at, report)
            _apply_lineage(conn, project, definitions)
        return report


def history_breaking_changes(
    history: Mapping[str, Sequence[Mapping[str, Any]]],
    entities: Mapping[str, Mapping[str, Any]],
    definitions: Project,
) -> list[str]:
    """What the views cannot become, given the specs of their versions so far (``history``,
    oldest first; a view removed and applied again continues its history) and the entities as
    applied: the offline history of a view keeps each feature's type (as its latest version
    having the feature declared it), its keys' types and its timestamp field."""
    problems: list[str] = []
    for view in definitions.feature_views:
        versions = history.get(view.name)
        if not versions:
            continue
        old_types = {f["name"]: f["dtype"] for spec in versions for f in spec["features"]}
        for feature in view.features:
            was = old_types.get(feature.name)
            if was is not None and was != feature.dtype.value:
                problems.append(
                    f"Feature view '{view.name}': feature '{feature.name}' changes type from {was} to "
                    f"{feature.dtype.value}; the offline history holds {was} values. Add a new feature with the "
                    f"new type (e.g. '{feature.name}_{feature.dtype.value}') and remove the old one, or rename "
                    "the view to start a new history."
                )
        latest = versions[-1]
        old_keys = _key_types(latest, entities)
        for key, dtype in view.key_schema.items():
            was = old_keys.get(key)
            if was is not None and was != dtype.value:
                problems.append(
                    f"Feature view '{view.name}': join key '{key}' changes type from {was} to {dtype.value}; "
                    f"the offline history is keyed by {was} values. Keep the key's type (cast the column "
                    "in the view's transformation), or rename the view to start a new history."
                )
        old_ts = latest["timestamp_field"]
        if old_ts != view.timestamp_field:
            problems.append(
                f"Feature view '{view.name}': the timestamp field changes from '{old_ts}' to "
                f"'{view.timestamp_field}'; the offline history is ordered by '{old_ts}'. Keep '{old_ts}' "
                "(select the new column under that name in the view's transformation), or rename the view "
                "to start a new history."
            )
    return problems


NAME_LENGTH: int = cast(sa.String, views_t.c.name.type).length or 200
"""The longest name (of a project, definition, feature or owner) the registry's columns hold."""


def too_long_for_the_registry(project: str, definitions: Project) -> list[str]:
    """Names longer than the registry's columns hold (:data:`NAME_LENGTH` characters), refused
    alike on every database: PostgreSQL would fail in the middle of the apply, SQLite would
    keep them."""
    problems: list[str] = []

    def check(what: str, value: str) -> None:
        if len(value) > NAME_LENGTH:
            problems.append(
                f"{what} '{value[:40]}...' is {len(value)} characters long; the registry keeps at most "
                f"{NAME_LENGTH}: shorten it."
            )

    check("Project name", project)
    kinds: list[tuple[str, Sequence[Any]]] = [
        ("Entity", definitions.entities),
        ("Source", definitions.sources),
        ("Feature view", definitions.feature_views),
        ("Feature service", definitions.feature_services),
    ]
    for kind, objs in kinds:
        for obj in objs:
            check(f"{kind} name", obj.name)
    for view in definitions.feature_views:
        check(f"Feature view '{view.name[:40]}': owner", view.owner)
        for feature in view.features:
            check(f"Feature view '{view.name[:40]}': feature name", feature.name)
            check(f"Feature view '{view.name[:40]}': owner of feature '{feature.name[:40]}'", feature.owner)
    return problems


def _version_specs(conn: sa.Connection, project: str, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The specs of every version of these views, oldest first."""
    v = view_versions_t.c
    history: dict[str, list[dict[str, Any]]] = {}
    if names:
        rows = conn.execute(
            sa.select(v.name, v.spec).where(v.project == project, v.name.in_(names)).order_by(v.name, v.version)
        )
        for r in rows:
            history.setdefault(r.name, []).append(json.loads(r.spec))
    return history


def _key_types(view_spec: Mapping[str, Any], entity_specs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Join key → type of a view version, from its entities as applied (the last one naming a
    key wins, as in ``FeatureView.key_schema``)."""
    types: dict[str, str] = {}
    for name in view_spec.get("entities", ()):
        entity = entity_specs.get(name)
        if entity is None:
            continue
        keys, key_types = entity.get("join_keys", ()), entity.get("key_types", ())
        types.update(zip(keys, key_types, strict=False))
    return types


def _apply_group(
    conn: sa.Connection,
    project: str,
    table: sa.Table,
    kind: str,
    objs: Sequence[Any],
    at: datetime,
    report: ApplyReport,
) -> None:
    existing = {
        r.name: r.spec for r in conn.execute(sa.select(table.c.name, table.c.spec).where(table.c.project == project))
    }
    wanted = {o.name: json.dumps(o.to_spec(), sort_keys=True) for o in objs}
    for name, spec in wanted.items():
        if name not in existing:
            conn.execute(table.insert().values(project=project, name=name, spec=spec, created_at=at, updated_at=at))
            report.created.append(f"{kind} {name}")
        elif existing[name] != spec:
            conn.execute(
                table.update().where(table.c.project == project, table.c.name == name).values(spec=spec, updated_at=at)
            )
            report.updated.append(f"{kind} {name}")
        else:
            report.unchanged.append(f"{kind} {name}")
    for name in set(existing) - set(wanted):
        conn.execute(table.delete().where(table.c.project == project, table.c.name == name))
        report.removed.append(f"{kind} {name}")


def _apply_views(
    conn: sa.Connection,
    project: str,
    views: Sequence[FeatureView],
    old_sources: Mapping[str, Source],
    at: datetime,
    report: ApplyReport,
) -> None:
    existing = {
        r.name: r
        for r in conn.execute(
            sa.select(views_t.c.name, views_t.c.spec, views_t.c.version, views_t.c.fingerprint).where(
                views_t.c.project == project
            )
        )
    }
    f = features_t.c
    feature_rows: dict[str, set[tuple[Any, ...]]] = {}
    for r in conn.execute(
        sa.select(f.view, f.name, f.dtype, f.description, f.owner, f.tags).where(f.project == project)
    ):
        feature_rows.setdefault(r.view, set()).add(tuple(r[1:]))
    for view in views:
        spec_dict = view.to_spec()
        spec_dict["join_keys"] = list(view.join_keys)
        # What the source reads, as of this version: its changes make new versions too.
        spec_dict["source_definition"] = source_definition(view.source)
        spec = json.dumps(spec_dict, sort_keys=True)
        fingerprint = view.schema_fingerprint()
        old = existing.get(view.name)
        if old is None:
            version = _latest_version(conn, project, view.name) + 1
            changes = "created" if version == 1 else "re-created"
            conn.execute(
                views_t.insert().values(
                    project=project,
                    name=view.name,
                    spec=spec,
                    version=version,
                    fingerprint=fingerprint,
                    created_at=at,
                    updated_at=at,
                )
            )
            _add_version(conn, project, view.name, version, fingerprint, spec, changes, at)
            report.created.append(f"feature view {view.name} (version {version})")
        elif old.spec == spec:
            report.unchanged.append(f"feature view {view.name}")
        else:
            version = old.version
            old_spec = json.loads(old.spec)
            for unset in ("schedule", "freshness_seconds"):  # specs written before schedules existed
                old_spec.setdefault(unset, None)
            old_fingerprint = old.fingerprint
            if "source_definition" not in old_spec:  # applied before sources counted by definition
                old_source = old_sources.get(old_spec["source"])
                old_spec["source_definition"] = old_source and source_definition(old_source)
                if (
                    old_fingerprint == view.legacy_schema_fingerprint()
                    and old_spec["source_definition"] == spec_dict["source_definition"]
                ):
                    old_fingerprint = fingerprint  # the same schema, fingerprinted the old way
            if old_fingerprint != fingerprint:
                version = old.version + 1
                changes = _describe_changes(old_spec, spec_dict)
                _add_version(conn, project, view.name, version, fingerprint, spec, changes, at)
                report.updated.append(f"feature view {view.name} (version {version}: {changes})")
            elif json.dumps(old_spec, sort_keys=True) == spec:  # only the form of the record changed
                report.unchanged.append(f"feature view {view.name}")
            elif old_spec.get("expectations", []) != spec_dict["expectations"]:
                # Checks are not part of the schema: the version's rows keep their meaning.
                report.updated.append(f"feature view {view.name} (expectations changed; same version)")
            elif (old_spec["schedule"], old_spec["freshness_seconds"]) != (
                spec_dict["schedule"],
                spec_dict["freshness_seconds"],
            ):
                # When and how fresh: the timetable, not the rows; the scheduler reads it from here.
                report.updated.append(f"feature view {view.name} (schedule or freshness changed; same version)")
            else:
                report.updated.append(f"feature view {view.name} (metadata only)")
            conn.execute(
                views_t.update()
                .where(views_t.c.project == project, views_t.c.name == view.name)
                .values(spec=spec, version=version, fingerprint=fingerprint, updated_at=at)
            )
        rows = [
            {
                "name": feature.name,
                "dtype": feature.dtype.value,
                "description": feature.description,
                "owner": feature.owner or view.owner,
                "tags": json.dumps(list(feature.tags)),
            }
            for feature in view.features
        ]
        if feature_rows.get(view.name) == {tuple(row.values()) for row in rows}:
            continue  # written as they are: an apply that changes nothing writes nothing
        conn.execute(features_t.delete().where(f.project == project, f.view == view.name))
        conn.execute(features_t.insert(), [{"project": project, "view": view.name, **row} for row in rows])
    wanted = {v.name for v in views}
    for name in set(existing) - wanted:
        conn.execute(views_t.delete().where(views_t.c.project == project, views_t.c.name == name))
        conn.execute(features_t.delete().where(features_t.c.project == project, features_t.c.view == name))
        report.removed.append(f"feature view {name}")


def _add_version(
    conn: sa.Connection,
    project: str,
    name: str,
    version: int,
    fingerprint: str,
    spec: str,
    changes: str,
    at: datetime,
) -> None:
    conn.execute(
        view_versions_t.insert().values(
            project=project,
            name=name,
            version=version,
            fingerprint=fingerprint,
            spec=spec,
            changes=changes,
            created_at=at,
        )
    )


def _latest_version(conn: sa.Connection, project: str, name: str) -> int:
    value = conn.execute(
        sa.select(sa.func.max(view_versions_t.c.version)).where(
            view_versions_t.c.project == project, view_versions_t.c.name == name
        )
    ).scalar()
    return int(value or 0)


def _describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What made a new version, in words. (A changed feature type or timestamp field never gets
    here: ``apply`` refuses it.)"""
    old_f = {f["name"]: f["dtype"] for f in old["features"]}
    new_f = {f["name"]: f["dtype"] for f in new["features"]}
    parts = []
    added = [n for n in new_f if n not in old_f]
    removed = [n for n in old_f if n not in new_f]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    for key in ("entities", "source", "transformation", "ttl_seconds", "join_keys"):
        if old.get(key) != new.get(key):
            parts.append(f"changed {key.replace('_seconds', '')}")
    old_source, new_source = old.get("source_definition") or {}, new.get("source_definition") or {}
    if old.get("source") == new.get("source") and old_source != new_source:
        fields = sorted(k for k in {*old_source, *new_source} if old_source.get(k) != new_source.get(k))
        named = ", ".join("upstream sources" if k == "sources" else k.replace("_", " ") for k in fields)
        parts.append(f"changed source {new['source']} ({named})")
    return "; ".join(parts) or "changed"


def _apply_lineage(conn: sa.Connection, project: str, definitions: Project) -> None:
    """Make the project's edges those of ``definitions``, rewriting them only when they differ
    (an apply that changes nothing writes nothing). Models' and training datasets' edges are
    recorded when they are, not by applying definitions."""
    c = lineage_t.c
    ours = sa.and_(c.project == project, c.dst_kind.not_in(("model", "training_dataset")))
    edges = _lineage_edges(definitions)
    existing = {tuple(r) for r in conn.execute(sa.select(c.src_kind, c.src_name, c.dst_kind, c.dst_name).where(ours))}
    if existing == {tuple(e.values()) for e in edges}:
        return
    conn.execute(lineage_t.delete().where(ours))
    if edges:
        conn.execute(lineage_t.insert(), [{"project": project, **e} for e in edges])


def _lineage_edges(definitions: Project) -> list[dict[str, str]]:
    edges: set[tuple[str, str, str, str]] = set()
    for s in definitions.sources:
        for up in s.upstream:
            edges.add(("source", up, "source", s.name))
    for v in definitions.feature_views:
        edges.add(("source", v.source.name, "feature_view", v.name))
        for e in v.resolved_entities():
            edges.add(("entity", e.name, "feature_view", v.name))
    for svc in definitions.feature_services:
        for sel in svc.selections():
            edges.add(("feature_view", sel.view, "feature_service", svc.name))
    return [{"src_kind": a, "src_name": b, "dst_kind": c, "dst_name": d} for a, b, c, d in sorted(edges)]
