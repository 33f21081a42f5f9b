"""Bad requests get a 4xx whose message says what to fix, never a 500 (issue 12, item 6); naive
times are refused on every HTTP surface (item 3); /docs works offline (item 5).

Each case below was a 500, a silent wrong answer or a misleading message before."""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from datamart.client import DatamartClient
from featurestore.errors import InvalidRequestError

FEATURES = ["customer_stats:spend_1d"]
WHEN = "2024-03-02T00:00:00Z"


def _assert_says(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == "InvalidRequestError"
    for word in words:
        assert word in body["message"], (word, body["message"])


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# ---------------------------------------------------------------------- online keys


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([1, "2"], ["mixes integers and strings", "'customer_id'"]),  # was ArrowInvalid: 500
        ([True], ["true is not an entity key"]),  # was read as customer 1
        ([2**63], [f"{2**63} is not an entity key", "64 bits"]),  # was "missing"
        ([2**64], ["is not an entity key", "64 bits"]),
        ([-(2**63) - 1], ["is not an entity key"]),
        ([1.5], ["1.5 is not an entity key"]),
        ([None], ["null is not an entity key"]),
        ([[1]], ["[1] is not an entity key"]),
    ],
)
def test_online_keys_of_the_wrong_kind_are_422_naming_the_key(
    api: TestClient, keys: list[Any], words: list[str]
) -> None:
    response = api.post("/v1/online-features", json={"features": FEATURES, "entities": {"customer_id": keys}})
    _assert_says(response, 422, *words)


def test_online_keys_at_the_int64_bounds_are_keys(api: TestClient) -> None:
    response = api.post(
        "/v1/online-features", json={"features": FEATURES, "entities": {"customer_id": [2**63 - 1, -(2**63), 1]}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["features"]["spend_1d"]["statuses"] == ["missing", "missing", "present"]


def test_online_empty_inputs(api: TestClient) -> None:
    none = api.post("/v1/online-features", json={"features": FEATURES, "entities": {"customer_id": []}})
    assert none.status_code == 200, none.text
    assert none.json()["features"]["spend_1d"] == {"values": [], "statuses": []}
    _assert_says(api.post("/v1/online-features", json={"features": FEATURES, "entities": {}}), 422, "customer_id")
    _assert_says(api.post("/v1/online-features", content=b"", headers={"content-type": "application/json"}), 400)


# ---------------------------------------------------------------------- JSON spines


@pytest.mark.parametrize(
    ("spine", "words"),
    [
        # Out-of-range times: OverflowError while writing the answer, before.
        ({"customer_id": [1], "event_timestamp": ["-0001-01-01T00:00:00Z"]}, ["'-0001-01-01T00:00:00Z'", "0001"]),
        ({"customer_id": [1], "event_timestamp": ["0000-01-01T00:00:00Z"]}, ["not an ISO 8601 date or time"]),
        ({"customer_id": [1], "event_timestamp": ["0001-01-01T00:00:00+01:00"]}, ["outside 0001-01-01"]),
        ({"customer_id": [1], "event_timestamp": ["9999-12-31T23:59:59-01:00"]}, ["outside 0001-01-01"]),
        ({"customer_id": [1], "event_timestamp": ["10000-01-01T00:00:00Z"]}, ["row 0", "'10000-01-01T00:00:00Z'"]),
        # Integers beyond int64: OverflowError, before.
        ({"customer_id": [1], "event_timestamp": [2**64]}, ["'event_timestamp'", "64-bit"]),
        ({"customer_id": [2**63], "event_timestamp": [WHEN]}, ["'customer_id'", "64-bit"]),
        ({"customer_id": [1], "event_timestamp": [WHEN], "label": [-(2**63) - 1]}, ["'label'", "64-bit"]),
        # Columns named like the point-in-time join's own (a KeyError, before) are kept: see
        # tests/api/test_time_rule.py.
        # Mixed types, booleans as keys.
        ({"customer_id": [1, "2"], "event_timestamp": [WHEN, WHEN]}, ["'customer_id'", "one type"]),
        ({"customer_id": [True], "event_timestamp": [WHEN]}, ["'customer_id'", "booleans", "int64"]),
        ({"customer_id": [1], "event_timestamp": [WHEN, 3]}, ["different lengths"]),
        # Empty: said "timestamp column has type null", before.
        ({"customer_id": [], "event_timestamp": []}, ["no rows"]),
        ({}, ["empty"]),
    ],
)
def test_training_set_bad_json_spines_are_422_saying_what_to_fix(
    api: TestClient, spine: dict[str, Any], words: list[str]
) -> None:
    response = api.post("/v1/training-set", json={"features": FEATURES, "spine": spine})
    _assert_says(response, 422, *words)


def test_training_set_empty_rows_spine_is_422(api: TestClient) -> None:
    _assert_says(api.post("/v1/training-set", json={"features": FEATURES, "spine": []}), 422, "empty")


def test_training_set_times_at_the_edges_of_the_range_are_answered(api: TestClient) -> None:
    spine = {"customer_id": [1, 1], "event_timestamp": ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]}
    response = api.post("/v1/training-set", json={"features": FEATURES, "spine": spine})
    assert response.status_code == 200, response.text
    columns = response.json()["columns"]
    assert columns["event_timestamp"] == ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00"]
    assert columns["spend_1d"] == [None, None]  # before any row; long past the 3650-day TTL


# ---------------------------------------------------------------------- uploaded spines


@pytest.mark.parametrize(
    ("csv", "words"),
    [
        (b"customer_id,ts,ts\n1,2024-03-02T00:00:00Z,2024-03-02T00:00:00Z\n", ["repeats", "'ts'"]),  # was KeyError
        (b"customer_id,ts\n", ["no rows"]),
        (b"customer_id,ts\n1,2024-03-02T00:00:00Z\n2,2024-03-02 00:00:00\n", ["'ts' (row 1)", "no time zone"]),
        (b"customer_id,ts\n1,2024-03-02T00:00:00Z\n2,-0001-01-01T00:00:00Z\n", ["'ts' (row 1)"]),
    ],
)
def test_training_set_bad_uploads_are_422(api: TestClient, csv: bytes, words: list[str]) -> None:
    response = api.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.csv", csv, "text/csv")},
        data={"features": FEATURES, "timestamp_column": "ts"},
    )
    _assert_says(response, 422, *words)


