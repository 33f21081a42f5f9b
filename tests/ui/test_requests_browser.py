"""A feature request in a real browser (headless Chromium, JavaScript off), on the tiny project
served by ``featurestore ui`` with auth on: a scientist files it, an analyst supports it with a
comment, an engineer links it to ``customer_flags:big_spender`` (never run), a run delivers it, and
the scientist sees it delivered, with the notification badge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ui_projects import tiny_definitions, write_tiny_project

from etl.local import LocalEngine
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from tests.ui.conftest import _serve


@pytest.mark.browser
def test_a_request_filed_supported_linked_and_delivered_in_the_browser(
    browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    from browsing import follow
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    project = write_tiny_project(tmp_path / "shop")
    config = project / "featurestore.yaml"
    config.write_text(config.read_text() + "\nauth: {enabled: true}\n")
    with FeatureStore(project) as store:
        roles = {"sam": "scientist", "ana": "analyst", "eve": "engineer"}
        tokens = {n: store.registry.create_token(store.project, n, r, actor="test")[1] for n, r in roles.items()}
    served = _serve(project, "ui", "/healthz", tmp_path / "ui.log")
    base = next(served)

    def sign_in(name: str, path: str) -> None:
        browser.delete_all_cookies()
        browser.get(base + path)
        browser.find_element(By.ID, "token").send_keys(tokens[name])
        follow(browser, browser.find_element(By.CSS_SELECTOR, "form.signin button"))
        assert f"signed in as {name}" in browser.find_element(By.TAG_NAME, "footer").text

    def field(element_id: str, value: str) -> None:
        browser.find_element(By.ID, element_id).send_keys(value)

    try:
        # The scientist searches, finds nothing, and files a request.
        sign_in("sam", "/?q=big+spender+flag")
        assert "Requested, not built yet" not in browser.page_source
        follow(browser, browser.find_element(By.ID, "nav-requests"))
        field("rq-title", "big spender flag")
        Select(browser.find_element(By.ID, "rq-entity")).select_by_value("customer")
        field("rq-description", "1 when a card payment is 50 or more")
        field("rq-reason", "the churn model's segments")
        field("rq-model", "churn_gbm")
        follow(browser, browser.find_element(By.ID, "file-button"))
        assert "big spender flag" in browser.find_element(By.TAG_NAME, "h1").text
        assert browser.find_element(By.ID, "request-status").text == "open"
        request_path = browser.current_url[len(base) :]
        browser.save_screenshot(str(artifacts / "request-filed.png"))

        # The analyst finds it by searching, and supports it with a comment.
        sign_in("ana", "/?q=big+spender+flag")
        found = browser.find_element(By.CSS_SELECTOR, '#requested li[data-kind="feature_request"] a.name')
        assert "big spender flag" in found.text
        follow(browser, found)
        assert browser.current_url == base + request_path
        assert not browser.find_elements(By.ID, "link-form")  # analysts do not decide
        field("support-comment", "the retention dashboard needs it too")
        follow(browser, browser.find_element(By.ID, "support-button"))
        assert browser.find_element(By.ID, "support-count").text == "1 vote"
        assert "the retention dashboard needs it too" in browser.find_element(By.ID, "supporters-list").text

        # The engineer links it to the view that fulfils it.
        sign_in("eve", request_path)
        Select(browser.find_element(By.ID, "link-view")).select_by_value("customer_flags")
        field("link-features", "big_spender")
        follow(browser, browser.find_element(By.ID, "link-button"))
        assert browser.find_element(By.ID, "request-status").text == "in_progress"
        assert "customer_flags: big_spender" in browser.find_element(By.ID, "linked").text

        # A run of the view publishes the features: the request is delivered.
        with FeatureStore(project) as store:
            views = {v.name: v for v in validate_project(tiny_definitions()).feature_views}
            LocalEngine(store).run("customer_flags", definitions=views, progress=False)

        sign_in("sam", "/requests")
        badge = browser.find_element(By.CSS_SELECTOR, "#nav-requests .badge")
        assert badge.text == "1"
        assert "big spender flag" in browser.find_element(By.ID, "notifications").text
        follow(browser, browser.find_element(By.ID, "tab-delivered"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#requests-table tr.request-row")
        assert len(rows) == 1 and "big spender flag" in rows[0].text
        browser.save_screenshot(str(artifacts / "request-delivered.png"))
        follow(browser, rows[0].find_element(By.CSS_SELECTOR, "a.request-title"))
        assert browser.find_element(By.ID, "request-status").text == "delivered"
        assert browser.find_element(By.ID, "delivered").text
        history = browser.find_element(By.ID, "history-table").text
        for event in ("filed", "supported", "linked", "delivered"):
            assert event in history
        follow(browser, browser.find_element(By.ID, "nav-requests"))
        follow(browser, browser.find_element(By.ID, "mark-read"))
        assert not browser.find_elements(By.CSS_SELECTOR, "#nav-requests .badge")
    finally:
        served.close()
