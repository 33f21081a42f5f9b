"""Fixtures of the registry UI tests.

Fast page tests (no browser) use ``tiny_project``: a small real project, applied and run once,
served in process by FastAPI's TestClient:

* entity ``customer``; sources ``transactions`` (a file) and ``big_spenders`` (SQL over it);
* view ``customer_stats`` (``spend_1d``: "Card spend during the previous day", tag ``spend``;
  ``txn_count_1d``), owner ``risk@example.com``, tag ``domain:cards``, run once;
* view ``customer_flags`` (``big_spender``) on ``big_spenders``, owner ``crm@example.com``,
  never run (its page shows the "no runs yet" state);
* service ``churn`` (both ``customer_stats`` features); no model registered by the fixture.

Browser tests use ``demo_project``: the bank demo (``examples/bank/demo.py`` at 300 customers)
run in a temporary copy, then one more run of ``customer_spend`` over its last week, so its
registry holds runs with statistics, the model ``credit_default_gbm`` and the demo's own reads; its UI and datamart API are started as the ``featurestore ui`` and
``featurestore serve`` commands on free ports of 127.0.0.1. Debian's Chromium and its driver
are installed with apt-get when missing; a failed install FAILS the tests (never skips them).
Screenshots go to ``.artifacts/ui/<page>.png`` at the repository root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ui_projects import write_tiny_project

from featurestore.store import FeatureStore
from registry_ui import create_app

with warnings.catch_warnings():
    # Starlette 1.x warns, on importing its TestClient, that it wants `httpx2` rather than `httpx`;
    # the TestClient works on httpx, which this project depends on (see tests/api/conftest.py).
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
BANK = REPO / "examples" / "bank"
ARTIFACTS = REPO / ".artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver", "fonts-liberation")


# ----------------------------------------------------------------------------- the tiny project


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A fresh tiny project per test (tests add models, usage and statistics to it)."""
    return write_tiny_project(tmp_path / "shop")


@pytest.fixture
def tiny_store(tiny_project: Path) -> Iterator[FeatureStore]:
    with FeatureStore(tiny_project) as store:
        yield store


@pytest.fixture
def ui(tiny_store: FeatureStore) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_store)) as client:
        yield client


# ----------------------------------------------------------------------------- the browser suite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _apt_install() -> str:
    """Install Chromium and its WebDriver from Debian's archive; returns what apt printed."""
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            pytest.fail(
                f"{CHROMIUM} or {CHROMEDRIVER} is missing and this user is not root and has no sudo: "
                f"install them with `apt-get install -y {' '.join(APT_PACKAGES)}`",
                pytrace=False,
            )
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    output = []
    wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt-get (an infra script's, say) may hold the lock a while
    for cmd in (
        ["apt-get", *wait, "update", "-q"],
        ["apt-get", *wait, "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
    ):
        proc = subprocess.run([*prefix, *cmd], capture_output=True, text=True, env=env, timeout=900, check=False)
        output.append(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
        if proc.returncode != 0:
            pytest.fail(
                f"could not install the browser: {' '.join(cmd)} exited {proc.returncode}\n" + "\n".join(output),
                pytrace=False,
            )
    return "\n".join(output)


@pytest.fixture(scope="session")
def chromium() -> tuple[Path, Path]:
    """Debian's Chromium and chromedriver, installed with apt-get when missing (FAILS if that fails)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        started = time.monotonic()
        output = _apt_install()
        sys.stderr.write(f"\ninstalled {' '.join(APT_PACKAGES)} in {time.monotonic() - started:.0f} s\n")
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            pytest.fail(f"apt-get succeeded but {CHROMIUM} or {CHROMEDRIVER} is missing\n{output}", pytrace=False)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bank demo run end to end (300 customers) in a copy of examples/bank."""
    project = tmp_path_factory.mktemp("ui") / "bank"
    shutil.copytree(BANK, project, ignore=shutil.ignore_patterns("data", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, str(BANK / "demo.py"), "--project", str(project), "--customers", "300"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"the bank demo failed (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    (project / "data" / "demo.out").write_text(proc.stdout)
    # A second, incremental run of customer_spend (its last week), so that statistics have a trend over runs.
    start = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    exe = Path(sys.executable).with_name("featurestore")
    rerun = [str(exe), "-C", str(project), "run", "customer_spend", "--start", start, "--no-progress"]
    proc = subprocess.run(rerun, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(rerun)} failed (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return project


def _serve(project: Path, command: str, health: str, log: Path) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).with_name("featurestore")
    out = log.open("wb")
    proc = subprocess.Popen(
        [str(exe), "-C", str(project), command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"featurestore {command} exited {proc.returncode}:\n{log.read_text()}", pytrace=False)
            try:
                if httpx.get(base + health, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"featurestore {command} did not answer within 30 s:\n{log.read_text()}", pytrace=False)
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@pytest.fixture(scope="session")
def ui_url(demo_project: Path) -> Iterator[str]:
    """``featurestore ui`` on the demo's registry."""
    yield from _serve(demo_project, "ui", "/healthz", demo_project / "data" / "ui.log")


@pytest.fixture(scope="session")
def datamart_url(demo_project: Path) -> Iterator[str]:
    """``featurestore serve`` (the datamart API) on the demo's project, for reads by the tests."""
    yield from _serve(demo_project, "serve", "/v1/health", demo_project / "data" / "datamart-tests.log")


@pytest.fixture(scope="session")
def browser(chromium: tuple[Path, Path]) -> Iterator[Any]:
    """Headless Chromium driven by Selenium, with JavaScript turned off: every page must work without it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
