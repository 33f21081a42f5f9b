"""The online lookup's hot path in the app (``datamart.app.create_app``): the default project's
``POST /v1/online-features`` is a plain route matched before every router, answering as the
documented route does; FastAPI's OpenTelemetry instrumentation is off unless this process has
OpenTelemetry providers when the app is made."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from datamart.app import create_app
from featurestore.store import FeatureStore

BODIES: list[Any] = [
    {"features": ["customer_stats:spend_1d", "customer_profile:segment"], "entities": {"customer_id": [1, 2, 3]}},
    {"features": "churn", "entities": {"customer_id": [2]}, "full_feature_names": True},
    {"features": ["customer_balance:balance"], "entities": {"customer_id": [1]}},  # expired
    {"features": ["customer_stats:spend_1dd"], "entities": {"customer_id": [1]}},  # 404 with suggestions
    {"features": ["customer_stats:spend_1d"], "entities": {"customer_id": [1.5]}},  # 422
    {"features": ["customer_stats:spend_1d"], "entities": {"customer_id": [1]}, "extra": 1},  # 422
    {"features": ["customer_stats:spend_1d"]},  # 422
]


def test_the_default_projects_lookup_is_a_plain_route_matched_first(api: TestClient) -> None:
    routes = api.app.router.routes  # type: ignore[attr-defined]
    at = next(i for i, r in enumerate(routes) if getattr(r, "path", None) == "/v1/online-features")
    plain = routes[at]
    assert type(plain) is Route and plain.methods == {"POST"}
    assert not plain.include_in_schema  # documented by reads.router's route, which serves the same endpoint
    # Only FastAPI's own plain routes (/openapi.json) before it: no router to search first.
    assert all(type(r) is Route for r in routes[:at]), routes[:at]
    assert "/v1/online-features" in api.app.openapi()["paths"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", BODIES)
def test_it_answers_as_the_documented_route(api: TestClient, store: FeatureStore, body: Any) -> None:
    headers = {"X-Consumer": "route-test", "X-Request-ID": "req-42"}
    plain = api.post("/v1/online-features", json=body, headers=headers)
    documented = api.post(f"/v1/projects/{store.project}/online-features", json=body, headers=headers)
    assert (plain.status_code, plain.json()) == (documented.status_code, documented.json())
    assert plain.headers.get("x-request-id") == documented.headers.get("x-request-id")


def test_unreadable_json_and_other_methods(api: TestClient) -> None:
    bad = api.post("/v1/online-features", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidRequestError"
    get = api.get("/v1/online-features")
    assert get.status_code == 405 and get.headers["allow"] == "POST"


def _online_requests(api: TestClient, status: str) -> float:
    """The online lookups counted with this status class, of any target."""
    wanted = ('featurestore_requests_total{kind="online"', f'status="{status}"')
    lines = api.get("/v1/metrics").text.splitlines()
    return sum(float(ln.rpartition(" ")[2]) for ln in lines if ln.startswith(wanted[0]) and wanted[1] in ln)


def test_its_requests_are_counted(api: TestClient) -> None:
    ok, refused = _online_requests(api, "2xx"), _online_requests(api, "4xx")
    api.post("/v1/online-features", json=BODIES[0])
    api.post("/v1/online-features", json=BODIES[4])
    assert (_online_requests(api, "2xx"), _online_requests(api, "4xx")) == (ok + 1, refused + 1)


def test_fastapi_telemetry_is_off_without_providers(store: FeatureStore) -> None:
    from opentelemetry import trace

    asked: list[str] = []
    real = trace.get_tracer_provider

    def counting() -> Any:
        asked.append("tracer")
        return real()

    with TestClient(create_app(store)) as client, pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace, "get_tracer_provider", counting)
        assert client.post("/v1/online-features", json=BODIES[0]).status_code == 200
    assert asked == []  # not asked on every request


def test_fastapi_telemetry_stays_on_with_a_tracer_provider(store: FeatureStore) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace, "get_tracer_provider", lambda: provider)
        with TestClient(create_app(store)) as client:
            assert client.post("/v1/online-features", json=BODIES[0]).status_code == 200
    assert [s.name for s in spans.get_finished_spans() if "online-features" in s.name]


def test_fastapi_telemetry_is_left_to_fastapi_when_asked_to_configure(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datamart.app import _telemetry

    assert _telemetry() == {"tracing": False, "metrics": False, "logs": False}
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert _telemetry() is None


def test_a_fastapi_without_its_own_telemetry_gets_no_telemetry_option(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyproject allows fastapi>=0.115, whose releases before ``fastapi.telemetry`` take no
    ``telemetry=``: the app passes none there, and still serves."""
    import fastapi

    from datamart.app import _telemetry_option

    assert "telemetry" in _telemetry_option()
    monkeypatch.setitem(sys.modules, "fastapi.telemetry", None)  # import fails, as on such a release
    monkeypatch.delattr(fastapi, "telemetry", raising=False)
    assert _telemetry_option() == {}
    made: list[dict[str, Any]] = []
    real = fastapi.FastAPI.__init__

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(fastapi.FastAPI, "__init__", recording)
    with TestClient(create_app(store)) as client:
        assert client.post("/v1/online-features", json=BODIES[0]).status_code == 200
    assert made and all("telemetry" not in kwargs for kwargs in made)