@pytest.mark.parametrize(
    "column",
    [
        pa.array([-62_135_596_800_000_001], pa.timestamp("us", tz="UTC")),  # a microsecond before year 1
        pa.array([2**40], pa.timestamp("s", tz="UTC")),
        pa.array([2**31 - 1], pa.date32()),
    ],
)
def test_training_set_parquet_spine_with_times_beyond_year_9999_is_422(api: TestClient, column: pa.Array) -> None:
    # Arrow holds them; the JSON answer (Python's datetime) could not: OverflowError, before.
    spine = pa.table({"customer_id": pa.array([1], pa.int64()), "ts": column})
    response = api.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.parquet", _parquet(spine), "application/vnd.apache.parquet")},
        data={"features": FEATURES, "timestamp_column": "ts"},
    )
    _assert_says(response, 422, "'ts'", "outside 0001-01-01 to 9999-12-31")


# ---------------------------------------------------------------------- naive times (item 3)


NAIVE_MESSAGE = re.compile(r"has no time zone \('[^']+'\); give timezone-aware times, e\.g\. in UTC: .*'[^']+Z'")


def test_json_spine_with_naive_times_is_refused_naming_the_column_and_row(api: TestClient) -> None:
    spine = {"customer_id": [1, 2], "applied_at": ["2024-03-02T12:00:00Z", "2024-03-02T12:00:00"]}
    response = api.post(
        "/v1/training-set", json={"features": FEATURES, "spine": spine, "timestamp_column": "applied_at"}
    )
    _assert_says(response, 422, "timestamp column 'applied_at' (row 1)", "'2024-03-02T12:00:00Z'")
    assert NAIVE_MESSAGE.search(response.json()["message"])


@pytest.mark.parametrize("as_of", ["2024-03-02T12:00:00", "2024-03-02 12:00"])
def test_reference_data_with_a_naive_as_of_is_refused(api: TestClient, as_of: str) -> None:
    response = api.get("/v1/reference-data/customer_stats", params={"as_of": as_of})
    _assert_says(response, 422, "as_of", "no time zone")
    assert NAIVE_MESSAGE.search(response.json()["message"])


