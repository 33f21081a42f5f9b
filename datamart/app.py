"""The datamart API: the feature store's catalog and reads over HTTP (FastAPI, docs on /docs).

``featurestore serve`` runs ``create_app_from_env`` under uvicorn; tests and embedding code call
``create_app`` with a store of their own. Feature store errors become HTTP statuses here and
nowhere else (see :mod:`datamart.errors`).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from datamart.errors import error_body, http_status
from datamart.limits import DatamartLimits
from datamart.metrics import ProjectMetrics, measure
from datamart.routes import (
    PERMISSION_ATTRIBUTE,
    access,
    alerts,
    catalog,
    datasets,
    duplicates,
    feast,
    metrics,
    models,
    project_path,
    push,
    quality,
    reads,
    requests,
    skew,
    sources,
)
from featurestore import __version__
from featurestore.auth import REQUIRE_AUTH_ENV, Authenticator, required
from featurestore.config import AuthConfig
from featurestore.errors import ConfigError, FeatureStoreError, InvalidRequestError
from featurestore.secrets import install_log_redaction
from featurestore.store import FeatureStore
from registry_ui.app import create_app as create_ui_app

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

log = logging.getLogger(__name__)

PROJECT_DIR_ENV = "FEATURESTORE_PROJECT_DIR"
API_PREFIX = "/v1"
UI_PREFIX = "/ui"
DOCS_ASSETS = "/docs-assets"

DESCRIPTION = """\
Point-in-time correct training sets, online feature lookups and reference data from the
feature store, and its catalog: search, feature views with their versions and runs, feature
services, lineage and usage.

