"""The project file, ``featurestore.yaml``: typed, with unknown keys rejected by file and key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from featurestore.errors import ConfigError, did_you_mean
from featurestore.online.cassandra import CassandraOnlineConfig
from featurestore.online.redis import RedisOnlineConfig

CONFIG_FILE_NAME = "featurestore.yaml"


@dataclass(frozen=True, kw_only=True)
class ParquetOfflineConfig:
    """Offline store on local Parquet files, partitioned by date, published atomically per run."""

    type: str = "parquet"
    path: Path = Path("data/offline")


@dataclass(frozen=True, kw_only=True)
class HiveOfflineConfig:
    """Offline store as Hive tables (one per view, partitioned by date) in ``database``, written
    by the Spark engine. The tables' Parquet files live under ``path/<view>`` (external tables,
    the default) or under ``warehouse/<database>.db/<view>`` (managed tables), with the same
    manifest as the Parquet store, so the SDK reads them without Spark. The metastore is an
    embedded Derby database in ``metastore`` unless ``metastore_uri`` (thrift://...) is given."""

    type: str = "hive"
    database: str = ""
    path: Path = Path("data/offline")
    warehouse: Path = Path("data/warehouse")
    metastore: Path = Path("data/metastore")
    metastore_uri: str = ""
    table_type: str = "external"


@dataclass(frozen=True, kw_only=True)
class SqliteOnlineConfig:
    """Embedded online store in one SQLite file: no server needed."""

    type: str = "sqlite"
    path: Path = Path("data/online.db")


@dataclass(frozen=True, kw_only=True)
class LocalEngineConfig:
    """The embedded engine: DuckDB and pandas in this process."""

    type: str = "local"


@dataclass(frozen=True, kw_only=True)
class SparkEngineConfig:
    """The Spark engine (``etl.spark``). ``master``: ``local[*]``, ``spark://host:7077``, ...; empty
    means the master ``spark-submit`` was given, else ``local[*]``. ``conf``: any Spark settings."""

    type: str = "spark"
    master: str = ""
    conf: dict[str, str] = field(default_factory=dict)


OfflineStoreConfig = ParquetOfflineConfig | HiveOfflineConfig
OnlineStoreConfig = SqliteOnlineConfig | RedisOnlineConfig | CassandraOnlineConfig
EngineConfig = LocalEngineConfig | SparkEngineConfig

_OFFLINE_TYPES: dict[str, type[Any]] = {"parquet": ParquetOfflineConfig, "hive": HiveOfflineConfig}
_ONLINE_TYPES: dict[str, type[Any]] = {
    "sqlite": SqliteOnlineConfig,
    "redis": RedisOnlineConfig,
    "cassandra": CassandraOnlineConfig,
}
_ENGINE_TYPES: dict[str, type[Any]] = {"local": LocalEngineConfig, "spark": SparkEngineConfig}


@dataclass(frozen=True, kw_only=True)
class QualityConfig:
    """The quality gate and run statistics (section ``quality`` of ``featurestore.yaml``).

    ``psi_threshold``: a feature whose population stability index against the previous
    successful run exceeds it is flagged as drifting. ``histogram_bins``: equal-width bins of
    each numeric feature's histogram. ``quarantine``: when true, rows failing a blocking
    row-level expectation are set aside under ``<offline store>/_quarantine/<view>/<run id>.parquet``
    and the other rows published (off by default; ``featurestore run --quarantine`` turns it on
    for one run). ``examples``: failing rows shown per expectation in a report."""

    psi_threshold: float = 0.2
    histogram_bins: int = 10
    quarantine: bool = False
    examples: int = 5


@dataclass(frozen=True, kw_only=True)
class ProjectConfig:
    """Everything ``featurestore.yaml`` says. Relative paths are resolved against ``root``."""

    project: str
    root: Path
    definitions: tuple[str, ...] = ("features.py",)
    registry: str = "sqlite:///data/registry.db"
    offline_store: OfflineStoreConfig = field(default_factory=ParquetOfflineConfig)
    online_store: OnlineStoreConfig = field(default_factory=SqliteOnlineConfig)
    engine: EngineConfig = field(default_factory=LocalEngineConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    file: Path | None = None

    @property
    def registry_url(self) -> str:
        """The registry's SQLAlchemy URL, with a relative SQLite path made absolute."""
        prefix = "sqlite:///"
        url = self.registry
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str((self.root / url[len(prefix) :]).resolve())
        return url

    def resolve(self, path: str | Path) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.root / p)

    @classmethod
    def load(cls, path: str | Path = ".") -> ProjectConfig:
        """Read ``featurestore.yaml`` from a directory (or the file itself)."""
        p = Path(path)
        file = p / CONFIG_FILE_NAME if p.is_dir() else p
        if not file.exists():
            raise ConfigError(
                f"no {CONFIG_FILE_NAME} here; run 'featurestore init' to create a project, or pass --project DIR",
                file=str(file),
            )
        try:
            raw = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"is not valid YAML: {err}", file=str(file)) from err
        if not isinstance(raw, Mapping):
            raise ConfigError("must be a mapping of keys to values", file=str(file))
        return cls.from_mapping(raw, root=file.parent.resolve(), file=file)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, root: Path, file: Path | None = None) -> ProjectConfig:
        fname = str(file) if file else None
        known = {"project", "definitions", "registry", "offline_store", "online_store", "engine", "quality"}
        for key in raw:
            if key not in known:
                raise ConfigError(
                    f"unknown key.{did_you_mean(str(key), known)} Known keys: {sorted(known)}", file=fname, key=str(key)
                )
        project = raw.get("project")
        if not isinstance(project, str) or not project:
            raise ConfigError("is required: the project's name, e.g. 'project: bank'", file=fname, key="project")
        defs = raw.get("definitions", ["features.py"])
        if isinstance(defs, str):
            defs = [defs]
        if not isinstance(defs, list) or not all(isinstance(d, str) for d in defs):
            raise ConfigError("must be a file name or a list of file names", file=fname, key="definitions")
        registry = raw.get("registry", "sqlite:///data/registry.db")
        if not isinstance(registry, str):
            raise ConfigError("must be an SQLAlchemy URL, e.g. sqlite:///data/registry.db", file=fname, key="registry")
        return cls(
            project=project,
            root=root,
            definitions=tuple(defs),
            registry=registry,
            offline_store=_section(raw, "offline_store", _OFFLINE_TYPES, "parquet", fname),
            online_store=_section(raw, "online_store", _ONLINE_TYPES, "sqlite", fname),
            engine=_section(raw, "engine", _ENGINE_TYPES, "local", fname),
            quality=_quality_section(raw, fname),
            file=file,
        )


