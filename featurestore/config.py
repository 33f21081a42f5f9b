"""The project file, ``featurestore.yaml``: typed, with unknown keys rejected by file and key.

Each section is a pydantic model: the online stores' beside their store (``RedisOnlineConfig``
in ``featurestore/online/redis.py``...), found through :data:`ONLINE_STORE_KINDS`; the offline
stores', the engines' and the quality gate's here. Validation is pydantic's; this module turns
its errors into :class:`~featurestore.errors.ConfigError` naming the file and the dotted key.
"""

from __future__ import annotations

import importlib
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, cast, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from featurestore.errors import ConfigError, did_you_mean
from featurestore.secrets import redact_value, remember, secret_values

CONFIG_FILE_NAME = "featurestore.yaml"


# ---------------------------------------------------------------------------- settings models


class Settings(BaseModel):
    """A section of ``featurestore.yaml``: frozen, unknown keys refused. Strict, so that YAML's
    ``'yes'`` is no boolean and ``"8"`` no integer; paths and lists take the forms YAML gives
    (see :data:`ConfigPath` and :data:`Names`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def __repr_args__(self) -> Any:
        # repr() and str() show secret settings as *** and URLs without their password.
        for name, value in super().__repr_args__():
            yield name, (redact_value(name, value) if name else value)


def _path_text(value: Any) -> Any:
    if value == "":
        raise ValueError("must be a path, not empty")
    return value


def _one_or_more(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


ConfigPath = Annotated[Path, Strict(False), BeforeValidator(_path_text)]
"""A path, written as a string in the file (relative ones are resolved by :meth:`ProjectConfig.resolve`)."""

Names = Annotated[tuple[str, ...], Strict(False), BeforeValidator(_one_or_more)]
"""Strings, written as a list or as one string; a tuple once read."""


class OnlineStoreConfig(Settings):
    """Settings of an online store. ``type`` names its kind, a key of :data:`ONLINE_STORE_KINDS`;
    each kind narrows it to a ``Literal``."""

    type: str


@dataclass(frozen=True)
class StoreKind:
    """Where a kind of online store lives: its module (imported only when a project uses the
    kind, so reading a project file never imports a store's client library), its settings model
    and its store class, which has ``from_config(settings, project) -> OnlineStore``. The
    settings may live in a module of their own (``config_module``), which a config load then
    imports instead of the store's."""

    module: str
    config: str
    store: str
    config_module: str | None = None

    def config_class(self) -> type[OnlineStoreConfig]:
        module = importlib.import_module(self.config_module or self.module)
        cls: type[OnlineStoreConfig] = getattr(module, self.config)
        return cls

    def store_class(self) -> Any:
        return getattr(importlib.import_module(self.module), self.store)


ONLINE_STORE_KINDS: Mapping[str, StoreKind] = {
    "sqlite": StoreKind(
        "featurestore.online.sqlite", "SqliteOnlineConfig", "SqliteOnlineStore", "featurestore.online.sqlite_config"
    ),
    "redis": StoreKind("featurestore.online.redis", "RedisOnlineConfig", "RedisOnlineStore"),
    "cassandra": StoreKind("featurestore.online.cassandra", "CassandraOnlineConfig", "CassandraOnlineStore"),
    "memory": StoreKind("featurestore.online.memory", "MemoryOnlineConfig", "MemoryOnlineStore"),
}
"""Every kind of online store, by the ``type`` that names it in ``online_store``."""


def online_store_kind(kind: str, file: Path | None = None) -> StoreKind:
    """The online store kind named ``kind``, or a :class:`ConfigError` naming the ones there are."""
    found = ONLINE_STORE_KINDS.get(kind)
    if found is None:
        raise ConfigError(
            f"unknown type '{kind}'.{did_you_mean(str(kind), ONLINE_STORE_KINDS)} Available: {sorted(ONLINE_STORE_KINDS)}",
            file=str(file) if file else None,
            key="online_store.type",
        )
    return found


class ParquetOfflineConfig(Settings):
    """Offline store on local Parquet files, partitioned by date, published atomically per run."""

    type: Literal["parquet"] = "parquet"
    path: ConfigPath = Path("data/offline")


class HiveOfflineConfig(Settings):
    """Offline store as Hive tables (one per view, partitioned by date) in ``database``, written
    by the Spark engine. The tables' Parquet files live under ``path/<view>`` (external tables,
    the default) or under ``warehouse/<database>.db/<view>`` (managed tables), with the same
    manifest as the Parquet store, so the SDK reads them without Spark. The metastore is an
    embedded Derby database in ``metastore`` unless ``metastore_uri`` (thrift://...) is given."""

    type: Literal["hive"] = "hive"
    database: str = ""
    path: ConfigPath = Path("data/offline")
    warehouse: ConfigPath = Path("data/warehouse")
    metastore: ConfigPath = Path("data/metastore")
    metastore_uri: str = ""
    table_type: Literal["external", "managed"] = "external"


class LocalEngineConfig(Settings):
    """The embedded engine: DuckDB and pandas in this process. ``memory_limit``: what DuckDB may
    hold while a run computes (a DuckDB size such as ``1GB`` or ``500MB``); beyond it, it spills
    to the run's scratch folder. ``threads``: DuckDB's threads (0: one per core)."""

    type: Literal["local"] = "local"
    memory_limit: str = Field(default="1GB", pattern=r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|B)\s*$")
    threads: int = Field(default=0, ge=0)


class SparkEngineConfig(Settings):
    """The Spark engine (``etl.spark``). ``master``: ``local[*]``, ``spark://host:7077``, ...; empty
    means the master ``spark-submit`` was given, else ``local[*]``. ``conf``: any Spark settings
    (numbers and booleans as YAML writes them; the engine passes them on as text)."""

    type: Literal["spark"] = "spark"
    master: str = ""
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


OfflineStoreConfig = ParquetOfflineConfig | HiveOfflineConfig
EngineConfig = LocalEngineConfig | SparkEngineConfig

_OFFLINE_TYPES: Mapping[str, type[Settings]] = {"parquet": ParquetOfflineConfig, "hive": HiveOfflineConfig}
_ENGINE_TYPES: Mapping[str, type[Settings]] = {"local": LocalEngineConfig, "spark": SparkEngineConfig}


class QualityConfig(Settings):
    """The quality gate and run statistics (section ``quality`` of ``featurestore.yaml``).

    ``psi_threshold``: a feature whose population stability index against the previous
    successful run exceeds it is flagged as drifting. ``histogram_bins``: equal-width bins of
    each numeric feature's histogram. ``quarantine``: when true, rows failing a blocking
    row-level expectation are set aside under ``<offline store>/_quarantine/<view>/<run id>.parquet``
    and the other rows published (off by default; ``featurestore run --quarantine`` turns it on
    for one run). ``examples``: failing rows shown per expectation in a report.
    ``probe_sample_rows``: rows a source probe keeps as its sample (0: none; columns tagged
    sensitive never); ``probe_timeout_seconds``: how long a probe may read a source (see
    :mod:`featurestore.source_probe`)."""

    psi_threshold: float = Field(default=0.2, gt=0)
    histogram_bins: int = Field(default=10, ge=2)
    quarantine: bool = False
    examples: int = Field(default=5, ge=0)
    probe_sample_rows: int = Field(default=5, ge=0, le=1000)
    probe_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)


