"""Read endpoints: online features (the hot path of model services), training sets and
reference data. Every read passes the ``X-Consumer`` header to the store, which logs the usage."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import queue
import threading
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import orjson
from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from datamart.limits import check_lookup_entities, check_spine_rows
from datamart.metrics import UNKNOWN_TARGET, MeasuredRoute, measured, metrics_of, target_of
from datamart.payloads import (
    FEATURES_DESCRIPTION,
    FeatureRefs,
    OnlineFeatures,
    OnlineFeaturesRequest,
    TableData,
    TrainingSetRequest,
)
from datamart.routes import (
    CONSUMER_DESCRIPTION,
    CONSUMER_MAX_LENGTH,
    DEFAULT_CONSUMER,
    ERROR_RESPONSES,
    ConsumerDep,
    StoreDep,
    allow,
    authorize,
    requires,
    store_of,
)
from datamart.tables import (
    MEDIA_TYPES,
    TableFormat,
    negotiate_format,
    prepare_spine,
    read_spine_file,
    spine_from_json,
    table_to_bytes,
    table_to_json,
)
from featurestore.auth import Identity, Permission, Role
from featurestore.errors import PermissionDeniedError
from featurestore.lookup import OnlineResponse
from featurestore.serving_log import REQUEST_ID, request_id_from
from featurestore.store import FeatureStore
from featurestore.times import parse_time
from featurestore.types import ValueType

# Every read is counted and timed for /metrics (datamart.metrics), refused requests included.
router = APIRouter(responses=ERROR_RESPONSES, route_class=MeasuredRoute)
TrainingSetReader = Annotated[Identity, allow(Permission.TRAINING_SETS)]
ReferenceDataReader = Annotated[Identity, allow(Permission.REFERENCE_DATA)]

FormatQuery = Annotated[
    TableFormat | None,
    Query(alias="format", description="Output format; without it, the Accept header decides (default json)."),
]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]
TABLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The table: JSON columns, a Parquet or CSV file, or an Arrow IPC stream",
        "content": {MEDIA_TYPES["parquet"]: {}, MEDIA_TYPES["arrow"]: {}, MEDIA_TYPES["csv"]: {}},
    }
}


def _refs(features: FeatureRefs) -> FeatureRefs:
    # One name without a colon may be a feature service: the store resolves a plain string so.
    return features[0] if isinstance(features, list) and len(features) == 1 else features


def _key_types(store: FeatureStore) -> dict[str, ValueType]:
    return {k: t for v in store.feature_views().values() for k, t in v.key_schema.items()}


def _table_response(table: Any, fmt: TableFormat, name: str) -> Response:
    if fmt == "json":
        return JSONResponse(table_to_json(table))
    suffix = "arrows" if fmt == "arrow" else fmt  # the Arrow project's suffix for a stream (.arrow: its file format)
    return Response(
        table_to_bytes(table, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'},
    )


_CONSUMER_HEADER = {
    "name": "X-Consumer",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": CONSUMER_MAX_LENGTH, "default": DEFAULT_CONSUMER},
    "description": CONSUMER_DESCRIPTION,
}


ONLINE_PATH = "/online-features"


@router.post(
    ONLINE_PATH,
    tags=["reads"],
    response_model=OnlineFeatures,
    summary="Latest feature values of entities, with a status per value",
    # The body and header are parsed by hand (see below); documented here as FastAPI would.
    openapi_extra={
        "parameters": [_CONSUMER_HEADER],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": OnlineFeaturesRequest.model_json_schema()}},
        },
    },
)
@requires(Permission.ONLINE_FEATURES)
@measured("online")
async def get_online_features(request: Request) -> Response:
    """The hot path of model services. Values come from the online store, TTL honoured: an
    expired value is null with status ``expired``; an entity without a row has status ``missing``;
    a stored value that does not fit its feature's type is withheld with status ``invalid``."""
    # Parsed and validated by hand, and the store called in one thread hop: FastAPI's generic
    # body and header handling cost more than the Redis read itself (bench/api_throughput.py).
    consumer = request.headers.get("x-consumer", DEFAULT_CONSUMER)
    if not 0 < len(consumer) <= CONSUMER_MAX_LENGTH:
        message = f"must be 1 to {CONSUMER_MAX_LENGTH} characters: name the reader, e.g. 'churn-model'"
        raise RequestValidationError([{"type": "string_length", "loc": ("header", "X-Consumer"), "msg": message}])
    who = await authorize(request, Permission.ONLINE_FEATURES)
    store = store_of(request)
    body = _online_request(await request.body(), store.config.datamart.max_lookup_entities)
    request_id = request_id_from(request.headers.get("x-request-id"))
    if request_id is not None:  # the lookup's thread copies this context: the log takes the client's id
        REQUEST_ID.set(request_id)

    def lookup() -> OnlineResponse:
        # In the worker thread: both read the registry when their cache is stale. A service's
        # refused request counts as of an unknown target; then the target (a feature service's
        # name), so that a failed lookup of a feature service is counted under its name too.
        if who.role is Role.SERVICE:
            _check_service_reads(store, who, body.features)
        request.state.metric_target = target_of(store, body.features)
        return store.get_online_features(
            _refs(body.features), body.entities, full_feature_names=body.full_feature_names, consumer=who.name
        )

    response = await _in_lookup_thread(lookup)
    metrics = metrics_of(request)
    if metrics is not None:
        metrics.count_values(request.state.metric_target, response.statuses)
    # Serialized with orjson (datetimes as ISO 8601, NaN as null, statuses as text).
    content = {
        "entities": body.entities,
        "features": {
            name: {"values": values, "statuses": response.statuses[name]} for name, values in response.columns.items()
        },
        "event_timestamps": response.event_timestamps,
    }
    headers = {"X-Request-ID": request_id} if request_id is not None else None
    return Response(orjson.dumps(content), media_type="application/json", headers=headers)


