"""Point-in-time correct training sets and reference data, on a tiny project run once.

The data (all times UTC, 2024):

``customer_score`` (key ``customer_id``, TTL 2 days, features ``score``, ``tier``), rows in file order:

====  ===========  =====  ====
cust  ts           score  tier
====  ===========  =====  ====
1     03-01 00:00  1.0    a
1     03-02 00:00  2.0    b
1     03-03 12:00  null   c      the latest value of customer 1 is null
2     03-01 00:00  10.0   x      expires after 03-03 00:00
3     03-10 00:00  30.0   z      only data in the future of the spine
4     03-05 00:00  40.0   p      two rows at the same time ...
4     03-05 00:00  41.0   q      ... the later one in the source wins
====  ===========  =====  ====

``merchant_risk`` (key ``merchant_id``, a string, TTL 30 days, feature ``risk``):
m1 0.5 at 03-01, m1 0.7 at 03-04, m2 0.9 at 03-02.

Ties: among rows of one key with the same event time, the run keeps the one the transformation
emits last (here: the later row of the file), and that row is what training sets, reference data
and the online store all return.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest
from tiny_projects import UTC_US, machine_time_zone, new_project, utc, write_parquet

from etl.local import LocalEngine
from featurestore import (
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    FileSource,
    Float64,
    Int64,
    InvalidRequestError,
    NotFoundError,
    String,
)
from featurestore.retrieval import as_of
from featurestore.store import FeatureStore
from featurestore.validation import validate_project


def definitions() -> list[object]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    merchant = Entity(name="merchant", join_keys=("merchant_id",), key_types=(String,))
    scores = FileSource(name="scores", path="data/scores.parquet", timestamp_field="ts")
    merchants = FileSource(name="merchants", path="data/merchants.parquet", timestamp_field="ts")
    score = FeatureView(
        name="customer_score",
        entities=(customer,),
        source=scores,
        timestamp_field="ts",
        ttl=timedelta(days=2),
        features=(Feature("score", Float64), Feature("tier", String)),
    )
    risk = FeatureView(
        name="merchant_risk",
        entities=(merchant,),
        source=merchants,
        timestamp_field="ts",
        ttl=timedelta(days=30),
        features=(Feature("risk", Float64),),
    )
    service = FeatureService(name="fraud", features=(score.select("score"), risk))
    return [customer, merchant, scores, merchants, score, risk, service]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    root = new_project(tmp_path_factory.mktemp("pit"), "pit")
    write_parquet(
        root / "data" / "scores.parquet",
        {
            "customer_id": pa.array([1, 1, 1, 2, 3, 4, 4], pa.int64()),
            "ts": pa.array(
                [
                    utc(2024, 3, 1),
                    utc(2024, 3, 2),
                    utc(2024, 3, 3, 12),
                    utc(2024, 3, 1),
                    utc(2024, 3, 10),
                    utc(2024, 3, 5),
                    utc(2024, 3, 5),
                ],
                UTC_US,
            ),
            "score": [1.0, 2.0, None, 10.0, 30.0, 40.0, 41.0],
            "tier": ["a", "b", "c", "x", "z", "p", "q"],
        },
    )
    write_parquet(
        root / "data" / "merchants.parquet",
        {
            "merchant_id": ["m1", "m1", "m2"],
            "ts": pa.array([utc(2024, 3, 1), utc(2024, 3, 4), utc(2024, 3, 2)], UTC_US),
            "risk": [0.5, 0.7, 0.9],
        },
    )
    objects = definitions()
    with FeatureStore(root) as s:
        engine = LocalEngine(s)
        s.apply(objects, schema_resolver=engine.infer_schema)
        views = {v.name: v for v in validate_project(objects).feature_views}
        for name in views:
            engine.run(name, definitions=views, progress=False)
        yield s


# Spine rows, with what each must get (derived from the table in the module docs).
SPINE_ROWS: list[tuple[int, str, datetime, int, float | None, str | None, float | None]] = [
    # customer, merchant, time, label, score, tier, risk
    (1, "m1", utc(2024, 3, 2), 0, 2.0, "b", 0.5),  # exactly at customer 1's second row: included
    (1, "m1", utc(2024, 3, 1, 23, 59, 59), 1, 1.0, "a", 0.5),  # earlier than the row above, kept in spine order
    (1, "m2", utc(2024, 3, 4), 0, None, "c", 0.9),  # latest score is null: stays null (not 2.0)
    (2, "m1", utc(2024, 3, 3), 1, 10.0, "x", 0.5),  # exactly TTL (2 days) old: still valid
    (2, "m1", utc(2024, 3, 3, 0, 0, 1), 0, None, None, 0.5),  # one second past TTL: null
    (3, "m2", utc(2024, 3, 5), 1, None, None, 0.9),  # only future data: nulls, row kept
    (4, "m1", utc(2024, 3, 6), 0, 41.0, "q", 0.7),  # tie at 03-05: the later source row wins
    (1, "m1", utc(2024, 3, 2), 0, 2.0, "b", 0.5),  # duplicate of the first row: returned again
    (5, "m9", utc(2024, 3, 5), 1, None, None, None),  # unknown entities: nulls, row kept
]


def spine_table() -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in SPINE_ROWS], pa.int64()),
            "merchant_id": [r[1] for r in SPINE_ROWS],
            "event_timestamp": pa.array([r[2] for r in SPINE_ROWS], UTC_US),
            "label": pa.array([r[3] for r in SPINE_ROWS], pa.int64()),
        }
    )


FEATURES = ["customer_score:score", "customer_score:tier", "merchant_risk:risk"]


def test_every_spine_row_once_in_order_with_point_in_time_values(store: FeatureStore) -> None:
    spine = spine_table()
    result = store.get_training_set(spine, FEATURES)
    assert result.num_rows == len(SPINE_ROWS)
    assert result.column_names == ["customer_id", "merchant_id", "event_timestamp", "label", "score", "tier", "risk"]
    # The spine's columns, labels included, come back unchanged and in the spine's order.
    assert result.select(spine.column_names).equals(spine)
    assert result.column("score").to_pylist() == [r[4] for r in SPINE_ROWS]
    assert result.column("tier").to_pylist() == [r[5] for r in SPINE_ROWS]
    assert result.column("risk").to_pylist() == [r[6] for r in SPINE_ROWS]
    assert result.schema.field("score").type == pa.float64()
    assert result.schema.field("tier").type == pa.string()


def test_a_feature_service_and_full_feature_names(store: FeatureStore) -> None:
    result = store.get_training_set(spine_table(), "fraud", full_feature_names=True)
    assert result.column_names[-2:] == ["customer_score__score", "merchant_risk__risk"]
    assert result.column("customer_score__score").to_pylist() == [r[4] for r in SPINE_ROWS]
    assert result.column("merchant_risk__risk").to_pylist() == [r[6] for r in SPINE_ROWS]


def test_spine_from_pandas_with_iso_strings(store: FeatureStore) -> None:
    spine = pd.DataFrame(
        {
            "customer_id": [2, 1],
            "when": ["2024-03-03T00:00:00Z", "2024-03-02T01:00:00+01:00"],  # the second is 03-02 00:00 UTC
        }
    )
    result = store.get_training_set(spine, ["customer_score:score"], timestamp_column="when")
    assert result.column("score").to_pylist() == [10.0, 2.0]
    assert result.column("when").to_pylist() == [utc(2024, 3, 3), utc(2024, 3, 2)]


def test_spine_in_another_time_zone_is_compared_in_utc(store: FeatureStore) -> None:
    # 2024-03-02 00:30 in UTC+1 is 03-01 23:30 UTC: before customer 1's second row.
    plus_one = timezone(timedelta(hours=1))
    spine = pa.table(
        {
            "customer_id": pa.array([1], pa.int64()),
            "event_timestamp": pa.array(
                [datetime(2024, 3, 2, 0, 30, tzinfo=plus_one)], pa.timestamp("us", tz="+01:00")
            ),
        }
    )
    assert store.get_training_set(spine, ["customer_score:score"]).column("score").to_pylist() == [1.0]


def test_ties_resolve_the_same_way_online(store: FeatureStore) -> None:
    online = store.get_online_features(
        ["customer_score:score", "customer_score:tier"], {"customer_id": [4]}, now=utc(2024, 3, 6)
    )
    assert online.values.column("score").to_pylist() == [41.0]
    assert online.values.column("tier").to_pylist() == ["q"]


def test_online_lookup_refuses_a_naive_now(store: FeatureStore) -> None:
    # A naive time means different instants on different machines; TTL expiry would depend on it.
    with pytest.raises(InvalidRequestError, match="has no time zone"):
        store.get_online_features(["customer_score:score"], {"customer_id": [4]}, now=datetime(2024, 3, 6))


def test_the_offline_store_keeps_one_row_per_key_and_time(store: FeatureStore) -> None:
    view = store.get_feature_view("customer_score")
    rows = store.offline_store.read(view).to_pylist()
    assert len(rows) == 6  # seven source rows, two of them tied
    assert [(r["score"], r["tier"]) for r in rows if r["customer_id"] == 4] == [(41.0, "q")]


# ---------------------------------------------------------------------- bad requests


def test_missing_timestamp_column_names_it(store: FeatureStore) -> None:
    spine = spine_table().rename_columns(["customer_id", "merchant_id", "ts", "label"])
    with pytest.raises(InvalidRequestError, match=r"no timestamp column 'event_timestamp'") as caught:
        store.get_training_set(spine, FEATURES)
    assert "'ts'" in str(caught.value)  # the columns it has


@pytest.mark.parametrize(
    "spine",
    [
        pa.table({"customer_id": [1], "event_timestamp": pa.array([datetime(2024, 3, 2)], pa.timestamp("us"))}),
        pd.DataFrame({"customer_id": [1], "event_timestamp": [pd.Timestamp("2024-03-02")]}),
    ],
    ids=["arrow", "pandas"],
)
def test_timezone_naive_timestamps_are_rejected_naming_the_column(
    store: FeatureStore, spine: pa.Table | pd.DataFrame
) -> None:
    with pytest.raises(InvalidRequestError, match=r"'event_timestamp' has no time zone") as caught:
        store.get_training_set(spine, ["customer_score:score"])
    assert "UTC" in str(caught.value)  # says how to fix it


def test_missing_key_column_names_it(store: FeatureStore) -> None:
    spine = spine_table().drop_columns(["merchant_id"])
    with pytest.raises(InvalidRequestError, match=r"\['merchant_id'\]"):
        store.get_training_set(spine, FEATURES)


def test_unknown_feature_suggests_the_near_one(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match=r"Did you mean 'customer_score:score'") as caught:
        store.get_training_set(spine_table(), ["customer_score:scor"])
    assert caught.value.suggestions[0] == "customer_score:score"


def test_unknown_view_suggests_the_near_one(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match=r"Feature view 'customer_scor' not found in project 'pit'") as caught:
        store.get_training_set(spine_table(), ["customer_scor:score"])
    assert caught.value.suggestions == ["customer_score"]


# ---------------------------------------------------------------------- reference data


def test_reference_data_as_of_a_time(store: FeatureStore) -> None:
    # At 03-03 00:00: customer 1's row of 03-02, customer 2's row of 03-01 (exactly TTL old);
    # customers 3 and 4 have only later rows.
    table = store.get_reference_data("customer_score", utc(2024, 3, 3))
    assert table.column_names == ["customer_id", "ts", "score", "tier"]
    assert table.to_pylist() == [
        {"customer_id": 1, "ts": utc(2024, 3, 2), "score": 2.0, "tier": "b"},
        {"customer_id": 2, "ts": utc(2024, 3, 1), "score": 10.0, "tier": "x"},
    ]


def test_reference_data_honours_ttl_unless_asked(store: FeatureStore) -> None:
    when = utc(2024, 3, 3, 0, 0, 1)  # customer 2's row is now one second past its TTL
    assert store.get_reference_data("customer_score", when, features=["score"]).to_pylist() == [
        {"customer_id": 1, "ts": utc(2024, 3, 2), "score": 2.0}
    ]
    expired = store.get_reference_data("customer_score", when, features=["score"], include_expired=True)
    assert expired.column("customer_id").to_pylist() == [1, 2]
    assert expired.column("score").to_pylist() == [2.0, 10.0]


def test_reference_data_on_a_date_with_string_keys(store: FeatureStore) -> None:
    table = store.get_reference_data("merchant_risk", utc(2024, 3, 4))
    assert table.to_pylist() == [
        {"merchant_id": "m1", "ts": utc(2024, 3, 4), "risk": 0.7},
        {"merchant_id": "m2", "ts": utc(2024, 3, 2), "risk": 0.9},
    ]
    assert table.schema.field("ts").type == UTC_US


def test_a_naive_as_of_time_is_utc_wherever_the_code_runs(store: FeatureStore) -> None:
    view = store.get_feature_view("customer_score")
    files = store.offline_store.files(view)
    # 03-02 05:00 UTC is after customer 1's row of 03-02 00:00; in Tokyo it would be 03-01 20:00 UTC.
    with machine_time_zone("Asia/Tokyo"):
        naive = as_of(view, files, ["score"], datetime(2024, 3, 2, 5))
    aware = as_of(view, files, ["score"], utc(2024, 3, 2, 5))
    assert naive.equals(aware)
    assert naive.column("score").to_pylist() == [2.0, 10.0]
