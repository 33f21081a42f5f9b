"""Push over HTTP: ``POST /v1/push/{view}`` and the Python client, against a real uvicorn server on
a project of this module's own (pushes change its data): the next online lookup reflects a push,
a refused batch is a 422 naming its rows, and pushes are counted in ``/v1/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datamart.app import create_app
from datamart.client import DatamartClient
from featurestore.errors import NotFoundError, PushRejectedError
from featurestore.store import FeatureStore
from tests.api.conftest import build_project, serving

PAYMENT = {"customer_id": 1, "as_of": "2024-03-04T09:30:00Z", "spend_1d": 42.5, "txn_count_1d": 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FeatureStore, Path]]:
    root = build_project(tmp_path_factory.mktemp("push"))
    with FeatureStore(root) as store, serving(create_app(store)) as url:
        yield url, store, root


@pytest.fixture
def client(served: tuple[str, FeatureStore, Path]) -> Iterator[DatamartClient]:
    with DatamartClient(served[0], consumer="payments-service") as c:
        yield c


def test_a_push_is_seen_by_the_next_lookup_and_by_reference_data(client: DatamartClient) -> None:
    before = client.get_online_features(["customer_stats:spend_1d"], {"customer_id": [1, 4]})
    assert before["features"]["spend_1d"]["values"] == [7.0, None]
    answer = client.push("customer_stats", [PAYMENT, {**PAYMENT, "customer_id": 4, "spend_1d": 1.5}])
    assert (answer["rows"], answer["entities"], answer["replaced"]) == (2, 2, 0)
    assert answer["watermark"].startswith("2024-03-04T09:30:00")
    after = client.get_online_features(["customer_stats:spend_1d"], {"customer_id": [1, 4]})
    assert after["features"]["spend_1d"]["values"] == [42.5, 1.5]
    assert after["features"]["spend_1d"]["statuses"] == ["present", "present"]
    ref = client.get_reference_data("customer_stats", "2024-03-05")
    assert dict(zip(ref.column("customer_id").to_pylist(), ref.column("spend_1d").to_pylist(), strict=True)) == {
        1: 42.5,
        2: 100.0,
        4: 1.5,
    }
    # Replayed: nothing changes, the row is replaced by itself.
    again = client.push("customer_stats", [PAYMENT])
    assert (again["rows"], again["replaced"]) == (1, 1)


def test_a_refused_batch_is_a_422_naming_its_rows(
    served: tuple[str, FeatureStore, Path], client: DatamartClient
) -> None:
    _, store, _ = served
    files = store.offline_store.files("customer_stats")
    with pytest.raises(PushRejectedError) as caught:
        client.push("customer_stats", [PAYMENT, {**PAYMENT, "customer_id": 5, "txn_count_1d": "three"}])
    assert caught.value.rows == [1]
    assert "txn_count_1d" in str(caught.value)
    with pytest.raises(PushRejectedError) as naive:
        client.push("customer_stats", [{**PAYMENT, "as_of": "2024-03-04T09:30:00"}])
    assert "no time zone" in str(naive.value)
    with pytest.raises(NotFoundError) as unknown:
        client.push("customer_stat", [PAYMENT])
    assert "customer_stats" in unknown.value.suggestions
    assert store.offline_store.files("customer_stats") == files
    # The body as any HTTP client sees it.
    import httpx

    response = httpx.post(f"{served[0]}/v1/push/customer_stats", json={"rows": [{**PAYMENT, "customer_id": None}]})
    assert response.status_code == 422
    assert response.json()["error"] == "PushRejectedError" and response.json()["rows"] == [0]


def test_pushes_are_counted_in_the_metrics(client: DatamartClient, served: tuple[str, FeatureStore, Path]) -> None:
    import httpx

    client.push("customer_stats", [{**PAYMENT, "as_of": "2024-03-04T10:00:00Z"}])
    with pytest.raises(PushRejectedError):
        client.push("customer_stats", [{**PAYMENT, "spend_1d": "x"}])
    text = httpx.get(f"{served[0]}/v1/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def count(status: str) -> float:
        labels = {"project": "shop", "kind": "push", "target": "customer_stats", "status": status}
        return samples.get(("featurestore_requests_total", tuple(sorted(labels.items()))), 0.0)

    assert count("2xx") >= 1 and count("4xx") >= 1
    assert (
        "featurestore_request_duration_seconds_count",
        tuple(sorted({"project": "shop", "kind": "push", "target": "customer_stats", "status": "2xx"}.items())),
    ) in samples
