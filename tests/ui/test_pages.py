"""The registry UI's pages, rendered in process (FastAPI TestClient, no browser): what they show,
their empty states, their shareable GET URLs and that they need no JavaScript."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_projects import write_tiny_project

from datamart.app import create_app as create_datamart_app
from featurestore.cli import cli
from featurestore.registry import UsageEvent
from featurestore.store import FeatureStore
from registry_ui import create_app


def links(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html))


def text(html: str) -> str:
    """The page's text, tags removed and spaces collapsed, for assertions on what a person reads."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_no_page_needs_javascript(ui: TestClient) -> None:
    for path in ("/", "/?q=spend", "/views/customer_stats", "/lineage", "/usage", "/services/churn"):
        response = ui.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<script" not in response.text, path
        assert '<html lang="en">' in response.text
        assert '<a class="skip" href="#main">' in response.text


# ---------------------------------------------------------------------------------------- search


def test_search_finds_a_feature_by_a_word_of_its_description(ui: TestClient) -> None:
    html = ui.get("/", params={"q": "previous day"}).text
    names = re.findall(r'data-name="([^"]+)"', html)
    assert names[:2] == ["customer_stats:spend_1d", "customer_stats:txn_count_1d"]
    assert 'href="/views/customer_stats#feature-spend_1d"' in html
    assert "matched description" in text(html)


def test_search_is_a_get_form_with_shareable_urls_for_tags_and_owners(ui: TestClient) -> None:
    html = ui.get("/").text
    form = re.search(r'<form class="filters"[^>]*>', html)
    assert form and 'method="get"' in form.group(0)
    for name in ("q", "tag", "owner", "kind"):
        assert f'name="{name}"' in html
        assert f'<label for="{name}"' in html
    assert "/?tag=spend" in links(html)
    assert "/?owner=risk%40example.com" in links(html)
    # The shared URL gives the same filtered results.
    spend = ui.get("/?tag=spend").text
    assert re.findall(r'data-name="([^"]+)"', spend) == ["customer_stats:spend_1d"]
    assert '<option value="spend" selected>' in spend
    crm = ui.get("/", params={"owner": "crm@example.com", "kind": "feature_view"}).text
    assert re.findall(r'data-name="([^"]+)"', crm) == ["customer_flags"]


def test_search_by_entity_and_without_query_lists_the_whole_catalog(ui: TestClient) -> None:
    everything = re.findall(r'data-kind="([^"]+)"', ui.get("/").text)
    assert everything.count("feature_view") == 2 and everything.count("feature") == 3
    assert everything.count("feature_service") == 1 and everything.count("entity") == 1
    by_entity = re.findall(r'data-name="([^"]+)"', ui.get("/", params={"q": "customer", "kind": "feature"}).text)
    assert set(by_entity) == {"customer_stats:spend_1d", "customer_stats:txn_count_1d", "customer_flags:big_spender"}


def test_search_ranks_the_more_read_of_equally_relevant_features_first(
    ui: TestClient, tiny_store: FeatureStore
) -> None:
    before = re.findall(r'data-name="([^"]+)"', ui.get("/", params={"q": "customer_stats"}).text)
    assert before[0] == "customer_stats"  # exact name first
    tiny_store.registry.record_usage(
        "shop", [UsageEvent("m", "online", "customer_stats", "txn_count_1d", rows=1, reads=50)]
    )
    after = re.findall(r'data-name="([^"]+)"', ui.get("/", params={"q": "customer_stats"}).text)
    assert after[:3] == ["customer_stats", "customer_stats:txn_count_1d", "customer_stats:spend_1d"]
    assert "50 reads in 30 d" in text(ui.get("/", params={"q": "txn_count"}).text)


def test_search_with_no_match_says_what_to_do_next(ui: TestClient) -> None:
    page = text(ui.get("/", params={"q": "zebra crossings"}).text)
    assert "Nothing matches “zebra crossings”" in page
    assert "featurestore apply" in page


def test_empty_registry_says_how_to_fill_it(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / "featurestore.yaml").write_text("project: empty\n")
    with FeatureStore(root) as store, TestClient(create_app(store)) as client:
        page = text(client.get("/").text)
        assert "The registry holds no definitions for project empty yet." in page
        assert "featurestore apply" in page
        lineage = text(client.get("/lineage").text)
        assert "No lineage yet." in lineage
        usage = text(client.get("/usage").text)
        assert "No reads recorded in the last 30 days." in usage
        assert "X-Consumer" in usage


