"""Who may see which page of the registry UI: the sign-in cookie, checked on every request."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import Request

from featurestore.auth import SESSION_COOKIE, Authenticator, Permission
from featurestore.errors import AuthenticationError, FeatureStoreError, PermissionDeniedError

PUBLIC = ("/signin", "/static/", "/healthz", "/favicon.ico")
"""Paths (under the UI's mount point) anyone may open: the sign-in page and its style sheet,
liveness, and the favicon browsers ask for (a 404, not a detour by the sign-in page). Every other
page needs a signed-in identity."""
PAGE_PERMISSIONS = {
    "/audit": Permission.ADMINISTER,
    "/alerts": Permission.STATISTICS,
    "/datasets": Permission.TRAINING_SETS,
    "/datasets/": Permission.TRAINING_SETS,
}
"""Pages that need more than reading the catalog (a key ending in ``/``: every page under it).
Saved training datasets are shown to whom the API gives them: who may build training sets."""


def page_permission(path: str) -> Permission:
    """The permission a page of the UI needs."""
    for page, permission in PAGE_PERMISSIONS.items():
        if path == page or (page.endswith("/") and path.startswith(page)):
            return permission
    return Permission.CATALOG


CROSS_SITE = (
    "This form was not sent from this site's own pages (a cross-site request was refused); "
    "open the page again and send it from there."
)


class PageGuard:
    """Checks each request's identity against the page it asks for."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    def path(self, request: Request) -> str:
        base = request.scope.get("root_path", "").rstrip("/")
        path = request.url.path
        return path[len(base) :] or "/" if base and path.startswith(base) else path

    async def check(self, request: Request) -> FeatureStoreError | None:
        """None if the request may proceed, else the error saying why not."""
        path = self.path(request)
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC) or path == "/signout":
            return None
        auth = self.auth
        try:
            token = auth.credentials(request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))
            identity = auth.cached(token) if auth.enabled else None
            if identity is None:
                identity = await anyio.to_thread.run_sync(auth.identify, token)
            identity.require(page_permission(path), auth.project)
        except (AuthenticationError, PermissionDeniedError) as err:
            return err
        request.state.identity = identity
        return None

    def same_origin(self, request: Request) -> bool:
        """A form post comes from this site: its Origin (or Referer) names this host. Browsers
        send Origin on every cross-site POST, so a missing header is a same-origin or non-browser client."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host", "")


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this UI only (no open redirect to another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    return target