LOOKUP_THREADS = 40
"""Threads of the lookups' own pool: as many as anyio's default thread limit, which the other
routes' plain ``def`` endpoints share."""


class _LookupThreads:
    """The lookups' threads: a queue of work that idle threads take from, each result handed
    back to its event loop with ``call_soon_threadsafe``; a thread is started when none is idle,
    up to ``limit``. Measured under uvloop, a hop costs ~11 µs of CPU where
    ``loop.run_in_executor`` on a ``ThreadPoolExecutor`` cost ~42 (its concurrent future, its
    chaining to an asyncio future and the state copied between them) and anyio's
    ``to_thread.run_sync`` more (capacity limiter, cancel scope). A lookup is not cancelled
    midway: a thread cannot be interrupted; a cancelled request's result is dropped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._work: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]]
        self._work = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def run(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """``fn()`` in one of the threads, in a copy of the caller's context variables."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._work.put((loop, future, functools.partial(contextvars.copy_context().run, fn)))
        with self._lock:  # each piece of work takes an idle thread, or starts one (as ThreadPoolExecutor)
            if self._idle:
                self._idle -= 1
                return future
            if self._threads >= self._limit:
                return future  # queued until a thread is free
            self._threads += 1
        threading.Thread(target=self._serve, name=f"datamart-lookup-{self._threads}", daemon=True).start()
        return future

    def _serve(self) -> None:
        work = self._work
        while True:
            loop, future, fn = work.get()
            try:
                result = fn()
            except BaseException as err:  # handed to the awaiting request, as an executor would
                _hand_back(loop, future.set_exception, future, err)
            else:
                _hand_back(loop, future.set_result, future, result)
            with self._lock:
                self._idle += 1


