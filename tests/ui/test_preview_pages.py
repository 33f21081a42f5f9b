"""The source page's probe and the view page's "Preview" action (``registry_ui/previews.py``),
rendered in process: what each role sees, and that a preview publishes nothing."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from featurestore.auth import Authenticator
from featurestore.config import AuthConfig
from featurestore.store import FeatureStore
from registry_ui import create_app


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_source_page_shows_its_latest_probe(ui: TestClient, tiny_store: FeatureStore) -> None:
    before = text(ui.get("/sources/transactions").text)
    assert "Never probed: featurestore source check transactions" in before
    (probe,) = tiny_store.check_sources(
        [s for s in tiny_store.registry.list_sources("shop") if s.name == "transactions"]
    )
    page = ui.get("/sources/transactions").text
    shown = text(page)
    assert f"Rows {probe.row_count:,} in 1 file(s)" in shown
    assert 'id="probe-sample"' in page
    assert page.count("<tr>") - 1 == len(probe.sample)  # a header row and one per sampled row
    assert "ok" in shown.split("Status")[1][:20]


def test_the_preview_action_computes_a_sample_and_publishes_nothing(ui: TestClient, tiny_store: FeatureStore) -> None:
    view = ui.get("/views/customer_stats").text
    assert 'id="preview-action"' in view and 'action="/views/customer_stats/preview"' in view
    runs = tiny_store.registry.list_runs("shop")
    files = tiny_store.offline_store.files("customer_stats")
    page = ui.get("/views/customer_stats/preview", params={"sample": 1})
    assert page.status_code == 200, page.text
    shown = text(page.text)
    assert "Preview of customer_stats" in shown and "Nothing was published" in shown
    for step in ("sample entities", "read file source transactions", "transformation", "quality gate"):
        assert step in shown
    assert (tiny_store.registry.list_runs("shop"), tiny_store.offline_store.files("customer_stats")) == (runs, files)
    named = text(ui.get("/views/customer_stats/preview", params={"entities": "1"}).text)
    assert "1 named entity" in named
    assert ui.get("/views/customer_stat/preview").status_code == 404


def test_who_sees_the_probe_and_who_may_preview(tiny_store: FeatureStore) -> None:
    registry, project = tiny_store.registry, tiny_store.project
    tiny_store.check_sources()
    tokens = {r: registry.create_token(project, r, r, actor="test")[1] for r in ("engineer", "scientist", "analyst")}
    auth = Authenticator(AuthConfig(enabled=True, cache_seconds=0), registry, project)
    with TestClient(create_app(tiny_store, auth=auth)) as client:

        def as_role(role: str, path: str) -> tuple[int, str]:
            response = client.get(path, headers={"Authorization": f"Bearer {tokens[role]}"})
            return response.status_code, response.text

        assert 'id="probe"' in as_role("scientist", "/sources/transactions")[1]
        assert 'id="probe"' not in as_role("analyst", "/sources/transactions")[1]
        assert 'id="preview-action"' in as_role("engineer", "/views/customer_stats")[1]
        assert 'id="preview-action"' not in as_role("scientist", "/views/customer_stats")[1]
        assert as_role("engineer", "/views/customer_stats/preview?sample=1")[0] == 200
        status, html = as_role("scientist", "/views/customer_stats/preview?sample=1")
        assert status == 403 and "views:operate" in text(html)
