"""``GET /v1/alerts``: the project's alert incidents, filtered by state and view (who may read
them is in test_access.py's matrix)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from datamart.app import create_app
from featurestore.store import FeatureStore
from tests.api.conftest import TestClient


def test_alerts_lists_incidents_newest_first_with_their_deliveries(own_project_dir: Path) -> None:
    with FeatureStore(own_project_dir) as store, TestClient(create_app(store)) as client:
        registry, project = store.registry, store.project
        assert client.get("/v1/alerts").json() == []
        at = datetime(2024, 3, 3, 12, tzinfo=UTC)
        stale = registry.open_incident(
            project, "customer_stats", "stale", at=at, detail={"summary": "stale!"}, channels=["hook"]
        )
        assert stale is not None
        registry.record_delivery(stale.id, "opened", "hook", status="retrying", at=at, error="webhook http://h/…: 500")
        failed = registry.open_incident(
            project,
            "customer_profile",
            "run_failed",
            at=at.replace(hour=13),
            detail={"summary": "gave up"},
            channels=[],
        )
        assert failed is not None
        assert registry.clear_incident(failed.id, at=at.replace(hour=14), detail={"summary": "ok"}, channels=[])

        every = client.get("/v1/alerts").json()
        assert [(i["id"], i["kind"], i["open"]) for i in every] == [
            (failed.id, "run_failed", False),
            (stale.id, "stale", True),
        ]
        assert every[1]["deliveries"] == [
            {
                "channel": "hook",
                "message": "opened",
                "status": "retrying",
                "attempts": 1,
                "last_attempt_at": "2024-03-03T12:00:00Z",
                "error": "webhook http://h/…: 500",
            }
        ]
        assert every[0]["cleared_detail"] == {"summary": "ok"} and every[0]["cleared_at"] == "2024-03-03T14:00:00Z"
        assert [i["id"] for i in client.get("/v1/alerts", params={"open": "true"}).json()] == [stale.id]
        assert [i["id"] for i in client.get("/v1/alerts", params={"view": "customer_profile"}).json()] == [failed.id]
        # Under /v1/projects/{project} too.
        assert len(client.get(f"/v1/projects/{project}/alerts").json()) == 2

        unknown = client.get("/v1/alerts", params={"view": "customer_stat"})
        assert unknown.status_code == 404
        assert "customer_stats" in unknown.json()["message"]