class OidcConfig(Settings):
    """Bearer JWTs from an OpenID Connect issuer (section ``auth.oidc`` of ``featurestore.yaml``).

    ``jwks_url``: where the issuer publishes its signing keys (default: the ``jwks_uri`` of
    ``<issuer>/.well-known/openid-configuration``). ``roles_claim``: the claim holding the
    caller's roles or groups (a string or a list); ``role_map`` maps its values to roles
    (unmapped values that name a role are taken as is). ``name_claim``: the name recorded in
    usage statistics and the audit log. ``models_claim``: for a ``service``, the models whose
    feature services it may read. ``project_claim``: when set, the claim must equal the project."""

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str = ""
    roles_claim: str = "roles"
    role_map: dict[str, Literal["admin", "engineer", "scientist", "analyst", "service"]] = Field(default_factory=dict)
    name_claim: str = "sub"
    models_claim: str = "models"
    project_claim: str = ""
    algorithms: Names = ("RS256", "ES256", "PS256")
    leeway_seconds: int = Field(default=30, ge=0, le=600)


class AuthConfig(Settings):
    """Section ``auth`` of ``featurestore.yaml``. ``enabled``: require a token (or an OIDC bearer
    JWT when ``oidc`` is set) on every route but the public ones; off by default, which only
    ``127.0.0.1`` may serve. ``cache_seconds``: how long a server trusts a checked API token
    before reading the registry again (a token revoked by another process stops working within
    it; one revoked through the server, at once)."""

    enabled: bool = False
    cache_seconds: float = Field(default=10.0, ge=0, le=3600)
    oidc: OidcConfig | None = None


