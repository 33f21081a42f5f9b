"""The registry UI's training datasets: a list linked from the navigation, a page per dataset
with what it read (views' versions and watermarks, the runs whose files it read), datasets in
the lineage graph, and an unknown name answered with a 404 suggesting near ones."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

from fastapi.testclient import TestClient

from featurestore.auth import Authenticator
from featurestore.config import AuthConfig
from featurestore.store import FeatureStore
from registry_ui import create_app

SPINE = {
    "customer_id": [1, 2, 1],
    "event_timestamp": [datetime(2024, 3, d, h, tzinfo=UTC) for d, h in ((2, 12), (3, 0), (4, 0))],
}


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_datasets_list_and_a_datasets_page_show_what_it_read(ui: TestClient, tiny_store: FeatureStore) -> None:
    empty = ui.get("/datasets")
    assert empty.status_code == 200
    assert 'href="/datasets" aria-current="page"' in empty.text  # in the navigation, current
    assert "No training dataset saved yet." in text(empty.text)

    saved = tiny_store.create_training_dataset(
        "churn_march", SPINE, "churn", actor="ana@example", description="Churn labels of March"
    )
    (run,) = tiny_store.registry.list_runs(tiny_store.project, "customer_stats")

    listing = ui.get("/datasets").text
    assert 'href="/datasets/churn_march"' in listing
    row = text(listing)
    assert "churn_march Churn labels of March churn customer_stats v1 3 ana@example" in row

    page = ui.get("/datasets/churn_march")
    assert page.status_code == 200
    shown = text(page.text)
    assert "Saved by ana@example" in shown
    assert "feature service churn" in shown and 'href="/services/churn"' in page.text
    assert saved.record.rows_sha256 in shown and saved.record.spine_sha256 in shown
    assert "customer_stats:spend_1d" in shown and "customer_stats:txn_count_1d" in shown
    assert re.search(r"customer_stats 1 1 2024-03-03", shown)  # version then and now, watermark then
    assert f"customer_stats {run.id} local everything" in shown
    assert 'store.get_training_dataset("churn_march")' in page.text.replace("&#34;", '"')
    assert 'href="/lineage?focus=training_dataset%3Achurn_march"' in page.text

    lineage = ui.get("/lineage", params={"focus": "training_dataset:churn_march"}).text
    nodes = set(re.findall(r'data-kind="([a-z_]+)" data-name="([^"]+)"', lineage))
    assert nodes == {
        ("source", "transactions"),
        ("feature_view", "customer_stats"),
        ("training_dataset", "churn_march"),
    }
    assert 'href="/datasets/churn_march"' in lineage


def test_an_unknown_dataset_is_a_404_suggesting_near_names(ui: TestClient, tiny_store: FeatureStore) -> None:
    tiny_store.create_training_dataset("churn_march", SPINE, "churn")
    missing = ui.get("/datasets/churn_mrch")
    assert missing.status_code == 404
    assert "Training dataset 'churn_mrch' not found in project 'shop'. Did you mean 'churn_march'?" in text(
        missing.text
    )
    assert 'href="/datasets/churn_march"' in missing.text


def test_the_datasets_pages_need_the_training_sets_permission(tiny_store: FeatureStore) -> None:
    """Shown to whom the API gives datasets (who may build training sets), not to every reader."""
    tiny_store.create_training_dataset("churn_march", SPINE, "churn", actor="ana@example")
    registry, project = tiny_store.registry, tiny_store.project
    tokens = {role: registry.create_token(project, role, role, actor="test")[1] for role in ("scientist", "analyst")}
    auth = Authenticator(AuthConfig(enabled=True, cache_seconds=0), registry, project)
    with TestClient(create_app(tiny_store, auth=auth)) as client:
        scientist = {"Authorization": f"Bearer {tokens['scientist']}"}
        analyst = {"Authorization": f"Bearer {tokens['analyst']}"}
        assert client.get("/datasets/churn_march", headers=scientist).status_code == 200
        assert 'href="/datasets"' in client.get("/", headers=scientist).text
        assert client.get("/datasets", headers=analyst).status_code == 403
        assert client.get("/datasets/churn_march", headers=analyst).status_code == 403
        assert 'href="/datasets"' not in client.get("/", headers=analyst).text
