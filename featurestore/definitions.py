"""Frozen, typed definitions: entities, sources, features, feature views and feature services.

Definitions are plain data. Constructors check Python types at once (a ``ttl`` that is not a
``timedelta`` is a bug in the caller); the checks that need the whole project or the data
(unknown entity, duplicate names, TTL <= 0, unknown column, wrong type) are collected by
:func:`featurestore.validation.validate_project`, which reports every problem of a project in one
error instead of stopping at the first module-level statement that fails.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from featurestore.errors import DefinitionError
from featurestore.expectations import Expectation, expectation_from_spec
from featurestore.schedules import Schedule, schedule_from_spec, schedule_problems, schedule_to_spec
from featurestore.types import ValueType

if TYPE_CHECKING:
    import pandas as pd

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

PandasTransformation: TypeAlias = "Callable[[pd.DataFrame], pd.DataFrame]"


def _tuple_of_str(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise DefinitionError([f"{what} must be a sequence of strings, got {value!r}"])
    return tuple(value)


def _items(value: object, single: type | tuple[type, ...]) -> tuple[Any, ...]:
    """A sequence as a tuple, and one item (``single``: a string, say) as a tuple of it: a lone
    ``"customer"`` must not become the entities ``'c', 'u', ...``."""
    if isinstance(value, single) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def name_problems(kind: str, name: str) -> list[str]:
    """What is wrong with ``name`` as the name of a ``kind`` ("Feature view", "Model"): the one
    rule of every name in a project (:data:`NAME_PATTERN`). Empty when nothing is."""
    if not NAME_PATTERN.match(name):
        return [f"{kind} name '{name}' is not valid: use letters, digits and underscores, starting with a letter"]
    return []


def _check_name_type(kind: str, name: object) -> None:
    if not isinstance(name, str):
        raise DefinitionError([f"{kind} name must be a string, got {name!r}"])


@dataclass(frozen=True, kw_only=True)
class Entity:
    """A thing features describe (a customer, a card), identified by one or more join keys."""

    name: str
    join_keys: tuple[str, ...]
    key_types: tuple[ValueType, ...] = ()
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name_type("Entity", self.name)
        keys = _tuple_of_str(self.join_keys, f"Entity '{self.name}' join_keys")
        object.__setattr__(self, "join_keys", keys)
        types = _items(self.key_types or (), str) or tuple(ValueType.STRING for _ in keys)
        try:
            parsed = tuple(ValueType.parse(t) for t in types)
        except ValueError as err:
            raise DefinitionError(
                [f"Entity '{self.name}' key_types {types!r}: {err}; use one of {[t.value for t in ValueType]}"]
            ) from err
        object.__setattr__(self, "key_types", parsed)
        object.__setattr__(self, "tags", _tuple_of_str(self.tags, f"Entity '{self.name}' tags"))

    @property
    def key_schema(self) -> dict[str, ValueType]:
        return dict(zip(self.join_keys, self.key_types, strict=False))

    def problems(self) -> list[str]:
        out = name_problems("Entity", self.name)
        if not self.join_keys:
            out.append(f"Entity '{self.name}' has no join keys: give join_keys=('{self.name}_id',)")
        if len(self.key_types) != len(self.join_keys):
            out.append(f"Entity '{self.name}' has {len(self.join_keys)} join keys but {len(self.key_types)} key types")
        if len(set(self.join_keys)) != len(self.join_keys):
            out.append(f"Entity '{self.name}' repeats a join key: {list(self.join_keys)}")
        return out

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "key_types": [t.value for t in self.key_types],
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Entity:
        return cls(
            name=spec["name"],
            join_keys=tuple(spec["join_keys"]),
            key_types=tuple(ValueType(t) for t in spec["key_types"]),
            description=spec.get("description", ""),
            owner=spec.get("owner", ""),
            tags=tuple(spec.get("tags", ())),
        )


@dataclass(frozen=True, kw_only=True)
class FileSource:
    """Rows read from a Parquet or CSV file (or a glob of them), or from every file of that format
    below a folder, whose Hive-style ``column=value`` folders are partitions. Relative paths are
    resolved against the project directory. ``partitions`` selects partitions of a folder by a
    date expression such as ``"dt >= today - 30"``, evaluated when the source is read (see
    :mod:`featurestore.partitions`). Tag a column ``sensitive:COLUMN`` to keep its values out of
    probes' samples and previews."""

    name: str
    path: str
    timestamp_field: str | None = None
    file_format: Literal["parquet", "csv"] | None = None
    partitions: str | None = None
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name_type("Source", self.name)
        if not isinstance(self.path, str | PurePath):
            raise DefinitionError([f"Source '{self.name}' path must be a string, got {self.path!r}"])
        object.__setattr__(self, "path", str(self.path))
        if self.file_format is None:
            suffix = PurePath(self.path).suffix.lower()
            fmt = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}.get(suffix)
            object.__setattr__(self, "file_format", fmt)
        object.__setattr__(self, "tags", _tuple_of_str(self.tags, f"Source '{self.name}' tags"))
        if self.partitions is not None and not isinstance(self.partitions, str):
            raise DefinitionError([f"Source '{self.name}' partitions must be a string such as 'dt >= today - 30'"])

    @property
    def upstream(self) -> tuple[str, ...]:
        return ()

    def problems(self) -> list[str]:
        out = name_problems("Source", self.name)
        if self.file_format not in ("parquet", "csv"):
            out.append(
                f"Source '{self.name}': cannot tell the format of '{self.path}'; give file_format='parquet' or 'csv'"
            )
        if self.partitions is not None:
            from featurestore.partitions import PartitionFilter

            try:
                PartitionFilter.parse(self.partitions)
            except ValueError as err:
                out.append(f"Source '{self.name}': {err}")
        return out

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "file",
            "name": self.name,
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "file_format": self.file_format,
            # Only when set: specs (and so views' versions) of sources without one are unchanged.
            **({"partitions": self.partitions} if self.partitions is not None else {}),
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, kw_only=True)
class SqlSource:
    """A DuckDB SQL query over other sources, each referenced in the query by its name."""

    name: str
    query: str
    sources: tuple[FileSource | SqlSource, ...]
    timestamp_field: str | None = None
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name_type("Source", self.name)
        if not isinstance(self.query, str):
            raise DefinitionError([f"Source '{self.name}' query must be a SQL string"])
        object.__setattr__(self, "sources", _items(self.sources, (FileSource, SqlSource)))
        for s in self.sources:
            if not isinstance(s, FileSource | SqlSource):
                raise DefinitionError([f"Source '{self.name}' sources must be sources, got {s!r}"])
        object.__setattr__(self, "tags", _tuple_of_str(self.tags, f"Source '{self.name}' tags"))

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sources)

    def problems(self) -> list[str]:
        out = name_problems("Source", self.name)
        if not self.query.strip():
            out.append(f"Source '{self.name}' has an empty query")
        return out

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "sql",
            "name": self.name,
            "query": self.query,
            "sources": [s.name for s in self.sources],
            "timestamp_field": self.timestamp_field,
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
        }


