"""The one time rule over HTTP, as in the SDK and the CLI (issue 12, item 3): the same message for
a naive time on every surface; a training set comes back in the spine's own time zone; and the
messages the datamart shares with the SDK (a mistyped service, spine columns named like the
join's own).

Facts of the project: see ``conftest.py`` (customer 1: spend 15.0 as of 2024-03-02, 7.0 as of
2024-03-03, all UTC).
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from datamart.client import DatamartClient
from featurestore.cli import main
from featurestore.errors import InvalidRequestError
from featurestore.store import FeatureStore
from featurestore.times import naive_time_message

FEATURES = ["customer_stats:spend_1d"]
# 00:30 in Paris on 03-03 is 23:30 UTC on 03-02 (before the 03-03 row: 15.0); 01:30 is 00:30 UTC (7.0).
PARIS = pd.to_datetime(["2024-03-03 00:30", "2024-03-03 01:30"]).tz_localize("Europe/Paris")


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _cli_error(*args: str) -> str:
    import contextlib
    import sys

    err = io.StringIO()
    argv, sys.argv = sys.argv, ["featurestore", *args]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit):
            main()
    finally:
        sys.argv = argv
    return err.getvalue()


def test_a_naive_time_gets_one_message_over_http_in_the_sdk_and_in_the_cli(
    api: TestClient, store: FeatureStore, project_dir: Path
) -> None:
    rest = naive_time_message("X", "2024-03-02T12:00:00").removeprefix("X")
    http = api.get("/v1/reference-data/customer_stats", params={"as_of": "2024-03-02T12:00:00"})
    assert http.status_code == 422
    assert http.json()["message"] == "The as_of parameter" + rest
    spine = {"customer_id": [1], "event_timestamp": ["2024-03-02T12:00:00"]}
    http_spine = api.post("/v1/training-set", json={"features": FEATURES, "spine": spine})
    assert http_spine.status_code == 422
    assert http_spine.json()["message"] == "The spine's timestamp column 'event_timestamp' (row 0)" + rest
    with pytest.raises(InvalidRequestError) as sdk:
        store.get_training_set(spine, FEATURES)
    assert str(sdk.value) == http_spine.json()["message"]
    with pytest.raises(InvalidRequestError) as client:
        DatamartClient("http://testserver", transport=api._transport).get_reference_data(
            "customer_stats", datetime(2024, 3, 2, 12)
        )
    assert str(client.value) == "The as_of parameter" + rest
    cli = _cli_error("-C", str(project_dir), "reference-data", "customer_stats", "--as-of", "2024-03-02T12:00:00")
    assert "Error: --as-of" + rest in cli


def test_an_uploaded_spine_comes_back_in_its_time_zone(api: TestClient) -> None:
    spine = pa.Table.from_pandas(pd.DataFrame({"customer_id": [1, 1], "event_timestamp": PARIS}), preserve_index=False)
    response = api.post(
        "/v1/training-set/upload",
        params={"format": "parquet"},
        files={"spine": ("spine.parquet", _parquet(spine), "application/vnd.apache.parquet")},
        data={"features": FEATURES},
    )
    assert response.status_code == 200, response.text
    table = pq.read_table(pa.BufferReader(response.content))
    assert table.schema.field("event_timestamp").type.tz == "Europe/Paris"
    assert table.column("spend_1d").to_pylist() == [15.0, 7.0]
    as_json = api.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.parquet", _parquet(spine), "application/vnd.apache.parquet")},
        data={"features": FEATURES},
    )
    assert as_json.json()["columns"]["event_timestamp"] == ["2024-03-03T00:30:00+01:00", "2024-03-03T01:30:00+01:00"]


def test_the_client_gives_back_the_spines_time_zone(api: TestClient) -> None:
    client = DatamartClient("http://testserver", transport=api._transport)
    table = client.get_training_set(pd.DataFrame({"customer_id": [1, 1], "event_timestamp": PARIS}), FEATURES)
    assert table.schema.field("event_timestamp").type.tz == "Europe/Paris"
    assert table.to_pandas()["event_timestamp"].tolist() == list(PARIS)
    assert table.column("spend_1d").to_pylist() == [15.0, 7.0]


def test_json_spine_times_with_offsets_come_back_in_utc(api: TestClient) -> None:
    # Text has no one time zone (each value may have its own offset): read and given back in UTC.
    spine = {"customer_id": [1], "event_timestamp": ["2024-03-03T01:30:00+01:00"]}
    response = api.post("/v1/training-set", json={"features": FEATURES, "spine": spine})
    assert response.status_code == 200, response.text
    assert response.json()["columns"]["event_timestamp"] == ["2024-03-03T00:30:00+00:00"]
    assert response.json()["columns"]["spend_1d"] == [7.0]


@pytest.mark.parametrize("features", ["chrn", ["chrn"]])
def test_a_mistyped_service_is_404_suggesting_the_service(api: TestClient, features: str | list[str]) -> None:
    spine = {"customer_id": [1], "event_timestamp": ["2024-03-03T00:00:00Z"]}
    response = api.post("/v1/training-set", json={"features": features, "spine": spine})
    assert response.status_code == 404, response.text
    assert response.json()["message"] == (
        "Feature view or feature service 'chrn' not found in project 'shop'. Did you mean feature service 'churn'?"
    )


def test_spine_columns_named_like_the_joins_own_are_kept(api: TestClient) -> None:
    spine = {
        "customer_id": [1],
        "event_timestamp": ["2024-03-03T00:00:00Z"],
        "__row_id": [7],
        "__spine_ts": ["label"],
    }
    response = api.post("/v1/training-set", json={"features": FEATURES, "spine": spine})
    assert response.status_code == 200, response.text
    columns = response.json()["columns"]
    assert (columns["__row_id"], columns["__spine_ts"], columns["spend_1d"]) == ([7], ["label"], [7.0])
    upload = api.post(
        "/v1/training-set/upload",
        files={"spine": ("spine.csv", b"customer_id,ts,__row_id\n1,2024-03-03T00:00:00Z,9\n", "text/csv")},
        data={"features": FEATURES, "timestamp_column": "ts"},
    )
    assert upload.status_code == 200, upload.text
    assert (upload.json()["columns"]["__row_id"], upload.json()["columns"]["spend_1d"]) == ([9], [7.0])
