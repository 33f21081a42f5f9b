"""The datamart's Prometheus metrics: its own requests, counted here, and the registry's figures.

Reads (online lookups, training sets, reference data) are counted in this process, in a
``CollectorRegistry`` of each project the app serves (never the client library's global one, so
that several apps in one process keep apart): requests and their latency by kind, target and
HTTP status class, and the status of every value an online lookup returned. Runs, freshness and
consistency come from the registry, which other processes write, through
:class:`featurestore.metrics.RegistryCollector`. Labels stay few: a target is a feature service,
``views`` (a request naming features of views), the view of a reference-data read, or
``unknown`` (a request refused before it named a known one); never an entity key or a caller.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from itertools import chain
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException

from datamart.errors import http_status
from featurestore.errors import FeatureStoreError
from featurestore.lookup import FeatureStatus
from featurestore.metrics import RegistryCollector
from featurestore.skew import SkewCollector
from featurestore.store import FeatureStore

KIND_ATTRIBUTE = "featurestore_metric_kind"
"""Set by :func:`measured` on an endpoint: the ``kind`` label of its requests."""
TARGET_STATE = "metric_target"
"""``request.state`` attribute an endpoint sets to its request's target (see the module docs)."""
UNKNOWN_TARGET = "unknown"
VIEWS_TARGET = "views"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: online lookups answer in milliseconds, training sets in seconds to minutes."""


class ProjectMetrics:
    """One project's metrics: its request counters and histograms, and its registry's figures,
    in a ``CollectorRegistry`` of its own (what ``/v1/projects/{project}/metrics`` serves)."""

    def __init__(self, store: FeatureStore, *, cache_seconds: float = 5.0) -> None:
        self.project = store.project
        self.registry = CollectorRegistry()
        labels = ("project", "kind", "target", "status")
        self._requests = Counter(
            "featurestore_requests",
            "Requests to the datamart's reads, by kind (online, training_set, reference_data), target and "
            "HTTP status class (2xx, 4xx, 5xx).",
            labels,
            registry=self.registry,
        )
        self._latency = Histogram(
            "featurestore_request_duration_seconds",
            "Time to answer a datamart read (authentication, validation and the store), by kind, target and "
            "HTTP status class.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._values = Counter(
            "featurestore_online_values",
            "Values online lookups returned, by target and status (present, null, missing, expired, invalid).",
            ("project", "target", "status"),
            registry=self.registry,
        )
        self.registry.register(RegistryCollector(store.registry, store.project, cache_seconds=cache_seconds))
        self.registry.register(SkewCollector(store.registry, store.project, cache_seconds=cache_seconds))
        # The label children, looked up once: `labels()` takes a lock and validates on every call.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._value_children: dict[str, list[Any]] = {}  # target → one child per status, made when first seen

    def observe(self, kind: str, target: str, status_code: int, seconds: float) -> None:
        """One request answered: counted, and its latency observed."""
        key = (kind, target, _STATUS_CLASSES.get(status_code // 100, "5xx"))
        children = self._request_children.get(key)
        if children is None:
            labels = (self.project, *key)
            children = self._request_children.setdefault(
                key, (self._requests.labels(*labels), self._latency.labels(*labels))
            )
        children[0].inc()
        children[1].observe(seconds)

    def count_values(self, target: str, statuses: Mapping[str, list[FeatureStatus]]) -> None:
        """The statuses of the values an online lookup returned (feature → one status per entity)."""
        # list.count runs in C and compares by identity first: 100 entities × 10 features in ~30 µs,
        # where collections.Counter, hashing every enum member in Python, took ~70 (bench/metrics_overhead.py).
        # Every status of the lookup in one list first (at C speed): when all are present, as
        # they mostly are, one count says so.
        every = list(chain.from_iterable(statuses.values()))
        present = every.count(_STATUSES[0])
        if present == len(every):
            if present:
                self._value_child(target, 0).inc(present)
            return
        left = len(every)
        for i, status in enumerate(_STATUSES):  # the likeliest first; stops once all are counted
            n = present if i == 0 else every.count(status)
            if n:
                self._value_child(target, i).inc(n)
            left -= n
            if not left:
                break

    def _value_child(self, target: str, i: int) -> Any:
        """The counter of the values of ``target`` with status ``_STATUSES[i]`` (made once)."""
        children = self._value_children.get(target)
        if children is None:
            children = self._value_children.setdefault(target, [None] * len(_STATUSES))
        child = children[i]
        if child is None:
            child = children[i] = self._values.labels(self.project, target, _STATUSES[i].value)
        return child


_STATUSES = (
    FeatureStatus.PRESENT,
    FeatureStatus.MISSING,
    FeatureStatus.NULL,
    FeatureStatus.EXPIRED,
    FeatureStatus.INVALID,
)
"""Every FeatureStatus, the likeliest first (tests/api/test_metrics.py checks none is left out)."""
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def metrics_of(request: Request) -> ProjectMetrics | None:
    """The metrics of the project a request addresses; ``None`` for a project the server does not
    hold (its name must not become a label)."""
    every: Mapping[str, ProjectMetrics] = request.app.state.metrics
    project = request.path_params.get("project")
    if project is None:
        default: ProjectMetrics = request.app.state.default_metrics
        return default
    return every.get(project)


def target_of(store: FeatureStore, features: object) -> str:
    """A read's ``target`` label: the feature service it names, ``views`` for features of views,
    ``unknown`` for a single name that is neither a service nor a view. Reads the store's
    cached definitions (from the registry when stale): call it off the event loop."""
    if isinstance(features, list) and len(features) == 1:
        features = features[0]
    if isinstance(features, str) and ":" not in features:
        if features in store.feature_services():
            return features
        if features not in store.feature_views():
            return UNKNOWN_TARGET  # a name the caller made up: never a label
    return VIEWS_TARGET


def measured(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks an endpoint whose requests :class:`MeasuredRoute` counts and times as ``kind``."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, KIND_ATTRIBUTE, kind)
        return endpoint

    return mark


class MeasuredRoute(APIRoute):
    """A route whose requests are counted and timed when its endpoint is :func:`measured`:
    everything FastAPI does for it (authentication and validation in dependencies included), so
    a refused request is counted with its status too. The endpoint names its target in
    ``request.state`` once it knows it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        kind: str | None = getattr(self.endpoint, KIND_ATTRIBUTE, None)
        if kind is None:
            return handler
        if _parses_its_own_request(self):
            # FastAPI's handler would read no body, solve no dependency and pass the returned
            # Response through: calling the endpoint saves its bookkeeping (~25 µs a lookup).
            handler = self.endpoint
        return measure(kind, handler)


