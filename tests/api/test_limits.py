"""Limits of what one request may send (section ``datamart`` of ``featurestore.yaml``): each just
under and just over, read from the project file; and model names, checked by the API, the SDK
and the CLI alike."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from datamart.app import create_app
from datamart.client import DatamartClient
from featurestore.cli import cli
from featurestore.config import CONFIG_FILE_NAME
from featurestore.errors import InvalidRequestError
from featurestore.store import FeatureStore
from registry_ui.app import create_app as create_ui_app
from tests.api.conftest import TestClient, build_project, serving

MAX_BODY = 4096
MAX_UPLOAD = 16384
MAX_ENTITIES = 5
MAX_ROWS = 10
MAX_URL = 512
MAX_HEADERS = 2048


@pytest.fixture(scope="module")
def limited_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_project(tmp_path_factory.mktemp("limited"))
    with (root / CONFIG_FILE_NAME).open("a") as f:
        f.write(
            f"datamart:\n  max_body_bytes: {MAX_BODY}\n  max_upload_bytes: {MAX_UPLOAD}\n"
            f"  max_lookup_entities: {MAX_ENTITIES}\n  max_spine_rows: {MAX_ROWS}\n"
            f"  max_url_bytes: {MAX_URL}\n  max_header_bytes: {MAX_HEADERS}\n"
        )
    return root


@pytest.fixture(scope="module")
def limited_store(limited_dir: Path) -> Iterator[FeatureStore]:
    with FeatureStore(limited_dir) as store:
        yield store


@pytest.fixture(scope="module")
def limited(limited_store: FeatureStore) -> Iterator[TestClient]:
    with TestClient(create_app(limited_store)) as client:
        yield client


def padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes (trailing spaces are valid JSON)."""
    raw = orjson.dumps(body)
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


SPINE_BODY = {
    "features": "churn",
    "spine": {"customer_id": [1, 2], "ts": ["2024-03-03T00:00:00Z", "2024-03-03T00:00:00Z"]},
    "timestamp_column": "ts",
}
JSON = {"content-type": "application/json"}


def assert_refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == "InvalidRequestError"
    for word in words:
        assert word in body["message"], body["message"]


def test_limits_are_read_from_the_project_file(limited_store: FeatureStore) -> None:
    limits = limited_store.config.datamart
    assert (limits.max_body_bytes, limits.max_upload_bytes, limits.max_lookup_entities) == (
        MAX_BODY,
        MAX_UPLOAD,
        MAX_ENTITIES,
    )
    assert (limits.max_spine_rows, limits.max_url_bytes, limits.max_header_bytes) == (MAX_ROWS, MAX_URL, MAX_HEADERS)


def test_body_at_the_limit_is_read_and_one_byte_more_is_413(limited: TestClient) -> None:
    at_limit = limited.post("/v1/training-set", content=padded(SPINE_BODY, MAX_BODY), headers=JSON)
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["num_rows"] == 2
    over = limited.post("/v1/training-set", content=padded(SPINE_BODY, MAX_BODY + 1), headers=JSON)
    assert_refused(over, 413, "4,097 bytes (Content-Length)", "limit of 4,096 bytes", "datamart.max_body_bytes")
    assert over.headers["connection"] == "close"
    absurd = limited.post("/v1/training-set", content=b"{}", headers={**JSON, "content-length": "9" * 30})
    assert_refused(absurd, 413, "(Content-Length)", "datamart.max_body_bytes")


def test_body_limit_holds_on_every_route_and_method(limited: TestClient) -> None:
    big = b"x" * (MAX_BODY + 1)
    for method, path in [("POST", "/v1/online-features"), ("POST", "/v1/models"), ("GET", "/v1/health")]:
        response = limited.request(method, path, content=big, headers=JSON)
        assert_refused(response, 413, "datamart.max_body_bytes")


def chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_chunked_body_without_content_length_is_counted(limited: TestClient) -> None:
    def under() -> Iterator[bytes]:
        yield orjson.dumps(SPINE_BODY)
        yield from chunks(MAX_BODY - len(orjson.dumps(SPINE_BODY)))

    def over() -> Iterator[bytes]:
        yield orjson.dumps(SPINE_BODY)
        yield from chunks(MAX_BODY)

    fine = limited.post("/v1/training-set", content=under(), headers=JSON)
    assert fine.status_code == 200, fine.text
    refused = limited.post("/v1/training-set", content=over(), headers=JSON)
    assert_refused(refused, 413, "without a Content-Length", "limit of 4,096 bytes", "datamart.max_body_bytes")
    # The hand-parsed online route reads its body itself: the same answer.
    online = limited.post("/v1/online-features", content=chunks(MAX_BODY + 1), headers=JSON)
    assert_refused(online, 413, "without a Content-Length")


