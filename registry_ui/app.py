"""The registry UI's web app: FastAPI routes rendering Jinja2 templates.

``featurestore ui`` runs :func:`create_app_from_env` under uvicorn; the datamart app mounts
:func:`create_app` under ``/ui``. Every page is a GET with its state in the URL (shareable,
bookmarkable, works without JavaScript).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from featurestore import __version__
from featurestore.auth import SESSION_COOKIE, Authenticator, Identity, Permission, csrf_token
from featurestore.errors import (
    AuthenticationError,
    ConfigError,
    FeatureStoreError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from featurestore.request_limits import RequestLimits
from featurestore.schedules import next_due, schedule_text
from featurestore.secrets import install_log_redaction, redact
from featurestore.store import FeatureStore
from registry_ui import datasets, pages
from registry_ui import previews as ui_previews
from registry_ui import requests as request_pages
from registry_ui import skew as ui_skew
from registry_ui.access import CROSS_SITE, PageGuard, safe_next
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
        schedule=schedule_text,
        next_due=lambda schedule: next_due(schedule, datetime.now(UTC)),
    )
    return env


def create_app(store: FeatureStore, *, close_store: bool = False, auth: Authenticator | None = None) -> FastAPI:
    """The UI of ``store``'s project. It only reads the registry; ``close_store`` closes the
    store when the app shuts down (set when the app made the store). ``auth``: who may see which
    page (default: the project's ``auth`` section); with auth on, every page but the sign-in
    page needs a signed-in identity allowed to read the catalog, and the audit log an admin."""

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
    auth = auth or Authenticator(config.auth, registry, project)
    guard = PageGuard(auth)

    def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        links = pages.Links(request.scope.get("root_path", ""))
        nav = {"search": links.home(), "lineage": links.lineage(), "usage": links.usage()}
        identity: Identity | None = getattr(request.state, "identity", None)
        if identity is None or identity.can(Permission.TRAINING_SETS):  # None: authentication off
            nav["datasets"] = links.datasets()
        if identity is not None and identity.can(Permission.STATISTICS):
            nav["alerts"] = links.alerts()
        if identity is not None and identity.can(Permission.ADMINISTER):
            nav["audit"] = links.audit()
        nav["requests"] = links.requests()
        unread = request_pages.unread_count(registry, project, identity if auth.enabled else None)
        session = request.cookies.get(SESSION_COOKIE)
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
                "identity": identity if auth.enabled else None,
                "csrf": csrf_token(session) if session else "",
                "unread_requests": unread,
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
        wanted = request_pages.open_requests_matching(registry, project, q.strip())
        return render(request, "search.html", page=page, requests=wanted, active="search")

    @app.get("/views/{name}", response_class=HTMLResponse, summary="One feature view")
    def view(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.view_page(registry, config, name)
        except NotFoundError as err:
            return not_found(request, err)
        skew = ui_skew.for_view(request, registry, project, name)
        can_preview = ui_previews.may_preview(request)
        return render(request, "view.html", page=page, skew=skew, can_preview=can_preview, active="search")

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
        probe = ui_previews.probe_for(request, registry, project, name)
        return render(request, "source.html", page=page, probe=probe, active="lineage")

    @app.get("/models/{name}", response_class=HTMLResponse, summary="One model")
    def model(request: Request, name: str) -> HTMLResponse:
        try:
            page = pages.model_page(registry, project, name)
        except NotFoundError as err:
            return not_found(request, err)
        skew = ui_skew.for_model(request, registry, project, page.feature_service)
        return render(request, "model.html", page=page, skew=skew, active="lineage")

    @app.get("/datasets", response_class=HTMLResponse, summary="Training datasets")
    def training_datasets(request: Request) -> HTMLResponse:
        return render(request, "datasets.html", datasets=datasets.datasets_list(registry, project), active="datasets")

    @app.get("/datasets/{name}", response_class=HTMLResponse, summary="One training dataset")
    def training_dataset(request: Request, name: str) -> HTMLResponse:
        try:
            page = datasets.dataset_page(registry, project, name)
        except NotFoundError as err:
            return not_found(request, err)
        return render(request, "dataset.html", page=page, active="datasets")

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
        requested = request_pages.request_usage(registry, project)
        return render(request, "usage.html", page=page, requested=requested, active="usage")

    @app.get("/signin", response_class=HTMLResponse, summary="Sign in with an API token")
    def signin_form(request: Request, next: Annotated[str, Query(max_length=2000)] = "") -> HTMLResponse:
        return render(request, "signin.html", next=safe_next(next), auth_enabled=auth.enabled, problem="")

    @app.post("/signin", response_class=HTMLResponse, summary="Sign in with an API token")
    async def signin(request: Request) -> Response:
        form = await request.form()
        token, target = str(form.get("token", "")).strip(), safe_next(str(form.get("next", "")))
        links = pages.Links(request.scope.get("root_path", ""))
        if not guard.same_origin(request):
            return render(request, "error.html", status_code=403, error=CROSS_SITE, title="Sign-in refused")
        try:
            identity = await anyio.to_thread.run_sync(auth.identify, token or None)
            identity.require(Permission.CATALOG, project)
        except (AuthenticationError, PermissionDeniedError) as err:
            status = 401 if isinstance(err, AuthenticationError) else 403
            return render(
                request, "signin.html", status_code=status, next=target, auth_enabled=auth.enabled, problem=str(err)
            )
        response = RedirectResponse(links.base + target if target else links.home(), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=links.base or "/",
            max_age=None if identity.expires_at is None else max(0, int(identity.expires_at - time.time())),
        )
        return response

    @app.post("/signout", summary="Sign out")
    async def signout(request: Request) -> Response:
        form = await request.form()
        session = request.cookies.get(SESSION_COOKIE)
        links = pages.Links(request.scope.get("root_path", ""))
        if not session or not hmac.compare_digest(str(form.get("csrf", "")), csrf_token(session)):
            return render(request, "error.html", status_code=403, error=CROSS_SITE, title="Sign-out refused")
        response = RedirectResponse(links.signin(), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=links.base or "/")
        return response

    @app.get("/audit", response_class=HTMLResponse, summary="Audit log (admins)")
    def audit(
        request: Request,
        action: Annotated[str, Query(max_length=60)] = "",
        actor: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        entries = registry.audit_log(project, limit=500, action=action or None, actor=actor or None)
        return render(request, "audit.html", entries=entries, action=action, actor=actor, active="audit")

    @app.get("/alerts", response_class=HTMLResponse, summary="Alert incidents")
    def alerts(request: Request, view: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
        page = pages.alerts_page(registry, project, view=view)
        return render(request, "alerts.html", page=page, active="alerts")

    ui_previews.add_routes(app, store, render)  # /views/{name}/preview: a view computed on a sample
    request_pages.add_routes(app, store, render, guard)  # /requests: the feature requests' pages and forms

    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    def healthz() -> str:
        return f"ok {project}"

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def authorize(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Deny by default: every path needs a signed-in identity except the public ones.
        outcome = await guard.check(request)
        if outcome is None:
            return await call_next(request)
        if isinstance(outcome, AuthenticationError) and request.method == "GET":
            links = pages.Links(request.scope.get("root_path", ""))
            local = request.url.path[len(links.base) :] if request.url.path.startswith(links.base) else "/"
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(links.signin(next=local + query), status_code=303)
        status = 401 if isinstance(outcome, AuthenticationError) else 403
        return render(request, "error.html", status_code=status, error=outcome, title="Not allowed")

    @app.exception_handler(FeatureStoreError)
    async def feature_store_error(request: Request, err: FeatureStoreError) -> Response:
        status = 503 if isinstance(err, StoreUnavailableError) else 404 if isinstance(err, NotFoundError) else 400
        return render(request, "error.html", status_code=status, error=err, title="Cannot show this page")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in err.errors())
        return render(request, "error.html", status_code=422, error=problems, title="This address is not valid")

    # Outermost: a form or URL beyond the datamart section's limits is refused before anything reads it.
    app.add_middleware(RequestLimits, config=config.datamart)
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