@pytest.mark.parametrize(
    ("as_of", "rows"),
    [
        ("2024-03-02T12:00:00Z", [15.0, 100.0]),
        ("2024-03-02T13:00:00+01:00", [15.0, 100.0]),
        ("2024-03-01T23:00:00-01:00", [15.0, 100.0]),  # 2024-03-02T00:00Z: the rows' own time
        ("2024-03-01T23:59:59Z", []),
        ("2024-03-02", [15.0, 100.0]),  # a date: that day from 00:00 UTC
    ],
)
def test_reference_data_as_of_with_an_offset_or_a_date(api: TestClient, as_of: str, rows: list[float]) -> None:
    response = api.get("/v1/reference-data/customer_stats", params={"as_of": as_of, "features": "spend_1d"})
    assert response.status_code == 200, response.text
    assert response.json()["columns"]["spend_1d"] == rows


@pytest.mark.parametrize(
    ("as_of", "words"),
    [
        ("0001-01-01T00:00:00+01:00", ["outside 0001-01-01"]),  # was OverflowError: 500
        ("9999-12-31T23:59:59-01:00", ["outside 0001-01-01"]),
        ("last tuesday", ["not an ISO 8601 date or time", "2024-03-01"]),
        ("1700000000", ["not an ISO 8601 date or time"]),  # was read as seconds since 1970
    ],
)
def test_reference_data_bad_as_of_is_422(api: TestClient, as_of: str, words: list[str]) -> None:
    _assert_says(api.get("/v1/reference-data/customer_stats", params={"as_of": as_of}), 422, "as_of", *words)


def test_client_sends_offsets_and_refuses_naive_datetimes(api: TestClient) -> None:
    client = DatamartClient("http://testserver", transport=api._transport)
    sent: list[str] = []
    original = client._http.request

    def spy(method: str, url: str, **kwargs: Any) -> Any:
        sent.append(str(kwargs.get("params", {}).get("as_of")))
        return original(method, url, **kwargs)

    client._http.request = spy  # type: ignore[method-assign]
    from datetime import UTC, timedelta, timezone

    table = client.get_reference_data("customer_stats", datetime(2024, 3, 2, 13, tzinfo=timezone(timedelta(hours=1))))
    assert table.column("spend_1d").to_pylist() == [15.0, 100.0]
    assert sent == ["2024-03-02T13:00:00+01:00"]
    with pytest.raises(InvalidRequestError, match="as_of parameter has no time zone"):
        client.get_reference_data("customer_stats", datetime(2024, 3, 2, 12))
    with pytest.raises(InvalidRequestError, match="no time zone"):
        client.get_reference_data("customer_stats", "2024-03-02T12:00:00")  # refused by the server
    assert client.get_reference_data("customer_stats", datetime(2024, 3, 2, tzinfo=UTC)).num_rows == 2


# ---------------------------------------------------------------------- docs offline (item 5)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(api: TestClient, page: str) -> None:
    response = api.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html, html
    urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: *["']([^"']+)["']""", html)
    local = {u for pair in urls for u in pair if u}
    assert "/openapi.json" in local
    assert any(u.endswith(".js") for u in local), local
    for url in local:
        assert url.startswith("/"), url
        asset = api.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def test_swagger_ui_is_version_5_which_reads_openapi_3_1(api: TestClient) -> None:
    # Swagger UI 4 shows "Unable to render this definition" for FastAPI's OpenAPI 3.1 document.
    assert api.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = api.get("/docs-assets/swagger-ui-bundle.js").text
    assert re.search(r'"5\.\d+\.\d+"', bundle)


def test_unknown_path_and_method_say_where_to_look(api: TestClient) -> None:
    missing = api.get("/v1/feature-view")
    assert missing.status_code == 404
    assert "/docs" in missing.json()["message"]
    wrong = api.delete("/v1/health")
    assert wrong.status_code == 405
    assert "GET" in wrong.json()["message"]


def test_run_quality_takes_the_start_of_a_run_id_and_says_where_ids_are(api: TestClient, store: Any) -> None:
    run_id = store.registry.list_runs(store.project, limit=1)[0].id
    short = api.get(f"/v1/runs/{run_id[:8]}/quality")  # the UI shows the first characters
    assert short.status_code == 200, short.text
    assert short.json()["run"]["id"] == run_id
    unknown = api.get("/v1/runs/no-such-run/quality")
    assert unknown.status_code == 404
    assert "GET /v1/feature-views/{name}" in unknown.json()["message"]
