"""The registry UI with auth on: sign-in cookie, pages by role, other projects, forged forms.

In process (TestClient) for the rules, and in headless Chromium for the sign-in a person does."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_projects import write_tiny_project

from featurestore.auth import SESSION_COOKIE, Authenticator
from featurestore.config import AuthConfig
from featurestore.store import FeatureStore
from registry_ui import create_app
from tests.ui.conftest import TestClient, _serve


@pytest.fixture
def secured_ui(tiny_store: FeatureStore) -> Iterator[tuple[TestClient, dict[str, str]]]:
    registry, project = tiny_store.registry, tiny_store.project
    tokens = {
        "admin": registry.create_token(project, "ada", "admin", actor="test")[1],
        "scientist": registry.create_token(project, "sam", "scientist", actor="test")[1],
        "other": registry.create_token("another", "eve", "admin", actor="test")[1],
    }
    tiny_store.register_model("churn_model", "churn")
    tokens["service"] = registry.create_token(project, "svc", "service", actor="test", models=("churn_model",))[1]
    auth = Authenticator(AuthConfig(enabled=True, cache_seconds=0), registry, project)
    with TestClient(create_app(tiny_store, auth=auth), base_url="http://ui.test") as client:
        yield client, tokens


def _sign_in(client: TestClient, token: str, next_page: str = "/") -> Any:
    return client.post(
        "/signin",
        data={"token": token, "next": next_page},
        headers={"Origin": "http://ui.test"},
        follow_redirects=False,
    )


def test_pages_redirect_to_sign_in_and_back(secured_ui: Any) -> None:
    client, tokens = secured_ui
    first = client.get("/views/customer_stats?tab=runs", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/signin?next=%2Fviews%2Fcustomer_stats%3Ftab%3Druns"
    form = client.get(first.headers["location"])
    assert form.status_code == 200 and 'name="token"' in form.text
    signed = _sign_in(client, tokens["scientist"], "/views/customer_stats?tab=runs")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/views/customer_stats?tab=runs"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/views/customer_stats")
    assert page.status_code == 200
    assert "signed in as <strong>sam</strong> (scientist)" in page.text
    assert tokens["scientist"] not in page.text  # the cookie is never written into a page


def test_wrong_tokens_are_refused_with_the_reason(secured_ui: Any) -> None:
    client, tokens = secured_ui
    other = _sign_in(client, tokens["other"])
    assert other.status_code == 403
    assert "project 'another'" in html.unescape(other.text) and SESSION_COOKIE not in other.headers.get(
        "set-cookie", ""
    )
    service = _sign_in(client, tokens["service"])
    assert service.status_code == 403 and "read the catalog" in service.text
    unknown = _sign_in(client, "fst_0123456789ab_" + "A" * 43)
    assert unknown.status_code == 401 and "unknown" in unknown.text
    # A cookie of another project's token opens nothing either.
    client.cookies.set(SESSION_COOKIE, tokens["other"])
    assert client.get("/", follow_redirects=False).status_code == 403
    assert client.get("/lineage", follow_redirects=False).status_code == 403


def test_audit_page_is_for_admins(secured_ui: Any) -> None:
    client, tokens = secured_ui
    _sign_in(client, tokens["scientist"])
    assert client.get("/audit").status_code == 403
    assert ">Audit<" not in client.get("/").text
    _sign_in(client, tokens["admin"])
    page = client.get("/audit")
    assert page.status_code == 200
    assert "token:sam" in page.text and "model:churn_model" in page.text
    assert ">Audit<" in client.get("/").text


def test_forms_from_another_site_are_refused(secured_ui: Any) -> None:
    client, tokens = secured_ui
    forged = client.post(
        "/signin", data={"token": tokens["admin"]}, headers={"Origin": "http://evil.test"}, follow_redirects=False
    )
    assert forged.status_code == 403 and "cross-site" in forged.text
    _sign_in(client, tokens["admin"])
    no_csrf = client.post("/signout", data={}, follow_redirects=False)
    assert no_csrf.status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    page = client.get("/").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    out = client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_in_never_redirects_to_another_site(secured_ui: Any) -> None:
    client, tokens = secured_ui
    for target in ("//evil.test/", "https://evil.test/", "/\\evil.test"):
        response = _sign_in(client, tokens["admin"], target)
        assert response.headers["location"] == "/", target


@pytest.mark.browser
def test_a_person_signs_in_with_a_token_and_cannot_use_another_projects(
    browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    from browsing import wait_for_next_page
    from selenium.webdriver.common.by import By

    def submit(token: str) -> None:
        # click() returns before the browser has loaded the answer: wait for the page to go stale.
        page = browser.find_element(By.TAG_NAME, "html")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "form.signin button").click()
        wait_for_next_page(browser, page)

    project = write_tiny_project(tmp_path / "shop")
    config = project / "featurestore.yaml"
    config.write_text(config.read_text() + "\nauth: {enabled: true}\n")
    with FeatureStore(project) as store:
        mine = store.registry.create_token(store.project, "sam", "scientist", actor="test")[1]
        theirs = store.registry.create_token("another", "eve", "admin", actor="test")[1]
    served = _serve(project, "ui", "/healthz", tmp_path / "ui.log")
    base = next(served)
    try:
        browser.delete_all_cookies()
        browser.get(base + "/views/customer_stats")
        assert "/signin" in browser.current_url
        submit(theirs)
        assert "project 'another'" in browser.find_element(By.CSS_SELECTOR, "p.problem").text
        browser.save_screenshot(str(artifacts / "signin-refused.png"))
        submit(mine)
        assert browser.current_url == base + "/views/customer_stats"
        assert "customer_stats" in browser.find_element(By.TAG_NAME, "h1").text
        assert "signed in as sam (scientist)" in browser.find_element(By.TAG_NAME, "footer").text
        browser.save_screenshot(str(artifacts / "signed-in.png"))
        page = browser.find_element(By.TAG_NAME, "html")
        browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
        wait_for_next_page(browser, page)
        assert "/signin" in browser.current_url
    finally:
        served.close()
