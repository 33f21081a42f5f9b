"""Waiting for a real browser to load the next page, shared by the browser tests."""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# Chrome answers a question about an element of the page being replaced with an "unknown error"
# rather than a stale reference while the old document is torn down (seen in CI).
_GONE = ("does not belong to the document", "No node with given id", "Execution context was destroyed")


def left(element: Any) -> bool:
    """True once ``element``'s document has been replaced by another."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if any(sign in str(error.msg or "") for sign in _GONE):
            return True
        raise
    return False


def wait_for_next_page(browser: Any, page: Any, timeout: float = 15) -> None:
    """Wait until ``page`` (the old ``html`` element) is gone and the new document has loaded."""
    WebDriverWait(browser, timeout).until(lambda _: left(page))
    WebDriverWait(browser, timeout).until(lambda b: b.execute_script("return document.readyState") == "complete")


def follow(browser: Any, element: Any, *, submit: bool = False) -> None:
    """Click a link or button (or submit a form) and wait for the next page to load."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.submit() if submit else element.click()
    wait_for_next_page(browser, page)