def measure(
    kind: str, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """``handler`` counted and timed as a read of ``kind``, refused requests included (what
    :class:`MeasuredRoute` does; also for a route that is no ``APIRoute``)."""

    async def measured_handler(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception as err:
            _observe(request, kind, _status_of(err), started)
            raise
        _observe(request, kind, response.status_code, started)
        return response

    return measured_handler


SELF_PARSING_ATTRIBUTE = "featurestore_parses_its_request"
"""Set (by ``datamart.routes.requires``) on an ``async`` endpoint that takes the ``Request`` alone,
reads and validates its body and headers itself and returns a ``Response``."""


def _parses_its_own_request(route: APIRoute) -> bool:
    """Whether FastAPI's request handler has nothing to do for the route but call its endpoint:
    the endpoint says it parses its own request, and the route adds no dependency or parameter
    (the ``/v1/projects/{project}`` copy of a route declares its path parameter: handled as usual)."""
    d = route.dependant
    return bool(
        getattr(route.endpoint, SELF_PARSING_ATTRIBUTE, False)
        and d.request_param_name is not None
        and not (d.dependencies or d.path_params or d.query_params or d.header_params or d.cookie_params)
        and not d.body_params
    )


def _observe(request: Request, kind: str, status_code: int, started: float) -> None:
    metrics = metrics_of(request)
    if metrics is not None:
        target = getattr(request.state, TARGET_STATE, UNKNOWN_TARGET)
        metrics.observe(kind, target, status_code, time.perf_counter() - started)


def _status_of(err: Exception) -> int:
    """The status the app's exception handlers (datamart.app) will answer ``err`` with."""
    if isinstance(err, FeatureStoreError):
        return http_status(err)
    if isinstance(err, RequestValidationError):
        return 422  # or 400 for unreadable JSON: the same class
    if isinstance(err, HTTPException):
        return err.status_code
    return 500