# ------------------------------------------------------------------------------------ view pages


def test_view_page_shows_schema_source_versions_and_last_run(ui: TestClient) -> None:
    html = ui.get("/views/customer_stats").text
    page = text(html)
    assert "Daily card activity per customer, known at midnight" in page
    assert 'id="feature-spend_1d"' in html and "Card spend during the previous day" in page
    assert "float64" in page and "int64" in page
    assert "join key of entity customer" in page
    assert "3650 days" in page  # the TTL
    assert "sum(amount) AS spend_1d" in html  # the transformation text
    assert 'href="/sources/transactions"' in html
    assert "created" in page  # version 1
    # Freshness: the newest event time and the last successful run, in UTC with their age.
    newest = text(re.search(r'<div class="card" id="newest-event">.*?</div>', html, re.S).group(0))  # type: ignore[union-attr]
    assert "2024-03-03 00:00:00 UTC" in newest and "d ago)" in newest
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">', html)
    runs = re.search(r'<table id="runs-table">.*?</table>', html, re.S).group(0)  # type: ignore[union-attr]
    assert "succeeded" in runs and "all data" in runs
    # Where the rows live: the stores' settings (files resolved in the project) and the view's table.
    assert "fv_customer_stats" in page and "customer_stats" in page
    assert "online.db" in page and "offline" in page
    assert 'href="/services/churn"' in html


def test_view_page_without_runs_says_how_to_run_it(ui: TestClient) -> None:
    page = text(ui.get("/views/customer_flags").text)
    assert "No runs yet. Compute and publish this view: featurestore run customer_flags" in page
    assert "No statistics yet." in page
    assert "No quality results yet." in page
    assert "Nobody has read this view in the last 30 days." in page


def test_unknown_view_is_a_404_with_a_suggestion(ui: TestClient) -> None:
    response = ui.get("/views/customer_stat")
    assert response.status_code == 404
    assert "not found in project 'shop'. Did you mean 'customer_stats'" in text(response.text)
    assert 'href="/views/customer_stats"' in response.text
    assert 'href="/?q=customer_stat"' in response.text


def _statistics(mean: float, nulls: float) -> dict[str, Any]:
    return {
        "spend_1d": {
            "count": 3,
            "null_fraction": nulls,
            "min": 7.0,
            "max": 100.0,
            "mean": mean,
            "stddev": 40.0,
            "distinct": 3,
            "histogram": {"edges": [0.0, 25.0, 50.0, 75.0, 100.0], "counts": [2, 0, 0, 1]},
            "psi": 0.01,
            "drift": False,
        }
    }


def test_view_page_shows_quality_results_and_statistics_with_charts(ui: TestClient, tiny_store: FeatureStore) -> None:
    registry = tiny_store.registry
    (run,) = registry.list_runs("shop", "customer_stats")
    registry.record_run_quality(run.id, {"status": "passed", "results": []}, _statistics(39.0, 0.0))
    # A second run, so that the trends have two points; its gate warned.
    second = registry.start_run("shop", "customer_stats", engine="local", window_start=None, window_end=None)
    registry.finish_run(second, status="succeeded", rows_offline=3, rows_online=2)
    warned = {
        "view": "customer_stats",
        "status": "warned",
        "rows": 3,
        "results": [
            {
                "expectation": "spend_1d between 0 and 50",
                "kind": "between",
                "severity": "warn",
                "spec": {},
                "success": False,
                "rows_checked": 3,
                "failed_rows": 1,
                "failed_fraction": 1 / 3,
                "observed": None,
                "examples": [{"customer_id": 2, "spend_1d": 100.0}],
                "error": None,
            }
        ],
    }
    registry.record_run_quality(second, warned, _statistics(41.0, 0.25))

    html = ui.get("/views/customer_stats").text
    page = text(html)
    stats = re.search(r'<section class="feature-stats" id="stats-spend_1d">.*?</section>', html, re.S)
    assert stats, page
    assert stats.group(0).count('class="chart" role="img"') >= 3
    assert "Distribution in the latest run" in stats.group(0)
    assert "Mean over runs" in stats.group(0) and "Null fraction over runs" in stats.group(0)
    assert "0 to 25: 2" in stats.group(0)  # a histogram bar's tooltip
    assert "latest 41" in stats.group(0)  # the trend ends at the newest run's mean
    assert "25.0 %" in page  # the newest null fraction, in the schema table
    # Quality: the newest results, and each run's verdict in the run history.
    results = text(re.search(r'<table id="quality-results">.*?</table>', html, re.S).group(0))  # type: ignore[union-attr]
    assert "spend_1d between 0 and 50 warn warned 3 1 (33.33 %)" in results
    runs = text(re.search(r'<table id="runs-table">.*?</table>', html, re.S).group(0))  # type: ignore[union-attr]
    assert "passed" in runs and "warned" in runs


