"""Usage statistics from the registry's daily roll-up (``usage_daily``): kept up to date when usage
is recorded, filled once from older registries, and the only table the usage pages read, so they
stay fast with millions of usage events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.registry import Registry, UsageEvent, usage_daily_t, usage_t
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from registry_ui import create_app

NOW = datetime.now(UTC).replace(microsecond=0)


def at(days_ago: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=12, minute=0, second=0) - timedelta(days=days_ago) + timedelta(minutes=minute)


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    """A fresh registry on SQLite, then on PostgreSQL (``registry_url`` in tests/conftest.py)."""
    reg = Registry(registry_url)
    yield reg
    reg.close()


def daily_rows(registry: Registry) -> list[Any]:
    with registry._engine.connect() as conn:
        return list(conn.execute(sa.select(usage_daily_t).order_by(usage_daily_t.c.day, usage_daily_t.c.feature)))


def test_recorded_usage_is_rolled_up_per_feature_consumer_kind_and_day(registry: Registry) -> None:
    registry.record_usage(
        "p",
        [
            UsageEvent("model", "online", "v", "a", rows=10, reads=3, at=at(1, 0)),
            UsageEvent("model", "online", "v", "a", rows=5, reads=2, at=at(1, 7)),  # same day, another minute
            UsageEvent("model", "online", "v", "a", rows=1, reads=1, at=at(0)),
            UsageEvent("model", "training", "v", "a", rows=100, reads=1, at=at(0)),
            UsageEvent("notebook", "online", "v", "b", rows=2, reads=4, at=at(0)),
        ],
    )
    registry.record_usage("p", [UsageEvent("model", "online", "v", "a", rows=4, reads=6, at=at(1, 3))])  # upsert
    rows = {(r.day, r.feature, r.consumer, r.kind): (r.reads, r.rows, r.last_read) for r in daily_rows(registry)}
    assert rows == {
        (at(1).date(), "a", "model", "online"): (11, 19, at(1, 7)),
        (at(0).date(), "a", "model", "online"): (1, 1, at(0)),
        (at(0).date(), "a", "model", "training"): (1, 100, at(0)),
        (at(0).date(), "b", "notebook", "online"): (4, 2, at(0)),
    }
    # The raw events are all kept too.
    with registry._engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(usage_t)).scalar() == 6


def test_usage_queries_agree_with_the_raw_events(registry: Registry) -> None:
    events = [
        UsageEvent(
            f"c{i % 3}", "online" if i % 2 else "training", "v", f"f{i % 4}", rows=i, reads=1 + i % 5, at=at(i % 9, i)
        )
        for i in range(200)
    ]
    registry.record_usage("p", events)
    registry.record_usage("other", events[:10])  # another project's reads never count
    summary = registry.usage_summary("p")
    expected: dict[tuple[str, str, str], list[Any]] = {}
    for e in events:
        total = expected.setdefault((e.feature, e.consumer, e.kind), [0, 0, e.at])
        total[0] += e.reads
        total[1] += e.rows
        total[2] = max(total[2], e.at)
    assert {
        (r["feature"], r["consumer"], r["kind"]): [r["reads"], r["rows"], r["last_read"]] for r in summary
    } == expected
    assert [r["reads"] for r in summary] == sorted((r["reads"] for r in summary), reverse=True)

    since = at(2).date()
    recent = [e for e in events if e.at.date() >= since]
    top = registry.most_read_features("p", since=since)
    assert sum(t["reads"] for t in top) == sum(e.reads for e in recent)
    assert top[0]["reads"] == max(sum(e.reads for e in recent if e.feature == f) for f in ("f0", "f1", "f2", "f3"))
    assert all(t["consumers"] == len({e.consumer for e in recent if e.feature == t["feature"]}) for t in top)

    per_day = dict(registry.reads_per_day("p", since=at(8).date(), consumer="c1"))
    for d in range(9):
        day = at(d).date()
        assert per_day.get(day, 0) == sum(e.reads for e in events if e.consumer == "c1" and e.at.date() == day)
    assert registry.reads_per_day("p", view="nope") == []


def test_features_nobody_read_lately(tmp_path: Path) -> None:
    (tmp_path / "featurestore.yaml").write_text("project: p\n")
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    source = FileSource(name="s", path="s.parquet", timestamp_field="ts")
    view = FeatureView(
        name="v",
        entities=(customer,),
        source=source,
        timestamp_field="ts",
        ttl=timedelta(days=1),
        features=(Feature("fresh", Float64), Feature("stale", Float64), Feature("never", Float64)),
    )
    with FeatureStore(tmp_path) as store:
        store.registry.apply("p", validate_project([customer, source, view]))
        store.registry.record_usage(
            "p",
            [
                UsageEvent("m", "online", "v", "fresh", rows=1, at=at(1)),
                UsageEvent("m", "online", "v", "stale", rows=1, at=at(40)),
            ],
        )
        unread = store.registry.unread_features("p", since=NOW - timedelta(days=30))
    assert [(u["feature"], u["last_read"]) for u in unread] == [("never", None), ("stale", at(40))]


def test_a_registry_from_before_the_roll_up_is_rolled_up_once_when_opened(registry_url: str) -> None:
    url = registry_url
    registry = Registry(url)
    with registry._engine.begin() as conn:  # as an older registry: raw events only
        usage_daily_t.drop(conn)
        conn.execute(
            usage_t.insert(),
            [
                {
                    "project": "p",
                    "at": at(3, m),
                    "consumer": "m",
                    "kind": "online",
                    "view": "v",
                    "feature": "a",
                    "rows": 2,
                    "reads": 5,
                }
                for m in range(3)
            ],
        )
    registry.close()
    reopened = Registry(url)
    assert [(r.day, r.reads, r.rows, r.last_read) for r in daily_rows(reopened)] == [(at(3).date(), 15, 6, at(3, 2))]
    reopened.close()
    again = Registry(url)  # opening again adds nothing
    assert len(daily_rows(again)) == 1
    again.close()


def test_the_roll_up_upsert_is_one_statement_on_postgresql_too() -> None:
    stmt = postgresql.insert(usage_daily_t)
    sql = str(
        stmt.on_conflict_do_update(
            index_elements=["project", "day", "view", "feature", "consumer", "kind"],
            set_={"reads": usage_daily_t.c.reads + stmt.excluded.reads},
        ).compile(dialect=postgresql.dialect())
    )
    assert "ON CONFLICT (project, day, view, feature, consumer, kind) DO UPDATE" in sql


def test_usage_pages_read_only_the_roll_up_and_stay_fast_with_millions_of_events(tmp_path: Path) -> None:
    """200 features read by 10 consumers every day for 90 days: 180,000 daily rows standing for
    about 26 million per-minute usage events (and far more reads). The pages answer from the
    roll-up without touching the raw events."""
    (tmp_path / "featurestore.yaml").write_text("project: big\n")
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    source = FileSource(name="s", path="s.parquet", timestamp_field="ts")
    views = [
        FeatureView(
            name=f"view_{v}",
            entities=(customer,),
            source=source,
            timestamp_field="ts",
            ttl=timedelta(days=1),
            features=tuple(Feature(f"feature_{v}_{f}", Float64, description=f"figure {f}") for f in range(20)),
        )
        for v in range(10)
    ]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    statements: list[str] = []
    registry = Registry(str(engine.url), engine=engine)
    registry.apply("big", validate_project([customer, source, *views]))
    today = NOW.date()
    rows = [
        (
            "big",
            (today - timedelta(days=d)).isoformat(),
            view.name,
            feature.name,
            f"consumer-{c}",
            "online",
            1000 + d + c,
            5000,
            at(d).strftime("%Y-%m-%d %H:%M:%S.%f"),  # how SQLAlchemy keeps a datetime in SQLite
        )
        for d in range(90)
        for view in views
        for feature in view.features[: 19 if view.name != "view_9" else 10]  # some features are never read
        for c in range(10)
    ]
    with engine.begin() as conn:  # straight through the driver: SQLAlchemy's per-row processing is slow here
        conn.exec_driver_sql("INSERT INTO usage_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    assert registry.most_read_features("big", since=today, limit=1)[0]["reads"] == sum(1000 + c for c in range(10))
    events_represented = len(rows) * 144  # a reader active in 10 % of the day's minutes
    assert events_represented > 1_000_000

    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(str(args[2])))
    with FeatureStore(tmp_path, registry=registry) as store, TestClient(create_app(store)) as client:
        for path in ("/usage", "/usage?days=365", "/usage?days=7&view=view_3", "/", "/?q=figure", "/views/view_0"):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, path
            assert elapsed < 3.0, f"{path} took {elapsed:.2f} s"
        page = client.get("/usage?days=90").text
        assert "feature_9_19" in page and "never" in page  # an unread feature
    touched = [s for s in statements if "usage_events" in s]
    assert touched == []
    assert any("usage_daily" in s for s in statements)
