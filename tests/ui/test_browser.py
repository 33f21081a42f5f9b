"""The registry UI in a real browser: headless Chromium (Debian's), JavaScript turned off,
against ``featurestore ui`` serving the bank demo's registry on 127.0.0.1.

Each test saves a screenshot of its page to ``.artifacts/ui/<page>.png`` (git-ignored).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browsing import follow
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from datamart.client import DatamartClient

pytestmark = pytest.mark.browser


def screenshot(browser: Any, artifacts: Path, page: str) -> Path:
    """The whole page, not only the window: the window grows to the page's height first."""
    # WebDriver's own scripts run even with the page's JavaScript turned off.
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(max(height + 140, 800), 9000))  # + the window's own height
    path = artifacts / f"{page}.png"
    assert browser.save_screenshot(str(path)), path
    browser.set_window_size(1280, 1000)
    return path


def test_search_finds_a_feature_by_a_word_from_its_description(browser: Any, ui_url: str, artifacts: Path) -> None:
    browser.get(ui_url + "/")
    assert "Feature catalog" in browser.find_element(By.TAG_NAME, "h1").text
    box = browser.find_element(By.ID, "q")
    box.send_keys("recency")  # only in the description of customer_spend:days_since_last_txn
    follow(browser, box, submit=True)  # a plain GET form: works without JavaScript
    query = parse_qs(urlparse(browser.current_url).query)
    assert query["q"] == ["recency"]  # the results have a shareable URL
    results = browser.find_elements(By.CSS_SELECTOR, "li.result")
    assert results, browser.page_source
    first = results[0]
    assert first.get_attribute("data-name") == "customer_spend:days_since_last_txn"
    assert "Days since the customer's last card transaction (recency)" in first.text
    assert "matched description" in first.text
    assert "newest data" in first.text and "UTC" in first.text
    screenshot(browser, artifacts, "search")

    # Filters by tag and owner are selects of the same GET form.
    Select(browser.find_element(By.ID, "tag")).select_by_visible_text("spend")
    browser.find_element(By.ID, "q").clear()
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    results = browser.find_elements(By.CSS_SELECTOR, "li.result")
    assert "customer_spend:spend_30d" in {r.get_attribute("data-name") for r in results}
    for r in results:
        assert "spend" in [t.text for t in r.find_elements(By.CSS_SELECTOR, "a.tag")]
    assert parse_qs(urlparse(browser.current_url).query)["tag"] == ["spend"]