# ---------------------------------------------------------------------------------------- lineage


def test_lineage_draws_every_kind_and_shows_a_model_once_registered(ui: TestClient, tiny_store: FeatureStore) -> None:
    before = ui.get("/lineage").text
    assert "No model consumes a feature service yet." in text(before)
    assert "featurestore register-model MODEL --feature-service churn" in text(before)
    tiny_store.register_model("churn_model", "churn", "Predicts churn")
    html = ui.get("/lineage").text
    assert "No model consumes" not in html
    nodes = re.findall(r'data-kind="([a-z_]+)" data-name="([^"]+)"', html)
    assert set(nodes) == {
        ("source", "transactions"),
        ("source", "big_spenders"),
        ("feature_view", "customer_stats"),
        ("feature_view", "customer_flags"),
        ("feature_service", "churn"),
        ("model", "churn_model"),
    }
    assert 'href="/models/churn_model"' in html  # a node is a link to its page
    assert "/lineage?focus=model%3Achurn_model" in links(html)
    model = text(ui.get("/models/churn_model").text)
    assert "Predicts churn" in model and "customer_stats:spend_1d" in model


def test_lineage_focus_keeps_only_what_is_upstream_and_downstream(ui: TestClient) -> None:
    html = ui.get("/lineage", params={"focus": "feature_view:customer_flags"}).text
    nodes = set(re.findall(r'data-kind="([a-z_]+)" data-name="([^"]+)"', html))
    assert nodes == {("source", "transactions"), ("source", "big_spenders"), ("feature_view", "customer_flags")}
    assert '<option value="feature_view:customer_flags" selected>' in html
    assert '<option value="feature_service:churn">' in html  # the whole graph stays selectable
    missing = ui.get("/lineage", params={"focus": "feature_view:nope"})
    assert missing.status_code == 404
    assert "Nothing called “feature_view:nope” is in the lineage." in text(missing.text)


def test_source_entity_and_service_pages(ui: TestClient) -> None:
    source = text(ui.get("/sources/big_spenders").text)
    assert "amount >= 50" in source and "Built from transactions" in source
    entity = text(ui.get("/entities/customer").text)
    assert "A card holder" in entity and "customer_stats" in entity and "customer_flags" in entity
    service = text(ui.get("/services/churn").text)
    assert "customer_stats:spend_1d" in service
    assert "No model is registered as a consumer of churn." in service
    assert ui.get("/entities/nobody").status_code == 404


# ---------------------------------------------------------------------------------------- usage


