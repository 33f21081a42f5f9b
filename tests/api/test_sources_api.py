"""Source probes and previews through the API (``datamart/routes/sources.py``), on a copy of the
shop project (the probes these tests record must not reach the other modules' registry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from datamart.app import create_app
from featurestore.store import FeatureStore
from tests.unit.tiny_projects import tree_snapshot


@pytest.fixture(scope="module")
def own(own_project_dir: Path) -> Iterator[tuple[TestClient, FeatureStore]]:
    with FeatureStore(own_project_dir) as store, TestClient(create_app(store)) as client:
        yield client, store


def test_a_source_is_probed_then_its_latest_probe_is_read(own: Any) -> None:
    client, store = own
    never = client.get("/v1/sources/customers/probe")
    assert never.status_code == 404, never.text
    assert "never probed" in never.json()["message"]
    probed = client.post("/v1/sources/transactions/probe")
    assert probed.status_code == 200, probed.text
    body = probed.json()
    assert (body["status"], body["row_count"], body["files"]) == ("ok", 4, 1)
    assert (body["time_min"], body["time_max"]) == ("2024-03-01T08:00:00+00:00", "2024-03-02T09:00:00+00:00")
    assert [c["name"] for c in body["columns"]] == ["customer_id", "ts", "amount"]
    assert len(body["sample"]) == store.config.quality.probe_sample_rows - 1  # the file holds 4 rows
    assert client.get("/v1/sources/transactions/probe").json() == body
    unknown = client.get("/v1/sources/transaction/probe")
    assert unknown.status_code == 404 and "transactions" in unknown.json()["message"]


def test_a_preview_computes_the_full_runs_rows_of_its_entities_and_publishes_nothing(own: Any) -> None:
    client, store = own
    view = store.get_feature_view("customer_stats")
    before = (tree_snapshot(store.config.resolve("data/offline")), store.registry.list_runs(store.project))
    response = client.post("/v1/feature-views/customer_stats/preview", json={"entities": ["1"], "rows": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (tree_snapshot(store.config.resolve("data/offline")), store.registry.list_runs(store.project)) == before
    assert body["published"] is False and body["entities"] == [{"customer_id": 1}]
    full = store.offline_store.read(view).to_pylist()
    ones = sorted((r["as_of"].isoformat(), r["spend_1d"], r["txn_count_1d"]) for r in full if r["customer_id"] == 1)
    assert [(r["as_of"], r["spend_1d"], r["txn_count_1d"]) for r in body["first_rows"]] == ones
    assert [s["name"] for s in body["steps"]][-3:] == ["transformation", "quality gate", "statistics"]
    sampled = client.post("/v1/feature-views/customer_stats/preview", json={"sample": 1})
    assert sampled.status_code == 200 and len(sampled.json()["entities"]) == 1
    both = client.post("/v1/feature-views/customer_stats/preview", json={"sample": 1, "entities": ["1"]})
    assert both.status_code == 422 and "not both" in both.json()["message"]
    naive = client.post("/v1/feature-views/customer_stats/preview", json={"start": "2024-03-01T00:00:00"})
    assert naive.status_code == 422, naive.text
    unknown = client.post("/v1/feature-views/customer_stat/preview", json={})
    assert unknown.status_code == 404 and "customer_stats" in unknown.json()["message"]


def test_a_preview_window_out_of_range_or_reversed_is_refused(own: Any) -> None:
    client, _ = own
    url = "/v1/feature-views/customer_stats/preview"
    reversed_window = client.post(url, json={"start": "2024-03-03T00:00:00Z", "end": "2024-03-01T00:00:00Z"})
    assert reversed_window.status_code == 422 and "not before" in reversed_window.json()["message"]
    ancient = client.post(url, json={"start": "0001-01-01T00:00:00Z"})
    assert ancient.status_code == 422 and "outside the range" in ancient.json()["message"]
