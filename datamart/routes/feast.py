"""Feast's HTTP protocol: ``POST /get-online-features`` as Feast's Python feature server answers it.

A service written against Feast's feature server, or the Feast SDK configured with
``online_store: {type: remote, path: http://<datamart>}``, reads this store unchanged. The route
calls the same in-process lookup as ``POST /v1/online-features`` (same permission, same auth,
same usage recording and metrics); only the request and response shapes are Feast's (Feast 0.67,
``feast/feature_server.py`` and ``feast/infra/online_stores/remote.py``):

* Request: ``{"entities": {join_key: [values]}, "features": ["view:feature", ...]}`` or
  ``"feature_service": name`` (which wins when both are given), ``full_feature_names``,
  ``include_feature_view_version_metadata``; other fields are ignored, as Feast does.
* Response: ``metadata.feature_names`` (the join keys, then the features) and ``results``, one per
  name, each with ``values``, ``statuses`` and ``event_timestamps``. A join key's column echoes
  the keys (cast to their declared type), ``PRESENT``, with the epoch as its time, as Feast does.
* Statuses: ours mapped to Feast's names, ``present`` → ``PRESENT``, ``null`` → ``NULL_VALUE``,
  ``missing`` → ``NOT_FOUND``, ``expired`` → ``OUTSIDE_MAX_AGE``, ``invalid`` → ``INVALID``.
  Unlike Feast 0.67 on Redis, which says ``PRESENT`` for an entity it does not hold and for a
  value past its view's TTL, these statuses mean what they say (TTL is applied online).
* Times: RFC 3339 in UTC with a ``Z``, as Feast formats a protobuf timestamp (no fraction, or 3,
  or 6 digits); no stored row gives ``1970-01-01T00:00:00Z`` (Feast's empty timestamp). A
  timestamp *feature* is given as Feast gives one, whole seconds since the epoch.
* Values: JSON numbers, strings and booleans; a non-finite float as ``"NaN"``, ``"Infinity"`` or
  ``"-Infinity"`` (the protobuf JSON mapping Feast uses).
* Errors: a JSON string holding ``{"module", "class", "message"}``, which Feast's client turns back
  into the named ``feast.errors`` exception with our message (``FeatureViewNotFoundException``,
  ``FeatureServiceNotFoundException``, ``FeastObjectNotFoundException`` for a feature,
  ``FeastPermissionError`` for a refused or missing token, ``FeastError`` otherwise), with our
  HTTP status; the detail also names our error class (``error``) and, for a name not found, the
  nearest names (``suggestions``). A body that is not a request of this shape gets FastAPI's 422
  ``{"detail": [...]}``, as from Feast's server, with our ``error`` and ``message`` beside it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datamart.errors import http_status
from datamart.limits import check_lookup_entities
from datamart.metrics import MeasuredRoute, measured, metrics_of, target_of
from datamart.routes import CONSUMER_MAX_LENGTH, DEFAULT_CONSUMER, authorize, requires, store_of
from datamart.routes.reads import _check_service_reads, _in_lookup_thread
from featurestore.auth import Permission, Role
from featurestore.errors import (
    AuthenticationError,
    FeatureStoreError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from featurestore.lookup import FeatureStatus, OnlineResponse
from featurestore.retrieval import ViewRequest, output_names
from featurestore.secrets import redact
from featurestore.serving_log import REQUEST_ID, request_id_from
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)
router = APIRouter(route_class=MeasuredRoute)

FEAST_STATUS = {
    FeatureStatus.PRESENT: "PRESENT",
    FeatureStatus.NULL: "NULL_VALUE",
    FeatureStatus.MISSING: "NOT_FOUND",
    FeatureStatus.EXPIRED: "OUTSIDE_MAX_AGE",
    FeatureStatus.INVALID: "INVALID",
}
"""Our statuses by Feast's names (``FieldStatus`` of Feast's ServingService.proto)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_TIME = "1970-01-01T00:00:00Z"
"""Feast's text for an empty protobuf timestamp: a join key's time, or an entity without a row."""


