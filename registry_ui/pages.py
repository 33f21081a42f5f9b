"""What each page shows, gathered from the registry: plain data for the templates, no HTML.

Every page reads the registry alone (definitions, runs, the daily usage roll-up, quality and
statistics when the registry records them), so the UI can run anywhere the registry is reachable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel

from featurestore.catalog import KINDS, catalog_entries, search_catalog
from featurestore.config import ProjectConfig
from featurestore.definitions import FeatureService, FeatureView, FileSource, Source
from featurestore.errors import NotFoundError
from featurestore.registry import AlertIncident, ModelRecord, Registry, RunRecord
from featurestore.schedules import is_stale
from featurestore.secrets import is_secret_name, redact_url
from registry_ui import charts
from registry_ui.formats import number_text
from registry_ui.lineage_graph import KIND_LABELS, LineageGraph, Node, layout

POPULARITY_DAYS = 30
"""Search results and view pages show reads over this many days."""
USAGE_WINDOWS = (1, 7, 30, 90, 365)
TOP_SHOWN = 100
"""The usage page lists at most this many of the most read features (and their readers)."""
STATISTICS_RUNS = 20
RUNS_SHOWN = 20
KIND_NAMES = {
    "feature_view": "feature view",
    "feature": "feature",
    "feature_service": "feature service",
    "entity": "entity",
    "source": "source",
    "model": "model",
    "training_dataset": "training dataset",
}


class Links:
    """Shareable URLs of every page, under the UI's mount point (``base``, e.g. ``/ui``)."""

    def __init__(self, base: str = "") -> None:
        self.base = base.rstrip("/")

    def _path(self, *parts: str, **query: Any) -> str:
        path = self.base + "/" + "/".join(quote(p, safe="") for p in parts)
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return path + ("?" + urlencode(params) if params else "")

    def home(self) -> str:
        return self.base + "/"

    def search(self, **query: Any) -> str:
        return self._path("", **query) if query else self.home()

    def view(self, name: str, feature: str | None = None) -> str:
        return self._path("views", name) + (f"#feature-{quote(feature, safe='')}" if feature else "")

    def feature(self, ref: str) -> str:
        """``view:feature`` → the feature's row on its view's page."""
        view, _, feature = ref.partition(":")
        return self.view(view, feature or None)

    def service(self, name: str) -> str:
        return self._path("services", name)

    def entity(self, name: str) -> str:
        return self._path("entities", name)

    def source(self, name: str) -> str:
        return self._path("sources", name)

    def model(self, name: str) -> str:
        return self._path("models", name)

    def datasets(self) -> str:
        return self._path("datasets")

    def dataset(self, name: str) -> str:
        return self._path("datasets", name)

    def lineage(self, focus: tuple[str, str] | None = None) -> str:
        return self._path("lineage", focus=f"{focus[0]}:{focus[1]}" if focus else None)

    def usage(self, **query: Any) -> str:
        return self._path("usage", **query)

    def signin(self, **query: Any) -> str:
        return self._path("signin", **query)

    def signout(self) -> str:
        return self._path("signout")

    def audit(self) -> str:
        return self._path("audit")

    def alerts(self, **query: Any) -> str:
        return self._path("alerts", **query)

    def requests(self, **query: Any) -> str:
        return self._path("requests", **query)

    def request(self, request_id: int) -> str:
        return self._path("requests", str(request_id))

    def request_action(self, request_id: int, action: str) -> str:
        return self._path("requests", str(request_id), action)

    def static(self, name: str) -> str:
        return self._path("static", name)

    def entry(self, kind: str, name: str) -> str | None:
        """The page of a catalog entry or lineage node of any kind."""
        pages: dict[str, Callable[[str], str]] = {
            "feature_view": self.view,
            "feature": self.feature,
            "feature_service": self.service,
            "entity": self.entity,
            "source": self.source,
            "model": self.model,
            "training_dataset": self.dataset,
        }
        page = pages.get(kind)
        return page(name) if page else None


