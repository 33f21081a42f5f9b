"""The registry UI's Alerts page: open and recently cleared incidents with links to their views,
linked from the navigation for those who may read it; a view's page shows its open incident."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

from fastapi.testclient import TestClient

from featurestore.auth import Authenticator
from featurestore.config import AuthConfig
from featurestore.store import FeatureStore
from registry_ui import create_app


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_alerts_page_lists_open_and_cleared_incidents_and_the_view_page_its_open_one(
    ui: TestClient, tiny_store: FeatureStore
) -> None:
    empty = ui.get("/alerts")
    assert empty.status_code == 200
    assert "No open incident." in text(empty.text)
    assert 'href="/alerts"' in empty.text  # in the navigation

    registry, project = tiny_store.registry, tiny_store.project
    at = datetime(2024, 3, 3, 12, tzinfo=UTC)
    stale = registry.open_incident(
        project,
        "customer_stats",
        "stale",
        at=at,
        detail={"summary": "Feature view 'customer_stats' is stale: 3:00:00 old."},
        channels=["ops-hook"],
    )
    assert stale is not None
    registry.record_delivery(stale.id, "opened", "ops-hook", status="failed", at=at, error="webhook http://h/…: 500")
    failed = registry.open_incident(
        project, "customer_flags", "run_failed", at=at, detail={"summary": "The run was given up."}, channels=[]
    )
    assert failed is not None
    registry.clear_incident(failed.id, at=at.replace(hour=13), detail={"summary": "It ran again."}, channels=[])

    html = ui.get("/alerts").text
    open_part, cleared_part = html.split('id="recent"')
    assert 'href="/views/customer_stats"' in open_part and "3:00:00 old" in text(open_part)
    assert "ops-hook · opened · failed" in text(open_part) and "webhook http://h/…: 500" in text(open_part)
    assert 'href="/views/customer_flags"' in cleared_part and "It ran again." in text(cleared_part)
    assert "<script" not in html
    only = ui.get("/alerts", params={"view": "customer_flags"}).text
    assert "customer_stats" not in only.split('id="open"')[1].split("</select>")[-1]

    view = text(ui.get("/views/customer_stats").text)
    assert f"Open alert #{stale.id}" in view and "3:00:00 old" in view
    assert "Open alert" not in text(ui.get("/views/customer_flags").text)


def test_the_alerts_page_needs_the_statistics_permission(tiny_store: FeatureStore) -> None:
    registry, project = tiny_store.registry, tiny_store.project
    tokens = {role: registry.create_token(project, role, role, actor="test")[1] for role in ("scientist", "analyst")}
    auth = Authenticator(AuthConfig(enabled=True, cache_seconds=0), registry, project)
    with TestClient(create_app(tiny_store, auth=auth)) as client:
        scientist = {"Authorization": f"Bearer {tokens['scientist']}"}
        analyst = {"Authorization": f"Bearer {tokens['analyst']}"}
        assert client.get("/alerts", headers=scientist).status_code == 200
        assert 'href="/alerts"' in client.get("/", headers=scientist).text
        assert client.get("/alerts", headers=analyst).status_code == 403
        assert 'href="/alerts"' not in client.get("/", headers=analyst).text
