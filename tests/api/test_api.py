"""The datamart API against a real tiny project (see conftest.py for its data)."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from datamart.app import create_app_from_env
from featurestore.registry import Registry
from featurestore.store import FeatureStore

PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


SPINE = {
    "customer_id": [1, 1, 1, 2, 3],
    "event_timestamp": [
        "2024-03-02T12:00:00Z",  # after customer 1's first daily row (15.0)
        "2024-03-01T23:00:00Z",  # before any row: null
        "2024-03-05T00:00:00Z",  # latest row (7.0), within the 3650-day TTL
        "2024-03-02T00:00:00Z",  # exactly at customer 2's row: included (100.0)
        "2024-03-02T00:00:00Z",  # customer 3 has no spend rows
    ],
    "label": [1, 0, 1, 0, 1],
}
# customer_balance has a 1-day TTL and rows at 2024-03-01T00:00 only.
EXPECTED_SPEND = [15.0, None, 7.0, 100.0, None]
EXPECTED_BALANCE = [None, -20.0, None, 50.0, None]
TRAINING_FEATURES = ["customer_stats:spend_1d", "customer_balance:balance"]


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _spine_table() -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(SPINE["customer_id"], pa.int64()),
            "event_timestamp": pa.array(
                [datetime.fromisoformat(t) for t in SPINE["event_timestamp"]], pa.timestamp("us", tz="UTC")
            ),
            "label": pa.array(SPINE["label"], pa.int64()),
        }
    )


# ---------------------------------------------------------------------- service and catalog


def test_health_names_the_project(api: TestClient) -> None:
    response = api.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["project"] == "shop"


def test_openapi_lists_every_endpoint(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/health",
        "/v1/search",
        "/v1/feature-views",
        "/v1/feature-views/{name}",
        "/v1/feature-services",
        "/v1/lineage",
        "/v1/online-features",
        "/v1/training-set",
        "/v1/training-set/upload",
        "/v1/reference-data/{view}",
        "/v1/models",
        "/v1/usage",
    ):
        assert path in paths, path
    online = paths["/v1/online-features"]["post"]
    assert "OnlineFeatures" in str(online["responses"]["200"])
    assert "X-Consumer" in [p["name"] for p in online["parameters"]]
    assert api.get("/docs").status_code == 200


def test_search_finds_a_feature_by_a_word_of_its_description(api: TestClient) -> None:
    results = api.get("/v1/search", params={"q": "Marketing"}).json()["results"]
    assert [r["name"] for r in results] == ["customer_profile:segment"]
    assert results[0]["kind"] == "feature"
    assert results[0]["matched"] == ["description"]
    assert results[0]["owner"] == "crm@example.com"  # the view's owner, the feature has none


def test_search_ranks_exact_name_first_then_name_then_description(api: TestClient) -> None:
    results = api.get("/v1/search", params={"q": "spend_1d"}).json()["results"]
    assert results[0]["name"] == "customer_stats:spend_1d"
    assert results[0]["score"] == 3
    results = api.get("/v1/search", params={"q": "balance"}).json()["results"]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[0]["name"] == "customer_balance:balance"  # exact (short) name
    names = [r["name"] for r in results]
    assert "customer_balance" in names
    assert "balances" not in names  # sources are not catalog entries
    assert any(r["score"] == 1 and r["name"] == "customer_balance:overdrawn" for r in results)  # description
    # Several words: each found somewhere in the entry.
    results = api.get("/v1/search", params={"q": "previous day spend"}).json()["results"]
    assert [r["name"] for r in results] == ["customer_stats:spend_1d"]


def test_search_filters_by_tag_owner_and_kind(api: TestClient) -> None:
    crm = api.get("/v1/search", params={"tag": "domain:crm"}).json()["results"]
    assert {r["name"] for r in crm} == {"customer_profile", "customer_profile:segment", "customer_profile:age"}
    views = api.get("/v1/search", params={"owner": "risk", "kind": "feature_view"}).json()["results"]
    assert [r["name"] for r in views] == ["customer_balance", "customer_stats"]
    bad = api.get("/v1/search", params={"kind": "feature-view"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "InvalidRequestError"


def test_feature_views_list_and_describe(api: TestClient) -> None:
    listed = {v["name"]: v for v in api.get("/v1/feature-views").json()}
    assert set(listed) == {"customer_stats", "customer_profile", "customer_balance"}
    view = api.get("/v1/feature-views/customer_stats").json()
    assert view["keys"] == [{"name": "customer_id", "dtype": "int64", "entity": "customer"}]
    assert view["timestamp_field"] == "as_of"
    assert [(f["name"], f["dtype"]) for f in view["features"]] == [("spend_1d", "float64"), ("txn_count_1d", "int64")]
    assert view["features"][0]["tags"] == ["spend"]
    assert view["ttl_seconds"] == 3650 * 86400
    assert view["online"] is True
    assert view["source"]["kind"] == "file"
    assert view["source"]["path"] == "data/raw/transactions.parquet"
    assert view["transformation"]["kind"] == "sql"
    assert "sum(amount)" in view["transformation"]["text"]
    assert view["version"] == 1
    assert [v["version"] for v in view["versions"]] == [1]
    assert datetime.fromisoformat(view["watermark"]) == utc(2024, 3, 3)
    assert len(view["runs"]) == 1
    assert view["runs"][0]["status"] == "succeeded"
    assert view["runs"][0]["rows_offline"] == 3


def test_describe_unknown_view_is_404_with_suggestion(api: TestClient) -> None:
    response = api.get("/v1/feature-views/customer_stat")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "NotFoundError"
    assert body["suggestions"][0] == "customer_stats"
    assert "customer_stat" in body["message"]


def test_feature_services_models_and_lineage(api: TestClient) -> None:
    response = api.post(
        "/v1/models", json={"name": "churn_gbm", "feature_service": "churn", "description": "Churn model"}
    )
    assert response.status_code == 201
    assert response.json() == {"name": "churn_gbm", "feature_service": "churn", "description": "Churn model"}
    services = api.get("/v1/feature-services").json()
    assert services == [
        {
            "name": "churn",
            "description": "Features of the churn model",
            "owner": "ds@example.com",
            "tags": [],
            "features": ["customer_stats:spend_1d", "customer_stats:txn_count_1d", "customer_profile:segment"],
            "models": ["churn_gbm"],
        }
    ]
    edges = api.get("/v1/lineage").json()["edges"]
    for edge in (
        ("source", "transactions", "feature_view", "customer_stats"),
        ("feature_view", "customer_stats", "feature_service", "churn"),
        ("feature_service", "churn", "model", "churn_gbm"),
    ):
        assert dict(zip(("src_kind", "src_name", "dst_kind", "dst_name"), edge, strict=True)) in edges
    assert {"kind": "model", "name": "churn_gbm"} in api.get("/v1/lineage").json()["nodes"]
    assert "churn_gbm" in [m["name"] for m in api.get("/v1/models").json()]
    assert api.get("/v1/feature-services/churn").json() == services[0]
    assert api.get("/v1/feature-services/churm").json()["suggestions"] == ["churn"]


def test_unknown_path_answers_the_error_body(api: TestClient) -> None:
    response = api.get("/v1/feature-view")
    assert response.status_code == 404
    assert response.json()["error"] == "HTTPError"
    assert "/v1/feature-view" in response.json()["message"]


def test_register_model_for_unknown_service_is_404(api: TestClient) -> None:
    response = api.post("/v1/models", json={"name": "m", "feature_service": "chrun"})
    assert response.status_code == 404
    assert response.json()["suggestions"] == ["churn"]


# ---------------------------------------------------------------------- online features


def test_online_features_equal_the_sdk_with_statuses(api: TestClient, store: FeatureStore) -> None:
    features = ["customer_stats:spend_1d", "customer_profile:segment", "customer_balance:balance"]
    entities = {"customer_id": [1, 3, 99]}
    response = api.post("/v1/online-features", json={"features": features, "entities": entities})
    assert response.status_code == 200
    body = response.json()
    sdk = store.get_online_features(features, entities)
    assert body["entities"] == entities
    for name in ("spend_1d", "segment", "balance"):
        assert body["features"][name]["values"] == sdk.values.column(name).to_pylist()
        assert body["features"][name]["statuses"] == [s.value for s in sdk.statuses[name]]
    assert body["features"]["spend_1d"] == {"values": [7.0, None, None], "statuses": ["present", "missing", "missing"]}
    assert body["features"]["segment"] == {
        "values": ["mass", "student", None],
        "statuses": ["present", "present", "missing"],
    }
    # The balance rows are older than the view's one-day TTL: withheld.
    assert body["features"]["balance"] == {"values": [None, None, None], "statuses": ["expired", "missing", "missing"]}
    assert body["event_timestamps"]["customer_stats"] == ["2024-03-03T00:00:00+00:00", None, None]


def test_online_features_of_a_service_with_full_names(api: TestClient) -> None:
    body = api.post(
        "/v1/online-features",
        json={"features": ["churn"], "entities": {"customer_id": [2]}, "full_feature_names": True},
    ).json()
    assert body["features"] == {
        "customer_stats__spend_1d": {"values": [100.0], "statuses": ["present"]},
        "customer_stats__txn_count_1d": {"values": [1], "statuses": ["present"]},
        "customer_profile__segment": {"values": ["affluent"], "statuses": ["present"]},
    }


def test_online_features_string_keys_are_cast_to_the_declared_type(api: TestClient) -> None:
    body = api.post(
        "/v1/online-features", json={"features": "customer_stats:spend_1d", "entities": {"customer_id": ["1"]}}
    ).json()
    assert body["features"]["spend_1d"]["values"] == [7.0]


def test_online_features_unknown_feature_is_404_with_suggestion(api: TestClient) -> None:
    response = api.post(
        "/v1/online-features", json={"features": ["customer_stats:spend_1dd"], "entities": {"customer_id": [1]}}
    )
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "NotFoundError"
    assert body["suggestions"][0] == "customer_stats:spend_1d"
    assert "Did you mean 'customer_stats:spend_1d'" in body["message"]


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"features": ["churn"], "entities": {"customer_id": [1, 2], "x": [1]}}, 422, "different lengths"),
        ({"features": ["churn"], "entities": {"cust_id": [1]}}, 422, "customer_id"),
        ({"features": ["churn"]}, 422, "entities"),
        ({"features": [], "entities": {"customer_id": [1]}}, 422, "No features requested"),
        ({"features": ["churn"], "entities": {"customer_id": [1]}, "entity": 1}, 422, "entity"),
    ],
)
def test_online_features_bad_requests(api: TestClient, payload: dict[str, object], status: int, words: str) -> None:
    response = api.post("/v1/online-features", json=payload)
    assert response.status_code == status, response.text
    assert response.json()["error"] == "InvalidRequestError"
    assert words in response.json()["message"]


def test_unreadable_json_is_400(api: TestClient) -> None:
    response = api.post("/v1/online-features", content=b'{"features": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidRequestError"


# ---------------------------------------------------------------------- training sets


def test_training_set_from_json_is_point_in_time_correct(api: TestClient) -> None:
    response = api.post(
        "/v1/training-set", json={"features": TRAINING_FEATURES, "spine": SPINE, "timestamp_column": "event_timestamp"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["num_rows"] == 5
    columns = body["columns"]
    assert columns["customer_id"] == SPINE["customer_id"]  # order kept, no row dropped
    assert columns["label"] == SPINE["label"]
    assert columns["spend_1d"] == EXPECTED_SPEND
    assert columns["balance"] == EXPECTED_BALANCE
    assert columns["event_timestamp"][0] == "2024-03-02T12:00:00+00:00"  # ISO 8601
    assert body["types"]["spend_1d"] == "double"


def test_training_set_from_json_rows_as_parquet(api: TestClient) -> None:
    rows = [dict(zip(SPINE, values, strict=True)) for values in zip(*SPINE.values(), strict=True)]
    response = api.post("/v1/training-set?format=parquet", json={"features": TRAINING_FEATURES, "spine": rows})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == PARQUET
    table = pq.read_table(pa.BufferReader(response.content))
    assert table.column("spend_1d").to_pylist() == EXPECTED_SPEND
    assert table.column("event_timestamp").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize("output", ["parquet", "arrow", "csv", "json"])
def test_training_set_from_parquet_upload(api: TestClient, output: str) -> None:
    response = api.post(
        f"/v1/training-set/upload?format={output}",
        files={"spine": ("spine.parquet", _parquet(_spine_table()), PARQUET)},
        data={"features": TRAINING_FEATURES, "timestamp_column": "event_timestamp"},
        headers={"X-Consumer": "upload-test"},
    )
    assert response.status_code == 200, response.text
    if output == "parquet":
        assert response.headers["content-type"] == PARQUET
        table = pq.read_table(pa.BufferReader(response.content))
        spend, balance = table.column("spend_1d").to_pylist(), table.column("balance").to_pylist()
        assert table.column("label").to_pylist() == SPINE["label"]
    elif output == "arrow":
        assert response.headers["content-type"] == ARROW_STREAM
        table = paipc.open_stream(response.content).read_all()
        spend, balance = table.column("spend_1d").to_pylist(), table.column("balance").to_pylist()
        assert table.column("event_timestamp").type == pa.timestamp("us", tz="UTC")
        assert table.column("label").to_pylist() == SPINE["label"]
    elif output == "csv":
        assert response.headers["content-type"].startswith("text/csv")
        table = pacsv.read_csv(pa.BufferReader(response.content))
        spend, balance = table.column("spend_1d").to_pylist(), table.column("balance").to_pylist()
        assert table.column("customer_id").to_pylist() == SPINE["customer_id"]
    else:
        columns = response.json()["columns"]
        spend, balance = columns["spend_1d"], columns["balance"]
    assert spend == EXPECTED_SPEND
    assert balance == EXPECTED_BALANCE


def test_training_set_from_csv_upload_with_comma_separated_features_and_accept_header(api: TestClient) -> None:
    csv = "customer_id,ts,label\n1,2024-03-02T12:00:00Z,1\n2,2024-03-02 01:00:00+01:00,0\n"
    response = api.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.csv", csv.encode(), "text/csv")},
        data={"features": ",".join(TRAINING_FEATURES), "timestamp_column": "ts"},
        headers={"Accept": PARQUET},
    )
    assert response.status_code == 200, response.text
    table = pq.read_table(pa.BufferReader(response.content))
    assert table.column("spend_1d").to_pylist() == [15.0, 100.0]
    assert table.column("balance").to_pylist() == [None, 50.0]


def test_an_accept_header_naming_the_arrow_stream_gets_one(api: TestClient) -> None:
    response = api.post(
        "/v1/training-set", json={"features": TRAINING_FEATURES, "spine": SPINE}, headers={"Accept": ARROW_STREAM}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW_STREAM
    assert response.headers["content-disposition"] == 'attachment; filename="training_set.arrows"'
    table = paipc.open_stream(response.content).read_all()
    assert table.column("spend_1d").to_pylist() == EXPECTED_SPEND
    assert table.column("event_timestamp").type == pa.timestamp("us", tz="UTC")


def test_training_set_of_a_feature_service(api: TestClient) -> None:
    response = api.post("/v1/training-set", json={"features": "churn", "spine": SPINE})
    columns = response.json()["columns"]
    assert columns["spend_1d"] == EXPECTED_SPEND
    assert columns["txn_count_1d"] == [2, None, 1, 1, None]
    assert columns["segment"] == ["mass", "mass", "mass", "affluent", "student"]


def test_training_set_unknown_feature_is_404_with_suggestion(api: TestClient) -> None:
    response = api.post("/v1/training-set", json={"features": ["customer_stats:spend"], "spine": SPINE})
    assert response.status_code == 404
    assert "customer_stats:spend_1d" in response.json()["suggestions"]


def test_training_set_missing_timestamp_column_is_422_naming_it(api: TestClient) -> None:
    spine = {"customer_id": [1], "ts": ["2024-03-02T00:00:00Z"]}
    response = api.post(
        "/v1/training-set", json={"features": TRAINING_FEATURES, "spine": spine, "timestamp_column": "event_time"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidRequestError"
    assert "'event_time'" in body["message"]
    assert "ts" in body["message"]


@pytest.mark.parametrize(
    ("spine", "words"),
    [
        ({"customer_id": [1, 2], "event_timestamp": ["2024-03-02T00:00:00Z"]}, "different lengths"),
        ({"customer_id": [1, "two"], "event_timestamp": ["2024-03-02", "2024-03-02"]}, "'customer_id'"),
        ({"customer_id": [1], "event_timestamp": ["yesterday"]}, "'event_timestamp'"),
        ({"event_timestamp": ["2024-03-02"]}, "customer_id"),
        ({}, "empty"),
    ],
)
def test_training_set_invalid_json_spine_is_422(api: TestClient, spine: dict[str, object], words: str) -> None:
    response = api.post("/v1/training-set", json={"features": TRAINING_FEATURES, "spine": spine})
    assert response.status_code == 422, response.text
    assert words in response.json()["message"]


@pytest.mark.parametrize(
    ("filename", "content", "words"),
    [
        ("spine.parquet", b"PAR1 this is not parquet", "cannot be read as Parquet"),
        ("spine.csv", b"customer_id,event_timestamp\n1,2024-03-02,extra\n", "cannot be read as CSV"),
        ("spine.csv", b"", "empty"),
        ("spine.xlsx", b"\x50\x4b\x03\x04", "neither CSV nor Parquet"),
    ],
)
def test_training_set_unreadable_upload_is_400(api: TestClient, filename: str, content: bytes, words: str) -> None:
    response = api.post(
        "/v1/training-set/upload",
        files={"spine": (filename, content, "application/octet-stream")},
        data={"features": TRAINING_FEATURES},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "InvalidRequestError"
    assert words in body["message"]
    assert filename in body["message"]


def test_training_set_upload_missing_timestamp_column_is_422(api: TestClient) -> None:
    response = api.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.csv", b"customer_id,when\n1,2024-03-02\n", "text/csv")},
        data={"features": TRAINING_FEATURES},
    )
    assert response.status_code == 422
    assert "'event_timestamp'" in response.json()["message"]


def test_training_set_upload_without_file_is_422(api: TestClient) -> None:
    response = api.post("/v1/training-set/upload", data={"features": TRAINING_FEATURES})
    assert response.status_code == 422
    assert "spine" in response.json()["message"]


def test_training_set_json_output_has_no_nan(api: TestClient, tmp_path: Path) -> None:
    from datamart.tables import table_to_json

    table = pa.table({"x": [1.0, math.nan, math.inf, None]})
    assert table_to_json(table)["columns"]["x"] == [1.0, None, None, None]


# ---------------------------------------------------------------------- reference data


def test_reference_data_as_of(api: TestClient) -> None:
    response = api.get("/v1/reference-data/customer_stats", params={"as_of": "2024-03-02T12:00:00Z"})
    assert response.status_code == 200, response.text
    columns = response.json()["columns"]
    assert columns["customer_id"] == [1, 2]
    assert columns["spend_1d"] == [15.0, 100.0]
    assert columns["as_of"] == ["2024-03-02T00:00:00+00:00", "2024-03-02T00:00:00+00:00"]


def test_reference_data_features_formats_and_expiry(api: TestClient) -> None:
    response = api.get(
        "/v1/reference-data/customer_stats",
        params={"as_of": "2024-03-10", "features": "spend_1d", "format": "csv"},
    )
    assert response.status_code == 200
    table = pacsv.read_csv(pa.BufferReader(response.content))
    assert table.column_names == ["customer_id", "as_of", "spend_1d"]
    assert table.column("spend_1d").to_pylist() == [7.0, 100.0]
    expired = api.get("/v1/reference-data/customer_balance", params={"as_of": "2024-03-10", "format": "parquet"})
    assert pq.read_table(pa.BufferReader(expired.content)).num_rows == 0  # older than the 1-day TTL
    kept = api.get(
        "/v1/reference-data/customer_balance",
        params={"as_of": "2024-03-10", "format": "parquet", "include_expired": "true"},
    )
    assert pq.read_table(pa.BufferReader(kept.content)).column("balance").to_pylist() == [-20.0, 50.0]


def test_reference_data_errors(api: TestClient) -> None:
    unknown = api.get("/v1/reference-data/customer_stats", params={"as_of": "2024-03-10", "features": "spend"})
    assert unknown.status_code == 404
    assert "customer_stats:spend_1d" in unknown.json()["suggestions"]
    bad_time = api.get("/v1/reference-data/customer_stats", params={"as_of": "last tuesday"})
    assert bad_time.status_code == 422
    assert "as_of" in bad_time.json()["message"]


# ---------------------------------------------------------------------- usage


def test_usage_is_logged_under_the_consumer_header(api: TestClient) -> None:
    api.post(
        "/v1/online-features",
        json={"features": ["customer_profile:age"], "entities": {"customer_id": [1, 2]}},
        headers={"X-Consumer": "churn-service"},
    )
    rows = api.get("/v1/usage", params={"consumer": "churn-service"}).json()["usage"]
    assert [(r["view"], r["feature"], r["kind"], r["rows"]) for r in rows] == [("customer_profile", "age", "online", 2)]
    assert rows[0]["last_read"] is not None
    anonymous = api.get("/v1/usage", params={"consumer": "anonymous"}).json()["usage"]
    assert anonymous, "reads without the header are logged as 'anonymous'"


def test_app_from_env_serves_the_project_and_flushes_usage_on_shutdown(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURESTORE_PROJECT_DIR", str(project_dir))
    with TestClient(create_app_from_env()) as client:
        assert client.get("/v1/health").json()["project"] == "shop"
        response = client.post(
            "/v1/online-features",
            json={"features": "customer_profile:segment", "entities": {"customer_id": [3]}},
            headers={"X-Consumer": "env-app"},
        )
        assert response.json()["features"]["segment"]["values"] == ["student"]
    with FeatureStore(project_dir) as store:
        registry: Registry = store.registry
        assert any(r["consumer"] == "env-app" for r in registry.usage_summary("shop"))


def test_app_from_env_without_the_variable_says_how_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from featurestore.errors import ConfigError

    monkeypatch.delenv("FEATURESTORE_PROJECT_DIR", raising=False)
    with pytest.raises(ConfigError, match="FEATURESTORE_PROJECT_DIR"):
        create_app_from_env()


def test_consistency_check_endpoint_reports_a_value_changed_in_the_online_store(
    api: TestClient, project_dir: Path
) -> None:
    clean = api.post("/v1/feature-views/customer_profile/consistency-checks", params={"all": "true"})
    assert clean.status_code == 200, clean.text
    body = clean.json()
    assert body["consistent"] is True
    assert (body["checked"], body["mismatched"], body["missing"], body["sampled"]) == (3, 0, 0, False)

    import sqlite3

    con = sqlite3.connect(project_dir / "data" / "online.db")
    (original,) = con.execute("SELECT value FROM fv_customer_profile WHERE entity_key = '2'").fetchone()
    try:
        tampered = bytes(original).replace(b'"affluent"', b'"student"')
        assert tampered != bytes(original)
        con.execute("UPDATE fv_customer_profile SET value = ? WHERE entity_key = '2'", (tampered,))
        con.commit()
        report = api.post("/v1/feature-views/customer_profile/consistency-checks", params={"all": "true"}).json()
    finally:
        con.execute("UPDATE fv_customer_profile SET value = ? WHERE entity_key = '2'", (original,))
        con.commit()
        con.close()
    assert report["consistent"] is False
    assert report["mismatched"] == 1
    assert report["by_feature"] == {"segment": 1}
    assert any("affluent" in str(e) and "student" in str(e) for e in report["examples"])

    history = api.get("/v1/feature-views/customer_profile/consistency-checks").json()
    assert [c["consistent"] for c in history[:2]] == [False, True]
    assert api.get("/v1/feature-views/customer_profil/consistency-checks").status_code == 404


def test_repair_endpoint_derives_a_deleted_online_value_from_offline(api: TestClient, project_dir: Path) -> None:
    import sqlite3

    nothing = api.post("/v1/feature-views/customer_profile/repairs")
    assert nothing.status_code == 200, nothing.text
    assert nothing.json() == {"view": "customer_profile", "settled": [], "entities": 0, "removed": 0}
    with sqlite3.connect(project_dir / "data" / "online.db") as con:
        con.execute("DELETE FROM fv_customer_profile WHERE entity_key = '2'")
    broken = api.post("/v1/feature-views/customer_profile/consistency-checks", params={"all": "true"}).json()
    assert broken["missing"] == 1
    repaired = api.post("/v1/feature-views/customer_profile/repairs", params={"all": "true"})
    assert repaired.status_code == 200, repaired.text
    assert repaired.json()["entities"] == 3
    after = api.post("/v1/feature-views/customer_profile/consistency-checks", params={"all": "true"}).json()
    assert after["consistent"] is True
    assert api.post("/v1/feature-views/customer_profil/repairs").status_code == 404


def test_openapi_documents_the_online_lookup_body_and_consumer_header(api: TestClient) -> None:
    # The hot path parses its body by hand; its documentation must not lose anything for it.
    operation = api.get("/openapi.json").json()["paths"]["/v1/online-features"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"features", "entities", "full_feature_names"} <= set(schema["properties"])
    assert schema["required"] == ["features", "entities"]
    assert [p["name"] for p in operation["parameters"]] == ["X-Consumer"]
    assert "200" in operation["responses"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", {}, 400, "JSON decode error"),
        (b'{"features": ["churn"], "entities": {"customer_id": [1]}}', {"X-Consumer": "x" * 201}, 422, "X-Consumer"),
        (b'{"features": 3, "entities": {"customer_id": [1]}}', {}, 422, "body.features"),
    ],
)
def test_online_features_malformed_bodies_and_headers(
    api: TestClient, body: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    response = api.post("/v1/online-features", content=body, headers={"content-type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