@pytest.fixture(scope="module")
def limited_url(limited_store: FeatureStore) -> Iterator[str]:
    with serving(create_app(limited_store)) as url:
        yield url


def test_a_real_server_stops_reading_a_chunked_body_past_the_limit(limited_url: str) -> None:
    sent = 0

    def endless() -> Iterator[bytes]:
        # Far more than the limit, in small chunks: the server answers once the limit is passed.
        nonlocal sent
        for chunk in chunks(100 * MAX_BODY, 256):
            sent += len(chunk)
            yield chunk

    with httpx.Client(base_url=limited_url, timeout=10) as client:
        try:
            response = client.post("/v1/online-features", content=endless(), headers=JSON)
        except httpx.HTTPError:
            pytest.fail("the server closed the connection without answering")
    assert "content-length" not in response.request.headers
    assert_refused(response, 413, "without a Content-Length", "datamart.max_body_bytes")
    with httpx.Client(base_url=limited_url, timeout=10) as client:
        assert client.get("/v1/health").status_code == 200  # and it goes on serving


def csv_spine(rows: int, pad: int = 0) -> bytes:
    sink = io.BytesIO()
    table = pa.table({"customer_id": [1 + i % 3 for i in range(rows)], "ts": ["2024-03-03T00:00:00Z"] * rows})
    pacsv.write_csv(table, sink)
    return sink.getvalue() + b"\n" * pad


def upload(client: TestClient, data: bytes) -> httpx.Response:
    files = {"spine": ("spine.csv", data, "text/csv")}
    return client.post("/v1/training-set/upload", files=files, data={"features": "churn", "timestamp_column": "ts"})


def test_uploads_get_the_upload_limit(limited: TestClient) -> None:
    # Bigger than the body limit (blank lines are skipped by the CSV reader), within the upload limit.
    fine = upload(limited, csv_spine(3, pad=2 * MAX_BODY))
    assert fine.status_code == 200, fine.text
    assert fine.json()["num_rows"] == 3
    refused = upload(limited, csv_spine(3, pad=MAX_UPLOAD))
    assert_refused(refused, 413, "uploaded spine", "limit of 16,384 bytes", "datamart.max_upload_bytes")


def test_online_lookup_of_more_entities_than_the_limit_is_422(limited: TestClient) -> None:
    keys = list(range(1, MAX_ENTITIES + 1))
    fine = limited.post("/v1/online-features", json={"features": "churn", "entities": {"customer_id": keys}})
    assert fine.status_code == 200, fine.text
    assert len(fine.json()["features"]["spend_1d"]["values"]) == MAX_ENTITIES
    over = limited.post(
        "/v1/online-features", json={"features": "churn", "entities": {"customer_id": [*keys, MAX_ENTITIES + 1]}}
    )
    assert_refused(over, 422, "6 entities", "limit of 5", "datamart.max_lookup_entities")


def test_spines_of_more_rows_than_the_limit_are_422(limited: TestClient) -> None:
    def spine(rows: int) -> dict[str, Any]:
        keys = [1 + i % 3 for i in range(rows)]
        return {
            "features": "churn",
            "spine": {"customer_id": keys, "ts": ["2024-03-03"] * rows},
            "timestamp_column": "ts",
        }

    assert limited.post("/v1/training-set", json=spine(MAX_ROWS)).json()["num_rows"] == MAX_ROWS
    assert_refused(
        limited.post("/v1/training-set", json=spine(MAX_ROWS + 1)), 422, "11 rows", "limit of 10", "max_spine_rows"
    )
    as_rows = {**spine(0), "spine": [{"customer_id": 1, "ts": "2024-03-03"}] * (MAX_ROWS + 1)}
    assert_refused(limited.post("/v1/training-set", json=as_rows), 422, "11 rows")
    assert upload(limited, csv_spine(MAX_ROWS)).status_code == 200
    assert_refused(upload(limited, csv_spine(MAX_ROWS + 1)), 422, "uploaded spine has 11 rows", "max_spine_rows")


def test_long_urls_are_414_and_long_headers_431(limited: TestClient) -> None:
    path = "/v1/health?pad="  # a query parameter the route ignores
    assert limited.get(path + "x" * (MAX_URL - len(path))).status_code == 200
    assert_refused(limited.get(path + "x" * (MAX_URL - len(path) + 1)), 414, "datamart.max_url_bytes")
    base = sum(len(k) + len(v) for k, v in limited.build_request("GET", "/v1/health").headers.raw)
    room = MAX_HEADERS - base - len("x-pad")
    assert limited.get("/v1/health", headers={"x-pad": "p" * room}).status_code == 200
    assert_refused(limited.get("/v1/health", headers={"x-pad": "p" * (room + 1)}), 431, "datamart.max_header_bytes")