def _hand_back(
    loop: asyncio.AbstractEventLoop, setter: Callable[[Any], None], future: asyncio.Future[Any], value: Any
) -> None:
    def settle() -> None:
        if not future.done():  # cancelled meanwhile (the client went away)
            setter(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits the result any more
        loop.call_soon_threadsafe(settle)


_lookup_threads = _LookupThreads(LOOKUP_THREADS)


async def _in_lookup_thread(fn: Callable[[], OnlineResponse]) -> OnlineResponse:
    """``fn()`` in a thread of the lookups' own pool (the context variables copied, as anyio does)."""
    result: OnlineResponse = await _lookup_threads.run(fn)
    return result


def _check_service_reads(store: FeatureStore, who: Identity, features: FeatureRefs) -> None:
    """A service reads online only the feature services of its models, named as such."""
    allowed = store.model_feature_services(who.models)
    named = _refs(features)
    if isinstance(named, str) and named in allowed:
        return
    wanted = named if isinstance(named, str) else ", ".join(map(str, named))
    raise PermissionDeniedError(
        f"{who.describe()} reads only the feature services of its models ({', '.join(who.models)}): "
        f"{', '.join(sorted(allowed)) or 'none registered'}; it asked for {wanted!r}. Ask for one of them by name, "
        "or have an admin give the token the model that consumes it"
    )


class _OnlineRequest(NamedTuple):
    """An online lookup's body, as :class:`OnlineFeaturesRequest` validates it (a tuple: built
    in ~1 µs, where the model's ``model_construct`` took ~6)."""

    features: FeatureRefs
    entities: dict[str, list[int | str]]
    full_feature_names: bool


def _online_request(raw: bytes, max_entities: int) -> _OnlineRequest:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", err.pos), "msg": f"JSON decode error: {err.msg}"}]
        ) from err
    check_lookup_entities(data, max_entities)  # before validating every key
    common = _common_request(data)
    if common is not None:
        return common
    try:
        valid = OnlineFeaturesRequest.model_validate(data)
    except ValidationError as err:
        raise RequestValidationError(_key_errors(err.errors(include_url=False))) from err
    return _OnlineRequest(valid.features, valid.entities, valid.full_feature_names)


_REQUEST_FIELDS = frozenset(OnlineFeaturesRequest.model_fields)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _common_request(data: Any) -> _OnlineRequest | None:
    """The request, built without pydantic's validation when the body has the common shape that
    validation would accept unchanged (feature references as text, each key column all int64
    integers or all strings, ``full_feature_names`` a boolean, no other field); else None, and
    pydantic validates it (and words its errors). Checked at C speed: ~1 µs for 100 keys, where
    ``model_validate`` took ~8 µs for one."""
    if type(data) is not dict or not data.keys() <= _REQUEST_FIELDS:
        return None
    features = data.get("features")
    entities = data.get("entities")
    full_names = data.get("full_feature_names", False)
    if type(full_names) is not bool or type(entities) is not dict:
        return None
    if type(features) is list:
        if not set(map(type, features)) <= _STR_ONLY:
            return None
    elif type(features) is not str:
        return None
    for keys in entities.values():
        if type(keys) is not list:
            return None
        kinds = set(map(type, keys))
        if kinds == _INT_ONLY:
            if min(keys) < _INT64_MIN or max(keys) > _INT64_MAX:
                return None
        elif kinds and kinds != _STR_ONLY:
            return None
    return _OnlineRequest(features, entities, full_names)


_STR_ONLY = frozenset({str})
_INT_ONLY = frozenset({int})


def _key_errors(errors: list[Any]) -> list[dict[str, Any]]:
    # A key that is neither an int64 nor a string fails both arms of the union: one error says so
    # plainly instead of two about "constrained-int" and "str".
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in errors:
        loc = tuple(e["loc"])
        if len(loc) >= 3 and loc[0] == "entities" and isinstance(loc[2], int):
            key = loc[:3]
            shown = json.dumps(e["input"], default=str)[:100]  # as the caller wrote it (stdlib: any int size)
            message = (
                f"{shown} is not an entity key: give integers of at most 64 bits "
                f"(-2**63 to 2**63-1) or strings, all of one type per column"
            )
            out[key] = {"type": "entity_key", "loc": ("body", *key), "msg": message}
        else:
            out[loc] = {**e, "loc": ("body", *loc)}
    return list(out.values())


@router.post(
    "/training-set",
    tags=["reads"],
    response_model=TableData,
    responses=TABLE_RESPONSES,
    summary="Point-in-time correct training set for a spine given as JSON",
)
@measured("training_set")
def get_training_set(
    request: Request,
    body: TrainingSetRequest,
    store: StoreDep,
    who: TrainingSetReader,
    _consumer: ConsumerDep = DEFAULT_CONSUMER,
    format_: FormatQuery = None,
    accept: AcceptHeader = None,
) -> Response:
    """Each spine row gets every feature's value as of its timestamp (the latest row at or before
    it, within the view's TTL, else null). Spine rows keep their order; none is dropped."""
    request.state.metric_target = target_of(store, body.features)
    check_spine_rows(body.spine, store.config.datamart.max_spine_rows, "spine")
    spine = prepare_spine(spine_from_json(body.spine), body.timestamp_column, _key_types(store), "spine")
    table = store.get_training_set(
        spine,
        _refs(body.features),
        timestamp_column=body.timestamp_column,
        full_feature_names=body.full_feature_names,
        consumer=who.name,
    )
    return _table_response(table, negotiate_format(format_, accept), "training_set")