Source: TypeAlias = FileSource | SqlSource


def source_definition(source: Source) -> dict[str, Any]:
    """What a source reads, without its description, owner and tags: its kind, name, timestamp
    field and path (and format) or query, with the definitions of the sources a SQL source reads.
    Part of the schema fingerprint of every view that reads it, so that a changed query or path
    makes a new version of those views."""
    spec = source.to_spec()
    for metadata in ("description", "owner", "tags"):
        del spec[metadata]
    if isinstance(source, SqlSource):
        spec["sources"] = [source_definition(s) for s in source.sources]
    return spec


@dataclass(frozen=True)
class Feature:
    """One typed column of a feature view."""

    name: str
    dtype: ValueType
    description: str = field(default="", kw_only=True)
    owner: str = field(default="", kw_only=True)
    tags: tuple[str, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        _check_name_type("Feature", self.name)
        try:
            object.__setattr__(self, "dtype", ValueType.parse(self.dtype))
        except ValueError as err:
            raise DefinitionError(
                [f"Feature '{self.name}' has unknown type {self.dtype!r}; use one of {[t.value for t in ValueType]}"]
            ) from err
        object.__setattr__(self, "tags", _tuple_of_str(self.tags, f"Feature '{self.name}' tags"))

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype.value,
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Feature:
        return cls(
            spec["name"],
            ValueType(spec["dtype"]),
            description=spec.get("description", ""),
            owner=spec.get("owner", ""),
            tags=tuple(spec.get("tags", ())),
        )


@dataclass(frozen=True, kw_only=True)
class StoredTransformation:
    """A transformation read back from the registry: its text, for display. It cannot be run;
    runs load the definitions from the project's files."""

    kind: Literal["sql", "pandas"]
    text: str


Transformation: TypeAlias = "str | PandasTransformation | StoredTransformation | None"


def _transformation_text(t: Transformation) -> tuple[str, str]:
    if t is None:
        return "none", ""
    if isinstance(t, str):
        return "sql", textwrap.dedent(t).strip()
    if isinstance(t, StoredTransformation):
        return t.kind, t.text
    try:
        text = textwrap.dedent(inspect.getsource(t)).strip()
    except (OSError, TypeError):
        text = f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', repr(t))}"
    return "pandas", text


@dataclass(frozen=True, kw_only=True)
class FeatureView:
    """A set of features of some entities, computed from one source by one transformation.

    ``transformation`` is DuckDB SQL in which the source is the table named by the source's
    name, or a function from the source's pandas frame to the view's frame, or ``None`` to take
    the source's columns as they are. The output must have the entities' join keys, the
    ``timestamp_field`` and every feature. A value is valid online and in training sets for
    ``ttl`` after its event time. ``source_lookback`` bounds how much source history before a
    run's window the transformation needs (``None``: all of it). ``expectations`` are checked by
    the quality gate on every run before it publishes (see :mod:`featurestore.expectations`).
    ``schedule`` (a cron expression in UTC, or an interval) says when ``featurestore scheduler``
    runs the view; ``freshness`` is the age of its newest published row beyond which the view is
    stale (see :mod:`featurestore.schedules`). Like expectations and descriptions, neither is part
    of the view's version.
    """

    name: str
    entities: tuple[Entity, ...] | tuple[Entity | str, ...]
    source: Source
    features: tuple[Feature, ...]
    ttl: timedelta
    timestamp_field: str = "event_timestamp"
    transformation: Transformation = None
    source_lookback: timedelta | None = None
    online: bool = True
    expectations: tuple[Expectation, ...] = ()
    schedule: Schedule | None = None
    freshness: timedelta | None = None
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name_type("Feature view", self.name)
        ents = _items(self.entities, (Entity, str))
        object.__setattr__(self, "entities", ents)
        feats = _items(self.features, Feature)
        object.__setattr__(self, "features", feats)
        checks = _items(self.expectations, Expectation)
        object.__setattr__(self, "expectations", checks)
        problems = []
        if not all(isinstance(e, Entity | str) for e in ents):
            problems.append(f"Feature view '{self.name}' entities must be Entity objects or names, got {ents!r}")
        if not all(isinstance(f, Feature) for f in feats):
            problems.append(f"Feature view '{self.name}' features must be Feature objects, got {feats!r}")
        if not isinstance(self.source, FileSource | SqlSource):
            problems.append(f"Feature view '{self.name}' source must be a FileSource or SqlSource")
        if not isinstance(self.ttl, timedelta):
            problems.append(f"Feature view '{self.name}' ttl must be a datetime.timedelta, got {self.ttl!r}")
        if self.source_lookback is not None and not isinstance(self.source_lookback, timedelta):
            problems.append(f"Feature view '{self.name}' source_lookback must be a timedelta or None")
        if self.schedule is not None and not isinstance(self.schedule, str | timedelta):
            problems.append(
                f"Feature view '{self.name}' schedule must be a cron expression such as '0 * * * *' or a "
                f"datetime.timedelta, got {self.schedule!r}"
            )
        if self.freshness is not None and not isinstance(self.freshness, timedelta):
            problems.append(
                f"Feature view '{self.name}' freshness must be a datetime.timedelta or None, got {self.freshness!r}"
            )
        t = self.transformation
        if not (t is None or isinstance(t, str | StoredTransformation) or callable(t)):
            problems.append(f"Feature view '{self.name}' transformation must be SQL text or a pandas function")
        if not all(isinstance(e, Expectation) for e in checks):
            problems.append(
                f"Feature view '{self.name}' expectations must be expectations such as NotNull('col'), got {checks!r}"
            )
        if problems:
            raise DefinitionError(problems)
        object.__setattr__(self, "tags", _tuple_of_str(self.tags, f"Feature view '{self.name}' tags"))

    def resolved_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if isinstance(e, Entity))

    @property
    def join_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        for e in self.resolved_entities():
            keys.extend(k for k in e.join_keys if k not in keys)
        return tuple(keys)

    @property
    def key_schema(self) -> dict[str, ValueType]:
        schema: dict[str, ValueType] = {}
        for e in self.resolved_entities():
            schema.update(e.key_schema)
        return schema

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        from featurestore.errors import NotFoundError

        for f in self.features:
            if f.name == name:
                return f
        raise NotFoundError(
            "feature", f"{self.name}:{name}", candidates=[f"{self.name}:{n}" for n in self.feature_names]
        )

    def select(self, *names: str) -> FeatureSelection:
        """A subset of this view's features, for a feature service."""
        return FeatureSelection(view=self.name, features=tuple(names))

    def problems(self) -> list[str]:
        out = name_problems("Feature view", self.name)
        if self.ttl <= timedelta(0):
            out.append(
                f"Feature view '{self.name}' has ttl {self.ttl}, which must be positive: e.g. ttl=timedelta(days=1)"
            )
        if not self.entities:
            out.append(f"Feature view '{self.name}' has no entities")
        if not self.features:
            out.append(f"Feature view '{self.name}' has no features")
        seen: set[str] = set()
        for f in self.features:
            out.extend(f"Feature view '{self.name}': {p}" for p in name_problems("Feature", f.name))
            if f.name in seen:
                out.append(f"Feature view '{self.name}' defines feature '{f.name}' twice")
            seen.add(f.name)
            if f.name in self.join_keys:
                out.append(f"Feature view '{self.name}': feature '{f.name}' is also a join key")
            if f.name == self.timestamp_field:
                out.append(f"Feature view '{self.name}': feature '{f.name}' is also the timestamp field")
        if not self.timestamp_field:
            out.append(f"Feature view '{self.name}' has no timestamp_field")
        elif self.timestamp_field in self.join_keys:
            out.append(f"Feature view '{self.name}': timestamp field '{self.timestamp_field}' is also a join key")
        columns = {**self.key_schema, self.timestamp_field: ValueType.TIMESTAMP}
        columns.update((f.name, f.dtype) for f in self.features)
        for expectation in self.expectations:
            out.extend(expectation.problems(self.name, columns))
        out.extend(schedule_problems(self.name, self.schedule, self.freshness))
        return out

    def to_spec(self) -> dict[str, Any]:
        kind, text = _transformation_text(self.transformation)
        return {
            "name": self.name,
            "entities": [e if isinstance(e, str) else e.name for e in self.entities],
            "source": self.source.name,
            "features": [f.to_spec() for f in self.features],
            "ttl_seconds": self.ttl.total_seconds(),
            "timestamp_field": self.timestamp_field,
            "transformation": {"kind": kind, "text": text},
            "source_lookback_seconds": None if self.source_lookback is None else self.source_lookback.total_seconds(),
            "online": self.online,
            "expectations": [e.to_spec() for e in self.expectations],
            # Read by the scheduler and `featurestore schedule` from the registry; not in the version.
            "schedule": schedule_to_spec(self.schedule),
            "freshness_seconds": None if self.freshness is None else self.freshness.total_seconds(),
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
        }

    def schema_fingerprint(self) -> str:
        """Changes whenever what the view stores changes: keys, features and their types, the
        timestamp, the transformation, or what the source reads (its path or query, and those of
        the sources a SQL source reads; see :func:`source_definition`). Descriptions, owners,
        tags, expectations, schedule and freshness do not count (the rows a version stores keep
        their meaning when the checks or the timetable change)."""
        return self._fingerprint(source_definition(self.source))

    def legacy_schema_fingerprint(self) -> str:
        """The fingerprint as registries applied before sources counted by their definition hold
        it (the source by its name only). The registry recognises it, so that upgrading makes no
        new versions."""
        return self._fingerprint(self.source.name)

    def _fingerprint(self, source: object) -> str:
        spec = self.to_spec()
        relevant = {
            "keys": [[k, t.value] for k, t in self.key_schema.items()],
            "features": [[f["name"], f["dtype"]] for f in spec["features"]],
            "timestamp_field": spec["timestamp_field"],
            "source": source,
            "transformation": spec["transformation"],
            "ttl_seconds": spec["ttl_seconds"],
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], entities: Mapping[str, Entity], source: Source) -> FeatureView:
        lookback = spec.get("source_lookback_seconds")
        freshness = spec.get("freshness_seconds")  # None in specs written before schedules existed
        tf = spec.get("transformation") or {"kind": "none", "text": ""}
        return cls(
            name=spec["name"],
            entities=tuple(entities[e] for e in spec["entities"]),
            source=source,
            features=tuple(Feature.from_spec(f) for f in spec["features"]),
            ttl=timedelta(seconds=spec["ttl_seconds"]),
            timestamp_field=spec["timestamp_field"],
            transformation=None if tf["kind"] == "none" else StoredTransformation(kind=tf["kind"], text=tf["text"]),
            source_lookback=None if lookback is None else timedelta(seconds=lookback),
            online=spec.get("online", True),
            expectations=tuple(expectation_from_spec(e) for e in spec.get("expectations", ())),
            schedule=schedule_from_spec(spec.get("schedule")),
            freshness=None if freshness is None else timedelta(seconds=freshness),
            description=spec.get("description", ""),
            owner=spec.get("owner", ""),
            tags=tuple(spec.get("tags", ())),
        )