def _section(raw: Mapping[str, Any], key: str, types: dict[str, type[Any]], default: str, fname: str | None) -> Any:
    value = raw.get(key, {"type": default})
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping with a 'type', e.g. {{type: {default}}}", file=fname, key=key)
    kind = value.get("type", default)
    if kind not in types:
        raise ConfigError(
            f"unknown type '{kind}'.{did_you_mean(str(kind), types)} Available: {sorted(types)}",
            file=fname,
            key=f"{key}.type",
        )
    cls = types[kind]
    allowed = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for k, v in value.items():
        if k not in allowed:
            raise ConfigError(
                f"unknown key for a {kind} {key}.{did_you_mean(str(k), allowed)} Known keys: {sorted(allowed)}",
                file=fname,
                key=f"{key}.{k}",
            )
        kwargs[k] = _field_value(_type_name(allowed[k].type), v, fname, f"{key}.{k}")
    return cls(**kwargs)


def _quality_section(raw: Mapping[str, Any], fname: str | None) -> QualityConfig:
    value = raw.get("quality", {})
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping, e.g. {psi_threshold: 0.2, quarantine: false}", file=fname, key="quality")
    allowed = {f.name: f for f in fields(QualityConfig)}
    kwargs: dict[str, Any] = {}
    for k, v in value.items():
        if k not in allowed:
            raise ConfigError(
                f"unknown key.{did_you_mean(str(k), allowed)} Known keys: {sorted(allowed)}",
                file=fname,
                key=f"quality.{k}",
            )
        kwargs[k] = _field_value(_type_name(allowed[k].type), v, fname, f"quality.{k}")
    config = QualityConfig(**kwargs)
    if config.psi_threshold <= 0:
        raise ConfigError("must be a positive number, e.g. 0.2", file=fname, key="quality.psi_threshold")
    if config.histogram_bins < 2:
        raise ConfigError("must be at least 2", file=fname, key="quality.histogram_bins")
    if config.examples < 0:
        raise ConfigError("must not be negative", file=fname, key="quality.examples")
    return config


def _type_name(annotation: object) -> str:
    # Config classes use `from __future__ import annotations`: their field types are strings.
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _field_value(type_name: str, v: Any, fname: str | None, key: str) -> Any:
    """``v`` checked against a config field's declared type (and converted: paths, tuples)."""

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"must be {expected}, got {v!r}", file=fname, key=key)

    if type_name == "Path":
        if not isinstance(v, str) or not v:
            raise wrong("a path (a string)")
        return Path(v)
    if type_name == "bool":
        if not isinstance(v, bool):
            raise wrong("true or false")
        return v
    if type_name == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise wrong("an integer")
        return v
    if type_name == "float":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise wrong("a number")
        return float(v)
    if type_name == "str":
        if not isinstance(v, str):
            raise wrong("a string")
        return v
    if type_name.startswith("tuple"):
        items = (v,) if isinstance(v, str) else v
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise wrong("a list of strings")
        return tuple(items)
    if type_name.startswith("dict"):
        if not isinstance(v, Mapping):
            raise wrong("a mapping")
        return dict(v)
    return v


def render_default_config(project: str) -> str:
    """The ``featurestore.yaml`` that ``featurestore init`` writes."""
    return f"""\
# The feature store project file. Paths are relative to this file's folder.
project: {project}
# Python files that define entities, sources, feature views and feature services.
definitions: [features.py]
# Any SQLAlchemy URL: SQLite by default, e.g. postgresql+psycopg://user@host/db for a team.
registry: sqlite:///data/registry.db
offline_store:
  type: parquet
  path: data/offline
online_store:
  type: sqlite
  path: data/online.db
engine: local
"""