class DatamartConfig(Settings):
    """Limits of the datamart API and the registry UI (section ``datamart`` of ``featurestore.yaml``).

    ``max_body_bytes``: a request body (JSON, a form), beyond which the answer is 413.
    ``max_upload_bytes``: a spine uploaded to ``/v1/training-set/upload`` (413 beyond).
    ``max_lookup_entities``: entities of one online lookup (422 beyond). ``max_spine_rows``: rows
    of a training-set spine, sent as JSON or uploaded (422 beyond). ``max_url_bytes``: the path
    and query string (414 beyond). ``max_header_bytes``: the request's headers, names and values
    together (431 beyond). A server holding several projects applies the limits of the first.
    ``access_log``: whether ``featurestore serve`` logs a line per request (uvicorn's access log;
    ``serve --access-log/--no-access-log`` overrides it): off, a lookup costs ~15 % less CPU."""

    access_log: bool = True
    max_body_bytes: int = Field(default=10 * 2**20, ge=1024)
    max_upload_bytes: int = Field(default=200 * 2**20, ge=1024)
    max_lookup_entities: int = Field(default=10_000, ge=1)
    max_spine_rows: int = Field(default=1_000_000, ge=1)
    max_url_bytes: int = Field(default=8 * 1024, ge=256)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)


class WebhookChannelConfig(Settings):
    """An alert channel that POSTs each alert as JSON to ``url`` (an ``alerts.channels`` entry
    of ``featurestore.yaml``). The URL is a secret as a whole (a webhook's token is often in its
    path): write its token as ``${VAR}``; pages and logs show only its scheme and host.
    ``headers``: sent with each request (e.g. ``Authorization: Bearer ${HOOK_TOKEN}``), their
    values kept secret."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"url", "headers"})
    """Never quoted in an error (a URL without its scheme is still a token)."""

    type: Literal["webhook"] = "webhook"
    name: str = ""
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL, e.g. https://hooks.example.com/alerts")
        return value


class EmailChannelConfig(Settings):
    """An alert channel that mails each alert through an SMTP server (an ``alerts.channels``
    entry). ``from``: the sender address; ``to``: the recipients. ``username``/``password``: SMTP
    login, if the server wants one (write the password as ``${VAR}``). ``starttls``: upgrade a
    plain connection (port 587); ``ssl``: TLS from the start (port 465); at most one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    type: Literal["email"] = "email"
    name: str = ""
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(alias="from", min_length=3)
    to: Names = Field(min_length=1)
    username: str = ""
    password: str = ""
    starttls: bool = False
    ssl: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"password"})

    @model_validator(mode="after")
    def _login_over_tls(self) -> EmailChannelConfig:
        # A password sent in clear over the network: only to a server on this machine.
        local = self.host in ("localhost", "127.0.0.1", "::1")
        if self.username and not (self.starttls or self.ssl or local):
            raise ValueError(
                f"logs in to {self.host} as '{self.username}' without TLS, which would send the password in clear; "
                "set starttls: true (port 587) or ssl: true (port 465)"
            )
        return self