class FeastOnlineRequest(BaseModel):
    """The body of Feast's ``POST /get-online-features`` (``GetOnlineFeaturesRequest``)."""

    model_config = ConfigDict(extra="ignore")

    entities: dict[str, list[Any]] = Field(
        description="Join key → its values, one per entity (columns, as Feast's SDK sends them).",
        examples=[{"customer_id": [1, 2]}],
    )
    feature_service: str | None = Field(None, description="A feature service's name; wins over `features`.")
    features: list[str] = Field(
        [], description="Feature references 'view:feature'.", examples=[["customer_stats:spend_1d"]]
    )
    full_feature_names: bool = Field(False, description="Name features 'view__feature'.")
    include_feature_view_version_metadata: bool = Field(
        False, description="Add metadata.feature_view_metadata: the feature views read, by name."
    )


class FeastFeatureVector(BaseModel):
    values: list[Any]
    statuses: list[str] = Field(description="PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE or INVALID.")
    event_timestamps: list[str] = Field(description="The stored row's event time; 1970-01-01T00:00:00Z if none.")


class FeastMetadata(BaseModel):
    feature_names: list[str]
    feature_view_metadata: list[dict[str, Any]] | None = None


class FeastOnlineResponse(BaseModel):
    """The answer of Feast's feature server: one result per name of ``metadata.feature_names``."""

    metadata: FeastMetadata
    results: list[FeastFeatureVector]


_ERROR_EXAMPLE = json.dumps(
    {
        "module": "feast.errors",
        "class": "FeatureViewNotFoundException",
        "message": "Feature view 'customer_stat' not found in project 'shop'. Did you mean 'customer_stats'?",
    }
)
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": what + ": a JSON string holding Feast's error detail (module, class, message), which "
        "Feast's client raises as that class",
        "content": {"application/json": {"schema": {"type": "string"}, "example": _ERROR_EXAMPLE}},
    }
    for status, what in (
        (401, "No token, or an unknown, expired or revoked one (auth on)"),
        (403, "The token may not read these features"),
        (404, "Unknown feature view, feature or feature service"),
        (
            422,
            "Invalid lookup (no features, a key of the wrong type, a missing join key); a body of the wrong "
            "shape answers FastAPI's {\"detail\": [...]} instead, as Feast's server does",
        ),
        (503, "A store or the registry is unavailable"),
    )
}


@router.post(
    "/get-online-features",
    tags=["feast"],
    response_model=FeastOnlineResponse,
    responses=_ERROR_RESPONSES,
    summary="Online features in Feast's feature-server protocol (for Feast clients and the Feast SDK)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeastOnlineRequest.model_json_schema()}},
        },
    },
)
@requires(Permission.ONLINE_FEATURES)
@measured("online")
async def get_online_features_feast(request: Request) -> Response:
    """Feast's ``POST /get-online-features``: the same lookup as ``POST /v1/online-features``,
    TTL honoured, in the request and response shapes of Feast's Python feature server. Point
    Feast's SDK here with ``online_store: {type: remote, path: http://<host>:<port>}`` in
    ``feature_store.yaml`` (``.../v1/projects/<project>`` for another project than the default)."""
    try:
        consumer = request.headers.get("x-consumer", DEFAULT_CONSUMER)
        if not 0 < len(consumer) <= CONSUMER_MAX_LENGTH:
            raise InvalidRequestError(f"The X-Consumer header must be 1 to {CONSUMER_MAX_LENGTH} characters")
        who = await authorize(request, Permission.ONLINE_FEATURES)
        store = store_of(request)
        raw = await request.body()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            detail = [{"type": "json_invalid", "loc": ["body", err.pos], "msg": f"JSON decode error: {err.msg}"}]
            return _detail_response(detail)
        check_lookup_entities(data, store.config.datamart.max_lookup_entities)
        try:
            body = FeastOnlineRequest.model_validate(data)
        except ValidationError as err:
            errors = json.loads(err.json(include_url=False))
            return _detail_response([{**e, "loc": ["body", *e["loc"]]} for e in errors])

        columns: list[tuple[str, str]] = []
        request_id = request_id_from(request.headers.get("x-request-id"))
        if request_id is not None:  # the lookup's thread copies this context: the log takes the client's id
            REQUEST_ID.set(request_id)

        def lookup() -> OnlineResponse:
            # In the lookups' thread, as the online route's: both read the registry when stale.
            refs, resolved = _resolve_cached(store, body)
            columns.extend(resolved)
            if who.role is Role.SERVICE:
                _check_service_reads(store, who, refs)
            request.state.metric_target = target_of(store, refs)
            return store.get_online_features(
                refs, body.entities, full_feature_names=body.full_feature_names, consumer=who.name
            )

        response = await _in_lookup_thread(lookup)
    except FeatureStoreError as err:
        return _feast_error(err)
    metrics = metrics_of(request)
    if metrics is not None:
        metrics.count_values(request.state.metric_target, response.statuses)
    content = _feast_body(response, columns, list(body.entities), body.include_feature_view_version_metadata)
    headers = {"X-Request-ID": request_id} if request_id is not None else None
    return Response(orjson.dumps(content), media_type="application/json", headers=headers)