def test_view_page_shows_its_last_run_and_statistics(browser: Any, ui_url: str, artifacts: Path) -> None:
    browser.get(ui_url + "/?q=recency")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "li.result a.name"))
    assert urlparse(browser.current_url).path == "/views/customer_spend"
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("customer_spend")
    # Freshness: the last successful run, its rows and the newest event time, in UTC with their age.
    last = browser.find_element(By.ID, "last-success").text
    assert re.search(r"finished \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((just now|\d+ (s|min|h|d) ago)\)", last), last
    assert "rows offline" in last
    assert "UTC" in browser.find_element(By.ID, "newest-event").text
    runs = browser.find_element(By.ID, "runs-table").text
    assert "succeeded" in runs
    # Schema with descriptions and types, the transformation, the storage locations.
    schema = browser.find_element(By.ID, "feature-days_since_last_txn").text
    assert "int64" in schema and "recency" in schema
    assert "fv_customer_spend" in browser.find_element(By.ID, "online-location").text
    assert "PARTITION BY customer_id" in browser.find_element(By.CSS_SELECTOR, "#definition ~ pre").text
    # Statistics of the last run: a histogram and trends per feature, drawn as SVG.
    stats = browser.find_elements(By.CSS_SELECTOR, "section.feature-stats")
    assert stats, "no statistics on the view page: " + browser.find_element(By.ID, "statistics").text
    assert browser.find_elements(By.CSS_SELECTOR, "#stats-spend_30d svg.chart rect")  # the histogram's bars
    trend = browser.find_element(By.CSS_SELECTOR, '#stats-spend_30d svg.chart[aria-label="spend_30d: mean over runs"]')
    # The demo's run, its 14-day re-run (step 8) and the incremental one.
    assert len(trend.find_elements(By.TAG_NAME, "circle")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")) == 3
    # Quality: the newest run's expectations with their results (the demo declares some on customer_spend).
    quality = browser.find_element(By.ID, "quality-results").text
    assert "spend_30d" in quality and "passed" in quality
    screenshot(browser, artifacts, "view")


def test_lineage_page_shows_the_demo_model(browser: Any, ui_url: str, artifacts: Path) -> None:
    browser.get(ui_url + "/lineage")
    model = browser.find_element(By.CSS_SELECTOR, 'svg.lineage a[data-kind="model"][data-name="credit_default_gbm"]')
    kinds = {n.get_attribute("data-kind") for n in browser.find_elements(By.CSS_SELECTOR, "svg.lineage .node")}
    # The demo trains on a saved training dataset (view -> dataset -> model).
    assert kinds == {"source", "feature_view", "feature_service", "training_dataset", "model"}
    edges = browser.find_element(By.ID, "edges").text
    assert "credit_default_gbm" in edges
    screenshot(browser, artifacts, "lineage")

    # The graph can be navigated: a node opens its page, and focus narrows the graph to one node's lineage.
    follow(browser, model)
    assert urlparse(browser.current_url).path == "/models/credit_default_gbm"
    assert "credit_default" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "everything upstream"))
    assert parse_qs(urlparse(browser.current_url).query)["focus"] == ["model:credit_default_gbm"]
    shown = {n.get_attribute("data-name") for n in browser.find_elements(By.CSS_SELECTOR, "svg.lineage .node")}
    assert {"credit_default_gbm", "credit_default", "customer_spend", "card_transactions"} <= shown


def test_usage_page_shows_reads_made_by_the_test(browser: Any, ui_url: str, datamart_url: str, artifacts: Path) -> None:
    consumer = f"ui-test-{uuid.uuid4().hex[:8]}"
    with DatamartClient(datamart_url, consumer=consumer) as client:
        for _ in range(3):
            client.get_online_features(["customer_balance:balance", "customer_balance:overdrawn"], {"customer_id": [1]})
        recorded = client.usage(consumer=consumer)  # also flushes the API's buffered usage to the registry
    assert {r["feature"]: r["reads"] for r in recorded} == {"balance": 3, "overdrawn": 3}

    browser.get(ui_url + "/usage")
    Select(browser.find_element(By.ID, "consumer")).select_by_visible_text(consumer)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    assert parse_qs(urlparse(browser.current_url).query)["consumer"] == [consumer]
    assert browser.find_element(By.ID, "total-reads").text == "6"
    top = browser.find_element(By.ID, "top-features").text
    assert "customer_balance:balance" in top and "customer_balance:overdrawn" in top
    readers = browser.find_element(By.ID, "readers-table").text
    assert consumer in readers and "online" in readers
    assert browser.find_elements(By.CSS_SELECTOR, "#over-time ~ figure svg.chart rect")

    # Unfiltered, the page has every reader, the test's among the demo's.
    browser.get(ui_url + "/usage?days=7")
    readers = browser.find_element(By.ID, "readers-table").text
    assert consumer in readers and "demo-scoring" in readers
    screenshot(browser, artifacts, "usage")


def test_the_demo_ends_by_printing_the_url_of_the_ui(demo_project: Path) -> None:
    last = (demo_project / "data" / "demo.out").read_text().strip().splitlines()[-1]
    # The command by name when on PATH, else by its path in the venv (the demo prints what works).
    assert re.fullmatch(r"Browse the catalog: \S*featurestore -C \S+ ui  → http://127\.0\.0\.1:8080/", last), last
