"""``/metrics``: reads counted by the datamart, runs, freshness and consistency read from the
registry, in the Prometheus text format, parsed here by the Prometheus client's own parser."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from datamart.app import create_app
from datamart.metrics import _STATUSES, ProjectMetrics
from etl.local import LocalEngine
from featurestore import FeatureView
from featurestore.config import AuthConfig
from featurestore.errors import RunError
from featurestore.lookup import FeatureStatus
from featurestore.metrics import RUN_DURATION_BUCKETS, RegistryCollector
from featurestore.registry.records import RunTotals
from featurestore.registry.runs import _run_totals_in_python
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from tests.api.conftest import TestClient, build_project, definitions

ROLES = ("admin", "engineer", "scientist", "analyst", "service")
GRAFANA_DASHBOARD = Path(__file__).parents[2] / "infra" / "grafana" / "featurestore.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset({"project": "shop", **labels}.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, FeatureStore, dict[str, str]]]:
    root = build_project(tmp_path_factory.mktemp("metrics"))
    with FeatureStore(root, definitions_ttl=0) as store:
        # customer_stats declares a freshness (which makes no new version).
        objects = [
            dataclasses.replace(o, freshness=timedelta(hours=2))
            if isinstance(o, FeatureView) and o.name == "customer_stats"
            else o
            for o in definitions()
        ]
        store.apply(objects, schema_resolver=LocalEngine(store).infer_schema)
        store.register_model("churn_model", "churn")
        tokens = {
            role: store.registry.create_token(
                store.project, f"{role}-1", role, actor="test", models=("churn_model",) if role == "service" else ()
            )[1]
            for role in ROLES
        }
        with TestClient(create_app(store, auth=AuthConfig(enabled=True, cache_seconds=0))) as client:
            yield client, store, tokens


def _views() -> dict[str, FeatureView]:
    return {v.name: v for v in validate_project(definitions()).feature_views}


def _as(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[role]}"}


def _lookup(client: TestClient, headers: dict[str, str], features: list[str], keys: list[int]) -> int:
    body = {"features": features, "entities": {"customer_id": keys}}
    return client.post("/v1/online-features", json=body, headers=headers).status_code


def test_reads_runs_and_checks_are_counted_and_parsed_by_prometheus(served: Any) -> None:
    client, store, tokens = served
    service, admin = _as(tokens, "service"), _as(tokens, "admin")
    # Online: customers 1 and 2 have card activity, 3 only a profile (churn: 2 + 1 features).
    assert _lookup(client, service, ["churn"], [1, 2, 3]) == 200
    assert _lookup(client, service, ["churn"], [1, 2, 3]) == 200
    assert _lookup(client, admin, ["customer_balance:balance"], [1, 2]) == 200  # long expired
    assert _lookup(client, service, ["customer_balance"], [1]) == 403  # not its model's service
    assert _lookup(client, admin, ["no_such_service"], [1]) == 404
    assert client.post("/v1/online-features", json={"features": ["churn"]}, headers=admin).status_code == 422
    # Training sets and reference data.
    spine = {"customer_id": [1, 2], "ts": ["2024-03-02T12:00:00Z", "2024-03-03T12:00:00Z"]}
    body = {"spine": spine, "features": ["churn"], "timestamp_column": "ts"}
    assert client.post("/v1/training-set", json=body, headers=_as(tokens, "scientist")).status_code == 200
    upload = client.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.csv", b"customer_id,ts\n1,2024-03-02T12:00:00Z\n", "text/csv")},
        data={"features": "customer_stats:spend_1d", "timestamp_column": "ts"},
        headers=_as(tokens, "scientist"),
    )
    assert upload.status_code == 200
    as_of = {"as_of": "2024-03-03T00:00:00Z"}
    analyst = _as(tokens, "analyst")
    assert client.get("/v1/reference-data/customer_stats", params=as_of, headers=analyst).status_code == 200
    assert client.get("/v1/reference-data/made_up_view", params=as_of, headers=analyst).status_code == 404
    assert client.get("/v1/reference-data/customer_stats", params=as_of).status_code == 401  # no token
    # A second run of one view, a failed one (its SQL is in the definition files, not given), a run
    # still going (recorded by another process), consistency checks.
    LocalEngine(store).run("customer_stats", definitions=_views(), progress=False)
    with pytest.raises(RunError, match="run it from the project's definition files"):
        LocalEngine(store).run("customer_stats", progress=False)
    store.registry.start_run(store.project, "customer_balance", engine="local", window_start=None, window_end=None)
    assert store.check_consistency("customer_stats", sample=None).consistent
    report = store.check_consistency("customer_profile", sample=None).to_dict()
    store.registry.record_consistency(store.project, {**report, "consistent": False, "mismatched": 7, "missing": 1})
    store.registry.record_consistency(store.project, {**report, "consistent": False, "mismatched": 2, "extra": 3})

    response = client.get("/v1/metrics", headers=_as(tokens, "engineer"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(response.text)
    assert {dict(labels)["project"] for _, labels in samples} == {"shop"}  # every series names its project

    requests = "featurestore_requests_total"
    assert _value(samples, requests, kind="online", target="churn", status="2xx") == 2
    assert _value(samples, requests, kind="online", target="views", status="2xx") == 1
    assert _value(samples, requests, kind="online", target="unknown", status="4xx") == 3  # 403, 404, 422
    assert _value(samples, requests, kind="training_set", target="churn", status="2xx") == 1
    assert _value(samples, requests, kind="training_set", target="views", status="2xx") == 1
    assert _value(samples, requests, kind="reference_data", target="customer_stats", status="2xx") == 1
    assert _value(samples, requests, kind="reference_data", target="unknown", status="4xx") == 2  # 404, 401
    latency = "featurestore_request_duration_seconds"
    assert _value(samples, f"{latency}_count", kind="online", target="churn", status="2xx") == 2
    assert _value(samples, f"{latency}_bucket", kind="online", target="churn", status="2xx", le="+Inf") == 2
    assert 0 < _value(samples, f"{latency}_sum", kind="online", target="churn", status="2xx") < 10
    values = "featurestore_online_values_total"
    assert _value(samples, values, target="churn", status="present") == 2 * 7
    assert _value(samples, values, target="churn", status="missing") == 2 * 2
    assert _value(samples, values, target="views", status="expired") == 2
    # No label carries what a caller made up, an entity key or a token's name.
    labels = {v for _, ls in samples for _, v in ls}
    assert not labels & {"no_such_service", "made_up_view", "customer_balance:balance", "service-1", "1"}

    assert _value(samples, "featurestore_registry_up") == 1
    assert _value(samples, "featurestore_runs_total", view="customer_stats", status="succeeded") == 2
    assert _value(samples, "featurestore_runs_total", view="customer_profile", status="succeeded") == 1
    assert _value(samples, "featurestore_runs_total", view="customer_stats", status="failed") == 1
    assert _value(samples, "featurestore_runs_in_progress", view="customer_balance") == 1
    duration = "featurestore_run_duration_seconds"
    assert _value(samples, f"{duration}_count", view="customer_stats", status="succeeded") == 2
    assert _value(samples, f"{duration}_bucket", view="customer_stats", status="succeeded", le="3600.0") == 2
    assert 0 < _value(samples, f"{duration}_sum", view="customer_stats", status="succeeded") < 600
    # customer_stats publishes 3 rows (2 customers) per run: twice.
    assert _value(samples, "featurestore_rows_published_total", view="customer_stats", store="offline") == 6
    assert _value(samples, "featurestore_rows_published_total", view="customer_stats", store="online") == 4
    watermark = store.registry.watermark(store.project, "customer_stats")
    assert watermark is not None
    assert _value(samples, "featurestore_watermark_timestamp_seconds", view="customer_stats") == watermark.timestamp()
    lag = _value(samples, "featurestore_freshness_lag_seconds", view="customer_stats")
    assert lag > 365 * 86400  # the test data is from March 2024
    assert _value(samples, "featurestore_freshness_objective_seconds", view="customer_stats") == 7200
    assert not [
        k
        for k in samples
        if k[0] == "featurestore_freshness_objective_seconds" and ("view", "customer_profile") in k[1]
    ]
    mismatches = "featurestore_consistency_mismatches"
    assert _value(samples, mismatches, view="customer_stats", kind="mismatched") == 0
    assert _value(samples, "featurestore_consistency_checked_entities", view="customer_stats") == 2
    # The last check of a view, not the sum of its checks.
    assert _value(samples, mismatches, view="customer_profile", kind="mismatched") == 2
    assert _value(samples, mismatches, view="customer_profile", kind="missing") == 0
    assert _value(samples, mismatches, view="customer_profile", kind="extra") == 3

    # The same project under its own path.
    by_project = client.get(f"/v1/projects/{store.project}/metrics", headers=admin)
    assert by_project.status_code == 200
    assert _value(_samples(by_project.text), requests, kind="online", target="churn", status="2xx") == 2


@pytest.mark.parametrize("role", ["scientist", "analyst", "service"])
def test_roles_without_the_metrics_permission_are_refused(served: Any, role: str) -> None:
    client, _, tokens = served
    response = client.get("/v1/metrics", headers=_as(tokens, role))
    assert response.status_code == 403, response.text
    assert "metrics:read" in response.json()["message"]
    assert client.get("/v1/metrics").status_code == 401


def test_openmetrics_when_the_scraper_asks_for_it(served: Any) -> None:
    client, _, tokens = served
    headers = {**_as(tokens, "admin"), "Accept": "application/openmetrics-text; version=1.0.0"}
    response = client.get("/v1/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_registry_figures_are_cached_between_scrapes(served: Any) -> None:
    _, store, _ = served

    def runs(collector: RegistryCollector) -> float:
        found = [
            s.value
            for family in collector.collect()
            for s in family.samples
            if s.name == "featurestore_runs_total" and s.labels["view"] == "customer_profile"
            if s.labels["status"] == "succeeded"
        ]
        return found[0]

    cached = RegistryCollector(store.registry, store.project, cache_seconds=3600)
    fresh = RegistryCollector(store.registry, store.project, cache_seconds=0)
    before = runs(cached)
    assert runs(fresh) == before
    LocalEngine(store).run("customer_profile", definitions=_views(), progress=False)
    assert runs(cached) == before  # served from the last read
    assert runs(fresh) == before + 1


def test_an_unreadable_registry_is_a_figure_not_a_failed_scrape(served: Any) -> None:
    _, store, _ = served

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise OSError("the registry's database is down")

    collector = RegistryCollector(Broken(), store.project)  # type: ignore[arg-type]
    families = list(collector.collect())
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("featurestore_registry_up", [0])]


def test_two_apps_in_one_process_keep_their_own_counts(served: Any) -> None:
    _, store, tokens = served
    with TestClient(create_app(store, auth=AuthConfig(enabled=True, cache_seconds=0))) as other:
        samples = _samples(other.get("/v1/metrics", headers=_as(tokens, "admin")).text)
    assert not [k for k in samples if k[0] == "featurestore_requests_total"]


def test_the_grafana_dashboard_is_json_with_a_panel_per_metric_family(served: Any) -> None:
    client, _, tokens = served
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    assert {t["name"] for t in dashboard["templating"]["list"]} >= {"datasource", "project"}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    families = [
        "featurestore_requests_total",
        "featurestore_request_duration_seconds_bucket",
        "featurestore_online_values_total",
        "featurestore_runs_total",
        "featurestore_run_duration_seconds_bucket",
        "featurestore_runs_in_progress",
        "featurestore_rows_published_total",
        "featurestore_freshness_lag_seconds",
        "featurestore_freshness_objective_seconds",
        "featurestore_consistency_mismatches",
        "featurestore_registry_up",
    ]
    for family in families:
        assert any(family in e for e in exprs), f"no panel queries {family}"
    assert all('project=~"$project"' in e for e in exprs)
    # Every name the dashboard queries is one the server exposes (families without samples too).
    exposed = {
        f.name + suffix
        for f in text_string_to_metric_families(client.get("/v1/metrics", headers=_as(tokens, "admin")).text)
        for suffix in ("", "_total", "_bucket", "_sum", "_count")
    }
    queried = {name for e in exprs for name in re.findall(r"featurestore_[a-z_]+", e)}
    assert queried <= exposed, queried - exposed
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # No two panels overlap on Grafana's 24-column grid.
    cells = [
        (p["id"], x, y)
        for p in dashboard["panels"]
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert all(x < 24 for _, x, _ in cells)
    assert len({(x, y) for _, x, y in cells}) == len(cells)


def test_every_value_status_is_counted() -> None:
    assert sorted(_STATUSES) == sorted(FeatureStatus)
    metrics = ProjectMetrics(cast(FeatureStore, SimpleNamespace(project="shop", registry=None)))
    statuses = {"a": list(FeatureStatus) * 2, "b": [FeatureStatus.PRESENT] * 3, "c": []}
    metrics.count_values("views", statuses)
    samples = _samples(generate_latest(metrics.registry).decode())
    for status in FeatureStatus:
        expected = 5 if status is FeatureStatus.PRESENT else 2
        assert _value(samples, "featurestore_online_values_total", target="views", status=status.value) == expected


def test_run_totals_summed_in_sql_match_the_sum_in_python(served: Any) -> None:
    """SQLite and PostgreSQL sum runs in SQL; other databases in Python: both give the same."""
    _, store, _ = served
    in_sql = store.registry.run_totals(store.project, RUN_DURATION_BUCKETS)
    in_python = _run_totals_in_python(store.registry._engine, store.project, RUN_DURATION_BUCKETS)
    assert {(t.view, t.status) for t in in_sql} >= {("customer_stats", "succeeded")}

    def by_key(totals: list[RunTotals]) -> dict[tuple[str, str], RunTotals]:
        return {(t.view, t.status): t for t in totals}

    sql, python = by_key(in_sql), by_key(in_python)
    assert sql.keys() == python.keys()
    for key, t in sql.items():
        other = python[key]
        assert (t.runs, t.buckets, t.rows_offline, t.rows_online) == (
            other.runs,
            other.buckets,
            other.rows_offline,
            other.rows_online,
        )
        assert t.duration_seconds == pytest.approx(other.duration_seconds, abs=1e-6)
