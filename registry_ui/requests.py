"""The registry UI's feature requests: the Requests page (open, in progress, delivered, declined;
sorted by support or due date), one request's page with its supporters and history, the forms to
file and support a request and, for engineers, to accept, decline or link one; the person's
notifications of delivered requests.

Forms are POSTs from this site only (the Origin check, and the session's CSRF token when signed
in), each checking the permission it needs (``requests:file``, ``requests:manage``), like the API.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from featurestore.auth import SESSION_COOKIE, Identity, Permission, csrf_token
from featurestore.errors import FeatureStoreError, InvalidRequestError, NotFoundError, PermissionDeniedError
from featurestore.feature_requests import TABS, FeatureRequests, sort_requests
from featurestore.registry import Registry
from featurestore.registry.requests import FeatureRequestRecord, RequestNotification
from featurestore.store import FeatureStore
from registry_ui.access import CROSS_SITE, PageGuard

TAB_TITLES = {"open": "Open", "in_progress": "In progress", "delivered": "Delivered", "declined": "Declined"}
SORT_TITLES = {"support": "most support", "due": "due date", "newest": "newest"}
Render = Callable[..., HTMLResponse]
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
"""A request's number, within what every database's integer holds (a larger one is a 422, not a 500)."""


@dataclass(frozen=True)
class RequestsPage:
    tab: str
    sort: str
    requests: list[FeatureRequestRecord]
    counts: dict[str, int]
    notifications: list[RequestNotification]
    entities: list[str]
    can_file: bool
    can_manage: bool
    problem: str
    form: dict[str, str]


@dataclass(frozen=True)
class RequestPage:
    request: FeatureRequestRecord
    views: dict[str, list[str]]
    """Each feature view and its features: what the link form offers."""
    can_file: bool
    can_manage: bool
    voted: bool
    problem: str


def _identity(request: Request, project: str) -> Identity | None:
    """Who is asking (set by the page guard; with auth off, the local user, who may do anything)."""
    found: Identity | None = getattr(request.state, "identity", None)
    return found


def _can(identity: Identity | None, permission: Permission) -> bool:
    return identity is None or identity.can(permission)


def requests_page(
    registry: Registry,
    project: str,
    identity: Identity | None,
    *,
    tab: str = "open",
    sort: str = "support",
    problem: str = "",
    form: dict[str, str] | None = None,
) -> RequestsPage:
    tab = tab if tab in TABS else "open"
    sort = sort if sort in SORT_TITLES else "support"
    every = registry.list_requests(project)
    counts = {name: sum(1 for r in every if r.status in statuses) for name, statuses in TABS.items()}
    shown = sort_requests([r for r in every if r.status in TABS[tab]], sort)
    mine = registry.notifications(project, identity.name) if identity is not None else []
    return RequestsPage(
        tab=tab,
        sort=sort,
        requests=shown,
        counts=counts,
        notifications=mine,
        entities=sorted(e.name for e in registry.list_entities(project)),
        can_file=_can(identity, Permission.REQUEST_FEATURES),
        can_manage=_can(identity, Permission.MANAGE_REQUESTS),
        problem=problem,
        form=form or {},
    )


def request_page(
    registry: Registry, project: str, identity: Identity | None, request_id: int, *, problem: str = ""
) -> RequestPage:
    record = registry.get_request(project, request_id)
    return RequestPage(
        request=record,
        views={v.name: [f.name for f in v.features] for v in registry.list_feature_views(project)},
        can_file=_can(identity, Permission.REQUEST_FEATURES),
        can_manage=_can(identity, Permission.MANAGE_REQUESTS),
        voted=identity is not None and any(s.voter == identity.name for s in record.supporters),
        problem=problem,
    )


def open_requests_matching(registry: Registry, project: str, q: str) -> list[FeatureRequestRecord]:
    """Requests not yet delivered nor declined whose title, description, reason, entity or model
    holds every word of ``q``: what search shows when someone looks for a feature not built yet."""
    words = q.lower().split()
    if not words:
        return []
    found = []
    for r in registry.list_requests(project, statuses=[*TABS["open"], *TABS["in_progress"]]):
        text = " ".join((r.title, r.description, r.reason, r.entity, r.model or "")).lower()
        if all(w in text for w in words):
            found.append(r)
    return sort_requests(found, "support")


@dataclass(frozen=True)
class RequestUsage:
    """What the Usage page shows of requests: counts by state, votes, the most supported
    requests still to build and the latest delivered."""

    counts: dict[str, int]
    wanted: list[FeatureRequestRecord]
    delivered: list[FeatureRequestRecord]


def request_usage(registry: Registry, project: str, *, shown: int = 10) -> RequestUsage:
    every = registry.list_requests(project)
    waiting = [r for r in every if r.status in (*TABS["open"], *TABS["in_progress"])]
    delivered = [r for r in every if r.status in TABS["delivered"]]
    return RequestUsage(
        counts=registry.request_counts(project),
        wanted=sort_requests(waiting, "support")[:shown],
        delivered=sorted(delivered, key=lambda r: r.delivered_at or r.updated_at, reverse=True)[:shown],
    )


def unread_count(registry: Registry, project: str, identity: Identity | None) -> int:
    """The badge on the Requests link: the signed-in person's unread notifications."""
    if identity is None:
        return 0
    try:
        return len(registry.notifications(project, identity.name, unread_only=True))
    except Exception:  # a badge must not break the page (an error page, when the registry is down)
        return 0