@dataclass(frozen=True, kw_only=True)
class FeatureSelection:
    """Some features of one view, by name (all of them when ``features`` is empty)."""

    view: str
    features: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FeatureService:
    """A named set of features that a model consumes. Items are feature views (all their
    features), ``view.select(...)`` selections, or ``"view:feature"`` references."""

    name: str
    features: tuple[FeatureView | FeatureSelection | str, ...]
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name_type("Feature service", self.name)
        items = _items(self.features, (FeatureView, FeatureSelection, str))
        if not all(isinstance(i, FeatureView | FeatureSelection | str) for i in items):
            raise DefinitionError(
                [
                    f"Feature service '{self.name}' features must be feature views, view.select(...) selections "
                    f"or 'view:feature' references, got {items!r}"
                ]
            )
        object.__setattr__(self, "features", items)
        object.__setattr__(self, "tags", _tuple_of_str(self.tags, f"Feature service '{self.name}' tags"))

    def selections(self) -> list[FeatureSelection]:
        out: list[FeatureSelection] = []
        for item in self.features:
            if isinstance(item, FeatureView):
                out.append(FeatureSelection(view=item.name, features=item.feature_names))
            elif isinstance(item, FeatureSelection):
                out.append(item)
            else:
                view, _, feat = str(item).partition(":")
                out.append(FeatureSelection(view=view, features=(feat,) if feat else ()))
        return out

    def problems(self) -> list[str]:
        out = name_problems("Feature service", self.name)
        if not self.features:
            out.append(f"Feature service '{self.name}' has no features")
        return out

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": [{"view": s.view, "features": list(s.features)} for s in self.selections()],
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FeatureService:
        return cls(
            name=spec["name"],
            features=tuple(FeatureSelection(view=s["view"], features=tuple(s["features"])) for s in spec["features"]),
            description=spec.get("description", ""),
            owner=spec.get("owner", ""),
            tags=tuple(spec.get("tags", ())),
        )