def test_query_parameters_are_bounded(api: TestClient) -> None:
    response = api.get("/v1/search", params={"q": "x" * 201})
    assert response.status_code == 422
    assert "200 characters" in response.json()["message"]
    assert api.get("/v1/usage", params={"consumer": "c" * 201}).status_code == 422


def test_the_registry_ui_has_the_body_limit_too(limited_store: FeatureStore) -> None:
    with TestClient(create_ui_app(limited_store)) as ui:
        refused = ui.post(
            "/signin",
            content=b"token=" + b"x" * MAX_BODY,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert_refused(refused, 413, "datamart.max_body_bytes")
        streamed = ui.post(
            "/signin", content=chunks(MAX_BODY + 1), headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert_refused(streamed, 413, "without a Content-Length")
        assert ui.get("/signin").status_code == 200


# ---------------------------------------------------------------------- model names and descriptions

RULE = "use letters, digits and underscores, starting with a letter"


@pytest.mark.parametrize("name", ["churn-gbm", "churn gbm", "1churn", "churn.v2", "modèle", "a/b"])
def test_model_names_follow_the_rule_of_every_name_through_the_api(limited: TestClient, name: str) -> None:
    response = limited.post("/v1/models", json={"name": name, "feature_service": "churn"})
    assert response.status_code == 422, response.text
    assert f"Model name '{name}' is not valid" in response.json()["message"]
    assert RULE in response.json()["message"]
    assert name not in [m["name"] for m in limited.get("/v1/models").json()]


def test_model_descriptions_are_bounded(limited: TestClient) -> None:
    fine = limited.post("/v1/models", json={"name": "churn_gbm", "feature_service": "churn", "description": "d" * 2000})
    assert fine.status_code == 201, fine.text
    over = limited.post("/v1/models", json={"name": "churn_gbm", "feature_service": "churn", "description": "d" * 2001})
    assert over.status_code == 422
    assert "2000 characters" in over.json()["message"]


def test_the_sdk_checks_model_names_and_descriptions(limited_store: FeatureStore) -> None:
    with pytest.raises(InvalidRequestError, match=r"Model name 'churn-gbm' is not valid: use letters.*'churn_gbm'"):
        limited_store.register_model("churn-gbm", "churn")
    with pytest.raises(InvalidRequestError, match="description of model 'churn_lr' has 2,001 characters"):
        limited_store.register_model("churn_lr", "churn", "d" * 2001)
    limited_store.register_model("churn_lr", "churn", "Logistic regression")
    names = [m.name for m in limited_store.registry.list_models(limited_store.project)]
    assert "churn_lr" in names
    assert "churn-gbm" not in names


def test_the_cli_checks_model_names(limited_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["-C", str(limited_dir), "register-model", "fraud-gbm", "--feature-service", "churn"]
    )
    assert isinstance(result.exception, InvalidRequestError)
    assert "Model name 'fraud-gbm' is not valid" in str(result.exception)
    assert RULE in str(result.exception)


def test_the_python_client_raises_invalid_request_errors_naming_the_limit(limited_url: str) -> None:
    with DatamartClient(limited_url) as client:
        with pytest.raises(InvalidRequestError, match=r"asks for 6 entities, beyond the limit of 5"):
            client.get_online_features("churn", {"customer_id": [1, 2, 3, 4, 5, 6]})
        # A label column of random text: the Parquet file stays bigger than the upload limit.
        spine = pa.table(
            {"customer_id": [1, 2], "ts": ["2024-03-03T00:00:00Z"] * 2, "label": [os.urandom(MAX_UPLOAD).hex()] * 2}
        )
        with pytest.raises(InvalidRequestError, match=r"uploaded spine is .* datamart\.max_upload_bytes"):
            client.get_training_set(spine, "churn", timestamp_column="ts")
        assert client.get_training_set(spine.drop_columns(["label"]), "churn", timestamp_column="ts").num_rows == 2


def test_an_absurd_content_length_is_413_under_the_default_limits(api: TestClient) -> None:
    # 5,000 digits fit the default 32 KiB of headers; int() refuses more than 4,300 digits.
    response = api.post("/v1/online-features", content=b"{}", headers={**JSON, "content-length": "9" * 5000})
    assert_refused(response, 413, "datamart.max_body_bytes")
