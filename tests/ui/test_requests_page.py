"""The registry UI's feature requests (no browser): the Requests page's tabs and sorting, the
forms by role (auth on: a scientist files and supports, an analyst supports, an engineer decides),
forged forms refused, open requests in search results, counts on the Usage page, and the
notification badge after a run delivers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from html import unescape
from typing import Any

import pytest

from etl.local import LocalEngine
from featurestore.auth import Authenticator
from featurestore.config import AuthConfig
from featurestore.feature_requests import FeatureRequests
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from registry_ui import create_app
from tests.ui.conftest import TestClient
from tests.ui.ui_projects import tiny_definitions


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def order(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="request-(\d+)"', html)]


@pytest.fixture
def people(tiny_store: FeatureStore) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    registry, project = tiny_store.registry, tiny_store.project
    roles = {"sam": "scientist", "ana": "analyst", "eve": "engineer"}
    headers = {
        name: {"Authorization": f"Bearer {registry.create_token(project, name, role, actor='test')[1]}"}
        for name, role in roles.items()
    }
    auth = Authenticator(AuthConfig(enabled=True, cache_seconds=0), registry, project)
    with TestClient(create_app(tiny_store, auth=auth), base_url="http://ui.test") as client:
        yield client, headers


NEED = {
    "title": "chargeback ratio",
    "entity": "customer",
    "description": "chargebacks over card payments, 90 days",
    "reason": "fraud model",
    "due": "2026-12-31",
    "model": "",
}


def test_tabs_sort_by_support_and_due(ui: TestClient, tiny_store: FeatureStore) -> None:
    requests = FeatureRequests(tiny_store, channels=[])
    late = requests.file(title="late", entity="customer", description="d", reason="r", due=date(2027, 6, 1)).id
    soon = requests.file(title="soon", entity="customer", description="d", reason="r", due=date(2026, 12, 1)).id
    popular = requests.file(title="popular", entity="customer", description="d", reason="r").id
    for voter in ("a", "b"):
        requests.support(popular, actor=voter)
    done = requests.file(title="done", entity="customer", description="d", reason="r").id
    requests.accept(done, actor="eve")
    page = ui.get("/requests")
    assert page.status_code == 200 and 'href="/requests"' in page.text  # in the navigation
    assert order(page.text) == [popular, soon, late]  # by support by default
    assert order(ui.get("/requests", params={"sort": "due"}).text) == [soon, late, popular]
    in_progress = ui.get("/requests", params={"tab": "in_progress"}).text
    assert order(in_progress) == [done] and "Open 3" in text(in_progress) and "In progress 1" in text(in_progress)
    assert "No delivered requests." in text(ui.get("/requests", params={"tab": "delivered"}).text)
    assert "<script" not in page.text


def test_roles_file_support_and_decide_through_the_forms(people: Any, tiny_store: FeatureStore) -> None:
    client, who = people
    filed = client.post("/requests", data=NEED, headers=who["sam"], follow_redirects=False)
    assert filed.status_code == 303, filed.text
    page_url = filed.headers["location"]
    rid = int(page_url.rsplit("/", 1)[1])
    # The analyst supports; the forms an analyst may not use are not shown, and refused if forged.
    page = client.get(page_url, headers=who["ana"]).text
    assert 'id="support-form"' in page and 'id="accept-form"' not in page
    supported = client.post(
        f"/requests/{rid}/support", data={"comment": "churn too"}, headers=who["ana"], follow_redirects=False
    )
    assert supported.status_code == 303
    refused = client.post(f"/requests/{rid}/accept", data={}, headers=who["ana"])
    assert refused.status_code == 403 and "accept, decline or link feature requests" in text(refused.text)
    twice = client.post(f"/requests/{rid}/support", data={"comment": "again"}, headers=who["ana"])
    assert twice.status_code == 422 and "already supports" in text(twice.text)
    # Another site's form is refused before anything is done.
    forged = client.post(f"/requests/{rid}/accept", data={}, headers={**who["eve"], "Origin": "https://evil.example"})
    assert forged.status_code == 403 and tiny_store.registry.get_request(tiny_store.project, rid).status == "open"
    # The engineer sees the actions, links, and the page shows it.
    assert 'id="link-form"' in client.get(page_url, headers=who["eve"]).text
    bad = client.post(f"/requests/{rid}/link", data={"view": "customer_flags", "features": "big"}, headers=who["eve"])
    assert bad.status_code == 404 and "big_spender" in text(bad.text)
    linked = client.post(
        f"/requests/{rid}/link",
        data={"view": "customer_flags", "features": "big_spender"},
        headers=who["eve"],
        follow_redirects=False,
    )
    assert linked.status_code == 303
    shown = text(client.get(page_url, headers=who["sam"]).text)
    assert "in_progress" in shown and "Fulfilled by customer_flags : big_spender" in shown
    assert "ana" in shown and "churn too" in shown
    # Bad input is answered on the page with the form kept.
    missing = client.post("/requests", data={**NEED, "reason": " "}, headers=who["sam"])
    assert missing.status_code == 422 and "needs a reason" in text(missing.text)
    assert 'value="chargeback ratio"' in missing.text

    # Search finds the request while the feature does not exist; after the run, the badge shows.
    found = client.get("/", params={"q": "chargeback ratio"}, headers=who["ana"]).text
    assert "Requested, not built yet" in found and f'href="/requests/{rid}"' in found
    assert 'class="badge"' not in client.get("/requests", headers=who["sam"]).text
    views = {v.name: v for v in validate_project(tiny_definitions()).feature_views}
    LocalEngine(tiny_store).run("customer_flags", definitions=views, progress=False)
    for person in ("sam", "ana"):
        page = client.get("/requests", headers=who[person]).text
        assert 'class="badge"' in page and "was delivered" in text(page)
    assert 'class="badge"' not in client.get("/requests", headers=who["eve"]).text
    read = client.post("/notifications/read", data={}, headers=who["sam"], follow_redirects=False)
    assert read.status_code == 303
    assert 'class="badge"' not in client.get("/requests", headers=who["sam"]).text
    assert "Requested, not built yet" not in client.get("/", params={"q": "chargeback"}, headers=who["sam"]).text
    usage = text(client.get("/usage", headers=who["ana"]).text)
    assert "0 open, 0 in progress, 1 delivered, 0 declined; 1 vote of support in all." in usage
    assert "customer_flags:big_spender" in usage
