"""A tiny real project for the datamart tests: three feature views over hand-written data.

Facts the tests rely on (all times UTC):

* ``customer_stats`` (TTL 3650 days): daily card spend, published at the next midnight.
  Customer 1: 15.0 (2 transactions) as of 2024-03-02, 7.0 (1) as of 2024-03-03;
  customer 2: 100.0 (1) as of 2024-03-02; customer 3: nothing.
* ``customer_profile`` (TTL 3650 days): customers 1, 2, 3 with segments mass, affluent, student.
* ``customer_balance`` (TTL 1 day): balances -20.0 (customer 1) and 50.0 (customer 2) at
  2024-03-01T00:00; long expired now, so online lookups say ``expired``.
* Feature service ``churn``: spend_1d, txn_count_1d and segment.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn

from datamart.app import create_app
from etl.local import LocalEngine
from featurestore import Bool, Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64, String
from featurestore.config import CONFIG_FILE_NAME, render_default_config
from featurestore.store import FeatureStore
from featurestore.validation import validate_project

with warnings.catch_warnings():
    # Starlette 1.x warns, on importing its TestClient, that it wants `httpx2` rather than `httpx`;
    # this project depends on httpx only, on which the TestClient still works. Imported here once,
    # before any test module, so the test modules' own imports of it are warning-free.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _write_data(root: Path) -> None:
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    ts = pa.timestamp("us", tz="UTC")
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([1, 1, 1, 2], pa.int64()),
                "ts": pa.array([utc(2024, 3, 1, 10), utc(2024, 3, 1, 12), utc(2024, 3, 2, 9), utc(2024, 3, 1, 8)], ts),
                "amount": [10.0, 5.0, 7.0, 100.0],
            }
        ),
        raw / "transactions.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([1, 2, 3], pa.int64()),
                "signed_up_at": pa.array([utc(2024, 1, 1), utc(2024, 1, 15), utc(2024, 2, 1)], ts),
                "segment": ["mass", "affluent", "student"],
                "age": pa.array([30, 45, 21], pa.int64()),
            }
        ),
        raw / "customers.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([1, 2], pa.int64()),
                "ts": pa.array([utc(2024, 3, 1), utc(2024, 3, 1)], ts),
                "balance": [-20.0, 50.0],
            }
        ),
        raw / "balances.parquet",
    )


def definitions() -> list[object]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,), description="A retail customer")
    transactions = FileSource(name="transactions", path="data/raw/transactions.parquet", timestamp_field="ts")
    customers = FileSource(name="customers", path="data/raw/customers.parquet", timestamp_field="signed_up_at")
    balances = FileSource(name="balances", path="data/raw/balances.parquet", timestamp_field="ts")
    stats = FeatureView(
        name="customer_stats",
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=3650),
        transformation="""
            SELECT customer_id, CAST(date_trunc('day', ts) + INTERVAL 1 DAY AS TIMESTAMP) AS as_of,
                   sum(amount) AS spend_1d, count(*) AS txn_count_1d
            FROM transactions GROUP BY ALL
        """,
        features=(
            Feature("spend_1d", Float64, description="Card spend during the previous day", tags=("spend",)),
            Feature("txn_count_1d", Int64, description="Card transactions during the previous day"),
        ),
        description="Daily card activity per customer, known at midnight",
        owner="risk@example.com",
        tags=("domain:cards",),
    )
    profile = FeatureView(
        name="customer_profile",
        entities=(customer,),
        source=customers,
        timestamp_field="signed_up_at",
        ttl=timedelta(days=3650),
        features=(
            Feature("segment", String, description="Marketing segment: mass, affluent or student"),
            Feature("age", Int64, description="Age in years at sign-up"),
        ),
        description="Customer profile from the CRM",
        owner="crm@example.com",
        tags=("domain:crm",),
    )
    balance = FeatureView(
        name="customer_balance",
        entities=(customer,),
        source=balances,
        timestamp_field="ts",
        ttl=timedelta(days=1),
        transformation="SELECT customer_id, ts, balance, balance < 0 AS overdrawn FROM balances",
        features=(
            Feature("balance", Float64, description="Account balance at the last snapshot"),
            Feature("overdrawn", Bool, description="Whether the balance was negative"),
        ),
        description="Latest account balance",
        owner="risk@example.com",
    )
    churn = FeatureService(
        name="churn",
        features=(stats.select("spend_1d", "txn_count_1d"), profile.select("segment")),
        description="Features of the churn model",
        owner="ds@example.com",
    )
    return [customer, transactions, customers, balances, stats, profile, balance, churn]


def build_project(root: Path) -> Path:
    """The project in ``root`` (an empty folder), applied and run once: registry, offline Parquet
    and online SQLite all filled."""
    (root / CONFIG_FILE_NAME).write_text(render_default_config("shop"))
    _write_data(root)
    objects = definitions()
    with FeatureStore(root) as store:
        engine = LocalEngine(store)
        store.apply(objects, schema_resolver=engine.infer_schema)
        views = {v.name: v for v in validate_project(objects).feature_views}
        for name in views:
            engine.run(name, definitions=views, progress=False)
    return root


@pytest.fixture(scope="session")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project applied and run once: registry, offline Parquet and online SQLite all filled."""
    return build_project(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def own_project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project for one test module, for tests whose requests change the registry or
    the stores in ways the others must not see (the fuzz tests register models, run repairs)."""
    return build_project(tmp_path_factory.mktemp("own"))


@pytest.fixture(scope="session")
def store(project_dir: Path) -> Iterator[FeatureStore]:
    with FeatureStore(project_dir) as s:
        yield s


@pytest.fixture(scope="session")
def api(store: FeatureStore) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as client:
        yield client


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn server in a thread on 127.0.0.1; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="datamart-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test datamart server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
