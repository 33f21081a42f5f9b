"""Project-wide validation: every problem of every definition, reported in one error."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

import pyarrow as pa

from featurestore.definitions import Entity, FeatureService, FeatureView, FileSource, Project, SqlSource
from featurestore.errors import DefinitionError, FeatureStoreError, did_you_mean
from featurestore.types import ValueType

SchemaResolver = Callable[[FeatureView], pa.Schema]
"""Gives the schema of a view's transformation output (the engine runs it on no or few rows)."""


def validate_project(objects: Sequence[object], schema_resolver: SchemaResolver | None = None) -> Project:
    """Validate loose definitions as one project and return it, or raise :class:`DefinitionError`
    listing every problem. With a ``schema_resolver`` the views' outputs are checked too: the
    timestamp, the keys and every feature must exist with a compatible type."""
    problems: list[str] = []
    _check_duplicates(objects, problems)
    declared_entities = {o.name: o for o in objects if isinstance(o, Entity)}
    resolved: list[object] = []
    for obj in objects:
        if isinstance(obj, Entity | FileSource | SqlSource | FeatureService):
            problems.extend(obj.problems())
            resolved.append(obj)
        elif isinstance(obj, FeatureView):
            problems.extend(obj.problems())
            view = _resolve_entities(obj, declared_entities, problems)
            resolved.append(view)
    project = Project.collect(resolved)
    views = {v.name: v for v in project.feature_views}
    for svc in project.feature_services:
        for sel in svc.selections():
            if sel.view not in views:
                problems.append(
                    f"Feature service '{svc.name}' uses feature view '{sel.view}', which is not defined.{did_you_mean(sel.view, views)}"
                )
                continue
            for f in sel.features:
                if f not in views[sel.view].feature_names:
                    problems.append(
                        f"Feature service '{svc.name}' uses feature '{sel.view}:{f}', which view '{sel.view}' does not define."
                        f"{did_you_mean(f, views[sel.view].feature_names)}"
                    )
    if schema_resolver is not None:
        for view in project.feature_views:
            if any(p.startswith(f"Feature view '{view.name}'") for p in problems):
                continue
            try:
                schema = schema_resolver(view)
            except FeatureStoreError as err:
                text = str(err)
                prefix = f"Feature view '{view.name}'"
                problems.append(text if text.startswith(prefix) else f"{prefix}: {text}")
                continue
            problems.extend(check_output_schema(view, schema))
    if problems:
        raise DefinitionError(problems)
    return project


def _check_duplicates(objects: Sequence[object], problems: list[str]) -> None:
    kinds: dict[str, dict[str, str]] = {}
    for obj in objects:
        if not isinstance(obj, Entity | FileSource | SqlSource | FeatureView | FeatureService):
            continue
        kind = {
            Entity: "entity",
            FileSource: "source",
            SqlSource: "source",
            FeatureView: "feature view",
            FeatureService: "feature service",
        }[type(obj)]
        try:
            spec = json.dumps(obj.to_spec(), sort_keys=True, default=str)
        except (TypeError, ValueError):
            spec = repr(obj)
        seen = kinds.setdefault(kind, {})
        if obj.name in seen and seen[obj.name] != spec:
            problems.append(f"Two different {kind} definitions are named '{obj.name}': rename one of them")
        seen.setdefault(obj.name, spec)


def _resolve_entities(view: FeatureView, declared: dict[str, Entity], problems: list[str]) -> FeatureView:
    """Entities may be given by name; resolve them, and require entity objects to be declared."""
    ents: list[Entity] = []
    for e in view.entities:
        name = e if isinstance(e, str) else e.name
        if name not in declared:
            if isinstance(e, Entity):
                ents.append(e)  # defined inline: still a valid entity
                continue
            problems.append(
                f"Feature view '{view.name}' uses entity '{name}', which is not defined.{did_you_mean(name, declared)}"
            )
            continue
        ents.append(declared[name])
    if len(ents) != len(view.entities):
        return view
    return dataclasses.replace(view, entities=tuple(ents))


def check_output_schema(view: FeatureView, schema: pa.Schema) -> list[str]:
    """Problems of a view's computed schema against its definition."""
    out: list[str] = []
    names = schema.names
    ts = view.timestamp_field
    if ts not in names:
        out.append(
            f"Feature view '{view.name}': the output has no timestamp column '{ts}'.{did_you_mean(ts, names)} "
            f"Columns: {names}"
        )
    elif not ValueType.TIMESTAMP.accepts(schema.field(ts).type):
        out.append(
            f"Feature view '{view.name}': timestamp column '{ts}' has type {schema.field(ts).type}, not a timestamp"
        )
    for key, vtype in view.key_schema.items():
        if key not in names:
            out.append(
                f"Feature view '{view.name}': the output has no join key column '{key}'.{did_you_mean(key, names)}"
            )
        elif not vtype.accepts(schema.field(key).type):
            out.append(
                f"Feature view '{view.name}': join key '{key}' is declared {vtype.value} but the output has "
                f"{schema.field(key).type}; fix the entity's key_types or cast the column"
            )
    for f in view.features:
        if f.name not in names:
            out.append(
                f"Feature view '{view.name}': feature '{f.name}' is not a column of the output.{did_you_mean(f.name, names)}"
            )
        elif not f.dtype.accepts(schema.field(f.name).type):
            out.append(
                f"Feature view '{view.name}': feature '{f.name}' is declared {f.dtype.value} but the output has "
                f"{schema.field(f.name).type}"
            )
    return out
