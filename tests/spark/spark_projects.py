"""Small real projects for the Spark suites, built in a temporary folder, with their definitions
in a ``features.py`` file (as users write them: a pandas transformation defined there must reach
the executors).

The view ``daily_spend`` sums each customer's card transactions per day and publishes the sum at
the next midnight (``as_of``), as in ``tests/unit/test_runs.py``:

==========  ===========  ======      ====  ===========  =====  =
customer    ts           amount      cust  as_of        spend  n
==========  ===========  ======      ====  ===========  =====  =
1           03-01 10:00  10.0        1     03-02 00:00  15.0   2
1           03-01 12:00   5.0        1     03-03 00:00   7.0   1
1           03-02 09:00   7.0        1     03-05 00:00   1.0   1
1           03-04 08:00   1.0        2     03-02 00:00  100.0  1
2           03-01 08:00  100.0       2     03-04 00:00  50.0   1
2           03-03 20:00  50.0        3     03-03 00:00   3.0   1
3           03-02 11:00   3.0
==========  ===========  ======      ====  ===========  =====  =
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.definitions import FeatureView
from featurestore.online import EVENT_TIME_COLUMN
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project

UTC_US = pa.timestamp("us", tz="UTC")
VIEW = "daily_spend"
KEYS = [1, 2, 3, 4]  # customer 4 never has data


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


TRANSACTIONS = [
    (1, utc(2024, 3, 1, 10), 10.0),
    (1, utc(2024, 3, 1, 12), 5.0),
    (1, utc(2024, 3, 2, 9), 7.0),
    (1, utc(2024, 3, 4, 8), 1.0),
    (2, utc(2024, 3, 1, 8), 100.0),
    (2, utc(2024, 3, 3, 20), 50.0),
    (3, utc(2024, 3, 2, 11), 3.0),
]
ALL_ROWS = [
    (1, utc(2024, 3, 2), 15.0, 2),
    (1, utc(2024, 3, 3), 7.0, 1),
    (1, utc(2024, 3, 5), 1.0, 1),
    (2, utc(2024, 3, 2), 100.0, 1),
    (2, utc(2024, 3, 4), 50.0, 1),
    (3, utc(2024, 3, 3), 3.0, 1),
]
NEWEST_ONLINE = {1: (utc(2024, 3, 5), 1.0, 1), 2: (utc(2024, 3, 4), 50.0, 1), 3: (utc(2024, 3, 3), 3.0, 1)}

FEATURES_PY = '''
from datetime import timedelta

import pandas as pd

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
transactions = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")

SQL = """
    SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of,
           sum(amount) AS spend, count(*) AS n
    FROM transactions GROUP BY ALL
"""


def daily(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(as_of=frame["ts"].dt.floor("D") + pd.Timedelta(days=1))
    out = frame.groupby(["customer_id", "as_of"], as_index=False).agg(spend=("amount", "sum"), n=("amount", "size"))
    return out


daily_spend = FeatureView(
    name="daily_spend",
    entities=(customer,),
    source=transactions,
    timestamp_field="as_of",
    ttl=timedelta(days=TTL_DAYS),
    transformation=TRANSFORMATION,
    features=(Feature("spend", Float64), Feature("n", Int64)),
)
'''


def write_transactions(root: Path, rows: Sequence[tuple[int | None, Any, float]]) -> None:
    path = root / "data" / "transactions.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], UTC_US),
            "amount": [r[2] for r in rows],
        }
    )
    pq.write_table(table, path)


def new_project(
    root: Path,
    *,
    offline: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
    transformation: str = "SQL",
    ttl_days: int = 3650,
) -> Path:
    """A project with the ``daily_spend`` view, its transactions written and its definitions
    applied. ``offline``: the ``offline_store`` section (Parquet by default); ``transformation``:
    ``SQL``, ``daily`` (the pandas function) or a SQL string's Python literal."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "project": "cards",
        "definitions": ["features.py"],
        "registry": "sqlite:///data/registry.db",
        "offline_store": offline or {"type": "parquet", "path": "data/offline"},
        "online_store": {"type": "sqlite", "path": "data/online.db"},
        "engine": engine or {"type": "spark", "master": "local[2]"},
    }
    (root / "featurestore.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    text = FEATURES_PY.replace("TTL_DAYS", str(ttl_days)).replace("TRANSFORMATION", transformation)
    (root / "features.py").write_text(text)
    write_transactions(root, TRANSACTIONS)
    with FeatureStore(root) as store:
        store.apply(load_definitions(store.config))
    return root


def hive_offline(**extra: Any) -> dict[str, Any]:
    """An ``offline_store`` section for a Hive store in a database of its own."""
    return {"type": "hive", "database": f"t_{uuid.uuid4().hex[:10]}", **extra}


def definitions(store: FeatureStore) -> dict[str, FeatureView]:
    return {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}


def offline_rows(store: FeatureStore, view: str = VIEW) -> list[tuple[Any, ...]]:
    fv = store.get_feature_view(view)
    table = store.offline_store.read(fv)
    columns = [*fv.join_keys, fv.timestamp_field, *fv.feature_names]
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def online_rows(store: FeatureStore, view: str = VIEW, keys: Sequence[int] = KEYS) -> dict[Any, tuple[Any, ...]]:
    """What the online store holds per key: (event time, *features); absent keys left out."""
    fv = store.get_feature_view(view)
    (key,) = fv.join_keys
    table = store.online_store.read(fv, pa.table({key: pa.array(list(keys), pa.int64())}), fv.feature_names)
    out = {}
    for row in table.to_pylist():
        if row[EVENT_TIME_COLUMN] is not None:
            out[row[key]] = (row[EVENT_TIME_COLUMN], *(row[f] for f in fv.feature_names))
    return out


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``root``, by relative path."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}
