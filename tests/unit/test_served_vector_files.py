"""What the served-vector log writes, value by value, for a mix of lookups.

These tests pin the files the writer writes against rows built here one entity at a time from
the same responses: every column, its type and each value, for lookups with all values present,
entities missing, null, expired and invalid values, model versions, two services (a split),
timestamps and more rows than a small batch, so that a change of how the writer converts
lookups (see ``featurestore.serving_log._Batch``) is checked against what it wrote before.
NaN and infinities are written as null: the writer's JSON lines cannot hold them (``skew``
matches a null served value with a non-finite offline one). No server: synthetic responses
and plans, a log writing to a temporary folder.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.config import ServingLogConfig
from featurestore.lookup import FeatureStatus, OnlineResponse
from featurestore.serving_log import OUTPUTS_METADATA, ServedVectorLog, read_served_with_outputs

UTC_US = pa.timestamp("us", tz="UTC")
DAY = datetime(2024, 3, 1, 12, tzinfo=UTC)
DAY_US = int(DAY.timestamp()) * 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TYPES = {
    "customer_id": pa.int64(),
    "spend": pa.float64(),
    "n": pa.int64(),
    "segment": pa.string(),
    "active": pa.bool_(),
    "last_seen": UTC_US,
    "score": pa.float64(),
}
P, NULL, MISSING, EXPIRED, INVALID = (
    FeatureStatus.PRESENT,
    FeatureStatus.NULL,
    FeatureStatus.MISSING,
    FeatureStatus.EXPIRED,
    FeatureStatus.INVALID,
)


def plan() -> Any:
    """Two views, as ``_Batch`` reads a ``LookupPlan``: each view's name, features and output names."""
    spend = SimpleNamespace(
        view=SimpleNamespace(name="daily_spend"),
        features=("spend", "n", "segment", "active", "last_seen"),
        outputs=("spend", "n", "segment", "active", "last_seen"),
    )
    scores = SimpleNamespace(view=SimpleNamespace(name="scores"), features=("score",), outputs=("score",))
    return SimpleNamespace(views=(spend, scores))


def response(i: int, n: int) -> OnlineResponse:
    """Lookup ``i`` of ``n`` entities; its kind (``i % 6``) decides which statuses it has."""
    keys = [i * 1000 + j for j in range(n)]
    spend: list[Any] = [float(i) + j / 8 for j in range(n)]
    count: list[Any] = [i * j for j in range(n)]
    segment: list[Any] = [f"s{j % 3}é" for j in range(n)]
    active: list[Any] = [j % 2 == 0 for j in range(n)]
    seen: list[Any] = [DAY - timedelta(days=j, microseconds=i) for j in range(n)]
    score: list[Any] = [j / 3 for j in range(n)]
    micros: list[int | None] = [DAY_US - j * 1_000_000 for j in range(n)]
    score_micros: list[int | None] = [DAY_US - j for j in range(n)]
    st = {name: [P] * n for name in ("spend", "n", "segment", "active", "last_seen", "score")}
    kind = i % 6
    if kind == 1:  # the last two entities are not stored online: every feature of both views missing
        for j in (n - 2, n - 1):
            for values in (spend, count, segment, active, seen, score):
                values[j] = None
            micros[j] = score_micros[j] = None
            for s in st.values():
                s[j] = MISSING
    elif kind == 2:  # stored rows with null values, one feature per entity
        spend[0], st["spend"][0] = None, NULL
        segment[1], st["segment"][1] = None, NULL
        seen[2], st["last_seen"][2] = None, NULL
    elif kind == 3:  # one view past its TTL, one value that could not be read
        score = [None] * n
        st["score"] = [EXPIRED] * n
        count[3], st["n"][3] = None, INVALID
    elif kind == 4:  # infinities and NaN are served as they are stored
        spend[0], spend[1], score[2] = math.inf, -math.inf, math.nan
    return OnlineResponse(
        keys={"customer_id": keys},
        columns={"spend": spend, "n": count, "segment": segment, "active": active, "last_seen": seen, "score": score},
        statuses=st,
        event_micros={"daily_spend": micros, "scores": score_micros},
        types=TYPES,
        served_at_us=DAY_US + i,
    )