def source_from_spec(spec: Mapping[str, Any], resolved: Mapping[str, Source]) -> Source:
    """Rebuild a source from its registry spec; ``resolved`` holds its upstream sources."""
    common = {
        "name": spec["name"],
        "timestamp_field": spec.get("timestamp_field"),
        "description": spec.get("description", ""),
        "owner": spec.get("owner", ""),
        "tags": tuple(spec.get("tags", ())),
    }
    if spec["kind"] == "file":
        return FileSource(
            path=spec["path"], file_format=spec.get("file_format"), partitions=spec.get("partitions"), **common
        )
    return SqlSource(query=spec["query"], sources=tuple(resolved[s] for s in spec["sources"]), **common)


@dataclass(frozen=True, kw_only=True)
class Project:
    """Every definition of one project, as loaded from its definition files."""

    entities: tuple[Entity, ...] = ()
    sources: tuple[Source, ...] = ()
    feature_views: tuple[FeatureView, ...] = ()
    feature_services: tuple[FeatureService, ...] = ()

    @classmethod
    def collect(cls, objects: Sequence[object]) -> Project:
        """Gather definitions from loose objects, adding the entities and sources that views use."""
        entities: dict[str, Entity] = {}
        sources: dict[str, Source] = {}
        views: list[FeatureView] = []
        services: list[FeatureService] = []

        def add_source(s: Source) -> None:
            if isinstance(s, SqlSource):
                for up in s.sources:
                    add_source(up)
            sources.setdefault(s.name, s)

        ents: list[Entity] = []
        srcs: list[Source] = []
        for obj in objects:
            if isinstance(obj, Entity):
                ents.append(obj)
            elif isinstance(obj, FileSource | SqlSource):
                srcs.append(obj)
            elif isinstance(obj, FeatureView):
                views.append(obj)
            elif isinstance(obj, FeatureService):
                services.append(obj)
        for v in views:
            srcs.append(v.source)
            ents.extend(v.resolved_entities())
        for e in ents:
            entities.setdefault(e.name, e)
        for s in srcs:
            add_source(s)
        return cls(
            entities=tuple(entities.values()),
            sources=tuple(sources.values()),
            feature_views=tuple(views),
            feature_services=tuple(services),
        )