AlertChannelConfig = WebhookChannelConfig | EmailChannelConfig
_CHANNEL_TYPES: Mapping[str, type[Settings]] = {"webhook": WebhookChannelConfig, "email": EmailChannelConfig}
_PUBLIC_HEADERS = frozenset({"content-type", "accept", "user-agent"})


class AlertsConfig(Settings):
    """Section ``alerts`` of ``featurestore.yaml``: where the scheduler sends freshness and run
    failure alerts. ``channels``: webhooks and email servers, each named (``name``, default its
    type). ``max_attempts``: attempts to deliver one message to one channel, one per scheduler
    tick, before it is recorded as failed."""

    channels: tuple[AlertChannelConfig, ...] = ()
    max_attempts: int = Field(default=5, ge=1, le=100)

    def secrets(self) -> list[str]:
        """The secret values of the channels: webhook URLs and header values, SMTP passwords."""
        found: list[str] = []
        for channel in self.channels:
            if isinstance(channel, WebhookChannelConfig):
                found += [channel.url, *secret_values("url", channel.url)]
                found += [v for k, v in channel.headers.items() if k.lower() not in _PUBLIC_HEADERS and v]
            else:
                found += secret_values("password", channel.password)
        return found


class ServingLogConfig(Settings):
    """Section ``serving_log`` of ``featurestore.yaml``: the feature vectors online lookups and
    predictions served, logged for ``featurestore skew`` (see :mod:`featurestore.serving_log`).

    ``sample_rate``: the share of requests logged, 0 (off, the default) to 1 (every request);
    decided per request id, so a request is logged whole or not at all. ``path``: where the
    Parquet files go, one folder per UTC day (default ``_served_vectors`` under the offline
    store's path). ``queue_size``: lookups waiting for the writer thread; beyond it a lookup is
    dropped (and counted), never waited for. ``flush_rows`` / ``flush_seconds``: a file is
    written when this many entity rows are waiting or this long after the oldest arrived.
    ``log_feature_lists``: also log lookups that name features rather than a feature service
    (under ``service=_views``); off by default, as ``featurestore skew`` compares feature
    services only."""

    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    path: ConfigPath | None = None
    queue_size: int = Field(default=10_000, ge=1)
    flush_rows: int = Field(default=100_000, ge=1)
    flush_seconds: float = Field(default=60.0, gt=0)
    log_feature_lists: bool = False


def _default_online_store() -> OnlineStoreConfig:
    return ONLINE_STORE_KINDS["sqlite"].config_class().model_validate({})


# ---------------------------------------------------------------------------- the project