@router.post(
    "/training-set/upload",
    tags=["reads"],
    response_model=TableData,
    responses=TABLE_RESPONSES,
    summary="Point-in-time correct training set for a spine uploaded as CSV or Parquet",
)
@measured("training_set")
def get_training_set_from_file(
    request: Request,
    store: StoreDep,
    who: TrainingSetReader,
    spine: Annotated[UploadFile, File(description="The spine: a .parquet or .csv file (with a header line).")],
    features: Annotated[list[str], Form(description=FEATURES_DESCRIPTION + " Repeated or comma separated.")],
    timestamp_column: Annotated[str, Form(description="The spine's timestamp column.")] = "event_timestamp",
    full_feature_names: Annotated[bool, Form(description="Name features 'view__feature'.")] = False,
    _consumer: ConsumerDep = DEFAULT_CONSUMER,
    format_: FormatQuery = None,
    accept: AcceptHeader = None,
) -> Response:
    """As ``POST /v1/training-set``; the spine's format is told by its magic bytes, its file
    name or its media type. The Python client sends Parquet and asks for Parquet."""
    refs = [f.strip() for item in features for f in item.split(",") if f.strip()]
    request.state.metric_target = target_of(store, refs)
    # Keys declared as strings are read from CSV as text, so that '007' stays '007'.
    key_types = _key_types(store)
    text_keys = {k for k, t in key_types.items() if t is ValueType.STRING}
    table = read_spine_file(
        spine.file.read(), filename=spine.filename, content_type=spine.content_type, string_columns=text_keys
    )
    check_spine_rows(table, store.config.datamart.max_spine_rows, "uploaded spine")
    table = prepare_spine(table, timestamp_column, key_types, "uploaded spine")
    result = store.get_training_set(
        table,
        _refs(refs),
        timestamp_column=timestamp_column,
        full_feature_names=full_feature_names,
        consumer=who.name,
    )
    return _table_response(result, negotiate_format(format_, accept), "training_set")


@router.get(
    "/reference-data/{view}",
    tags=["reads"],
    response_model=TableData,
    responses=TABLE_RESPONSES,
    summary="Every entity's values of a feature view as of a time",
)
@measured("reference_data")
def get_reference_data(
    request: Request,
    view: str,
    store: StoreDep,
    who: ReferenceDataReader,
    as_of: Annotated[
        str,
        Query(
            max_length=100,
            description="ISO 8601 time with its offset, e.g. 2024-03-01T12:00:00Z or 2024-03-01T13:00:00+01:00, "
            "or a date (that day from 00:00 UTC). A time without an offset is refused.",
            examples=["2024-03-01T12:00:00Z"],
        ),
    ],
    features: Annotated[
        list[str] | None,
        Query(max_length=1000, description="Features of the view (comma separated or repeated); default all."),
    ] = None,
    include_expired: Annotated[bool, Query(description="Keep rows older than the view's TTL.")] = False,
    _consumer: ConsumerDep = DEFAULT_CONSUMER,
    format_: FormatQuery = None,
    accept: AcceptHeader = None,
) -> Response:
    """For analysts: per entity, the latest row at or before ``as_of`` (within TTL unless
    ``include_expired``), read from the offline store."""
    names = [f.strip() for item in features or () for f in item.split(",") if f.strip()] or None
    request.state.metric_target = view if view in store.feature_views() else UNKNOWN_TARGET
    when = parse_time(as_of, "The as_of parameter")
    table = store.get_reference_data(view, when, features=names, include_expired=include_expired, consumer=who.name)
    return _table_response(table, negotiate_format(format_, accept), f"{view}_reference")