def add_routes(app: FastAPI, store: FeatureStore, render: Render, guard: PageGuard) -> None:
    """The Requests pages and forms, on ``app`` (the UI's), rendering with its ``render``."""
    registry, project = store.registry, store.project

    def links(request: Request) -> Any:
        from registry_ui.pages import Links

        return Links(request.scope.get("root_path", ""))

    async def form_of(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: str(v) for k, v in form.items()}

    def check_csrf(request: Request, form: dict[str, str]) -> bool:
        """The form comes from this site: its Origin, and the session's CSRF token when signed in
        (without a session cookie, auth is off or the credential is a header no other site can send)."""
        if not guard.same_origin(request):
            return False
        session = request.cookies.get(SESSION_COOKIE)
        return session is None or hmac.compare_digest(form.get("csrf", ""), csrf_token(session))

    @app.get("/requests", response_class=HTMLResponse, summary="Feature requests")
    def requests_list(
        request: Request,
        tab: Annotated[str, Query(max_length=40)] = "open",
        sort: Annotated[str, Query(max_length=40)] = "support",
    ) -> HTMLResponse:
        page = requests_page(registry, project, _identity(request, project), tab=tab, sort=sort)
        return render(
            request, "requests.html", page=page, tab_titles=TAB_TITLES, sort_titles=SORT_TITLES, active="requests"
        )

    @app.get("/requests/{request_id}", response_class=HTMLResponse, summary="One feature request")
    def request_detail(request: Request, request_id: RequestId) -> HTMLResponse:
        try:
            page = request_page(registry, project, _identity(request, project), request_id)
        except NotFoundError as err:
            return render(request, "not_found.html", status_code=404, error=err)
        return render(request, "request.html", page=page, active="requests")

    @app.post("/requests", response_class=HTMLResponse, summary="File a feature request")
    async def file_request(request: Request) -> Response:
        form = await form_of(request)
        if not check_csrf(request, form):
            return render(request, "error.html", status_code=403, error=CROSS_SITE, title="Form refused")
        identity = _identity(request, project)
        try:
            if identity is not None:
                identity.require(Permission.REQUEST_FEATURES, project)
            due = _due(form.get("due", ""))
            record = await _in_thread(
                lambda: FeatureRequests(store).file(
                    title=form.get("title", ""),
                    entity=form.get("entity", ""),
                    description=form.get("description", ""),
                    reason=form.get("reason", ""),
                    due=due,
                    model=form.get("model") or None,
                    actor=identity.name if identity else None,
                )
            )
        except FeatureStoreError as err:
            status = 403 if isinstance(err, PermissionDeniedError) else 404 if isinstance(err, NotFoundError) else 422
            page = requests_page(registry, project, identity, problem=str(err), form=form)
            return render(
                request,
                "requests.html",
                status_code=status,
                page=page,
                tab_titles=TAB_TITLES,
                sort_titles=SORT_TITLES,
                active="requests",
            )
        return RedirectResponse(links(request).request(record.id), status_code=303)

    @app.post("/requests/{request_id}/{action}", response_class=HTMLResponse, summary="Act on a feature request")
    async def act(request: Request, request_id: RequestId, action: Annotated[str, Path(max_length=40)]) -> Response:
        form = await form_of(request)
        if not check_csrf(request, form):
            return render(request, "error.html", status_code=403, error=CROSS_SITE, title="Form refused")
        identity = _identity(request, project)
        name = identity.name if identity else None
        requests = FeatureRequests(store)
        steps: dict[str, tuple[Permission, Callable[[], object]]] = {
            "support": (
                Permission.REQUEST_FEATURES,
                lambda: requests.support(request_id, comment=form.get("comment", ""), actor=name),
            ),
            "accept": (
                Permission.MANAGE_REQUESTS,
                lambda: requests.accept(request_id, comment=form.get("comment", ""), actor=name),
            ),
            "decline": (
                Permission.MANAGE_REQUESTS,
                lambda: requests.decline(request_id, reason=form.get("reason", ""), actor=name),
            ),
            "link": (
                Permission.MANAGE_REQUESTS,
                lambda: requests.link(
                    request_id,
                    view=form.get("view", ""),
                    features=form.get("features", "").replace(",", " ").split(),
                    actor=name,
                ),
            ),
        }
        if action not in steps:
            err = NotFoundError("request action", action, candidates=steps)
            return render(request, "not_found.html", status_code=404, error=err)
        permission, step = steps[action]
        try:
            if identity is not None:
                identity.require(permission, project)
            await _in_thread(step)
        except FeatureStoreError as err:
            status = 403 if isinstance(err, PermissionDeniedError) else 404 if isinstance(err, NotFoundError) else 422
            try:
                page = request_page(registry, project, identity, request_id, problem=str(err))
            except NotFoundError as missing:
                return render(request, "not_found.html", status_code=404, error=missing)
            return render(request, "request.html", status_code=status, page=page, active="requests")
        return RedirectResponse(links(request).request(request_id), status_code=303)

    @app.post("/notifications/read", response_class=HTMLResponse, summary="Mark one's notifications read")
    async def read_notifications(request: Request) -> Response:
        form = await form_of(request)
        if not check_csrf(request, form):
            return render(request, "error.html", status_code=403, error=CROSS_SITE, title="Form refused")
        identity = _identity(request, project)
        if identity is not None:
            await _in_thread(lambda: registry.mark_notifications_read(project, identity.name))
        return RedirectResponse(links(request).requests(), status_code=303)


def _due(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise InvalidRequestError(f"due date {value!r} is not a date: give YYYY-MM-DD") from err


async def _in_thread(step: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(step)
