"""Project-wide validation: every problem of every definition, reported in one error."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from featurestore.definitions import Entity, FeatureService, FeatureView, FileSource, Project, Source, SqlSource
from featurestore.errors import DefinitionError, FeatureStoreError, did_you_mean
from featurestore.expectations import GxExpectation
from featurestore.types import ValueType

if TYPE_CHECKING:
    import pyarrow as pa

    from featurestore.schema import OutputSchema

SchemaResolver = Callable[[FeatureView], "pa.Schema | OutputSchema"]
"""Gives the schema of a view's transformation output (the engine runs it on no or few rows):
Arrow's, or DuckDB's plan named in Arrow's terms (:class:`featurestore.schema.OutputSchema`)."""


def validate_project(objects: Sequence[object], schema_resolver: SchemaResolver | None = None) -> Project:
    """Validate loose definitions as one project and return it, or raise :class:`DefinitionError`
    listing every problem. With a ``schema_resolver`` the views' outputs are checked too: the
    timestamp, the keys and every feature must exist with a compatible type."""
    problems: list[str] = []
    _check_duplicates(_with_nested(objects), problems)
    declared_entities = {o.name: o for o in objects if isinstance(o, Entity)}
    resolved: list[object] = []
    unresolved_views: set[str] = set()
    for obj in objects:
        if isinstance(obj, Entity | FileSource | SqlSource | FeatureService):
            problems.extend(obj.problems())
            resolved.append(obj)
        elif isinstance(obj, FeatureView):
            problems.extend(obj.problems())
            view = _resolve_entities(obj, declared_entities, problems)
            if view is obj and any(isinstance(e, str) for e in obj.entities):
                unresolved_views.add(obj.name)
            resolved.append(view)
    project = Project.collect(resolved)
    # Sources only reached through views (or other sources) are checked too.
    declared_sources = {id(o) for o in objects if isinstance(o, FileSource | SqlSource)}
    for source in project.sources:
        if id(source) not in declared_sources:
            problems.extend(source.problems())
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
    for view in project.feature_views:
        problems.extend(gx_expectation_problems(view))
    if schema_resolver is not None:
        broken_sources = {s.name for s in project.sources if s.problems()}
        for view in project.feature_views:
            # Without its entities a view's keys are unknown, and a broken source cannot be
            # read: checking the output would only repeat those problems. Any other problem of
            # the view (a bad TTL, say) does not stop its columns from being checked.
            if view.name in unresolved_views or _source_names(view.source) & broken_sources:
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


_KINDS: tuple[tuple[type, str], ...] = (
    (Entity, "entity"),
    (FileSource, "source"),
    (SqlSource, "source"),
    (FeatureView, "feature view"),
    (FeatureService, "feature service"),
)


def _source_names(source: Source) -> set[str]:
    names = {source.name}
    if isinstance(source, SqlSource):
        for up in source.sources:
            names |= _source_names(up)
    return names


def _with_nested(objects: Sequence[object]) -> list[object]:
    """The objects, then the entities and sources they use without declaring them: two different
    sources of one name hidden inside two views would otherwise share one registry entry."""
    out = list(objects)

    def add_source(s: Source) -> None:
        out.append(s)
        if isinstance(s, SqlSource):
            for up in s.sources:
                add_source(up)

    for obj in objects:
        if isinstance(obj, FeatureView):
            out.extend(e for e in obj.entities if isinstance(e, Entity))
            add_source(obj.source)
        elif isinstance(obj, SqlSource):
            for up in obj.sources:
                add_source(up)
    return out


def _check_duplicates(objects: Sequence[object], problems: list[str]) -> None:
    kinds: dict[str, dict[str, str]] = {}
    for obj in objects:
        if not isinstance(obj, Entity | FileSource | SqlSource | FeatureView | FeatureService):
            continue
        kind = next(k for t, k in _KINDS if isinstance(obj, t))
        try:
            spec = json.dumps(obj.to_spec(), sort_keys=True, default=str)
        except (TypeError, ValueError):
            spec = repr(obj)
        seen = kinds.setdefault(kind, {})
        if obj.name in seen and seen[obj.name] != spec:
            message = f"Two different {kind} definitions are named '{obj.name}': rename one of them"
            if message not in problems:
                problems.append(message)
        seen.setdefault(obj.name, spec)
    # Online tables (SQLite, Cassandra) and offline folders on some file systems ignore case.
    views = sorted(kinds.get("feature view", {}))
    for i, name in enumerate(views):
        for other in views[i + 1 :]:
            if name.lower() == other.lower():
                problems.append(
                    f"Feature views '{name}' and '{other}' differ only in case; stores that ignore case "
                    "(SQLite, Cassandra, some file systems) would mix them up: rename one of them"
                )


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