def test_usage_page_shows_readers_top_features_reads_per_day_and_unread_features(
    ui: TestClient, tiny_store: FeatureStore
) -> None:
    tiny_store.get_online_features(["customer_stats:spend_1d"], {"customer_id": [1, 2]}, consumer="churn-model")
    tiny_store.get_online_features(["customer_stats:spend_1d"], {"customer_id": [1]}, consumer="churn-model")
    tiny_store.registry.record_usage(  # a read by a notebook 10 days ago
        "shop",
        [
            UsageEvent(
                "notebook",
                "training",
                "customer_stats",
                "txn_count_1d",
                rows=3,
                at=datetime.now(UTC) - timedelta(days=10),
            )
        ],
    )
    html = ui.get("/usage").text  # the page flushes the store's buffered usage first
    page = text(html)
    top = text(re.search(r'<table id="top-features">.*?</table>', html, re.S).group(0))  # type: ignore[union-attr]
    assert top.index("customer_stats:spend_1d") < top.index("customer_stats:txn_count_1d")
    assert "customer_stats:spend_1d 2" in top  # two reads
    readers = text(re.search(r'<table id="readers-table">.*?</table>', html, re.S).group(0))  # type: ignore[union-attr]
    assert "churn-model online 2 3" in readers  # 2 reads, 3 rows
    assert "notebook training 1 3" in readers
    assert "3 feature reads in the last 30 days" in page
    assert "Features nobody has read in 30 days" in page
    unread = text(re.search(r'<table id="unread-table">.*?</table>', html, re.S).group(0))  # type: ignore[union-attr]
    assert "customer_flags:big_spender never" in unread
    assert "spend_1d" not in unread
    # 7 days: the notebook's read is older, so txn_count_1d counts as unread, with its last read.
    week = ui.get("/usage", params={"days": 7}).text
    unread = text(re.search(r'<table id="unread-table">.*?</table>', week, re.S).group(0))  # type: ignore[union-attr]
    assert "customer_stats:txn_count_1d" in unread and "d ago" in unread
    assert "notebook" not in text(re.search(r'<table id="readers-table">.*?</table>', week, re.S).group(0))  # type: ignore[union-attr]
    # The filters are a GET form: a consumer's reads have their own URL.
    mine = ui.get("/usage", params={"consumer": "notebook", "days": 30}).text
    assert '<option value="notebook" selected>' in mine
    assert "1 feature reads" in text(mine) or "1 feature read" in text(mine)
    # One bar per day of the period.
    chart = re.search(r'<svg[^>]*class="chart"[^>]*>.*?</svg>', html, re.S).group(0)  # type: ignore[union-attr]
    assert chart.count("<rect") == 30


def test_an_invalid_address_is_explained_on_a_page(ui: TestClient) -> None:
    response = ui.get("/usage", params={"days": "lots"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "This address is not valid" in response.text and "days" in response.text


# ------------------------------------------------------------------------------- serving it


def test_the_datamart_serves_the_ui_under_ui(tiny_store: FeatureStore) -> None:
    with TestClient(create_datamart_app(tiny_store)) as client:
        html = client.get("/ui/").text
        assert "Feature catalog" in html
        assert "/ui/views/customer_stats" in links(html)
        assert "/ui/static/style.css" in links(html)
        assert client.get("/ui/static/style.css").status_code == 200
        assert client.get("/ui/lineage").status_code == 200
        assert client.get("/v1/health").json()["project"] == "shop"


def test_featurestore_ui_command_is_listed_with_its_options() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0, result.output
    assert "--port" in result.output and "8080" in result.output and "127.0.0.1" in result.output


def test_the_app_from_env_needs_the_project_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from featurestore.errors import ConfigError
    from registry_ui import create_app_from_env

    monkeypatch.delenv("FEATURESTORE_PROJECT_DIR", raising=False)
    with pytest.raises(ConfigError, match="featurestore -C <project dir> ui"):
        create_app_from_env()
    project = write_tiny_project(tmp_path / "shop", run=False)
    monkeypatch.setenv("FEATURESTORE_PROJECT_DIR", str(project))
    with TestClient(create_app_from_env()) as client:
        assert client.get("/healthz").text == "ok shop"


def test_a_views_schedule_and_freshness_show_on_its_page_and_in_the_api(tiny_store: FeatureStore) -> None:
    import dataclasses

    from ui_projects import tiny_definitions

    from etl.local import LocalEngine
    from featurestore.definitions import FeatureView

    objects = [
        dataclasses.replace(o, schedule="30 6 * * *", freshness=timedelta(days=1))
        if isinstance(o, FeatureView) and o.name == "customer_stats"
        else o
        for o in tiny_definitions()
    ]
    tiny_store.apply(objects, schema_resolver=LocalEngine(tiny_store).infer_schema)
    with TestClient(create_app(tiny_store)) as ui:
        page = text(ui.get("/views/customer_stats").text)
    assert "Schedule 30 6 * * * (UTC; next due" in page, page
    assert "Freshness 1 day" in page or "Freshness 1 d" in page, page
    # Its data (March 2024) is far older than a day: stale by its freshness, not only by its TTL.
    assert "stale freshness" in page, page
    with TestClient(create_datamart_app(tiny_store)) as api:
        body = api.get("/v1/feature-views/customer_stats").json()
    assert body["schedule"] == "30 6 * * *" and body["freshness_seconds"] == 86400
    due = datetime.fromisoformat(body["next_run_at"])
    assert (due.hour, due.minute) == (6, 30) and datetime.now(UTC) < due <= datetime.now(UTC) + timedelta(days=1)