Name yourself in the `X-Consumer` header: every read is recorded under that name in the
registry's usage statistics (`GET /v1/usage`). The registry UI, the catalog in a browser, is
served under `/ui/`. Times are ISO 8601 with their offset (`2024-03-01T12:00:00Z`,
`2024-03-01T13:00:00+01:00`): a time without one is refused, as by the SDK; a bare date
(`2024-03-01`) is that day from 00:00 UTC. A training set gives the spine's timestamp column
back as sent: a Parquet spine keeps its time zone, text times (JSON, CSV) come back in UTC. Errors answer
`{"error": <exception class>, "message": ..., "suggestions": [...]}`.
"""

TAGS = [
    {"name": "reads", "description": "Online features, training sets and reference data."},
    {"name": "push", "description": "Rows a service has just seen, published offline then online at once."},
    {"name": "catalog", "description": "What exists, how it is built, who uses it."},
    {"name": "models", "description": "The model server: predictions of registered model versions on online features."},
    {
        "name": "quality",
        "description": "What the quality gate found in each run, statistics of every run, and alert incidents.",
    },
    {
        "name": "feast",
        "description": "Feast's feature-server protocol (POST /get-online-features, also under /v1 and each project): "
        "Feast's SDK with `online_store: {type: remote, path: <this server>}` and Feast's HTTP clients read here.",
    },
    {"name": "service", "description": "The API itself."},
    {"name": "admin", "description": "API tokens and the audit log (role admin)."},
    {"name": "requests", "description": "Feature requests: filed, supported, accepted, declined, linked, delivered."},
]
PROJECT_PREFIX = f"{API_PREFIX}/projects/{{project}}"
"""Every route also answers under ``/v1/projects/{project}``: a server may hold several projects."""
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/health", f"{PROJECT_PREFIX}/health"})
"""Routes anyone may call, with auth on: liveness (no data). Every other route needs a permission."""


def create_app(
    store: FeatureStore | Sequence[FeatureStore], *, close_store: bool = False, auth: AuthConfig | None = None
) -> FastAPI:
    """An API serving ``store``, or several projects' stores: each under ``/v1/projects/{project}``
    (and its UI under ``/ui/projects/{project}/``), the first also under ``/v1`` and ``/ui``. On
    shutdown the app flushes the stores' buffered usage events, or closes them (which flushes them
    too) when ``close_store``. ``auth``: each project's own ``auth`` section unless given; a
    token acts only in its own project."""
    stores = [store] if isinstance(store, FeatureStore) else list(store)
    if not stores:
        raise ConfigError("the datamart needs at least one project to serve")
    by_project = {s.project: s for s in stores}
    if len(by_project) != len(stores):
        names = [s.project for s in stores]
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"two project folders name the same project {twice}: a server serves a project once")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for each in stores:
                await anyio.to_thread.run_sync(each.close if close_store else each.usage.flush)
                if not close_store and each.serving_log is not None:  # close writes the served vectors too
                    await anyio.to_thread.run_sync(each.serving_log.flush)

    app = FastAPI(
        title="featurestore datamart",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Served below from files of a package instead of FastAPI's CDN links: /docs works offline.
        docs_url=None,
        redoc_url=None,
        **_telemetry_option(),
    )
    app.state.store = stores[0]
    app.state.stores = by_project
    app.state.auths = {s.project: Authenticator(auth or s.config.auth, s.registry, s.project) for s in stores}
    app.state.metrics = {s.project: ProjectMetrics(s) for s in stores}  # served on /v1/metrics
    app.state.default_metrics = app.state.metrics[stores[0].project]
    app.add_middleware(DatamartLimits, config=stores[0].config.datamart)  # body, upload, URL and header sizes
    # The online lookup of the default project, the hot path, first and as a plain route: FastAPI
    # finds a route of an included router by trying the router's routes one by one (every
    # request, ~13 % of a lookup's time on the event loop), and wraps its call in two exit stacks
    # it needs only for dependencies, which this endpoint has none of (it authorizes, parses and
    # answers by itself). The same endpoint and permission as the documented route of
    # reads.router, which still answers under /v1/projects/{project}.
    if getattr(reads.get_online_features, PERMISSION_ATTRIBUTE, None) is None:
        raise RuntimeError(f"route POST {API_PREFIX}{reads.ONLINE_PATH} requires no permission: add one")
    app.add_route(
        API_PREFIX + reads.ONLINE_PATH,
        measure("online", reads.get_online_features),
        methods=["POST"],
        include_in_schema=False,
    )
    # Feast's feature-server protocol: at the root too, where Feast's clients post (path: http://host:port).
    # Before the other routers: routes are matched in order, and after them its matching cost ~0.4 ms.
    _check_every_route_is_guarded(feast.router, "")
    for prefix in ("", API_PREFIX):
        app.include_router(feast.router, prefix=prefix)
    app.include_router(feast.router, prefix=PROJECT_PREFIX, dependencies=[Depends(project_path)])
    for router in (
        reads.router,
        datasets.router,
        push.router,
        catalog.router,
        quality.router,
        alerts.router,
        access.router,
        metrics.router,
        models.router,
        requests.router,
        skew.router,
        sources.router,
        duplicates.router,
    ):
        _check_every_route_is_guarded(router, API_PREFIX)
        app.include_router(router, prefix=API_PREFIX)
        app.include_router(router, prefix=PROJECT_PREFIX, dependencies=[Depends(project_path)])
    _add_docs(app)  # after the API: routes are matched in order, and the online lookup is the hot path
    # The registry UI, on the same stores: each project's, then the default one (a mount matches by prefix).
    for each in stores:
        app.mount(f"{UI_PREFIX}/projects/{each.project}", create_ui_app(each, auth=app.state.auths[each.project]))
    app.mount(UI_PREFIX, create_ui_app(stores[0], auth=app.state.auths[stores[0].project]))
    app.add_exception_handler(FeatureStoreError, _feature_store_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def _telemetry_option() -> dict[str, Any]:
    """``telemetry=`` for FastAPI releases that have their own OpenTelemetry instrumentation
    (``fastapi.telemetry``); nothing for older ones (the project allows fastapi>=0.115)."""
    try:
        import fastapi.telemetry  # noqa: F401
    except ImportError:
        return {}
    return {"telemetry": _telemetry()}


def _telemetry() -> TelemetryConfig | None:
    """FastAPI's own OpenTelemetry instrumentation, left on where this process has OpenTelemetry
    providers when the app is made (``opentelemetry-instrument``, code that sets them first) or
    asks FastAPI to configure them (``FASTAPI_OTEL_AUTO_CONFIGURE``); else off, since FastAPI
    otherwise asks the three global providers on every request whether they have been set
    since (~10 µs a request, 5 % of an online lookup's time on the event loop)."""
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return None
    try:
        from opentelemetry import _logs, metrics, trace
    except ImportError:  # FastAPI then has nothing to ask per request
        return None
    providers = (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider())
    # The API's placeholders until a provider is set (what FastAPI checks on each request).
    if all((type(p).__module__, type(p).__name__) in _OTEL_PLACEHOLDERS for p in providers):
        return {"tracing": False, "metrics": False, "logs": False}
    return None


_OTEL_PLACEHOLDERS = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


def _check_every_route_is_guarded(router: APIRouter, prefix: str) -> None:
    """Deny by default: an API route that names no permission (``datamart.routes.allow`` or
    ``requires``) and is not public stops the app from starting, rather than serving everyone."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or any(p + route.path in PUBLIC_PATHS for p in (prefix, PROJECT_PREFIX)):
            continue
        if getattr(route.endpoint, PERMISSION_ATTRIBUTE, None) is None and not _permissions(route.dependant):
            raise RuntimeError(
                f"route {sorted(route.methods or ())} {prefix}{route.path} requires no permission: add one"
            )


def _permissions(dependant: Dependant) -> list[object]:
    found = [getattr(d.call, PERMISSION_ATTRIBUTE, None) for d in dependant.dependencies]
    return [p for p in found if p is not None] + [p for d in dependant.dependencies for p in _permissions(d)]


def _add_docs(app: FastAPI) -> None:
    """Swagger UI on /docs and ReDoc on /redoc, their scripts and styles served by the API itself
    from the ``fastapi-offline`` package (Swagger UI 5, which reads OpenAPI 3.1), so that the docs
    work on a machine without internet. ReDoc is told not to load Google Fonts."""
    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=redirect_url,
            # No badge fetched from swagger.io's online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def create_app_from_env() -> FastAPI:
    """The app for ``featurestore serve``: serves the project in ``$FEATURESTORE_PROJECT_DIR``
    (several folders separated by ``os.pathsep``: the first is the default project) and closes
    their stores on shutdown."""
    install_log_redaction()  # uvicorn's handlers too, set up by now
    project_dir = os.environ.get(PROJECT_DIR_ENV)
    if not project_dir:
        raise ConfigError(
            f"the environment variable {PROJECT_DIR_ENV} is not set: start the API with "
            "'featurestore -C <project dir> serve', or set it to the folder holding featurestore.yaml"
        )
    stores = [FeatureStore(d) for d in project_dir.split(os.pathsep) if d]
    flag = os.environ.get(REQUIRE_AUTH_ENV)
    for store in stores:
        store.config = dataclasses.replace(store.config, auth=required(store.config.auth, flag))
    app = create_app(stores, close_store=True)
    # What the server holds from now on (modules, the app, definitions) is left out of the
    # garbage collector's full passes: one took ~0.4 s over the ~150,000 objects a started server
    # holds, a pause every request in flight waited for (p99). Requests' own objects are
    # collected as before.
    gc.collect()
    gc.freeze()
    return app


async def _feature_store_error(request: Request, err: FeatureStoreError) -> JSONResponse:
    status = http_status(err)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, err, exc_info=err)
    # RFC 6750: a 401 names the scheme it wants.
    headers = {"WWW-Authenticate": 'Bearer realm="featurestore"'} if status == 401 else None
    return JSONResponse(error_body(err), status_code=status, headers=headers)


async def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    errors = err.errors()
    details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
    where = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details)
    # Unreadable JSON is a malformed body (400); JSON of the wrong shape is an invalid request (422).
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    body = {"error": InvalidRequestError.__name__, "message": f"Invalid request: {where}", "details": details}
    return JSONResponse(body, status_code=status)


async def _http_error(request: Request, err: HTTPException) -> JSONResponse:
    message = f"{request.method} {request.url.path}: {err.detail}"
    allowed = (err.headers or {}).get("Allow")
    if err.status_code == 404:
        message += "; the API's paths are listed on /docs and in /openapi.json"
    elif err.status_code == 405 and allowed:
        message += f"; this path answers {allowed}"
    body = {"error": "HTTPError", "message": message}
    return JSONResponse(body, status_code=err.status_code, headers=err.headers)


async def _unexpected_error(request: Request, err: Exception) -> JSONResponse:
    # Logged with its traceback by the server; the caller learns only that it is our fault.
    body = {
        "error": "InternalServerError",
        "message": f"{request.method} {request.url.path} failed on an unexpected {type(err).__name__}; "
        "see the datamart's log",
    }
    return JSONResponse(body, status_code=500)