_RESOLVED: dict[tuple[Any, ...], tuple[object, object, str | list[str], list[tuple[str, str]]]] = {}
"""Resolved requests, each with the definitions it was resolved against (kept while the store
hands out the same ones, i.e. until it reloads them): ~17 µs a request saved."""


def _resolve_cached(store: FeatureStore, body: FeastOnlineRequest) -> tuple[str | list[str], list[tuple[str, str]]]:
    key = (store.project, body.feature_service, tuple(body.features), body.full_feature_names)
    views, services = store.feature_views(), store.feature_services()
    hit = _RESOLVED.get(key)
    if hit is not None and hit[0] is views and hit[1] is services:
        return hit[2], hit[3]
    refs, columns = _resolve(store, body)
    if len(_RESOLVED) > 1000:  # callers with ever-changing feature lists: keep memory bounded
        _RESOLVED.clear()
    _RESOLVED[key] = (views, services, refs, columns)
    return refs, columns


def _resolve(store: FeatureStore, body: FeastOnlineRequest) -> tuple[str | list[str], list[tuple[str, str]]]:
    """What to look up (a service's name, or the references) and each output column's (view,
    output name), in the order of the lookup's columns."""
    views = store.feature_views()
    if body.feature_service is not None:
        services = store.feature_services()
        if body.feature_service not in services:
            raise NotFoundError("feature service", body.feature_service, project=store.project, candidates=services)
        pairs = [(s.view, f) for s in services[body.feature_service].selections() for f in s.features]
        refs: str | list[str] = body.feature_service
    else:
        if not body.features:
            raise InvalidRequestError(
                "No features requested: give 'features' (references like 'customer_stats:spend_1d') or "
                "'feature_service' (a feature service's name)"
            )
        for ref in body.features:
            view, sep, feature = ref.partition(":")
            if not sep or not view or not feature or "@" in view:
                raise InvalidRequestError(
                    f"Invalid feature reference {ref!r}: give 'feature_view:feature' (versioned references "
                    "'view@v2:feature' are not supported: a lookup reads a view's current version)"
                )
        pairs = [tuple(ref.split(":", 1)) for ref in body.features]  # type: ignore[misc]
        refs = list(body.features)
    # Grouped by view in order of first mention, as the lookup resolves them (unknown names are
    # left to the lookup, which names them with suggestions).
    grouped: dict[str, list[str]] = {}
    for view, feature in pairs:
        bucket = grouped.setdefault(view, [])
        if feature not in bucket:
            bucket.append(feature)
    if not grouped.keys() <= views.keys():
        return refs, []
    requests = [ViewRequest(views[v], tuple(fs)) for v, fs in grouped.items()]
    names = output_names(requests, body.full_feature_names)
    return refs, [(r.view.name, names[(r.view.name, f)]) for r in requests for f in r.features]


