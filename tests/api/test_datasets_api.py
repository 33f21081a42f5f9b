"""Named training datasets over the API, through ``DatamartClient`` and a real uvicorn server:
saved, listed, described, downloaded as the saved bytes, verified; name reuse and unknown names
answered as the SDK raises them."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamart.app import create_app
from datamart.client import DatamartClient
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.store import FeatureStore
from featurestore.training_datasets import parquet_bytes
from tests.api.conftest import serving

SPINE = pa.table(
    {
        "customer_id": pa.array([1, 2, 1, 3], pa.int64()),
        "ts": pa.array([datetime(2024, 3, d, h, tzinfo=UTC) for d, h in ((2, 12), (2, 12), (4, 0), (4, 0))]),
        "churned": [False, True, False, True],
    }
)


@pytest.fixture(scope="module")
def store(own_project_dir: Path) -> Iterator[FeatureStore]:
    with FeatureStore(own_project_dir) as s:
        yield s


@pytest.fixture(scope="module")
def client(store: FeatureStore) -> Iterator[DatamartClient]:
    with serving(create_app(store)) as url, DatamartClient(url, consumer="notebook-ana") as c:
        yield c


def test_a_dataset_saved_over_the_api_comes_back_as_the_sdk_saved_it(
    client: DatamartClient, store: FeatureStore
) -> None:
    record = client.create_training_dataset("churn_march", SPINE, "churn", timestamp_column="ts", description="v1")
    assert record["name"] == "churn_march"
    assert record["feature_service"] == "churn"
    assert record["features"] == ["customer_stats:spend_1d", "customer_stats:txn_count_1d", "customer_profile:segment"]
    assert record["view_versions"] == {"customer_stats": 1, "customer_profile": 1}
    assert record["created_by"] == "notebook-ana"  # no auth: the consumer header names the caller
    assert record["rows_url"] == "/v1/training-datasets/churn_march/rows"
    assert set(record["run_ids"]) == {i["run_id"] for i in record["inputs"]}
    assert {i["view"] for i in record["inputs"]} == {"customer_stats", "customer_profile"}

    rows = client.get_training_dataset("churn_march")
    sdk = store.get_training_dataset("churn_march")
    assert rows.equals(sdk.rows)
    assert hashlib.sha256(parquet_bytes(rows)).hexdigest() == record["rows"]["sha256"] == sdk.record.rows_sha256
    assert rows.column("spend_1d").to_pylist() == [15.0, 100.0, 7.0, None]
    assert rows.column("churned").to_pylist() == [False, True, False, True]
    assert rows.equals(store.get_training_set(SPINE, "churn", timestamp_column="ts"))

    assert client.describe_training_dataset("churn_march") == record
    assert [d["name"] for d in client.list_training_datasets()] == ["churn_march"]
    verification = client.verify_training_dataset("churn_march")
    assert verification["identical"] is True and verification["rows_differing"] == 0
    assert "rebuilds identically" in verification["summary"]

    # Saving the same again is no change; anything else under the name is refused.
    assert client.create_training_dataset("churn_march", SPINE, "churn", timestamp_column="ts") == record
    with pytest.raises(InvalidRequestError, match=r"already exists.*its spine differ.*'churn_march_v2'"):
        client.create_training_dataset("churn_march", SPINE.slice(1), "churn", timestamp_column="ts")
    with pytest.raises(NotFoundError, match=r"Training dataset 'churn_mrch' not found.*Did you mean 'churn_march'"):
        client.get_training_dataset("churn_mrch")
    with pytest.raises(NotFoundError, match="Did you mean 'churn_march'"):
        client.describe_training_dataset("churn_mrch")


def test_the_rows_download_in_every_format_and_parquet_is_the_saved_file(
    client: DatamartClient, store: FeatureStore
) -> None:
    client.create_training_dataset("churn_formats", SPINE, "churn", timestamp_column="ts")
    record = store.registry.get_training_dataset(store.project, "churn_formats")
    saved = (store.offline_store.root / record.rows_file).read_bytes()
    raw = client._request("GET", "/training-datasets/churn_formats/rows", params={"format": "parquet"})
    assert raw.content == saved
    assert raw.headers["x-content-sha256"] == record.rows_sha256
    as_json = client._json("GET", "/training-datasets/churn_formats/rows", params={"format": "json"})
    assert as_json["columns"]["spend_1d"] == [15.0, 100.0, 7.0, None]
    as_csv = client._request("GET", "/training-datasets/churn_formats/rows", params={"format": "csv"}).text
    assert as_csv.splitlines()[0].replace('"', "") == "customer_id,ts,churned,spend_1d,txn_count_1d,segment"
    as_arrow = client._request("GET", "/training-datasets/churn_formats/rows", params={"format": "arrow"}).content
    assert pa.ipc.open_stream(as_arrow).read_all().equals(pq.read_table(pa.BufferReader(saved)))


def test_an_invalid_name_is_refused_before_anything_is_built(client: DatamartClient) -> None:
    with pytest.raises(InvalidRequestError, match="Training dataset name 'churn march' is not valid"):
        client.create_training_dataset("churn march", SPINE, "churn", timestamp_column="ts")


def _post_dataset(client: DatamartClient, name: str, spine: pa.Table) -> int:
    sink = io.BytesIO()
    pq.write_table(spine, sink)
    response = client._request(
        "POST",
        "/training-datasets",
        data={"name": name, "features": ["churn"], "timestamp_column": "ts"},
        files={"spine": ("spine.parquet", sink.getvalue(), "application/vnd.apache.parquet")},
    )
    return response.status_code


def test_201_only_for_the_call_that_saved_the_dataset(
    client: DatamartClient, store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _post_dataset(client, "churn_status", SPINE) == 201
    assert _post_dataset(client, "churn_status", SPINE) == 200

    # The same dataset saved by someone else between this request's start and its insert: this
    # request saved nothing, and says so.
    real = store.registry.record_training_dataset
    raced: list[str] = []

    def racing(record: Any) -> Any:
        if not raced:
            raced.append(record.name)
            store.create_training_dataset(record.name, SPINE, "churn", timestamp_column="ts")
        return real(record)

    monkeypatch.setattr(store.registry, "record_training_dataset", racing)
    assert _post_dataset(client, "churn_raced", SPINE) == 200
    assert raced == ["churn_raced"]
    assert store.registry.get_training_dataset(store.project, "churn_raced").created_by != "notebook-ana"