# ---------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchResult:
    kind: str
    name: str
    href: str | None
    description: str
    owner: str
    tags: tuple[str, ...]
    matched: tuple[str, ...]
    dtype: str | None
    view: str | None
    entities: tuple[str, ...]
    reads: int
    freshness: datetime | None
    stale: bool
    duplicate_of: tuple[str, ...] = ()
    duplicated_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchPage:
    q: str
    tag: str
    owner: str
    kind: str
    results: list[SearchResult]
    total: int
    kinds: dict[str, int]
    tags: list[str]
    owners: list[str]
    popularity_days: int
    catalog_empty: bool
    filtered: bool


def _since_day(days: int, now: datetime) -> date:
    return (now - timedelta(days=days - 1)).date()


def feature_reads(registry: Registry, project: str, *, days: int, now: datetime) -> dict[str, int]:
    """Reads of every feature (``view:feature``) and view (the sum of its features') in the last ``days``."""
    reads: dict[str, int] = {}
    for row in registry.most_read_features(project, since=_since_day(days, now), limit=100_000):
        reads[f"{row['view']}:{row['feature']}"] = row["reads"]
        reads[row["view"]] = reads.get(row["view"], 0) + row["reads"]
    return reads


def search_page(
    registry: Registry, project: str, links: Links, *, q: str = "", tag: str = "", owner: str = "", kind: str = ""
) -> SearchPage:
    now = datetime.now(UTC)
    entries = catalog_entries(registry, project)
    kind = kind if kind in KINDS else ""
    reads = feature_reads(registry, project, days=POPULARITY_DAYS, now=now)
    hits = search_catalog(entries, q, tag=tag or None, owner=owner or None, kind=kind or None, reads=reads)
    watermarks = registry.watermarks(project)
    limits = {v.name: (v.freshness, v.ttl) for v in registry.list_feature_views(project)}
    results = []
    for hit in hits:
        e = hit.entry
        view = e.name if e.kind == "feature_view" else e.view
        newest = watermarks.get(view) if view else None
        results.append(
            SearchResult(
                kind=e.kind,
                name=e.name,
                href=links.entry(e.kind, e.name),
                description=e.description,
                owner=e.owner,
                tags=e.tags,
                matched=hit.matched,
                dtype=e.dtype,
                view=e.view,
                entities=e.entities,
                reads=reads.get(e.name, 0),
                freshness=newest,
                stale=view in limits and is_stale(newest, *limits[view], now),
                duplicate_of=e.duplicate_of,
                duplicated_by=e.duplicated_by,
            )
        )
    kinds: dict[str, int] = {}
    for r in results:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return SearchPage(
        q=q,
        tag=tag,
        owner=owner,
        kind=kind,
        results=results,
        total=len(entries),
        kinds=kinds,
        tags=sorted({t for e in entries for t in e.tags}, key=str.lower),
        owners=sorted({e.owner for e in entries if e.owner}, key=str.lower),
        popularity_days=POPULARITY_DAYS,
        catalog_empty=not entries,
        filtered=bool(q or tag or owner or kind),
    )


# ------------------------------------------------------------------------------------ feature view


@dataclass(frozen=True)
class FeatureRow:
    name: str
    dtype: str
    description: str
    owner: str
    tags: tuple[str, ...]
    reads: int
    stats: dict[str, Any] | None
    duplicates: tuple[tuple[str, str, str], ...] = ()
    """(``duplicate of`` or ``duplicated by``, the other feature, the finding in words)."""


@dataclass(frozen=True)
class FeatureStatistics:
    feature: str
    latest: dict[str, Any]
    figures: list[tuple[str, str]]
    histogram: Any
    trends: list[tuple[str, Any]]


FIGURES = ("count", "null_fraction", "distinct", "min", "max", "mean", "stddev", "psi", "drift")


