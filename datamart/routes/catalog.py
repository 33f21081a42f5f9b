"""Catalog endpoints: search, feature views, feature services, lineage, models and usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from datamart.catalog import CatalogKind, catalog_entries, search_catalog
from datamart.payloads import (
    ConsistencyCheck,
    ConsistencyReportPayload,
    FeatureInfo,
    FeatureServiceInfo,
    FeatureViewDetail,
    FeatureViewSummary,
    Health,
    KeyInfo,
    Lineage,
    LineageEdge,
    LineageNode,
    ModelInfo,
    ModelRegistration,
    RepairPayload,
    RunInfo,
    SearchResult,
    SearchResults,
    SourceInfo,
    TransformationInfo,
    Usage,
    UsageRow,
    VersionInfo,
)
from datamart.routes import ERROR_RESPONSES, CatalogReader, Operator, StatisticsReader, StoreDep, allow
from featurestore import __version__
from featurestore.auth import Identity, Permission
from featurestore.definitions import FeatureService, FeatureView, FileSource, Source
from featurestore.schedules import next_due, schedule_text
from featurestore.store import FeatureStore

router = APIRouter(responses=ERROR_RESPONSES)
ModelRegistrar = Annotated[Identity, allow(Permission.REGISTER_MODELS)]

RUNS_SHOWN = 10
CHECKS_SHOWN = 5


@router.get("/health", tags=["service"], summary="Liveness, and the project served")
async def health(store: StoreDep) -> Health:
    return Health(project=store.project, version=__version__)


@router.get("/search", tags=["catalog"], summary="Search features, feature views, services and entities")
def search(
    store: StoreDep,
    _who: CatalogReader,
    q: Annotated[str, Query(max_length=200, description="Words to find in names, descriptions, tags and owners.")] = "",
    tag: Annotated[str | None, Query(max_length=200, description="Only entries with this exact tag.")] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Only entries whose owner contains this.")] = None,
    kind: Annotated[CatalogKind | None, Query(description="Only entries of this kind.")] = None,
) -> SearchResults:
    """Ranked best first: exact name, then name containing the query, then description, tag or
    owner containing it (for several words: every word found somewhere in the entry). A feature
    found to duplicate another follows the first of them ranked."""
    hits = search_catalog(catalog_entries(store.registry, store.project), q, tag=tag, owner=owner, kind=kind)
    results = [
        SearchResult(
            kind=h.entry.kind,
            name=h.entry.name,
            view=h.entry.view,
            dtype=h.entry.dtype,
            description=h.entry.description,
            owner=h.entry.owner,
            tags=list(h.entry.tags),
            score=h.score,
            matched=list(h.matched),
            duplicate_of=list(h.entry.duplicate_of),
            duplicated_by=list(h.entry.duplicated_by),
        )
        for h in hits
    ]
    return SearchResults(query=q, count=len(results), results=results)


def _summary(store: FeatureStore, view: FeatureView) -> dict[str, Any]:
    owners: dict[str, str] = {}
    for entity in view.resolved_entities():
        for key in entity.join_keys:
            owners.setdefault(key, entity.name)
    return {
        "name": view.name,
        "description": view.description,
        "owner": view.owner,
        "tags": list(view.tags),
        "entities": [e.name for e in view.resolved_entities()],
        "keys": [KeyInfo(name=k, dtype=t.value, entity=owners[k]) for k, t in view.key_schema.items()],
        "timestamp_field": view.timestamp_field,
        "features": [
            FeatureInfo(
                name=f.name,
                dtype=f.dtype.value,
                description=f.description,
                owner=f.owner or view.owner,
                tags=list(f.tags),
            )
            for f in view.features
        ],
        "ttl_seconds": view.ttl.total_seconds(),
        "online": view.online,
        "version": store.registry.view_version(store.project, view.name),
        "watermark": store.registry.watermark(store.project, view.name),
        "schedule": None if view.schedule is None else schedule_text(view.schedule),
        "freshness_seconds": None if view.freshness is None else view.freshness.total_seconds(),
        "next_run_at": None if view.schedule is None else next_due(view.schedule, datetime.now(UTC)),
    }


@router.get("/feature-views", tags=["catalog"], summary="Every feature view with its schema")
def list_feature_views(store: StoreDep, _who: CatalogReader) -> list[FeatureViewSummary]:
    views = store.registry.list_feature_views(store.project)
    return [FeatureViewSummary.model_validate(_summary(store, v)) for v in views]


@router.get("/feature-views/{name}", tags=["catalog"], summary="One feature view: schema, versions, runs")
def describe_feature_view(name: str, store: StoreDep, _who: CatalogReader) -> FeatureViewDetail:
    """Schema, source, transformation, TTL, version history, watermark, last runs and the last
    online/offline consistency checks."""
    registry, project = store.registry, store.project
    view = registry.get_feature_view(project, name)
    source = view.source
    if isinstance(source, FileSource):
        source_info = SourceInfo(kind="file", path=source.path, file_format=source.file_format, **_common(source))
    else:
        source_info = SourceInfo(kind="sql", query=source.query, upstream=list(source.upstream), **_common(source))
    transformation = view.to_spec()["transformation"]
    return FeatureViewDetail(
        **_summary(store, view),
        source=source_info,
        transformation=TransformationInfo(kind=transformation["kind"], text=transformation["text"]),
        source_lookback_seconds=None if view.source_lookback is None else view.source_lookback.total_seconds(),
        versions=[
            VersionInfo(version=v.version, fingerprint=v.fingerprint, changes=v.changes, created_at=v.created_at)
            for v in registry.view_versions(project, name)
        ],
        runs=[RunInfo.model_validate(r.to_dict()) for r in registry.list_runs(project, name, limit=RUNS_SHOWN)],
        consistency_checks=[
            ConsistencyCheck.model_validate(c) for c in registry.list_consistency(project, name, limit=CHECKS_SHOWN)
        ],
    )


@router.post(
    "/feature-views/{name}/consistency-checks",
    tags=["catalog"],
    summary="Check that the online store holds what the offline store says it should",
)
def check_consistency(
    name: str,
    store: StoreDep,
    _who: Operator,
    sample: Annotated[
        int | None, Query(ge=1, description="Entities to check, drawn at random (default 1000); ignored with all=true.")
    ] = None,
    all_entities: Annotated[bool, Query(alias="all", description="Check every entity of the view.")] = False,
    seed: Annotated[
        int | None, Query(description="Seed of the random sample, to repeat a check (a fresh sample by default).")
    ] = None,
) -> ConsistencyReportPayload:
    """Compares, per entity and feature, the online value with the offline value as of the view's
    last published watermark; reports mismatched, missing and extra entities with examples and
    records the result in the registry (it then shows in the feature view's description)."""
    report = store.check_consistency(name, sample=None if all_entities else (sample or 1000), seed=seed)
    return ConsistencyReportPayload.model_validate(report.to_dict())


@router.post(
    "/feature-views/{name}/repairs",
    tags=["catalog"],
    summary="Bring the online store in line with offline for a feature view",
)
def repair_view(
    name: str,
    store: StoreDep,
    who: Operator,
    all_entities: Annotated[
        bool, Query(alias="all", description="Derive every entity offline has, not only pending updates.")
    ] = False,
) -> RepairPayload:
    """Completes the online updates that runs left pending (a crash, an online store that was
    down): each of their entities is set online to its latest offline row, or removed. With
    all=true, every entity offline has is derived again. Holds the view's run lock meanwhile."""
    from etl.runs import repair

    result = repair(store, name, everything=all_entities, progress=False, actor=who.name)
    return RepairPayload(view=result.view, settled=result.settled, entities=result.entities, removed=result.removed)


@router.get(
    "/feature-views/{name}/consistency-checks",
    tags=["catalog"],
    summary="The last online/offline consistency checks of a feature view",
)
def list_consistency_checks(
    name: str,
    store: StoreDep,
    _who: StatisticsReader,
    limit: Annotated[int, Query(ge=1, le=500, description="How many, newest first.")] = 20,
) -> list[ConsistencyReportPayload]:
    store.get_feature_view(name)  # 404 with a suggestion for an unknown view
    return [
        ConsistencyReportPayload.model_validate(c)
        for c in store.registry.list_consistency(store.project, name, limit=limit)
    ]


def _common(source: Source) -> dict[str, Any]:
    return {
        "name": source.name,
        "timestamp_field": source.timestamp_field,
        "description": source.description,
        "owner": source.owner,
        "tags": list(source.tags),
    }


def _service_info(store: FeatureStore, service: FeatureService, views: dict[str, FeatureView]) -> FeatureServiceInfo:
    refs: list[str] = []
    for sel in service.selections():
        names = sel.features or (views[sel.view].feature_names if sel.view in views else ())
        refs.extend(f"{sel.view}:{f}" for f in names)
    models = [m.name for m in store.registry.list_models(store.project) if m.feature_service == service.name]
    return FeatureServiceInfo(
        name=service.name,
        description=service.description,
        owner=service.owner,
        tags=list(service.tags),
        features=refs,
        models=models,
    )


@router.get("/feature-services", tags=["catalog"], summary="Every feature service, its features and models")
def list_feature_services(store: StoreDep, _who: CatalogReader) -> list[FeatureServiceInfo]:
    views = {v.name: v for v in store.registry.list_feature_views(store.project)}
    return [_service_info(store, s, views) for s in store.registry.list_feature_services(store.project)]


@router.get("/feature-services/{name}", tags=["catalog"], summary="One feature service")
def describe_feature_service(name: str, store: StoreDep, _who: CatalogReader) -> FeatureServiceInfo:
    service = store.registry.get_feature_service(store.project, name)
    views = {v.name: v for v in store.registry.list_feature_views(store.project)}
    return _service_info(store, service, views)


@router.get("/lineage", tags=["catalog"], summary="Sources → feature views → services → models")
def lineage(store: StoreDep, _who: CatalogReader) -> Lineage:
    edges = sorted(
        store.registry.lineage(store.project), key=lambda e: (e.src_kind, e.src_name, e.dst_kind, e.dst_name)
    )
    nodes = dict.fromkeys(node for e in edges for node in ((e.src_kind, e.src_name), (e.dst_kind, e.dst_name)))
    return Lineage(
        nodes=[LineageNode(kind=k, name=n) for k, n in sorted(nodes)],
        edges=[LineageEdge.model_validate(e.to_dict()) for e in edges],
    )


@router.get("/models", tags=["catalog"], summary="Registered models")
def list_models(store: StoreDep, _who: CatalogReader) -> list[ModelInfo]:
    return [ModelInfo.model_validate(m.to_dict()) for m in store.registry.list_models(store.project)]


@router.post("/models", tags=["catalog"], status_code=201, summary="Register a model as a feature service's consumer")
def register_model(body: ModelRegistration, store: StoreDep, who: ModelRegistrar) -> ModelInfo:
    """Records the lineage edge feature service → model (registering again updates it)."""
    store.register_model(body.name, body.feature_service, body.description, actor=who.name)
    return ModelInfo(name=body.name, feature_service=body.feature_service, description=body.description)


@router.get("/usage", tags=["catalog"], summary="Reads per feature and consumer")
def usage(
    store: StoreDep,
    _who: CatalogReader,
    consumer: Annotated[str | None, Query(max_length=200, description="Only this consumer's reads.")] = None,
    view: Annotated[str | None, Query(max_length=200, description="Only reads of this feature view.")] = None,
) -> Usage:
    """Number of reads, rows read and last read per (view, feature, consumer, kind), most read first."""
    store.usage.flush()  # reads buffered by this process show at once
    rows = [
        UsageRow(
            view=r["view"],
            feature=r["feature"],
            consumer=r["consumer"],
            kind=r["kind"],
            reads=r["reads"],
            rows=r["rows"],
            last_read=r["last_read"],
        )
        for r in store.registry.usage_summary(store.project)
        if (consumer is None or r["consumer"] == consumer) and (view is None or r["view"] == view)
    ]
    return Usage(usage=rows)