@dataclass(frozen=True, kw_only=True)
class ProjectConfig:
    """Everything ``featurestore.yaml`` says. Relative paths are resolved against ``root``."""

    project: str
    root: Path
    definitions: tuple[str, ...] = ("features.py",)
    registry: str = "sqlite:///data/registry.db"
    offline_store: OfflineStoreConfig = field(default_factory=ParquetOfflineConfig)
    online_store: OnlineStoreConfig = field(default_factory=_default_online_store)
    engine: EngineConfig = field(default_factory=LocalEngineConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    datamart: DatamartConfig = field(default_factory=DatamartConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    serving_log: ServingLogConfig = field(default_factory=ServingLogConfig)
    file: Path | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={redact_value(f.name, getattr(self, f.name))!r}" for f in fields(self))
        return f"{type(self).__name__}({shown})"

    def secrets(self) -> list[str]:
        """The secret values this configuration holds: URL passwords (the registry's, a store's
        URL) and the values of settings named like secrets (see :mod:`featurestore.secrets`)."""
        found = secret_values("registry", self.registry)
        for section in (self.offline_store, self.online_store, self.engine):
            for name in type(section).model_fields:
                found += secret_values(name, getattr(section, name))
        found += self.alerts.secrets()
        return found

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
                f"no {CONFIG_FILE_NAME} here; run 'featurestore init' to create a project, or name the folder holding "
                f"it: 'featurestore -C DIR ...' (--project-dir, or FEATURESTORE_PROJECT_DIR=DIR) on the command line, "
                "FeatureStore('DIR') in Python",
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
        raw = _substitute_environment(raw, fname)
        top = _validate(_ProjectFile, raw, file=fname, section="", hints=_PROJECT_HINTS)
        config = cls(
            project=top.project,
            root=root,
            definitions=top.definitions,
            registry=top.registry,
            offline_store=cast(OfflineStoreConfig, _section(raw, "offline_store", _OFFLINE_TYPES, "parquet", fname)),
            online_store=_online_section(raw, fname),
            engine=cast(EngineConfig, _section(raw, "engine", _ENGINE_TYPES, "local", fname)),
            quality=_quality_section(raw, fname),
            auth=_auth_section(raw, fname),
            datamart=_datamart_section(raw, fname),
            alerts=_alerts_section(raw, fname),
            serving_log=_serving_log_section(raw, fname),
            file=file,
        )
        remember(*config.secrets())
        return config


class _ProjectFile(Settings):
    """The top level of the file; the store, engine and quality sections are read apart (their
    model depends on their ``type``)."""

    project: str = Field(min_length=1)
    definitions: Names = ("features.py",)
    registry: str = "sqlite:///data/registry.db"
    offline_store: Any = None
    online_store: Any = None
    engine: Any = None
    quality: Any = None
    auth: Any = None
    datamart: Any = None
    alerts: Any = None
    serving_log: Any = None


_PROJECT_HINTS = {
    "project": "the project's name, e.g. 'project: bank'",
    "definitions": "a file name or a list of file names",
    "registry": "an SQLAlchemy URL, e.g. sqlite:///data/registry.db",
}


# ---------------------------------------------------------------------------- the environment

_ENV_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""``${NAME}``, replaced by the environment variable's value; ``$${NAME}``, a literal ``${NAME}``."""


def _substitute_environment(value: Any, fname: str | None, key: str = "") -> Any:
    """``value`` with every ``${NAME}`` in its strings (at any depth) replaced from the
    environment. The values taken are remembered as secrets (:mod:`featurestore.secrets`); a
    variable that is not set is a :class:`ConfigError` naming the file, the key and the variable."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            found = os.environ.get(name)
            if found is None:
                raise ConfigError(
                    f"uses the environment variable {name}, which is not set: set it, "
                    f"or write $${{{name}}} for a literal '${{{name}}}'",
                    file=fname,
                    key=key or None,
                )
            remember(found)
            return found

        return _ENV_REFERENCE.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _substitute_environment(v, fname, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_environment(v, fname, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------------------- reading sections


def _section_value(raw: Mapping[str, Any], key: str, default: str, fname: str | None) -> Mapping[str, Any]:
    value = raw.get(key, {"type": default})
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping with a 'type', e.g. {{type: {default}}}", file=fname, key=key)
    return value


def _kind(value: Mapping[str, Any], key: str, kinds: Mapping[str, object], default: str, fname: str | None) -> str:
    kind = value.get("type", default)
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigError(
            f"unknown type '{kind}'.{did_you_mean(str(kind), kinds)} Available: {sorted(kinds)}",
            file=fname,
            key=f"{key}.type",
        )
    return kind


def _section(
    raw: Mapping[str, Any], key: str, types: Mapping[str, type[Settings]], default: str, fname: str | None
) -> Settings:
    value = _section_value(raw, key, default, fname)
    kind = _kind(value, key, types, default, fname)
    return _validate(types[kind], value, file=fname, section=key, unknown=f" for a {kind} {key}")


def _online_section(raw: Mapping[str, Any], fname: str | None) -> OnlineStoreConfig:
    key = "online_store"
    value = _section_value(raw, key, "sqlite", fname)
    kind = _kind(value, key, ONLINE_STORE_KINDS, "sqlite", fname)
    model = ONLINE_STORE_KINDS[kind].config_class()
    return _validate(model, value, file=fname, section=key, unknown=f" for a {kind} {key}")


def _auth_section(raw: Mapping[str, Any], fname: str | None) -> AuthConfig:
    value = raw.get("auth") or {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping, e.g. {enabled: true}", file=fname, key="auth")
    return _validate(AuthConfig, value, file=fname, section="auth")


def _datamart_section(raw: Mapping[str, Any], fname: str | None) -> DatamartConfig:
    value = raw.get("datamart") or {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping, e.g. {max_body_bytes: 10485760}", file=fname, key="datamart")
    return _validate(DatamartConfig, value, file=fname, section="datamart")


def _serving_log_section(raw: Mapping[str, Any], fname: str | None) -> ServingLogConfig:
    value = raw.get("serving_log") or {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping, e.g. {sample_rate: 0.1}", file=fname, key="serving_log")
    return _validate(ServingLogConfig, value, file=fname, section="serving_log")


_CHANNEL_EXAMPLE = (
    "{type: webhook, url: 'https://hooks.example.com/${HOOK_TOKEN}'} or "
    "{type: email, host: smtp.example.com, from: featurestore@example.com, to: [oncall@example.com]}"
)


_CHANNEL_HINTS = {
    "url": "an http:// or https:// URL, e.g. 'https://hooks.example.com/${HOOK_TOKEN}'",
    "host": "the SMTP server's host name, e.g. smtp.example.com",
    "from": "the sender's address, e.g. featurestore@example.com",
    "to": "a list of recipient addresses, e.g. [oncall@example.com]",
}


def _alerts_section(raw: Mapping[str, Any], fname: str | None) -> AlertsConfig:
    value = raw.get("alerts")
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, e.g. {{channels: [{_CHANNEL_EXAMPLE}]}}", file=fname, key="alerts")
    listed = value.get("channels")
    listed = [] if listed is None else listed
    if not isinstance(listed, list):
        raise ConfigError(f"must be a list of channels, each {_CHANNEL_EXAMPLE}", file=fname, key="alerts.channels")
    channels: list[AlertChannelConfig] = []
    for i, entry in enumerate(listed):
        key = f"alerts.channels[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"must be a mapping: {_CHANNEL_EXAMPLE}", file=fname, key=key)
        if "type" not in entry:
            raise ConfigError("is required: webhook or email", file=fname, key=f"{key}.type")
        kind = _kind(entry, key, _CHANNEL_TYPES, "", fname)
        channel = cast(
            AlertChannelConfig,
            _validate(
                _CHANNEL_TYPES[kind],
                entry,
                file=fname,
                section=key,
                unknown=f" for a {kind} channel",
                hints=_CHANNEL_HINTS,
            ),
        )
        if isinstance(channel, EmailChannelConfig) and channel.ssl and channel.starttls:
            raise ConfigError(
                "sets both ssl and starttls: choose one (ssl: TLS from the start, usually port 465; starttls: "
                "a plain connection upgraded, usually port 587)",
                file=fname,
                key=f"{key}.ssl",
            )
        channels.append(channel.model_copy(update={"name": channel.name or kind}))
    names = [c.name for c in channels]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(
                f"names the channel '{name}' a second time: give each channel its own name (name: ...)",
                file=fname,
                key=f"alerts.channels[{i}].name",
            )
    rest = {k: v for k, v in value.items() if k != "channels"}
    config = _validate(AlertsConfig, rest, file=fname, section="alerts")
    return config.model_copy(update={"channels": tuple(channels)})


def _quality_section(raw: Mapping[str, Any], fname: str | None) -> QualityConfig:
    value = raw.get("quality", {})
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping, e.g. {psi_threshold: 0.2, quarantine: false}", file=fname, key="quality")
    return _validate(QualityConfig, value, file=fname, section="quality")


# ---------------------------------------------------------------------------- pydantic's errors, as ours

_M = TypeVar("_M", bound=Settings)


def _validate(
    model: type[_M],
    value: Mapping[str, Any],
    *,
    file: str | None,
    section: str,
    unknown: str = "",
    hints: Mapping[str, str] | None = None,
) -> _M:
    """``value`` validated as ``model``; its first error raised as a :class:`ConfigError` naming
    the file and the dotted key (``section.field``), in words a user of the file understands."""
    try:
        return model.model_validate(dict(value))
    except ValidationError as err:
        raise _config_error(model, value, err.errors()[0], file, section, unknown, hints or {}) from err


def _config_error(
    model: type[Settings],
    value: Mapping[str, Any],
    error: ErrorDetails,
    file: str | None,
    section: str,
    unknown: str,
    hints: Mapping[str, str],
) -> ConfigError:
    name = str(error["loc"][0]) if error["loc"] else ""
    key = f"{section}.{name}" if section and name else (name or section or None)
    kind = error["type"]
    fields = {(info.alias or field_name): info for field_name, info in model.model_fields.items()}
    if kind == "value_error" and not name:  # a validator of the whole section (settings that go together)
        return ConfigError(str(error.get("ctx", {}).get("error", error["msg"])), file=file, key=key)
    if kind in ("extra_forbidden", "invalid_key") or name not in fields:
        known = sorted(fields)
        return ConfigError(f"unknown key{unknown}.{did_you_mean(name, known)} Known keys: {known}", file=file, key=key)
    info = fields[name]
    expected = hints.get(name) or _expected(info.annotation)
    hidden = name in getattr(model, "SECRET_FIELDS", ())
    given = f", got {redact_value(name, value[name])!r}" if name in value and not hidden else ""
    ctx = error.get("ctx", {})
    if name in value and kind in ("string_too_short", "too_short"):
        return ConfigError(f"must not be empty: {expected}{given}", file=file, key=key)
    if name in value and kind == "value_error":  # a validator of the model said what is wrong
        return ConfigError(f"{ctx['error']}{given}", file=file, key=key)
    if info.is_required():
        return ConfigError(f"is required: {expected}{given}", file=file, key=key)
    if kind == "greater_than":
        bound = ctx["gt"]
        positive = "a positive integer" if info.annotation is int else "a positive number"
        words = positive if bound == 0 else f"greater than {bound}"
        return ConfigError(f"must be {words}{given}", file=file, key=key)
    if kind == "greater_than_equal":
        bound = ctx["ge"]
        return ConfigError(
            ("must not be negative" if bound == 0 else f"must be at least {bound}") + given, file=file, key=key
        )
    if kind in ("less_than", "less_than_equal"):
        return ConfigError(f"must be at most {ctx.get('le', ctx.get('lt'))}{given}", file=file, key=key)
    if kind == "value_error":  # a validator of the model said what is wrong
        return ConfigError(f"{ctx['error']}{given}", file=file, key=key)
    return ConfigError(f"must be {expected}{given}", file=file, key=key)


_EXPECTED: Mapping[object, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path (a string)",
}


def _expected(annotation: Any) -> str:
    """What a field of this type takes, as a user of the file would say it."""
    if annotation in _EXPECTED:
        return _EXPECTED[annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _expected(args[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        each = [_expected(a) for a in args]
        return ", ".join(each[:-1]) + " or " + each[-1]
    if origin in (tuple, list, set, frozenset):
        item = _expected(args[0]) if args else "value"
        for article in ("a ", "an "):
            if item.startswith(article):
                return f"a list of {item[len(article) :]}s"
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping" if len(args) < 2 or args[1] is Any else f"a mapping to {_expected(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


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