def _feast_body(
    response: OnlineResponse, columns: list[tuple[str, str]], requested_keys: list[str], view_metadata: bool
) -> dict[str, Any]:
    n = len(next(iter(response.keys.values()), []))
    names: list[str] = []
    results: list[dict[str, Any]] = []
    no_times = [NO_TIME] * n
    for key in [k for k in requested_keys if k in response.keys] + [
        k for k in response.keys if k not in requested_keys
    ]:
        names.append(key)
        results.append({"values": response.keys[key], "statuses": ["PRESENT"] * n, "event_timestamps": no_times})
    times = {view: [_feast_time(m) for m in micros] for view, micros in response.event_micros.items()}
    for view, name in columns:
        dtype = response.types[name]
        values = response.columns[name]
        if pa.types.is_timestamp(dtype):
            values = [None if v is None else int(v.timestamp()) for v in values]
        elif pa.types.is_floating(dtype):
            values = [_feast_float(v) for v in values]
        names.append(name)
        results.append(
            {
                "values": values,
                "statuses": [FEAST_STATUS[s] for s in response.statuses[name]],
                "event_timestamps": times.get(view, no_times),
            }
        )
    metadata: dict[str, Any] = {"feature_names": names}
    if view_metadata:
        metadata["feature_view_metadata"] = [{"name": v} for v in dict.fromkeys(v for v, _ in columns)]
    return {"metadata": metadata, "results": results}


def _feast_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


@functools.lru_cache(maxsize=1 << 16)  # the same rows' times come back request after request
def _feast_time(micros: int | None) -> str:
    """A time as Feast writes a protobuf timestamp: UTC, 'Z', no fraction or 3 or 6 digits."""
    if micros is None:
        return NO_TIME
    seconds, fraction = divmod(micros, 1_000_000)
    base = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction == 0:
        return base + "Z"
    if fraction % 1000 == 0:
        return f"{base}.{fraction // 1000:03d}Z"
    return f"{base}.{fraction:06d}Z"


def _feast_error(err: FeatureStoreError) -> Response:
    """``err`` as Feast's server answers a ``FeastError``: a JSON string of its detail."""
    status = http_status(err)
    if status >= 500:
        log.error("POST /get-online-features failed: %s", err, exc_info=err)
    if isinstance(err, NotFoundError):
        kind = {
            "feature view": "FeatureViewNotFoundException",
            "feature service": "FeatureServiceNotFoundException",
        }.get(err.kind, "FeastObjectNotFoundException")
    elif isinstance(err, AuthenticationError | PermissionDeniedError):
        kind = "FeastPermissionError"
    else:
        kind = "FeastError"
    # Feast's client reads module, class and message; our class and suggestions ride along for others.
    fields: dict[str, Any] = {"module": "feast.errors", "class": kind, "message": redact(str(err))}
    fields["error"] = type(err).__name__
    if isinstance(err, NotFoundError):
        fields["suggestions"] = err.suggestions
    detail = json.dumps(fields)
    headers = {"WWW-Authenticate": 'Bearer realm="featurestore"'} if status == 401 else None
    return Response(orjson.dumps(detail), status_code=status, media_type="application/json", headers=headers)


def _detail_response(detail: list[dict[str, Any]]) -> Response:
    """FastAPI's answer to a body it cannot validate, as Feast's server gives it (``detail``),
    with our ``error`` and ``message`` beside it, as every other error of the API has them."""
    where = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    body = {"detail": detail, "error": InvalidRequestError.__name__, "message": f"Invalid request: {where}"}
    return Response(orjson.dumps(body), status_code=422, media_type="application/json")
