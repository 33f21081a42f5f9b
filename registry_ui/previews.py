"""Source probes on the source page, and the "Preview" action of the view page (issue 18,
parts 2 and 3): the latest probe is shown to who may read statistics (as ``GET
/v1/sources/{name}/probe``); a preview computes, so it is the engineers' (``views:operate``, as
``POST /v1/feature-views/{name}/preview``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse
from starlette.requests import Request

from featurestore.auth import Identity, Permission
from featurestore.errors import FeatureStoreError, NotFoundError, PermissionDeniedError
from featurestore.registry import Registry
from featurestore.source_probe import SourceProbe
from featurestore.store import FeatureStore

Render = Callable[..., HTMLResponse]


def _can(request: Request, permission: Permission) -> bool:
    identity: Identity | None = getattr(request.state, "identity", None)
    return identity is None or identity.can(permission)  # None: authentication off


def probe_for(request: Request, registry: Registry, project: str, source: str) -> SourceProbe | bool | None:
    """What the source page shows: the latest probe, None when never probed, False (no section)
    for a reader who may not read statistics."""
    if not _can(request, Permission.STATISTICS):
        return False
    return registry.get_source_probe(project, source)


def may_preview(request: Request) -> bool:
    return _can(request, Permission.OPERATE)


def add_routes(app: FastAPI, store: FeatureStore, render: Render) -> None:
    """``GET /views/{name}/preview``: the preview of a view on a sample, as a page."""

    @app.get("/views/{name}/preview", response_class=HTMLResponse, summary="Preview a feature view on a sample")
    async def preview_page(
        request: Request,
        name: str,
        sample: Annotated[int, Query(ge=1, le=10_000)] = 100,
        entities: Annotated[str, Query(max_length=10_000)] = "",
    ) -> HTMLResponse:
        identity: Identity | None = getattr(request.state, "identity", None)
        try:
            if identity is not None:
                identity.require(Permission.OPERATE, store.project)
        except PermissionDeniedError as err:
            return render(request, "error.html", status_code=403, error=str(err), title="Preview refused")
        named = [e.strip() for e in entities.split(",") if e.strip()]

        def compute() -> Any:
            from etl.preview import preview_view, runnable_view

            view = runnable_view(store, name)
            return preview_view(store, view, sample=None if named else sample, entities=named or None)

        try:
            report = await anyio.to_thread.run_sync(compute)
        except NotFoundError as err:
            return render(request, "not_found.html", status_code=404, error=err)
        except FeatureStoreError as err:
            return render(request, "error.html", status_code=422, error=str(err), title="Preview failed")
        return render(request, "preview.html", report=report, name=name, sample=sample, entities=entities)