def check_output_schema(view: FeatureView, schema: pa.Schema | OutputSchema) -> list[str]:
    """Problems of a view's computed schema against its definition."""
    out: list[str] = []
    names = schema.names
    ts = view.timestamp_field
    # An empty timestamp_field is a problem of the definition itself, reported by its problems().
    if ts and ts not in names:
        out.append(
            f"Feature view '{view.name}': the output has no timestamp column '{ts}'.{did_you_mean(ts, names)} "
            f"Columns: {names}"
        )
    elif ts and not ValueType.TIMESTAMP.accepts(schema.field(ts).type):
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


def import_great_expectations() -> ModuleType:
    """``great_expectations``, imported on first use (it takes 5-9 s). Its import warns about
    deprecated modules it uses, and pyspark's (imported by it when installed) about pandas 3:
    warnings about third-party code that this project cannot act on, hence silenced here only.
    Its INFO logs (dozens of lines about its own internals at import, one per validation) are
    silenced too; its warnings and errors still show."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations
    # This module sets its own logger to INFO on import, to announce every ephemeral context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    return great_expectations


def build_gx_expectation(view: str, expectation: GxExpectation) -> Any:
    """The Great Expectations expectation object that ``expectation`` names, built with its
    arguments; a :class:`DefinitionError` naming the view, the expectation and what to fix
    when Great Expectations is missing, does not know the name or rejects the arguments."""
    built, problems = _gx_build(view, expectation)
    if problems:
        raise DefinitionError(problems)
    return built


def gx_expectation_problems(view: FeatureView) -> list[str]:
    """Problems of the view's :class:`GxExpectation` s found without importing Great
    Expectations (5-10 s), from its installed files (:mod:`featurestore.gx_catalog`): an
    unknown name, a missing or unknown argument, a value of the wrong type or out of its
    bounds, in Great Expectations' words. What only Great Expectations can tell (its checks of
    the arguments together, such as ``min_value`` and ``max_value`` both missing, and values of
    its own types) is checked when a run builds the expectation (:func:`build_gx_expectation`)."""
    out: list[str] = []
    for expectation in view.expectations:
        if isinstance(expectation, GxExpectation):
            out.extend(_gx_static_problems(view.name, expectation))
    return out


def _gx_static_problems(view: str, expectation: GxExpectation) -> list[str]:
    from featurestore.gx_catalog import installed_catalog

    where = f"Feature view '{view}': expectation {expectation.type}"
    catalog = installed_catalog()
    if catalog is None:
        return [f"{where} needs Great Expectations, which is not installed: pip install 'featurestore[quality]'"]
    if not catalog.supported:
        # Another major release than the one whose files gx_catalog reads: ask it (5-10 s).
        return _gx_build(view, expectation)[1]
    schema = catalog.find(expectation.type)
    if schema is None:
        return [_unknown_gx_name(where, expectation.type, catalog.names())]
    return [f"{where}: {reason}" for reason in schema.argument_problems(expectation.kwargs)]


def _unknown_gx_name(where: str, name: str, known: Sequence[str]) -> str:
    return (
        f"{where}: Great Expectations has no expectation of that name.{did_you_mean(name, known)} "
        "Use a name from https://greatexpectations.io/expectations, e.g. expect_column_values_to_be_between"
    )


def _gx_build(view: str, expectation: GxExpectation) -> tuple[Any, list[str]]:
    """The Great Expectations object, or ``None`` and the problems that prevent building it."""
    where = f"Feature view '{view}': expectation {expectation.type}"
    try:
        gx = import_great_expectations()
    except ImportError as err:
        return None, [f"{where} needs Great Expectations ({err}): pip install 'featurestore[quality]'"]
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    name = expectation.type
    try:
        cls = getattr(gx.expectations, name, None) if name[:1].isupper() else None
        if not isinstance(cls, type):
            cls = get_expectation_impl(name)
    except ExpectationNotFoundError:
        return None, [_unknown_gx_name(where, name, list_registered_expectation_implementations())]
    try:
        return cls(**expectation.kwargs), []
    except Exception as err:  # pydantic's ValidationError, or any error of the expectation's own checks
        return None, [f"{where}: {reason}" for reason in _gx_argument_errors(err)]


def _gx_argument_errors(err: Exception) -> list[str]:
    """Readable reasons from Great Expectations' argument errors (pydantic v1 ``ValidationError``
    lists every alternative type a field accepts; the first reason per argument is the useful one)."""
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return [f"bad arguments: {type(err).__name__}: {err}"]
    by_argument: dict[str, str] = {}
    for e in errors():
        loc = ".".join(str(p) for p in e.get("loc", ())) or "__root__"
        by_argument.setdefault(loc, str(e.get("msg", "")))
    if len(by_argument) > 1:
        # A check of the arguments together fails as a consequence of a bad one: fix that first.
        by_argument.pop("__root__", None)
    out = []
    for loc, msg in by_argument.items():
        if loc == "__root__":
            out.append(f"bad arguments: {msg}")
        elif msg == "extra fields not permitted":
            out.append(f"unknown argument '{loc}'; remove it or check the expectation's documented arguments")
        elif msg == "field required":
            out.append(f"missing argument '{loc}'")
        else:
            out.append(f"argument '{loc}': {msg}")
    return out
