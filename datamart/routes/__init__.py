"""The API's endpoints, in two routers: the catalog (what exists, who uses it) and the reads
(online features, training sets, reference data). What every endpoint shares lives here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from datamart.metrics import SELF_PARSING_ATTRIBUTE
from datamart.payloads import ErrorBody
from featurestore.auth import Authenticator, Identity, Permission
from featurestore.errors import NotFoundError
from featurestore.store import FeatureStore

DEFAULT_CONSUMER = "anonymous"
CONSUMER_MAX_LENGTH = 200
CONSUMER_DESCRIPTION = (
    "Who reads (a model service, a notebook), recorded in the registry's usage statistics: only on a "
    "server without auth (127.0.0.1). With auth, the authenticated identity is recorded and this header ignored."
)


def store_of(request: Request) -> FeatureStore:
    """The project a request addresses: ``/v1/projects/{project}/...``, or the server's default
    project (the first it serves) under ``/v1/...``."""
    project = request.path_params.get("project")
    if project is None:
        default: FeatureStore = request.app.state.store
        return default
    stores: Mapping[str, FeatureStore] = request.app.state.stores
    if project not in stores:
        # No suggestions: the names of the projects a server holds are not everyone's business.
        err = NotFoundError("project", project)
        err.args = (
            f"{err} Give a project this server holds, by its exact name, or leave /projects/{{project}} out of "
            "the path for the server's default project.",
        )
        raise err
    return stores[project]


async def current_store(request: Request) -> FeatureStore:
    # async: resolved on the event loop, so a plain `def` endpoint costs one thread hop, not two.
    return store_of(request)


async def project_path(
    project: Annotated[str, Path(description="The project, when the server holds several.", max_length=200)],
) -> None:
    """Declares the ``{project}`` of the ``/v1/projects/{project}`` routes (read by :func:`store_of`)."""


StoreDep = Annotated[FeatureStore, Depends(current_store)]
ConsumerDep = Annotated[
    str,
    Header(
        alias="X-Consumer",
        min_length=1,
        max_length=CONSUMER_MAX_LENGTH,
        description=CONSUMER_DESCRIPTION,
    ),
]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed request (e.g. a spine that is not CSV or Parquet)"},
    401: {"model": ErrorBody, "description": "No token, or an unknown, expired or revoked one (auth on)"},
    403: {"model": ErrorBody, "description": "The token's role or project may not do this"},
    404: {"model": ErrorBody, "description": "Unknown feature view, feature or service; with suggestions"},
    413: {"model": ErrorBody, "description": "Body beyond datamart.max_body_bytes (uploads: max_upload_bytes)"},
    422: {"model": ErrorBody, "description": "Invalid request (e.g. the spine lacks its timestamp column)"},
    503: {"model": ErrorBody, "description": "A store or the registry is unavailable"},
}


_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A featurestore API token (fst_..., from 'featurestore tokens create') or, where the server is "
    "configured for OpenID Connect, a JWT of its issuer.",
)
PERMISSION_ATTRIBUTE = "featurestore_permission"
"""Set on the dependency :func:`allow` makes, so that the app can check at start-up that every
route requires a permission (deny by default: a route without one refuses to start the app)."""


async def authorize(request: Request, permission: Permission) -> Identity:
    """The identity of the request, if it may do ``permission`` in the served project; raises
    AuthenticationError (401) or PermissionDeniedError (403) otherwise."""
    store = store_of(request)
    auth: Authenticator = request.app.state.auths[store.project]
    identity: Identity | None
    if not auth.enabled:
        identity = auth.identify(None, request.headers.get("x-consumer"))
    else:
        # The bearer header only: the UI's session cookie is no credential here, so that no page of
        # another site can make a browser call the API with it (cross-site request forgery).
        token = auth.credentials(request.headers.get("authorization"))
        identity = auth.cached(token)
        if identity is None:
            # A token not checked lately costs a registry read (or the issuer's keys): off the event loop.
            identity = await anyio.to_thread.run_sync(auth.identify, token)
    identity.require(permission, auth.project)
    request.state.identity = identity
    return identity


def allow(permission: Permission) -> Any:
    """The dependency of a route that needs ``permission``: resolves to the caller's identity."""

    async def dependency(
        request: Request, _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
    ) -> Identity:
        return await authorize(request, permission)

    setattr(dependency, PERMISSION_ATTRIBUTE, permission)
    return Depends(dependency)


def requires(permission: Permission) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Marks an endpoint that authorizes by itself (calling :func:`authorize`; the online hot
    path, which skips FastAPI's dependency machinery) with the permission it checks. Such an
    endpoint is ``async``, takes the ``Request`` alone, parses its body and headers itself and
    returns a ``Response``: a :class:`~datamart.metrics.MeasuredRoute` calls it directly."""

    def mark(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        setattr(endpoint, PERMISSION_ATTRIBUTE, permission)
        setattr(endpoint, SELF_PARSING_ATTRIBUTE, True)
        return endpoint

    return mark


CatalogReader = Annotated[Identity, allow(Permission.CATALOG)]
StatisticsReader = Annotated[Identity, allow(Permission.STATISTICS)]
Operator = Annotated[Identity, allow(Permission.OPERATE)]
Administrator = Annotated[Identity, allow(Permission.ADMINISTER)]
