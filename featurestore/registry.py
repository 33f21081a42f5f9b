"""The registry: every definition, its versions, lineage, runs and usage, in any SQLAlchemy database.

SQLite by default (one file, no server); PostgreSQL or any other SQLAlchemy URL for teams.
Definitions are stored as their JSON specs so that readers (the datamart, the UI) rebuild the
same frozen objects without importing the project's Python files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Project,
    Source,
    source_definition,
    source_from_spec,
)
from featurestore.errors import NotFoundError, StoreUnavailableError


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()


def _definition_table(name: str, *extra: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        *extra,
    )


entities_t = _definition_table("entities")
sources_t = _definition_table("sources")
views_t = _definition_table(
    "feature_views",
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)
services_t = _definition_table("feature_services")
models_t = _definition_table("models")
view_versions_t = sa.Table(
    "feature_view_versions",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
features_t = sa.Table(
    "features",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("view", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("dtype", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
)
lineage_t = sa.Table(
    "lineage_edges",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("src_kind", sa.String(40), primary_key=True),
    sa.Column("src_name", sa.String(200), primary_key=True),
    sa.Column("dst_kind", sa.String(40), primary_key=True),
    sa.Column("dst_name", sa.String(200), primary_key=True),
)
runs_t = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("view", sa.String(200), nullable=False, index=True),
    sa.Column("view_version", sa.Integer, nullable=False),
    sa.Column("engine", sa.String(40), nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=True),
    sa.Column("window_end", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("rows_computed", sa.BigInteger, nullable=True),
    sa.Column("rows_offline", sa.BigInteger, nullable=True),
    sa.Column("rows_online", sa.BigInteger, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("timings", sa.Text, nullable=False, default="{}"),
    sa.Column("watermark", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)
usage_t = sa.Table(
    "usage_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("consumer", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("view", sa.String(200), nullable=False),
    sa.Column("feature", sa.String(200), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("reads", sa.BigInteger, nullable=False, server_default="1"),
)
usage_daily_t = sa.Table(
    # usage_events rolled up per UTC day, kept up to date in the transaction that records the
    # events: what the usage statistics (API, UI) read, so they stay fast with millions of events.
    "usage_daily",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("view", sa.String(200), primary_key=True),
    sa.Column("feature", sa.String(200), primary_key=True),
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("reads", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("last_read", UTCDateTime, nullable=False),
)

consistency_t = sa.Table(
    "consistency_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(200), nullable=False, index=True),
    sa.Column("view", sa.String(200), nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Column("consistent", sa.Boolean, nullable=False),
    sa.Column("checked", sa.BigInteger, nullable=False),
    sa.Column("mismatched", sa.BigInteger, nullable=False),
    sa.Column("missing", sa.BigInteger, nullable=False),
    sa.Column("extra", sa.BigInteger, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
)

run_quality_t = sa.Table(
    # One row per run that reached the quality gate: its validation report and the statistics
    # of the rows it published (empty when the gate blocked it), both as JSON.
    "run_quality",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("validation", sa.Text, nullable=False),
    sa.Column("statistics", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApplyReport:
    """What ``apply`` changed, by kind: names created, updated (with the view's new version) and removed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunRecord:
    """One run of a feature view, as recorded in the registry."""

    id: str
    project: str
    view: str
    view_version: int
    engine: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    rows_computed: int | None
    rows_offline: int | None
    rows_online: int | None
    started_at: datetime
    finished_at: datetime | None
    timings: dict[str, float]
    watermark: datetime | None
    error: str | None

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = v.isoformat() if isinstance(v, datetime) else v
        out["duration_seconds"] = self.duration_seconds
        return out


@dataclass(frozen=True)
class UsageEvent:
    """Reads of one feature by one consumer, of one kind (online, training, reference): how
    many reads, how many rows in all, and when the last one was. One event per read, or a
    roll-up of many (see ``featurestore.usage``)."""

    consumer: str
    kind: str
    view: str
    feature: str
    rows: int
    at: datetime = field(default_factory=_now)
    reads: int = 1


@dataclass(frozen=True)
class ViewVersion:
    version: int
    fingerprint: str
    changes: str
    created_at: datetime
    spec: dict[str, Any]


class Registry:
    """Definitions, versions, lineage, runs and usage of every project in one database."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = engine or sa.create_engine(url)
            had_daily_usage = sa.inspect(self._engine).has_table(usage_daily_t.name)
            metadata.create_all(self._engine)
            if not had_daily_usage:  # a registry from before the daily roll-up: fill it once
                _backfill_usage_daily(self._engine)
        except sa.exc.SQLAlchemyError as err:
            raise StoreUnavailableError("Registry", _safe_url(url), str(err).splitlines()[0]) from err

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ definitions

    def apply(self, project: str, definitions: Project) -> ApplyReport:
        """Make the registry hold exactly these definitions; views get a new version when their
        schema fingerprint changes. Runs, usage and version history are kept."""
        report = ApplyReport()
        now = _now()
        with self._engine.begin() as conn:
            old_sources = _build_sources(self._specs_in(conn, sources_t, project))
            groups: list[tuple[sa.Table, str, Sequence[Any]]] = [
                (entities_t, "entity", definitions.entities),
                (sources_t, "source", definitions.sources),
                (services_t, "feature service", definitions.feature_services),
            ]
            for table, kind, objs in groups:
                self._apply_group(conn, project, table, kind, objs, now, report)
            self._apply_views(conn, project, definitions.feature_views, old_sources, now, report)
            conn.execute(lineage_t.delete().where(lineage_t.c.project == project, lineage_t.c.dst_kind != "model"))
            edges = _lineage_edges(definitions)
            if edges:
                conn.execute(lineage_t.insert(), [{"project": project, **e} for e in edges])
        return report

    def _apply_group(
        self,
        conn: sa.Connection,
        project: str,
        table: sa.Table,
        kind: str,
        objs: Sequence[Any],
        now: datetime,
        report: ApplyReport,
    ) -> None:
        existing = {
            r.name: r.spec
            for r in conn.execute(sa.select(table.c.name, table.c.spec).where(table.c.project == project))
        }
        wanted = {o.name: json.dumps(o.to_spec(), sort_keys=True) for o in objs}
        for name, spec in wanted.items():
            if name not in existing:
                conn.execute(
                    table.insert().values(project=project, name=name, spec=spec, created_at=now, updated_at=now)
                )
                report.created.append(f"{kind} {name}")
            elif existing[name] != spec:
                conn.execute(
                    table.update()
                    .where(table.c.project == project, table.c.name == name)
                    .values(spec=spec, updated_at=now)
                )
                report.updated.append(f"{kind} {name}")
            else:
                report.unchanged.append(f"{kind} {name}")
        for name in set(existing) - set(wanted):
            conn.execute(table.delete().where(table.c.project == project, table.c.name == name))
            report.removed.append(f"{kind} {name}")

    def _apply_views(
        self,
        conn: sa.Connection,
        project: str,
        views: Sequence[FeatureView],
        old_sources: Mapping[str, Source],
        now: datetime,
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
                        created_at=now,
                        updated_at=now,
                    )
                )
                self._add_version(conn, project, view.name, version, fingerprint, spec, changes, now)
                report.created.append(f"feature view {view.name} (version {version})")
            elif old.spec == spec:
                report.unchanged.append(f"feature view {view.name}")
            else:
                version = old.version
                old_spec = json.loads(old.spec)
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
                    self._add_version(conn, project, view.name, version, fingerprint, spec, changes, now)
                    report.updated.append(f"feature view {view.name} (version {version}: {changes})")
                elif json.dumps(old_spec, sort_keys=True) == spec:  # only the form of the record changed
                    report.unchanged.append(f"feature view {view.name}")
                elif old_spec.get("expectations", []) != spec_dict["expectations"]:
                    # Checks are not part of the schema: the version's rows keep their meaning.
                    report.updated.append(f"feature view {view.name} (expectations changed; same version)")
                else:
                    report.updated.append(f"feature view {view.name} (metadata only)")
                conn.execute(
                    views_t.update()
                    .where(views_t.c.project == project, views_t.c.name == view.name)
                    .values(spec=spec, version=version, fingerprint=fingerprint, updated_at=now)
                )
            conn.execute(features_t.delete().where(features_t.c.project == project, features_t.c.view == view.name))
            conn.execute(
                features_t.insert(),
                [
                    {
                        "project": project,
                        "view": view.name,
                        "name": f.name,
                        "dtype": f.dtype.value,
                        "description": f.description,
                        "owner": f.owner or view.owner,
                        "tags": json.dumps(list(f.tags)),
                    }
                    for f in view.features
                ],
            )
        wanted = {v.name for v in views}
        for name in set(existing) - wanted:
            conn.execute(views_t.delete().where(views_t.c.project == project, views_t.c.name == name))
            conn.execute(features_t.delete().where(features_t.c.project == project, features_t.c.view == name))
            report.removed.append(f"feature view {name}")

    @staticmethod
    def _add_version(
        conn: sa.Connection,
        project: str,
        name: str,
        version: int,
        fingerprint: str,
        spec: str,
        changes: str,
        now: datetime,
    ) -> None:
        conn.execute(
            view_versions_t.insert().values(
                project=project,
                name=name,
                version=version,
                fingerprint=fingerprint,
                spec=spec,
                changes=changes,
                created_at=now,
            )
        )

    def _specs(self, table: sa.Table, project: str) -> dict[str, dict[str, Any]]:
        with self._engine.connect() as conn:
            return self._specs_in(conn, table, project)

    @staticmethod
    def _specs_in(conn: sa.Connection, table: sa.Table, project: str) -> dict[str, dict[str, Any]]:
        rows = conn.execute(
            sa.select(table.c.name, table.c.spec).where(table.c.project == project).order_by(table.c.name)
        )
        return {r.name: json.loads(r.spec) for r in rows}

    def projects(self) -> list[str]:
        with self._engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(sa.select(views_t.c.project).distinct())})

    def list_entities(self, project: str) -> list[Entity]:
        return [Entity.from_spec(s) for s in self._specs(entities_t, project).values()]

    def list_sources(self, project: str) -> list[Source]:
        specs = self._specs(sources_t, project)
        built = _build_sources(specs)
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
        with self._engine.connect() as conn:
            version = conn.execute(
                sa.select(views_t.c.version).where(views_t.c.project == project, views_t.c.name == name)
            ).scalar()
        if version is None:
            raise NotFoundError("feature view", name, project=project, candidates=self._specs(views_t, project))
        return int(version)

    def view_versions(self, project: str, name: str) -> list[ViewVersion]:
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

    def list_features(self, project: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(features_t)
                .where(features_t.c.project == project)
                .order_by(features_t.c.view, features_t.c.name)
            )
            return [
                {
                    "view": r.view,
                    "name": r.name,
                    "dtype": r.dtype,
                    "description": r.description,
                    "owner": r.owner,
                    "tags": json.loads(r.tags),
                }
                for r in rows
            ]

    # ------------------------------------------------------------------ models and lineage

    def register_model(self, project: str, name: str, feature_service: str, description: str = "") -> None:
        """Record a model as a consumer of a feature service (service → model in the lineage)."""
        self.get_feature_service(project, feature_service)
        now = _now()
        spec = json.dumps(
            {"name": name, "feature_service": feature_service, "description": description}, sort_keys=True
        )
        with self._engine.begin() as conn:
            exists = conn.execute(
                sa.select(models_t.c.name).where(models_t.c.project == project, models_t.c.name == name)
            ).first()
            if exists:
                conn.execute(
                    models_t.update()
                    .where(models_t.c.project == project, models_t.c.name == name)
                    .values(spec=spec, updated_at=now)
                )
            else:
                conn.execute(
                    models_t.insert().values(project=project, name=name, spec=spec, created_at=now, updated_at=now)
                )
            conn.execute(
                lineage_t.delete().where(
                    lineage_t.c.project == project, lineage_t.c.dst_kind == "model", lineage_t.c.dst_name == name
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

    def list_models(self, project: str) -> list[dict[str, Any]]:
        return list(self._specs(models_t, project).values())

    def lineage(self, project: str) -> list[dict[str, str]]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(lineage_t).where(lineage_t.c.project == project))
            return [
                {"src_kind": r.src_kind, "src_name": r.src_name, "dst_kind": r.dst_kind, "dst_name": r.dst_name}
                for r in rows
            ]

    # ------------------------------------------------------------------ runs

    def start_run(
        self, project: str, view: str, *, engine: str, window_start: datetime | None, window_end: datetime | None
    ) -> str:
        run_id = str(uuid.uuid4())
        with self._engine.begin() as conn:
            conn.execute(
                runs_t.insert().values(
                    id=run_id,
                    project=project,
                    view=view,
                    view_version=self.view_version(project, view),
                    engine=engine,
                    window_start=window_start,
                    window_end=window_end,
                    status="running",
                    started_at=_now(),
                    timings="{}",
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        rows_computed: int | None = None,
        rows_offline: int | None = None,
        rows_online: int | None = None,
        timings: Mapping[str, float] | None = None,
        watermark: datetime | None = None,
        error: str | None = None,
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                runs_t.update()
                .where(runs_t.c.id == run_id)
                .values(
                    status=status,
                    rows_computed=rows_computed,
                    rows_offline=rows_offline,
                    rows_online=rows_online,
                    finished_at=_now(),
                    timings=json.dumps(dict(timings or {})),
                    watermark=watermark,
                    error=error,
                )
            )

    def abandon_runs(self, project: str, view: str, *, found_by: str) -> list[str]:
        """Mark the view's runs still ``running`` as ``abandoned``: their process stopped (killed,
        crashed) before recording an outcome. Called by a run that holds the view's publish lock,
        which every run holds from start to end, so no other run of the view can be alive."""
        with self._engine.begin() as conn:
            ids = [
                r.id
                for r in conn.execute(
                    sa.select(runs_t.c.id).where(
                        runs_t.c.project == project,
                        runs_t.c.view == view,
                        runs_t.c.status == "running",
                        runs_t.c.id != found_by,
                    )
                )
            ]
            if ids:
                conn.execute(
                    runs_t.update()
                    .where(runs_t.c.id.in_(ids))
                    .values(
                        status="abandoned",
                        finished_at=_now(),
                        error=f"the process running it stopped before recording an outcome (found by run {found_by})",
                    )
                )
        return ids

    def get_run(self, run_id: str) -> RunRecord:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(runs_t).where(runs_t.c.id == run_id)).first()
        if row is None:
            raise NotFoundError("run", run_id)
        return _run_record(row)

    def list_runs(self, project: str, view: str | None = None, limit: int = 50) -> list[RunRecord]:
        query = sa.select(runs_t).where(runs_t.c.project == project)
        if view is not None:
            query = query.where(runs_t.c.view == view)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(runs_t.c.started_at.desc()).limit(limit))
            return [_run_record(r) for r in rows]

    def watermark(self, project: str, view: str) -> datetime | None:
        """The newest event time published by a successful run of the view."""
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(runs_t.c.watermark)).where(
                    runs_t.c.project == project, runs_t.c.view == view, runs_t.c.status == "succeeded"
                )
            ).scalar()
        if isinstance(value, str):  # SQLite returns max() of a DateTime column as text
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def watermarks(self, project: str) -> dict[str, datetime]:
        """The newest event time published by a successful run, of every view that has one."""
        query = (
            sa.select(runs_t.c.view, sa.func.max(runs_t.c.watermark).label("watermark"))
            .where(runs_t.c.project == project, runs_t.c.status == "succeeded", runs_t.c.watermark.is_not(None))
            .group_by(runs_t.c.view)
        )
        with self._engine.connect() as conn:
            found = {r.view: _as_utc(r.watermark) for r in conn.execute(query)}
        return {view: at for view, at in found.items() if at is not None}

    # ------------------------------------------------------------------ quality of runs

    def record_run_quality(self, run_id: str, validation: Mapping[str, Any], statistics: Mapping[str, Any]) -> None:
        """Keep a run's validation report (``QualityReport.to_dict()``) and the statistics of the
        rows it published (feature → figures; empty when nothing was published). Recording again
        replaces them."""
        values = {
            "validation": json.dumps(validation, default=str),
            "statistics": json.dumps(statistics, default=str),
            "recorded_at": _now(),
        }
        with self._engine.begin() as conn:
            updated = conn.execute(run_quality_t.update().where(run_quality_t.c.run_id == run_id).values(**values))
            if not updated.rowcount:
                conn.execute(run_quality_t.insert().values(run_id=run_id, **values))

    def get_run_quality(self, run_id: str) -> dict[str, Any] | None:
        """``{"run_id", "validation", "statistics", "recorded_at"}`` of a run, or ``None`` when the
        run never reached the quality gate (it failed before, or ran before the gate existed)."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(run_quality_t).where(run_quality_t.c.run_id == run_id)).first()
        if row is None:
            return None
        return {
            "run_id": row.run_id,
            "validation": json.loads(row.validation),
            "statistics": json.loads(row.statistics),
            "recorded_at": row.recorded_at,
        }

    def list_statistics(self, project: str, view: str, limit: int = 20) -> list[dict[str, Any]]:
        """Statistics of the view's successful runs, newest first: ``{"run_id", "started_at",
        "rows", "statistics"}`` where ``statistics`` maps each feature to ``{count, null_fraction,
        min, max, mean, stddev, distinct, histogram: {edges, counts}, psi, drift}``."""
        query = (
            sa.select(runs_t.c.id, runs_t.c.started_at, runs_t.c.rows_offline, run_quality_t.c.statistics)
            .join(run_quality_t, run_quality_t.c.run_id == runs_t.c.id)
            .where(runs_t.c.project == project, runs_t.c.view == view, runs_t.c.status == "succeeded")
            .order_by(runs_t.c.started_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [
                {
                    "run_id": r.id,
                    "started_at": r.started_at,
                    "rows": r.rows_offline,
                    "statistics": json.loads(r.statistics),
                }
                for r in conn.execute(query)
            ]

    # ------------------------------------------------------------------ consistency checks

    def record_consistency(self, project: str, report: Mapping[str, Any]) -> None:
        """Keep the outcome of a consistency check (a ``ConsistencyReport.to_dict()``)."""
        with self._engine.begin() as conn:
            conn.execute(
                consistency_t.insert().values(
                    project=project,
                    view=report["view"],
                    checked_at=_now(),
                    consistent=bool(report["consistent"]),
                    checked=report["checked"],
                    mismatched=report["mismatched"],
                    missing=report["missing"],
                    extra=report["extra"],
                    report=json.dumps(report, default=str),
                )
            )

    def list_consistency(self, project: str, view: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        query = sa.select(consistency_t.c.report).where(consistency_t.c.project == project)
        if view is not None:
            query = query.where(consistency_t.c.view == view)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(consistency_t.c.id.desc()).limit(limit))
            return [json.loads(r.report) for r in rows]

    # ------------------------------------------------------------------ usage

    def record_usage(self, project: str, events: Iterable[UsageEvent]) -> int:
        rows = [
            {
                "project": project,
                "at": e.at,
                "consumer": e.consumer,
                "kind": e.kind,
                "view": e.view,
                "feature": e.feature,
                "rows": e.rows,
                "reads": e.reads,
            }
            for e in events
        ]
        if rows:
            with self._engine.begin() as conn:
                conn.execute(usage_t.insert(), rows)
                _add_daily_usage(conn, rows)
        return len(rows)

    def usage_summary(self, project: str, *, since: date | None = None) -> list[dict[str, Any]]:
        """Reads per feature and consumer: number of reads, rows read, last read (aware UTC),
        most read first; from UTC day ``since`` on, or ever. Reads the daily roll-up only."""
        d = usage_daily_t.c
        query = (
            sa.select(
                d.view,
                d.feature,
                d.consumer,
                d.kind,
                sa.func.sum(d.reads).label("reads"),
                sa.func.sum(d.rows).label("rows"),
                sa.func.max(d.last_read).label("last_read"),
            )
            .where(*_daily_filter(project, since))
            .group_by(d.view, d.feature, d.consumer, d.kind)
            .order_by(sa.text("reads DESC"), d.view, d.feature, d.consumer, d.kind)
        )
        with self._engine.connect() as conn:
            return [
                {
                    "view": r.view,
                    "feature": r.feature,
                    "consumer": r.consumer,
                    "kind": r.kind,
                    "reads": int(r.reads),
                    "rows": int(r.rows or 0),
                    "last_read": _as_utc(r.last_read),
                }
                for r in conn.execute(query)
            ]

    def most_read_features(self, project: str, *, since: date | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The most read features from UTC day ``since`` on (or ever), most read first: view,
        feature, reads, rows, number of consumers and last read. Reads the daily roll-up only."""
        d = usage_daily_t.c
        query = (
            sa.select(
                d.view,
                d.feature,
                sa.func.sum(d.reads).label("reads"),
                sa.func.sum(d.rows).label("rows"),
                sa.func.count(sa.distinct(d.consumer)).label("consumers"),
                sa.func.max(d.last_read).label("last_read"),
            )
            .where(*_daily_filter(project, since))
            .group_by(d.view, d.feature)
            .order_by(sa.text("reads DESC"), d.view, d.feature)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [
                {
                    "view": r.view,
                    "feature": r.feature,
                    "reads": int(r.reads),
                    "rows": int(r.rows or 0),
                    "consumers": int(r.consumers),
                    "last_read": _as_utc(r.last_read),
                }
                for r in conn.execute(query)
            ]

    def reads_per_day(
        self,
        project: str,
        *,
        since: date | None = None,
        view: str | None = None,
        feature: str | None = None,
        consumer: str | None = None,
    ) -> list[tuple[date, int]]:
        """Reads per UTC day, oldest first, optionally of one view, feature or consumer; days
        without reads are left out. Reads the daily roll-up only."""
        d = usage_daily_t.c
        where = _daily_filter(project, since)
        for column, value in ((d.view, view), (d.feature, feature), (d.consumer, consumer)):
            if value is not None:
                where.append(column == value)
        query = sa.select(d.day, sa.func.sum(d.reads).label("reads")).where(*where).group_by(d.day).order_by(d.day)
        with self._engine.connect() as conn:
            return [(_as_date(r.day), int(r.reads)) for r in conn.execute(query)]

    def unread_features(self, project: str, *, since: datetime) -> list[dict[str, Any]]:
        """The project's features nobody has read since ``since``: view, feature and last read
        (``None``: never read), never read first. Reads the daily roll-up only."""
        d = usage_daily_t.c
        last = (
            sa.select(d.view, d.feature, sa.func.max(d.last_read).label("last_read"))
            .where(d.project == project)
            .group_by(d.view, d.feature)
            .subquery()
        )
        f = features_t.c
        query = (
            sa.select(f.view, f.name, last.c.last_read)
            .select_from(features_t.outerjoin(last, sa.and_(last.c.view == f.view, last.c.feature == f.name)))
            .where(f.project == project)
            .order_by(f.view, f.name)
        )
        with self._engine.connect() as conn:
            rows = [(r.view, r.name, _as_utc(r.last_read)) for r in conn.execute(query)]
        unread = [
            {"view": v, "feature": n, "last_read": at} for v, n, at in rows if at is None or at < since.astimezone(UTC)
        ]
        return sorted(
            unread, key=lambda u: (u["last_read"] is not None, u["last_read"] or since, u["view"], u["feature"])
        )


def _daily_filter(project: str, since: date | None) -> list[sa.ColumnElement[bool]]:
    where = [usage_daily_t.c.project == project]
    if since is not None:
        where.append(usage_daily_t.c.day >= since)
    return where


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _add_daily_usage(conn: sa.Connection, events: Sequence[Mapping[str, Any]]) -> None:
    """Add usage rows (``usage_events`` rows) to the daily roll-up: one upsert per project, UTC
    day, view, feature, consumer and kind, in the caller's transaction."""
    totals: dict[tuple[str, date, str, str, str, str], list[Any]] = {}
    for e in events:
        at: datetime = e["at"] if e["at"].tzinfo else e["at"].replace(tzinfo=UTC)
        at = at.astimezone(UTC)
        key = (e["project"], at.date(), e["view"], e["feature"], e["consumer"], e["kind"])
        total = totals.get(key)
        if total is None:
            totals[key] = [e["reads"], e["rows"], at]
        else:
            total[0] += e["reads"]
            total[1] += e["rows"]
            total[2] = max(total[2], at)
    keys = ("project", "day", "view", "feature", "consumer", "kind")
    values = [
        {**dict(zip(keys, key, strict=True)), "reads": reads, "rows": rows, "last_read": last}
        for key, (reads, rows, last) in totals.items()
    ]
    d = usage_daily_t.c
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        # INSERT ... ON CONFLICT DO UPDATE: one statement, safe against concurrent writers.
        from sqlalchemy.dialects import postgresql, sqlite

        stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(usage_daily_t)
        new = stmt.excluded
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={
                    "reads": d.reads + new.reads,
                    "rows": d.rows + new.rows,
                    "last_read": sa.case((new.last_read > d.last_read, new.last_read), else_=d.last_read),
                },
            ),
            values,
        )
        return
    for v in values:  # other databases: update, or insert what is not there yet
        match = [getattr(d, k) == v[k] for k in keys]
        updated = conn.execute(
            usage_daily_t.update()
            .where(*match)
            .values(
                reads=d.reads + v["reads"],
                rows=d.rows + v["rows"],
                last_read=sa.case((d.last_read < v["last_read"], v["last_read"]), else_=d.last_read),
            )
        )
        if updated.rowcount == 0:
            conn.execute(usage_daily_t.insert().values(**v))


def _backfill_usage_daily(engine: Engine) -> None:
    """Roll up the usage events of a registry created before the daily roll-up existed."""
    u = usage_t.c
    try:
        with engine.begin() as conn:
            if conn.execute(sa.select(u.id).limit(1)).first() is None:
                return
            # SQLite keeps datetimes as ISO text: date() takes their day; elsewhere a cast does.
            day = sa.func.date(u.at) if conn.dialect.name == "sqlite" else sa.cast(u.at, sa.Date)
            groups = (u.project, day, u.view, u.feature, u.consumer, u.kind)
            select = sa.select(*groups, sa.func.sum(u.reads), sa.func.sum(u.rows), sa.func.max(u.at)).group_by(*groups)
            names = ["project", "day", "view", "feature", "consumer", "kind", "reads", "rows", "last_read"]
            conn.execute(usage_daily_t.insert().from_select(names, select))
    except sa.exc.IntegrityError:
        pass  # another process opening the same registry rolled it up first


def _as_utc(value: Any) -> datetime | None:
    """An aggregate of a UTCDateTime column: SQLAlchemy does not apply the column type to
    ``max()``, so SQLite gives text and PostgreSQL a datetime."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _latest_version(conn: sa.Connection, project: str, name: str) -> int:
    value = conn.execute(
        sa.select(sa.func.max(view_versions_t.c.version)).where(
            view_versions_t.c.project == project, view_versions_t.c.name == name
        )
    ).scalar()
    return int(value or 0)


def _describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    old_f = {f["name"]: f["dtype"] for f in old["features"]}
    new_f = {f["name"]: f["dtype"] for f in new["features"]}
    parts = []
    added = [n for n in new_f if n not in old_f]
    removed = [n for n in old_f if n not in new_f]
    retyped = [f"{n} {old_f[n]}→{new_f[n]}" for n in new_f if n in old_f and old_f[n] != new_f[n]]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    if retyped:
        parts.append("retyped " + ", ".join(retyped))
    for key in ("entities", "timestamp_field", "source", "transformation", "ttl_seconds", "join_keys"):
        if old.get(key) != new.get(key):
            parts.append(f"changed {key.replace('_seconds', '')}")
    old_source, new_source = old.get("source_definition") or {}, new.get("source_definition") or {}
    if old.get("source") == new.get("source") and old_source != new_source:
        fields = sorted(k for k in {*old_source, *new_source} if old_source.get(k) != new_source.get(k))
        named = ", ".join("upstream sources" if k == "sources" else k.replace("_", " ") for k in fields)
        parts.append(f"changed source {new['source']} ({named})")
    return "; ".join(parts) or "changed"


def _build_sources(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Source]:
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


def _run_record(row: sa.Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        project=row.project,
        view=row.view,
        view_version=row.view_version,
        engine=row.engine,
        window_start=row.window_start,
        window_end=row.window_end,
        status=row.status,
        rows_computed=row.rows_computed,
        rows_offline=row.rows_offline,
        rows_online=row.rows_online,
        started_at=row.started_at,
        finished_at=row.finished_at,
        timings=json.loads(row.timings or "{}"),
        watermark=row.watermark,
        error=row.error,
    )


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