def _figures(stats: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The latest statistics of a feature as (label, text) pairs, in a fixed order."""
    out = []
    for key in FIGURES:
        value = stats.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif key == "null_fraction" and isinstance(value, int | float):
            text = f"{value:.1%}"
        elif isinstance(value, int | float):
            text = number_text(value)
        else:
            text = str(value)
        out.append((key.replace("_", " "), text))
    return out


@dataclass(frozen=True)
class RunRow:
    run: RunRecord
    quality: dict[str, Any] | None
    quality_status: str | None


@dataclass
class ViewPage:
    view: FeatureView
    version: int
    keys: list[tuple[str, str, str]]
    features: list[FeatureRow]
    source: Source
    source_kind: str
    transformation_kind: str
    transformation_text: str
    ttl: timedelta
    versions: list[Any]
    newest_event: datetime | None
    last_success: RunRecord | None
    last_run: RunRecord | None
    stale: bool
    """Newer data is overdue: older than the view's freshness, or its TTL where it declares none."""
    runs: list[RunRow]
    offline_location: list[tuple[str, str]]
    online_location: list[tuple[str, str]]
    services: list[str]
    models: list[str]
    readers: list[dict[str, Any]]
    consistency: list[dict[str, Any]]
    quality_supported: bool
    statistics_supported: bool
    statistics_runs: int
    statistics_run: dict[str, Any] | None
    statistics: list[FeatureStatistics] = field(default_factory=list)
    latest_quality: dict[str, Any] | None = None
    latest_quality_run: RunRecord | None = None
    popularity_days: int = POPULARITY_DAYS
    open_incidents: list[AlertIncident] = field(default_factory=list)


def _store_location(config: object, view: FeatureView, root: ProjectConfig) -> list[tuple[str, str]]:
    """The store's settings (secrets hidden) and where the view lives in it."""
    rows: list[tuple[str, str]] = []
    # Store settings are pydantic models (featurestore.config and each store's file).
    names = list(type(config).model_fields) if isinstance(config, BaseModel) else []
    if names:
        for name in names:
            value = getattr(config, name)
            if is_secret_name(name) or name == "replication" or value in ("", None, (), {}):
                continue
            if isinstance(value, Path):
                value = root.resolve(value)
            elif isinstance(value, str) and "://" in value:
                value = hide_password(value)
            elif isinstance(value, tuple | list):
                value = ", ".join(str(v) for v in value)
            rows.append((name, str(value)))
    kind = getattr(config, "type", "")
    if kind == "parquet":
        rows.append(("files", str(root.resolve(getattr(config, "path", "data/offline")) / view.name)))
    elif kind == "sqlite":
        rows.append(("table", f"fv_{view.name}"))
    elif kind == "redis":
        rows.append(("keys", f"{getattr(config, 'key_prefix', '') or root.project}:{view.name}:<entity key>"))
    elif kind == "cassandra":
        rows.append(("table", f"{getattr(config, 'keyspace', '') or root.project}.fv_{view.name}"))
    elif kind == "hive":
        rows.append(("table", f"{getattr(config, 'database', '') or root.project}.{view.name}"))
    return rows


def hide_password(url: str) -> str:
    """``url`` as a page shows it: without its password (:func:`featurestore.secrets.redact_url`)."""
    return redact_url(url)


def _quality_status(quality: Mapping[str, Any] | None) -> str | None:
    """``passed``, ``failed`` or ``warned`` from a run's quality record, whatever its details."""
    if not quality:
        return None
    validation = quality.get("validation", quality)
    if isinstance(validation, Mapping):
        for key in ("status", "outcome"):
            if isinstance(validation.get(key), str):
                return str(validation[key])
        for key in ("success", "passed"):
            if isinstance(validation.get(key), bool):
                return "passed" if validation[key] else "failed"
    return "recorded"


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


TREND_STATISTICS = (
    ("mean", "mean"),
    ("null_fraction", "null fraction"),
    ("distinct", "distinct values"),
    ("psi", "PSI drift"),
)


def _statistics(view: FeatureView, history: Sequence[Mapping[str, Any]]) -> list[FeatureStatistics]:
    """Per feature: the latest statistics, its histogram and the trend of a few statistics over
    runs (``history`` newest first, as the registry gives it)."""
    if not history:
        return []
    oldest_first = list(reversed(history))
    latest_stats = history[0].get("statistics") or {}
    out = []
    for feature in view.features:
        latest = latest_stats.get(feature.name)
        if not isinstance(latest, Mapping):
            continue
        hist = latest.get("histogram") or {}
        histogram = None
        if isinstance(hist, Mapping) and hist.get("counts"):
            histogram = charts.histogram(
                list(hist.get("edges") or []), list(hist["counts"]), title=f"{feature.name}: distribution, latest run"
            )
        trends = []
        for key, label in TREND_STATISTICS:
            points = []
            for run in oldest_first:
                stats = (run.get("statistics") or {}).get(feature.name) or {}
                started = run.get("started_at")
                when = started.strftime("%Y-%m-%d %H:%M UTC") if isinstance(started, datetime) else str(started or "")
                points.append((f"{when} run {str(run.get('run_id', ''))[:8]}", _finite(stats.get(key))))
            if any(v is not None for _, v in points):
                trends.append((label, charts.trend(points, title=f"{feature.name}: {label} over runs")))
        out.append(FeatureStatistics(feature.name, dict(latest), _figures(latest), histogram, trends))
    return out


def view_page(registry: Registry, config: ProjectConfig, name: str) -> ViewPage:
    project = config.project
    now = datetime.now(UTC)
    view = registry.get_feature_view(project, name)
    owners: dict[str, str] = {}
    for entity in view.resolved_entities():
        for key in entity.join_keys:
            owners.setdefault(key, entity.name)
    reads = feature_reads(registry, project, days=POPULARITY_DAYS, now=now)
    runs = registry.list_runs(project, name, limit=RUNS_SHOWN)
    last_success = next((r for r in runs if r.status == "succeeded"), None)
    if last_success is None and runs:
        last_success = next((r for r in registry.list_runs(project, name, limit=500) if r.status == "succeeded"), None)
    newest = registry.watermark(project, name)

    quality_supported = hasattr(registry, "get_run_quality")
    run_rows = []
    for r in runs:
        quality = registry.get_run_quality(r.id) if quality_supported else None
        run_rows.append(RunRow(r, quality, _quality_status(quality)))
    latest_quality = next(((row.quality, row.run) for row in run_rows if row.quality), (None, None))

    statistics_supported = hasattr(registry, "list_statistics")
    history: list[dict[str, Any]] = (
        list(registry.list_statistics(project, name, limit=STATISTICS_RUNS)) if statistics_supported else []
    )
    stats = _statistics(view, history)
    latest_stats = (history[0].get("statistics") or {}) if history else {}

    services = [
        s.name for s in registry.list_feature_services(project) if any(sel.view == name for sel in s.selections())
    ]
    models = sorted(m.name for m in registry.list_models(project) if m.feature_service in services)
    transformation = view.to_spec()["transformation"]
    duplicates: dict[str, list[tuple[str, str, str]]] = {}
    for found in registry.list_duplicates(project, name):
        if found.view == name:
            duplicates.setdefault(found.feature, []).append(("duplicate of", found.duplicate_of, found.describe()))
        if found.duplicate_of.partition(":")[0] == name:
            duplicates.setdefault(found.duplicate_of, []).append(("duplicated by", found.feature, found.describe()))
    return ViewPage(
        view=view,
        version=registry.view_version(project, name),
        keys=[(k, t.value, owners[k]) for k, t in view.key_schema.items()],
        features=[
            FeatureRow(
                name=f.name,
                dtype=f.dtype.value,
                description=f.description,
                owner=f.owner or view.owner,
                tags=f.tags,
                reads=reads.get(f"{name}:{f.name}", 0),
                stats=latest_stats.get(f.name) if isinstance(latest_stats.get(f.name), Mapping) else None,
                duplicates=tuple(duplicates.get(f"{name}:{f.name}", ())),
            )
            for f in view.features
        ],
        source=view.source,
        source_kind="file" if isinstance(view.source, FileSource) else "sql",
        transformation_kind=transformation["kind"],
        transformation_text=transformation["text"],
        ttl=view.ttl,
        versions=list(reversed(registry.view_versions(project, name))),
        newest_event=newest,
        last_success=last_success,
        last_run=runs[0] if runs else None,
        stale=is_stale(newest, view.freshness, view.ttl, now),
        runs=run_rows,
        offline_location=_store_location(config.offline_store, view, config),
        online_location=_store_location(config.online_store, view, config) if view.online else [],
        services=services,
        models=models,
        readers=[
            r for r in registry.usage_summary(project, since=_since_day(POPULARITY_DAYS, now)) if r["view"] == name
        ],
        consistency=registry.list_consistency(project, name, limit=5),
        quality_supported=quality_supported,
        statistics_supported=statistics_supported,
        statistics_runs=len(history),
        statistics_run=history[0] if history else None,
        statistics=stats,
        latest_quality=latest_quality[0],
        latest_quality_run=latest_quality[1],
        open_incidents=registry.list_incidents(project, open_only=True, view=name),
    )


# ------------------------------------------------------------------------- other catalog pages


@dataclass(frozen=True)
class ServicePage:
    service: FeatureService
    features: list[tuple[str, str, str, str]]  # view, feature, dtype, description
    models: list[ModelRecord]


def service_page(registry: Registry, project: str, name: str) -> ServicePage:
    service = registry.get_feature_service(project, name)
    views = {v.name: v for v in registry.list_feature_views(project)}
    features = []
    for sel in service.selections():
        view = views.get(sel.view)
        for fname in sel.features or (view.feature_names if view else ()):
            f = next((x for x in view.features if x.name == fname), None) if view else None
            features.append((sel.view, fname, f.dtype.value if f else "?", f.description if f else ""))
    models = [m for m in registry.list_models(project) if m.feature_service == name]
    return ServicePage(service, features, models)


@dataclass(frozen=True)
class EntityPage:
    name: str
    description: str
    owner: str
    tags: tuple[str, ...]
    keys: list[tuple[str, str]]
    views: list[FeatureView]


def entity_page(registry: Registry, project: str, name: str) -> EntityPage:
    entities = {e.name: e for e in registry.list_entities(project)}
    if name not in entities:
        raise NotFoundError("entity", name, project=project, candidates=entities)
    e = entities[name]
    views = [v for v in registry.list_feature_views(project) if name in (x.name for x in v.resolved_entities())]
    return EntityPage(e.name, e.description, e.owner, e.tags, [(k, t.value) for k, t in e.key_schema.items()], views)


@dataclass(frozen=True)
class SourcePage:
    source: Source
    kind: str
    location: str
    upstream: tuple[str, ...]
    downstream_sources: list[str]
    views: list[str]


def source_page(registry: Registry, config: ProjectConfig, name: str) -> SourcePage:
    sources = {s.name: s for s in registry.list_sources(config.project)}
    if name not in sources:
        raise NotFoundError("source", name, project=config.project, candidates=sources)
    source = sources[name]
    if isinstance(source, FileSource):
        kind, location = "file", str(config.resolve(source.path))
    else:
        kind, location = "sql", source.query
    return SourcePage(
        source=source,
        kind=kind,
        location=location,
        upstream=source.upstream,
        downstream_sources=sorted(s.name for s in sources.values() if name in s.upstream),
        views=sorted(v.name for v in registry.list_feature_views(config.project) if v.source.name == name),
    )


@dataclass(frozen=True)
class ModelPage:
    name: str
    feature_service: str
    description: str
    features: list[tuple[str, str, str, str]]


def model_page(registry: Registry, project: str, name: str) -> ModelPage:
    models = {m.name: m for m in registry.list_models(project)}
    if name not in models:
        raise NotFoundError("model", name, project=project, candidates=models)
    model = models[name]
    try:
        features = service_page(registry, project, model.feature_service).features
    except NotFoundError:  # the service was removed after the model registered
        features = []
    return ModelPage(name, model.feature_service, model.description, features)


# ------------------------------------------------------------------------------------ lineage


@dataclass(frozen=True)
class LineagePage:
    graph: LineageGraph
    focus: Node | None
    focus_found: bool
    edges: list[tuple[Node, Node]]
    all_nodes: list[Node]
    models: int
    services: list[str]
    kind_labels: dict[str, str]


def parse_node(value: str) -> Node | None:
    """``feature_view:customer_spend`` → ``("feature_view", "customer_spend")``."""
    kind, sep, name = value.partition(":")
    return (kind, name) if sep and kind in KIND_LABELS and name else None


def lineage_page(registry: Registry, project: str, links: Links, *, focus: str = "") -> LineagePage:
    edges = [
        ((e.src_kind, e.src_name), (e.dst_kind, e.dst_name))
        for e in registry.lineage(project)
        if e.src_kind != "entity"
    ]
    extra: list[Node] = [("feature_view", v.name) for v in registry.list_feature_views(project)]
    extra += [("feature_service", s.name) for s in registry.list_feature_services(project)]
    models = registry.list_models(project)
    extra += [("model", m.name) for m in models]
    node = parse_node(focus) if focus else None
    graph = layout(edges, href=links.entry, focus=node, extra_nodes=extra)
    known = {n for e in edges for n in e} | set(extra)
    return LineagePage(
        graph=graph,
        focus=node,
        focus_found=not focus or (node is not None and node in known),
        edges=graph.edges,
        all_nodes=sorted(known, key=lambda n: (n[0], n[1])),
        models=len(models),
        services=[s.name for s in registry.list_feature_services(project)],
        kind_labels={k: v[:-1].lower() for k, v in KIND_LABELS.items()},
    )


# -------------------------------------------------------------------------------------- usage


@dataclass(frozen=True)
class UsagePage:
    days: int
    view: str
    consumer: str
    windows: tuple[int, ...]
    total_reads: int
    top: list[dict[str, Any]]
    features_read: int
    readers: list[tuple[str, str, list[dict[str, Any]]]]  # view, feature, its readers
    consumers: list[str]
    views: list[str]
    per_day: list[tuple[date, int]]
    chart: Any
    unread: list[dict[str, Any]]
    since: date


def usage_page(registry: Registry, project: str, *, days: int = 30, view: str = "", consumer: str = "") -> UsagePage:
    now = datetime.now(UTC)
    days = max(1, min(days, 3650))
    since = _since_day(days, now)
    summary = registry.usage_summary(project, since=since)
    rows = [r for r in summary if (not view or r["view"] == view) and (not consumer or r["consumer"] == consumer)]
    top: dict[tuple[str, str], dict[str, Any]] = {}
    readers: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["view"], r["feature"])
        t = top.setdefault(key, {"view": r["view"], "feature": r["feature"], "reads": 0, "rows": 0, "consumers": set()})
        t["reads"] += r["reads"]
        t["rows"] += r["rows"]
        t["consumers"].add(r["consumer"])
        t["last_read"] = max(filter(None, (t.get("last_read"), r["last_read"])), default=None)
        readers.setdefault(key, []).append(r)
    ranked = sorted(top.values(), key=lambda t: (-t["reads"], t["view"], t["feature"]))
    for t in ranked:
        t["consumers"] = sorted(t["consumers"])
    per_day_found = dict(registry.reads_per_day(project, since=since, view=view or None, consumer=consumer or None))
    per_day = [(since + timedelta(days=i), per_day_found.get(since + timedelta(days=i), 0)) for i in range(days)]
    scope = " of " + view if view else ""
    scope += f" by {consumer}" if consumer else ""
    return UsagePage(
        days=days,
        view=view,
        consumer=consumer,
        windows=tuple(sorted({*USAGE_WINDOWS, days})),
        total_reads=sum(t["reads"] for t in ranked),
        top=ranked[:TOP_SHOWN],
        features_read=len(ranked),
        readers=[(t["view"], t["feature"], readers[(t["view"], t["feature"])]) for t in ranked[:TOP_SHOWN]],
        consumers=sorted({r["consumer"] for r in summary}),
        views=sorted(v.name for v in registry.list_feature_views(project)),
        per_day=per_day,
        chart=charts.daily_bars(per_day, title=f"Reads per day{scope}, last {days} days (UTC)"),
        unread=[
            u
            for u in registry.unread_features(project, since=now - timedelta(days=days))
            if not view or u["view"] == view
        ],
        since=since,
    )


# ------------------------------------------------------------------------------------- alerts

ALERTS_SHOWN = 200


@dataclass(frozen=True)
class AlertsPage:
    open: list[AlertIncident]
    recent: list[AlertIncident]
    """Cleared incidents, newest first."""
    view: str
    views: list[str]


def alerts_page(registry: Registry, project: str, *, view: str = "") -> AlertsPage:
    """Open incidents and the latest cleared ones (of ``view``, when given)."""
    incidents = registry.list_incidents(project, view=view or None, limit=ALERTS_SHOWN)
    open_ = registry.list_incidents(project, open_only=True, view=view or None, limit=ALERTS_SHOWN)
    return AlertsPage(
        open=open_,
        recent=[i for i in incidents if not i.is_open],
        view=view,
        views=sorted(v.name for v in registry.list_feature_views(project) if v.freshness or v.schedule),
    )
