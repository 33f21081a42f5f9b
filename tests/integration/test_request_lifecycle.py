"""The feature request lifecycle through the datamart API (auth on: a scientist, an analyst and an
engineer, each with a token) and the CLI, delivered by a CLI run, with the ``request.delivered``
message received by a real webhook receiver on 127.0.0.1 (the project's alert channel) and the
notifications read back through the API."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datamart.app import create_app
from featurestore.config import AuthConfig
from featurestore.store import FeatureStore
from tests.integration.test_alerts import WebhookReceiver
from tests.unit.test_cli import applied_and_run, featurestore

with warnings.catch_warnings():
    # Starlette warns on importing its TestClient that it wants httpx2 (see tests/api/conftest.py).
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient

HOOK_TOKEN = "rq-5be0c81f2d"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def shop(tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = applied_and_run(tmp_path / "shop")
    monkeypatch.setenv("HOOK_TOKEN", HOOK_TOKEN)
    with (root / "featurestore.yaml").open("a") as f:
        f.write(
            "\nalerts:\n  channels:\n    - name: team-hook\n      type: webhook\n"
            f"      url: http://127.0.0.1:{webhook.port}/hooks/${{HOOK_TOKEN}}\n"
        )
    return root


@pytest.fixture
def api(shop: Path) -> Iterator[tuple[Any, dict[str, dict[str, str]]]]:
    with FeatureStore(shop, definitions_ttl=0) as store:
        people = {"sam": "scientist", "ana": "analyst", "eve": "engineer"}
        headers = {
            name: {"Authorization": f"Bearer {store.registry.create_token(store.project, name, role, actor='test')[1]}"}
            for name, role in people.items()
        }
        with TestClient(create_app(store, auth=AuthConfig(enabled=True, cache_seconds=0))) as client:
            yield client, headers


NEED = {
    "title": "chargeback ratio",
    "entity": "customer",
    "description": "chargebacks / card payments over the last 90 days",
    "reason": "the fraud model's strongest signal in the pilot",
    "due": "2026-12-31",
    "model": "fraud_gbm",
}


def test_a_request_filed_supported_accepted_linked_is_delivered_by_a_run_and_notified(
    api: Any, shop: Path, webhook: WebhookReceiver
) -> None:
    client, who = api
    filed = client.post("/v1/requests", json=NEED, headers=who["sam"])
    assert filed.status_code == 201, filed.text
    rid = filed.json()["id"]
    assert (filed.json()["status"], filed.json()["requester"]) == ("open", "sam")

    supported = client.post(f"/v1/requests/{rid}/support", json={"comment": "churn needs it too"}, headers=who["ana"])
    assert supported.status_code == 200 and supported.json()["support"] == 1
    twice = client.post(f"/v1/requests/{rid}/support", json={"comment": "again"}, headers=who["ana"])
    assert twice.status_code == 422 and twice.json()["error"] == "DuplicateSupportError"
    assert "already supports" in twice.json()["message"]

    # Scientists and analysts file and vote; only engineers decide.
    for person in ("sam", "ana"):
        refused = client.post(f"/v1/requests/{rid}/accept", json={}, headers=who[person])
        assert refused.status_code == 403 and "accept, decline or link feature requests" in refused.json()["message"]
    accepted = client.post(f"/v1/requests/{rid}/accept", json={"comment": "next sprint"}, headers=who["eve"])
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    again = client.post(f"/v1/requests/{rid}/accept", json={}, headers=who["eve"])
    assert again.status_code == 422 and again.json()["error"] == "RequestStateError"
    assert "accepted already" in again.json()["message"]

    # The engineer links it with the CLI; the API shows it in progress, by support.
    linked = featurestore("-C", shop, "request", "link", str(rid), "--view", "customer_stats", "--feature", "spend_1d")
    assert linked.code == 0, linked.err
    in_progress = client.get("/v1/requests", params={"state": "in_progress", "sort": "support"}, headers=who["sam"])
    assert [(r["id"], r["view"], r["features"]) for r in in_progress.json()] == [(rid, "customer_stats", ["spend_1d"])]
    assert webhook.posts == []
    assert client.get("/v1/requests/notifications", headers=who["sam"]).json() == []

    ran = featurestore("-C", shop, "run", "customer_stats", "--no-progress")
    assert ran.code == 0, ran.err

    shown = client.get(f"/v1/requests/{rid}", headers=who["ana"]).json()
    assert shown["status"] == "delivered" and shown["delivered_run"]
    assert [e["event"] for e in shown["history"]] == ["filed", "supported", "accepted", "linked", "delivered"]
    assert [s["voter"] for s in shown["supporters"]] == ["ana"]
    # The channel received one request.delivered message naming who to notify.
    assert len(webhook.posts) == 1
    post = webhook.posts[0]
    assert post["path"] == f"/hooks/{HOOK_TOKEN}"
    assert post["json"]["event"] == "request.delivered"
    assert (post["json"]["request"], post["json"]["notify"]) == (rid, ["sam", "ana"])
    assert post["json"]["features"] == ["spend_1d"] and post["json"]["run_id"] == shown["delivered_run"]
    # In the UI's notifications: the requester's and the supporter's, not the engineer's.
    for person in ("sam", "ana"):
        notes = client.get("/v1/requests/notifications", params={"unread": True}, headers=who[person]).json()
        assert [n["request_id"] for n in notes] == [rid]
        assert "chargeback ratio" in notes[0]["message"] and "delivered" in notes[0]["message"]
    assert client.get("/v1/requests/notifications", headers=who["eve"]).json() == []
    # Delivered is final; a second run sends nothing more.
    late = client.post(f"/v1/requests/{rid}/support", json={}, headers=who["eve"])
    assert late.status_code == 422 and "it was delivered (customer_stats: spend_1d)" in late.json()["message"]
    assert featurestore("-C", shop, "run", "customer_stats", "--no-progress").code == 0
    assert len(webhook.posts) == 1
    listed = json.loads(featurestore("-C", shop, "request", "list", "--state", "delivered", "--json").out)
    assert [r["id"] for r in listed] == [rid]
    audit = featurestore("-C", shop, "audit").out
    for action in ("request.file", "request.support", "request.accept", "request.link", "request.deliver"):
        assert action in audit


def test_declined_requests_bad_input_and_unknown_ones(api: Any, shop: Path) -> None:
    client, who = api
    rid = client.post("/v1/requests", json=NEED, headers=who["ana"]).json()["id"]
    no_reason = client.post(f"/v1/requests/{rid}/decline", json={"reason": " "}, headers=who["eve"])
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.json()["message"]
    declined = client.post(f"/v1/requests/{rid}/decline", json={"reason": "no chargeback feed yet"}, headers=who["eve"])
    assert declined.status_code == 200 and declined.json()["decline_reason"] == "no chargeback feed yet"
    refused = client.post(f"/v1/requests/{rid}/support", json={}, headers=who["sam"])
    assert refused.status_code == 422
    assert "declined by eve: no chargeback feed yet" in refused.json()["message"]
    cli = featurestore("-C", shop, "request", "link", str(rid), "--view", "customer_stats", "--feature", "spend_1d")
    assert cli.code == 1 and "Cannot link feature request" in cli.err
    assert client.get("/v1/requests/999", headers=who["sam"]).status_code == 404
    unknown_entity = client.post("/v1/requests", json={**NEED, "entity": "custmer"}, headers=who["sam"])
    assert unknown_entity.status_code == 404 and unknown_entity.json()["suggestions"] == ["customer"]
    extra = client.post("/v1/requests", json={**NEED, "priority": "high"}, headers=who["sam"])
    assert extra.status_code == 422
    other = client.post("/v1/requests", json=NEED, headers=who["sam"]).json()["id"]
    bad_link = client.post(
        f"/v1/requests/{other}/link", json={"view": "customer_stats", "features": ["spend_7d"]}, headers=who["eve"]
    )
    assert bad_link.status_code == 404 and "spend_1d" in bad_link.json()["suggestions"]
    by_state = {
        state: [r["id"] for r in client.get("/v1/requests", params={"state": state}, headers=who["sam"]).json()]
        for state in ("open", "declined")
    }
    assert by_state == {"open": [other], "declined": [rid]}
