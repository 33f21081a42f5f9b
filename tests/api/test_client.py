"""The Python client end to end: a real uvicorn server in a thread, serving the tiny project."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from datamart.app import create_app
from datamart.client import DatamartClient
from datamart.errors import error_body, error_from_body, http_status
from featurestore.errors import (
    DefinitionError,
    FeatureStoreError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
)
from featurestore.store import FeatureStore
from tests.api.conftest import serving

FEATURES = ["customer_stats:spend_1d", "customer_balance:balance"]


@pytest.fixture(scope="module")
def base_url(store: FeatureStore) -> Iterator[str]:
    with serving(create_app(store)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[DatamartClient]:
    with DatamartClient(base_url, consumer="client-test") as c:
        yield c


def test_health_and_catalog(client: DatamartClient) -> None:
    assert client.health()["project"] == "shop"
    assert client.search("marketing")[0]["name"] == "customer_profile:segment"
    assert [r["name"] for r in client.search(tag="spend")] == ["customer_stats:spend_1d"]
    view = client.describe("customer_stats")
    assert view["version"] == 1
    assert [f["name"] for f in view["features"]] == ["spend_1d", "txn_count_1d"]
    assert {v["name"] for v in client.list_feature_views()} == {
        "customer_stats",
        "customer_profile",
        "customer_balance",
    }
    assert client.list_feature_services()[0]["name"] == "churn"


def test_online_features_match_the_sdk(client: DatamartClient, store: FeatureStore) -> None:
    entities = {"customer_id": [1, 2, 3]}
    online = client.get_online_features("churn", entities)
    sdk = store.get_online_features("churn", entities)
    for name in ("spend_1d", "txn_count_1d", "segment"):
        assert online["features"][name]["values"] == sdk.values.column(name).to_pylist()
        assert online["features"][name]["statuses"] == [s.value for s in sdk.statuses[name]]
    # Rows of dicts and numpy values (a pandas column) are accepted too.
    frame = pd.DataFrame({"customer_id": [2, 1]})
    rows = client.get_online_features(["customer_stats:spend_1d"], frame)
    assert rows["features"]["spend_1d"]["values"] == [100.0, 7.0]
    rows = client.get_online_features(["customer_stats:spend_1d"], [{"customer_id": 2}])
    assert rows["features"]["spend_1d"]["values"] == [100.0]


def test_concurrent_lookups_through_the_threadpool(base_url: str) -> None:
    def lookup(customer: int) -> list[object]:
        with DatamartClient(base_url, consumer="concurrency-test") as c:
            values: list[object] = c.get_online_features("churn", {"customer_id": [customer]})["features"]["segment"][
                "values"
            ]
            return values

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lookup, [1, 2, 3, 4] * 8))
    assert results == [["mass"], ["affluent"], ["student"], [None]] * 8


def test_training_set_from_pandas_round_trips_its_types(client: DatamartClient) -> None:
    spine = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3],
            "applied_at": pd.to_datetime(
                ["2024-03-02T12:00:00", "2024-03-01T23:00:00", "2024-03-02T00:00:00", "2024-03-02T00:00:00"], utc=True
            ),
            "defaulted": [True, False, False, True],
        }
    )
    table = client.get_training_set(spine, FEATURES, timestamp_column="applied_at")
    assert isinstance(table, pa.Table)
    assert table.column("spend_1d").to_pylist() == [15.0, None, 100.0, None]
    assert table.column("balance").to_pylist() == [None, -20.0, 50.0, None]
    assert table.column("defaulted").to_pylist() == [True, False, False, True]
    frame = table.to_pandas()
    assert list(frame.columns) == ["customer_id", "applied_at", "defaulted", "spend_1d", "balance"]
    assert str(frame["applied_at"].dt.tz) == "UTC"


def test_training_set_from_a_server_without_arrow_answers_comes_as_parquet(
    client: DatamartClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server older than the Arrow answers knows only json/csv/parquet: it skips the Arrow type
    # the client's Accept names first and answers Parquet, which the client reads by its type.
    from datamart import tables
    from datamart.routes import reads

    def older(requested: tables.TableFormat | None, accept: str | None) -> tables.TableFormat:
        known = ",".join(m for m in (accept or "").split(",") if tables.ARROW_STREAM_MEDIA_TYPE not in m)
        found = tables.negotiate_format(requested, known)
        assert found != "arrow"
        return found

    monkeypatch.setattr(reads, "negotiate_format", older)
    spine = pa.table({"customer_id": [2], "event_timestamp": [datetime(2024, 3, 2, tzinfo=UTC)]})
    table = client.get_training_set(spine, "churn", full_feature_names=True)
    assert table.column("customer_stats__spend_1d").to_pylist() == [100.0]
    assert table.column("customer_profile__segment").to_pylist() == ["affluent"]


def test_training_set_of_a_service_from_an_arrow_spine(client: DatamartClient) -> None:
    spine = pa.table({"customer_id": [2], "event_timestamp": [datetime(2024, 3, 2, tzinfo=UTC)]})
    table = client.get_training_set(spine, "churn", full_feature_names=True)
    assert table.column("customer_stats__spend_1d").to_pylist() == [100.0]
    assert table.column("customer_profile__segment").to_pylist() == ["affluent"]


def test_training_set_with_naive_times_is_rejected_naming_the_column(client: DatamartClient) -> None:
    # A naive time's zone is unknown: reading it as UTC could shift rows past their features.
    spine = pa.table({"customer_id": [2], "event_timestamp": [datetime(2024, 3, 2)]})
    with pytest.raises(InvalidRequestError, match="'event_timestamp' has no time zone"):
        client.get_training_set(spine, "churn")


def test_reference_data(client: DatamartClient) -> None:
    table = client.get_reference_data("customer_stats", datetime(2024, 3, 2, 12, tzinfo=UTC), features=["spend_1d"])
    assert table.column_names == ["customer_id", "as_of", "spend_1d"]
    assert table.column("spend_1d").to_pylist() == [15.0, 100.0]
    assert table.column("as_of").type == pa.timestamp("us", tz="UTC")
    assert client.get_reference_data("customer_balance", "2024-03-10").num_rows == 0
    assert client.get_reference_data("customer_balance", "2024-03-10", include_expired=True).num_rows == 2


def test_register_model_and_lineage(client: DatamartClient) -> None:
    assert client.register_model("churn_lr", "churn", "Logistic regression")["name"] == "churn_lr"
    assert {"src_kind": "feature_service", "src_name": "churn", "dst_kind": "model", "dst_name": "churn_lr"} in (
        client.lineage()["edges"]
    )


def test_usage_is_recorded_under_the_client_consumer(client: DatamartClient) -> None:
    client.get_online_features(["customer_profile:age"], {"customer_id": [1]})
    rows = client.usage(consumer="client-test", view="customer_profile")
    assert ("age", "online") in {(r["feature"], r["kind"]) for r in rows}


def test_errors_are_the_feature_store_exceptions_with_the_server_message(
    client: DatamartClient, store: FeatureStore
) -> None:
    with pytest.raises(NotFoundError) as in_process:
        store.registry.get_feature_view("shop", "customer_stat")
    with pytest.raises(NotFoundError) as not_found:
        client.describe("customer_stat")
    assert str(not_found.value) == str(in_process.value)
    assert not_found.value.suggestions == in_process.value.suggestions
    assert not_found.value.suggestions[0] == "customer_stats"
    assert (not_found.value.kind, not_found.value.name) == ("feature view", "customer_stat")
    with pytest.raises(NotFoundError, match="Did you mean 'customer_stats:spend_1d'"):
        client.get_online_features(["customer_stats:spend_1"], {"customer_id": [1]})
    spine = pd.DataFrame({"customer_id": [1], "ts": pd.to_datetime(["2024-03-02"], utc=True)})
    with pytest.raises(InvalidRequestError, match="no timestamp column 'event_timestamp'"):
        client.get_training_set(spine, FEATURES)
    with pytest.raises(NotFoundError, match="Feature service 'chrun' not found"):
        client.register_model("m", "chrun")


def test_unreachable_api_is_store_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with DatamartClient(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(StoreUnavailableError) as err:
        client.health()
    assert f"127.0.0.1:{port}" in str(err.value)


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("feature view", "spnd", project="bank", candidates=["spend"]),
        DefinitionError(["first problem", "second problem"]),
        StoreUnavailableError("Redis online store", "redis://h:6379/0", "connection refused"),
        InvalidRequestError("bad spine"),
        FeatureStoreError("something else"),
    ],
)
def test_error_bodies_round_trip(error: FeatureStoreError) -> None:
    again = error_from_body(http_status(error), error_body(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    for attr in ("suggestions", "problems", "store", "address", "kind", "name"):
        assert getattr(again, attr, None) == getattr(error, attr, None)