def logged(value: Any) -> Any:
    """A value as the log holds it: NaN and infinities as null (see the module's text)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def expected_rows(
    r: OnlineResponse, request_id: str, consumer: str, service: str, model: str | None, versions: list[int] | None
) -> list[dict[str, Any]]:
    """The rows a lookup is logged as, one entity at a time."""
    at = EPOCH + timedelta(microseconds=r.served_at_us or 0)
    rows = []
    for j, key in enumerate(r.keys["customer_id"]):
        row: dict[str, Any] = {
            "request_time": at,
            "request_id": request_id,
            "consumer": consumer,
            "service": service,
            "model": model,
            "model_version": None if versions is None else versions[j],
            "key:customer_id": key,
        }
        for out in ("spend", "n", "segment", "active", "last_seen"):
            row[f"value:{out}"] = logged(r.columns[out][j])
            row[f"status:{out}"] = r.statuses[out][j].value
        micros = r.event_micros["daily_spend"][j]
        row["event_time:daily_spend"] = None if micros is None else EPOCH + timedelta(microseconds=micros)
        row["value:score"] = logged(r.columns["score"][j])
        row["status:score"] = r.statuses["score"][j].value
        micros = r.event_micros["scores"][j]
        row["event_time:scores"] = None if micros is None else EPOCH + timedelta(microseconds=micros)
        rows.append(row)
    return rows


SCHEMA = pa.schema(
    [
        ("request_time", UTC_US),
        ("request_id", pa.string()),
        ("consumer", pa.string()),
        ("service", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("key:customer_id", pa.int64()),
        ("value:spend", pa.float64()),
        ("status:spend", pa.string()),
        ("value:n", pa.int64()),
        ("status:n", pa.string()),
        ("value:segment", pa.string()),
        ("status:segment", pa.string()),
        ("value:active", pa.bool_()),
        ("status:active", pa.string()),
        ("value:last_seen", UTC_US),
        ("status:last_seen", pa.string()),
        ("event_time:daily_spend", UTC_US),
        ("value:score", pa.float64()),
        ("status:score", pa.string()),
        ("event_time:scores", UTC_US),
    ]
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b) and type(a) is type(b)


def assert_rows(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    assert table.schema.remove_metadata() == SCHEMA
    rows = table.to_pylist()
    assert len(rows) == len(expected)
    for i, (got, want) in enumerate(zip(rows, expected, strict=True)):
        wrong = {c: (got[c], want[c]) for c in want if not same(got[c], want[c])}
        assert not wrong, f"row {i}: {wrong}"


def test_the_files_hold_every_lookup_value_by_value(tmp_path: Path) -> None:
    log = ServedVectorLog(ServingLogConfig(sample_rate=1.0, flush_seconds=3600, flush_rows=10**6), tmp_path)
    the_plan, other_plan = plan(), plan()
    expected: dict[str, list[dict[str, Any]]] = {"spend_model": [], "short_model": []}
    # Lookups of uneven sizes (3,000 rows in all), with and without a model.
    for i in range(40):
        r = response(i, 40 + i % 7 * 15)
        model, versions = (
            ("churn", [1 + j % 2 for j in range(len(r.keys["customer_id"]))]) if i % 4 == 2 else (None, None)
        )
        rid = f"request-{i}"
        assert log.log(
            r, the_plan, consumer=f"c{i % 3}", service="spend_model", request_id=rid, model=model, versions=versions
        )
        expected["spend_model"] += expected_rows(r, rid, f"c{i % 3}", "spend_model", model, versions)
    # A split: the entities of version 2 under another service (their own plan), one request id.
    for i in range(3):
        r = response(100 + i, 30)
        versions = [2] * 30
        log.log(
            r, other_plan, consumer="svc", service="short_model", request_id="split", model="churn", versions=versions
        )
        expected["short_model"] += expected_rows(r, "split", "svc", "short_model", "churn", versions)
    log.close()
    assert log.stats().write_errors == 0
    assert log.stats().rows_written == sum(len(rows) for rows in expected.values())
    for service, rows in expected.items():
        (file,) = tmp_path.glob(f"date=2024-03-01/service={service}/*.parquet")
        table = pq.read_table(file)
        assert_rows(table, rows)
        outputs = json.loads((table.schema.metadata or {})[OUTPUTS_METADATA])
        assert outputs == {
            **{f: ["daily_spend", f] for f in ("spend", "n", "segment", "active", "last_seen")},
            "score": ["scores", "score"],
        }
        # The reader skew uses gives the same rows.
        read, _ = read_served_with_outputs(tmp_path, service, DAY - timedelta(hours=1))
        assert_rows(read, rows)


def test_lookups_with_no_value_missing_are_written_the_same(tmp_path: Path) -> None:
    # No None among the floats of a batch (all present, or infinities and NaN).
    log = ServedVectorLog(ServingLogConfig(sample_rate=1.0, flush_seconds=3600, flush_rows=10**6), tmp_path)
    the_plan = plan()
    expected: list[dict[str, Any]] = []
    for i in (0, 4, 6, 10, 12, 16):  # all present, or infinities and NaN
        r = response(i, 500)
        log.log(r, the_plan, consumer="c", service="spend_model", request_id=f"r{i}")
        expected += expected_rows(r, f"r{i}", "c", "spend_model", None, None)
    log.close()
    (file,) = tmp_path.glob("date=2024-03-01/service=spend_model/*.parquet")
    assert_rows(pq.read_table(file), expected)


def test_a_lookup_without_a_request_id_gets_a_random_one_and_is_sampled_at_the_rate(tmp_path: Path) -> None:
    log = ServedVectorLog(ServingLogConfig(sample_rate=1.0, flush_seconds=3600, flush_rows=10**6), tmp_path)
    the_plan = plan()
    for i in range(5):
        assert log.log(response(i, 5), the_plan, consumer="c", service="spend_model")
    log.close()
    (file,) = tmp_path.glob("date=2024-03-01/service=spend_model/*.parquet")
    ids = pq.read_table(file).column("request_id").to_pylist()
    assert all(len(set(ids[i : i + 5])) == 1 for i in range(0, 25, 5))  # one id per lookup
    assert len(set(ids)) == 5
    for value in set(ids):  # as uuid.uuid4().hex writes them
        assert uuid.UUID(hex=value).version == 4 and uuid.UUID(hex=value).hex == value

    sampled_log = ServedVectorLog(ServingLogConfig(sample_rate=0.3), tmp_path / "sampled")
    sampled_log._start = lambda: None  # type: ignore[method-assign]  # no writer: only the decision
    n = 5_000
    logged = sum(sampled_log.log(response(0, 1), the_plan, consumer="c", service="s") for _ in range(n))
    assert abs(logged - 0.3 * n) < 4 * (n * 0.3 * 0.7) ** 0.5
