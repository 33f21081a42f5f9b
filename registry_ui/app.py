"""The registry UI's web app: FastAPI routes rendering Jinja2 templates.

``featurestore ui`` runs :func:`create_app_from_env` under uvicorn; the datamart app mounts
:func:`create_app` under ``/ui``. Every page is a GET with its state in the URL (shareable,
bookmarkable, works without JavaScript).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from featurestore import __version__
from featurestore.errors import ConfigError, FeatureStoreError, NotFoundError, StoreUnavailableError
from featurestore.secrets import install_log_redaction, redact
from featurestore.store import FeatureStore
from registry_ui import pages
from registry_ui.formats import (
    count_text,
    duration_text,
    number_text,
    parse_time,
    relative_age,
    ttl_text,
    utc_iso,
    utc_text,
)

PROJECT_DIR_ENV = "FEATURESTORE_PROJECT_DIR"
HERE = Path(__file__).resolve().parent


def _without_secrets(value: Any) -> Any:
    """Every value a page prints, with secrets hidden (:func:`featurestore.secrets.redact`): the
    last line before a run's recorded error or a store's address reaches a browser."""
    if isinstance(value, Markup):
        return Markup(redact(str(value)))
    return redact(value) if isinstance(value, str) else value


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("registry_ui", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_without_secrets,
    )
    env.filters.update(
        utc=utc_text,
        utc_iso=utc_iso,
        age=relative_age,
        duration=duration_text,
        ttl=ttl_text,
        count=count_text,
        number=number_text,
        parse_time=parse_time,
    )
    return env


def create_app(store: FeatureStore, *, close_store: bool = False) -> FastAPI:
    """The UI of ``store``'s project. It only reads the registry; ``close_store`` closes the
    store when the app shuts down (set when the app made the store)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_store:
                await anyio.to_thread.run_sync(store.close)

    app = FastAPI(
        title="featurestore registry UI",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    templates = Jinja2Templates(env=_environment())
    registry, config, project = store.registry, store.config, store.project

    def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        links = pages.Links(request.scope.get("root_path", ""))
        nav = {"search": links.home(), "lineage": links.lineage(), "usage": links.usage()}
        return templates.TemplateResponse(
            request,
            template,
            {
                "links": links,
                "nav": nav,
                "project": project,
                "registry_url": pages.hide_password(registry.url),
                "rendered_at": datetime.now(UTC),
                "version": __version__,
                "kind_names": pages.KIND_NAMES,
                "active": "",
                **context,
            },
            status_code=status_code,
        )

    def not_found(request: Request, err: NotFoundError) -> HTMLResponse:
        return render(request, "not_found.html", status_code=404, error=err)

    @app.get("/", response_class=HTMLResponse, summary="Search the catalog")
    def search(
        request: Request,
        q: Annotated[str, Query(max_length=200)] = "",
        tag: Annotated[str, Query(max_length=200)] = "",
        owner: Annotated[str, Query(max_length=200)] = "",
        kind: Annotated[str, Query(max_length=40)] = "",
    ) -> HTMLResponse:
        links = pages.Links(request.scope.get("root_path", ""))
        page = pages.search_page(registry, project, links, q=q.strip(), tag=tag, owner=owner, kind=kind)
        return render(request, "search.html", page=page, active="search")

    @app.get("/views/{name}", response_class=HTMLResponse, summary="One feature view")
    def view(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.view_page(registry, config, name)
        except NotFoundError as err:
            return not_found(request, err)
        return render(request, "view.html", page=page, active="search")

    @app.get("/services/{name}", response_class=HTMLResponse, summary="One feature service")
    def service(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.service_page(registry, project, name)
        except NotFoundError as err:
            return not_found(request, err)
        return render(request, "service.html", page=page, active="search")

    @app.get("/entities/{name}", response_class=HTMLResponse, summary="One entity")
    def entity(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.entity_page(registry, project, name)
        except NotFoundError as err:
            return not_found(request, err)
        return render(request, "entity.html", page=page, active="search")

    @app.get("/sources/{name}", response_class=HTMLResponse, summary="One source")
    def source(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.source_page(registry, config, name)
        except NotFoundError as err:
            return not_found(request, err)
        return render(request, "source.html", page=page, active="lineage")

    @app.get("/models/{name}", response_class=HTMLResponse, summary="One model")
    def model(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.model_page(registry, project, name)
        except NotFoundError as err:
            return not_found(request, err)
        return render(request, "model.html", page=page, active="lineage")

    @app.get("/lineage", response_class=HTMLResponse, summary="Lineage graph")
    def lineage(request: Request, focus: Annotated[str, Query(max_length=300)] = "") -> HTMLResponse:
        links = pages.Links(request.scope.get("root_path", ""))
        page = pages.lineage_page(registry, project, links, focus=focus)
        status = 200 if page.focus_found else 404
        return render(request, "lineage.html", status_code=status, page=page, focus_text=focus, active="lineage")

    @app.get("/usage", response_class=HTMLResponse, summary="Usage of features")
    def usage(
        request: Request,
        days: Annotated[int, Query(ge=1, le=3650)] = 30,
        view: Annotated[str, Query(max_length=200)] = "",
        consumer: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        store.usage.flush()  # reads served by this process (the datamart, when mounted in it) show at once
        page = pages.usage_page(registry, project, days=days, view=view, consumer=consumer)
        return render(request, "usage.html", page=page, active="usage")

    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    def healthz() -> str:
        return f"ok {project}"

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(FeatureStoreError)
    async def feature_store_error(request: Request, err: FeatureStoreError) -> Response:
        status = 503 if isinstance(err, StoreUnavailableError) else 404 if isinstance(err, NotFoundError) else 400
        return render(request, "error.html", status_code=status, error=err, title="Cannot show this page")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in err.errors())
        return render(request, "error.html", status_code=422, error=problems, title="This address is not valid")

    return app


def create_app_from_env() -> FastAPI:
    """The app for ``featurestore ui``: the project in ``$FEATURESTORE_PROJECT_DIR``."""
    install_log_redaction()  # uvicorn's handlers too, set up by now
    project_dir = os.environ.get(PROJECT_DIR_ENV)
    if not project_dir:
        raise ConfigError(
            f"the environment variable {PROJECT_DIR_ENV} is not set: start the UI with "
            "'featurestore -C <project dir> ui', or set it to the folder holding featurestore.yaml"
        )
    return create_app(FeatureStore(project_dir), close_store=True)
