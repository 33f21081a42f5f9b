"""The served-vector log and skew reports (issue 16, part 4), on the embedded stores.

A small project (Parquet offline, SQLite online and registry, the local engine) with the log at
100 %: lookups are logged, then ``skew_report`` compares them with the offline values as of each
request. Planted cases: a late-arriving row, an online tamper, an expired view, an entity
removed online; plus sampling, the full queue and the flush on close.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tiny_projects import UTC_US, new_project, utc, write_parquet

from etl.local import LocalEngine
from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64, serving_log
from featurestore.cli import cli
from featurestore.config import ProjectConfig, ServingLogConfig
from featurestore.errors import ConfigError, InvalidRequestError, NotFoundError
from featurestore.schema import view_schema
from featurestore.serving_log import ServedVectorLog, read_served, sampled
from featurestore.skew import SkewCollector, skew_reports
from featurestore.store import FeatureStore

VIEW = "daily_spend"
SHORT = "daily_spend_short"
SERVICE = "spend_model"
SHORT_SERVICE = "short_model"
TRANSACTIONS = [
    (1, utc(2024, 3, 1, 10), 10.0),
    (1, utc(2024, 3, 2, 9), 7.0),
    (2, utc(2024, 3, 1, 8), 100.0),
    (2, utc(2024, 3, 3, 20), 50.0),
    (3, utc(2024, 3, 2, 11), 3.0),
]
SQL = """
    SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of, sum(amount) AS spend, count(*) AS n
    FROM transactions GROUP BY ALL
"""


def definitions() -> list[Any]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    transactions = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")
    features = (Feature("spend", Float64), Feature("n", Int64))
    view = FeatureView(
        name=VIEW,
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=3650),
        transformation=SQL,
        features=features,
    )
    short = FeatureView(
        name=SHORT,
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=1),
        transformation=SQL,
        features=features,
    )
    return [
        customer,
        transactions,
        view,
        short,
        FeatureService(name=SERVICE, features=(view,)),
        FeatureService(name=SHORT_SERVICE, features=(short,)),
    ]


def write_transactions(root: Path, rows: list[tuple[int, Any, float]]) -> None:
    write_parquet(
        root / "data" / "transactions.parquet",
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], UTC_US),
            "amount": [r[2] for r in rows],
        },
    )


def logged_project(root: Path, **settings: Any) -> Path:
    new_project(root, "cards")
    options = {"sample_rate": 1.0, "flush_seconds": 3600, **settings}
    with (root / "featurestore.yaml").open("a") as f:
        f.write("serving_log: " + json.dumps(options) + "\n")
    write_transactions(root, TRANSACTIONS)
    with FeatureStore(root) as store:
        store.apply(definitions())
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return logged_project(tmp_path / "cards")


@pytest.fixture
def store(root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(root) as s:
        yield s


def run(store: FeatureStore, view: str = VIEW) -> None:
    views = {d.name: d for d in definitions() if isinstance(d, FeatureView)}
    assert LocalEngine(store).run(view, definitions=views, progress=False).status == "succeeded"


def lookup(store: FeatureStore, service: str = SERVICE, keys: list[int] | None = None) -> Any:
    response = store.get_online_features(service, {"customer_id": keys or [1, 2, 3, 4]}, consumer="churn")
    assert store.serving_log is not None and store.serving_log.flush()
    return response


def since() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def test_a_clean_run_has_no_mismatch_and_the_log_holds_what_was_served(store: FeatureStore, root: Path) -> None:
    run(store)
    served = lookup(store)
    logged = read_served(root / "data" / "offline" / "_served_vectors", SERVICE, since())
    assert logged.num_rows == 4
    assert logged.column("key:customer_id").to_pylist() == [1, 2, 3, 4]
    assert logged.column("value:spend").to_pylist() == served.columns["spend"]
    assert logged.column("status:n").to_pylist() == ["present", "present", "present", "missing"]
    assert logged.column("consumer").to_pylist() == ["churn"] * 4
    assert logged.column("event_time:daily_spend").to_pylist()[:3] == served.event_timestamps[VIEW][:3]

    report = store.skew_report(SERVICE, since())
    assert (report.rows, report.values_compared, report.mismatches) == (4, 8, 0)
    assert report.feature("spend").counts["match"] == 4 and report.match_rate == 1.0
    assert report.id is not None
    (recorded,) = skew_reports(store.registry, store.project, service=SERVICE)
    assert recorded.to_dict() == report.to_dict()


def test_a_row_written_by_a_run_after_the_request_is_late(store: FeatureStore, root: Path) -> None:
    run(store)
    lookup(store, keys=[1, 2])
    time.sleep(0.01)
    # A transaction of 03-04 arrives after serving: the row of 03-05 (before the request) is written now.
    write_transactions(root, [*TRANSACTIONS, (1, utc(2024, 3, 4, 9), 5.0)])
    run(store)
    report = store.skew_report(SERVICE, since())
    spend = report.feature("spend")
    assert spend.counts == {"match": 1, "late": 1, "differs": 0, "missing_online": 0, "expired": 0}
    (example,) = spend.examples["late"]
    assert example["entity"] == {"customer_id": 1} and example["served_value"] == 7.0
    assert example["offline_value"] == 5.0 and example["offline_event_time"] == "2024-03-05T00:00:00+00:00"


def test_an_online_value_changed_after_the_run_differs(store: FeatureStore) -> None:
    run(store)
    view = store.get_feature_view(VIEW)
    tampered = pa.table({"customer_id": [2], "as_of": pa.array([utc(2024, 3, 4)], UTC_US), "spend": [999.0], "n": [1]})
    store.online_store.write(view, tampered.cast(view_schema(view)))
    lookup(store, keys=[1, 2, 3])
    report = store.skew_report(SERVICE, since())
    spend, n = report.feature("spend"), report.feature("n")
    assert spend.counts["differs"] == 1 and spend.counts["match"] == 2
    assert n.counts["match"] == 3  # the count was written unchanged
    (example,) = spend.examples["differs"]
    assert (example["served_value"], example["offline_value"]) == (999.0, 50.0)


def test_an_entity_removed_online_is_missing_online(store: FeatureStore) -> None:
    run(store)
    view = store.get_feature_view(VIEW)
    store.online_store.sync(view, view_schema(view).empty_table(), pa.table({"customer_id": pa.array([3], pa.int64())}))
    lookup(store, keys=[1, 3])
    report = store.skew_report(SERVICE, since())
    assert report.feature("spend").counts["missing_online"] == 1
    assert report.feature("spend").examples["missing_online"][0]["served_status"] == "missing"


def test_values_past_the_ttl_on_both_sides_match(store: FeatureStore) -> None:
    # Online withholds both values as expired; offline's rows as of now are past the TTL too: a
    # training set reads null there, so the served vectors agree with it.
    run(store, SHORT)
    response = lookup(store, SHORT_SERVICE, keys=[1, 2])
    assert response.statuses["spend"] == ["expired", "expired"]
    report = store.skew_report(SHORT_SERVICE, since())
    assert report.feature("spend").counts["expired"] == 0 and report.match_rate == 1.0


def test_a_value_served_while_offline_had_expired_it_is_expired(store: FeatureStore) -> None:
    run(store, SHORT)
    view = store.get_feature_view(SHORT)
    recent = datetime.now(UTC) - timedelta(hours=1)  # online holds a live row offline never had
    planted = pa.table({"customer_id": [2], "as_of": pa.array([recent], UTC_US), "spend": [50.0], "n": [1]})
    store.online_store.write(view, planted.cast(view_schema(view)))
    lookup(store, SHORT_SERVICE, keys=[1, 2])
    spend = store.skew_report(SHORT_SERVICE, since()).feature("spend")
    assert spend.counts == {"match": 1, "late": 0, "differs": 0, "missing_online": 0, "expired": 1}
    (example,) = spend.examples["expired"]
    assert example["entity"] == {"customer_id": 2} and example["served_status"] == "present"


def test_the_classes_where_offline_is_live() -> None:
    from featurestore.skew import _classify

    request, served_at, offline_at = 1_000, 500, 600
    # Online withheld as expired a row offline held live and wrote before the request.
    assert _classify("expired", None, served_at, 5.0, offline_at, True, 900, request) == "expired"
    # Online had no row; offline's live row was written before the request, or after it.
    assert _classify("missing", None, None, 5.0, offline_at, True, 900, request) == "missing_online"
    assert _classify("missing", None, None, 5.0, offline_at, True, 1_100, request) == "late"
    assert _classify("present", 4.0, served_at, 5.0, offline_at, True, 1_100, request) == "late"
    assert _classify("present", 4.0, offline_at, 5.0, offline_at, True, 1_100, request) == "differs"
    # Offline absent or past the TTL: withholding agrees, serving a value does not.
    for status in ("missing", "expired", "null"):
        assert _classify(status, None, None, 5.0, offline_at, False, 900, request) == "match"
        assert _classify(status, None, None, None, None, False, None, request) == "match"
    assert _classify("present", 5.0, offline_at, 5.0, offline_at, False, 900, request) == "expired"
    assert _classify("present", 5.0, served_at, None, None, False, None, request) == "differs"


def test_a_lookup_at_a_given_now_is_logged_and_compared_at_that_now(store: FeatureStore, root: Path) -> None:
    # As of 03-04 12:00 customer 2's row of 03-04 is live and customer 1's of 03-03 past the 1-day
    # TTL, online and offline alike; at the wall clock both would be past it.
    run(store, SHORT)
    at = utc(2024, 3, 4, 12)
    response = store.get_online_features(SHORT_SERVICE, {"customer_id": [1, 2]}, now=at)
    assert response.statuses["spend"] == ["expired", "present"]
    assert store.serving_log is not None and store.serving_log.flush()
    logged = read_served(root / "data" / "offline" / "_served_vectors", SHORT_SERVICE, utc(2024, 3, 1))
    assert logged.column("request_time").to_pylist() == [at, at]
    report = store.skew_report(SHORT_SERVICE, utc(2024, 3, 1))
    assert (report.rows, report.match_rate) == (2, 1.0), report.render()


def test_examples_hide_the_values_of_sensitive_features(store: FeatureStore) -> None:
    view = store.get_feature_view(VIEW)
    features = tuple(dataclasses.replace(f, tags=("sensitive",)) if f.name == "spend" else f for f in view.features)
    store.apply([dataclasses.replace(d, features=features) if d.name == VIEW else d for d in definitions()])
    run(store)
    view = store.get_feature_view(VIEW)
    tampered = pa.table({"customer_id": [2], "as_of": pa.array([utc(2024, 3, 4)], UTC_US), "spend": [999.0], "n": [7]})
    store.online_store.write(view, tampered.cast(view_schema(view)))
    lookup(store, keys=[2])
    report = store.skew_report(SERVICE, since())
    (spend,) = report.feature("spend").examples["differs"]
    assert (spend["served_value"], spend["offline_value"]) == ("hidden (sensitive)", "hidden (sensitive)")
    assert spend["entity"] == {"customer_id": 2}
    (n,) = report.feature("n").examples["differs"]  # not tagged: shown
    assert (n["served_value"], n["offline_value"]) == (7, 1)
    (recorded,) = skew_reports(store.registry, store.project, service=SERVICE)
    assert recorded.feature("spend").examples == report.feature("spend").examples  # the registry keeps them hidden


def test_a_reversed_window_is_refused_and_an_empty_one_not_recorded(store: FeatureStore, root: Path) -> None:
    start, end = utc(2024, 3, 2), utc(2024, 3, 1)
    with pytest.raises(InvalidRequestError, match=r"until \(2024-03-01T00:00:00\+00:00\).*since \(2024-03-02"):
        store.skew_report(SERVICE, start, end)
    run(store)
    lookup(store, keys=[1])
    store.skew_report(SERVICE, since())
    report = store.skew_report(SERVICE, utc(2024, 3, 1), utc(2024, 3, 2))  # nothing logged then
    assert report.rows == 0 and report.id is None
    assert [r.rows for r in skew_reports(store.registry, store.project, service=SERVICE)] == [1]  # still the newest
    result = CliRunner().invoke(
        cli, ["-C", str(root), "skew", SERVICE, "--since", "2024-03-01", "--until", "2024-03-02"]
    )
    assert result.exit_code == 0, result.output
    assert "No served vectors logged for spend_model between 2024-03-01T00:00:00+00:00 and" in result.output
    assert "serving_log.sample_rate > 0" in result.output


def test_a_prediction_logs_its_model_and_versions(store: FeatureStore, root: Path) -> None:
    from featurestore.model_serving import ModelServer

    class Model:
        def predict(self, frame: Any) -> list[float]:
            return [1.0] * len(frame)

    run(store)
    server = ModelServer(store, loader=lambda uri: Model())
    server.versions = lambda model: {1: _version_record(store, 1)}  # type: ignore[method-assign]
    server.predict("churn", {"customer_id": [1, 2]}, consumer="svc")
    assert store.serving_log is not None and store.serving_log.flush()
    logged = read_served(root / "data" / "offline" / "_served_vectors", SERVICE, since())
    assert logged.column("model").to_pylist() == ["churn", "churn"]
    assert logged.column("model_version").to_pylist() == [1, 1]
    assert len(set(logged.column("request_id").to_pylist())) == 1  # logged once, not also as a lookup


def test_a_split_over_two_services_logs_each_entity_under_the_service_its_version_read(
    store: FeatureStore, root: Path
) -> None:
    from featurestore.model_serving import ModelServer
    from featurestore.registry.model_traffic import ModelTrafficRecord

    class Model:
        def predict(self, frame: Any) -> list[float]:
            return [1.0] * len(frame)

    run(store)
    run(store, SHORT)
    server = ModelServer(store, loader=lambda uri: Model())
    records = {1: _version_record(store, 1), 2: _version_record(store, 2, SHORT_SERVICE)}
    server.versions = lambda model: records  # type: ignore[method-assign]
    split = ModelTrafficRecord(store.project, "churn", {1: 50, 2: 50}, None, datetime.now(UTC), "test")
    server.traffic = lambda model: split  # type: ignore[method-assign]
    keys = list(range(1, 41))
    prediction = server.predict("churn", {"customer_id": keys}, consumer="svc")
    assert set(prediction.versions) == {1, 2}
    assert store.serving_log is not None and store.serving_log.flush()
    folder = root / "data" / "offline" / "_served_vectors"
    for service, version in ((SERVICE, 1), (SHORT_SERVICE, 2)):
        logged = read_served(folder, service, since())
        expected = [k for k, v in zip(keys, prediction.versions, strict=True) if v == version]
        assert logged.column("key:customer_id").to_pylist() == expected, service
        assert logged.column("model_version").to_pylist() == [version] * len(expected)


def _version_record(store: FeatureStore, version: int, service: str = SERVICE) -> Any:
    from featurestore.registry.model_versions import ModelVersionRecord

    fields = ModelVersionRecord.__dataclass_fields__
    values: dict[str, Any] = {name: None for name in fields}
    values.update(project=store.project, model="churn", version=version, feature_service=service)
    values.update(model_uri=f"models:/churn/{version}")
    return ModelVersionRecord(**values)


def test_sampling_follows_the_rate_and_the_request_id() -> None:
    n = 20_000
    logged = sum(sampled(f"request-{i}", 0.3) for i in range(n))
    sigma = (n * 0.3 * 0.7) ** 0.5
    assert abs(logged - 0.3 * n) < 4 * sigma
    assert sum(sampled(f"r{i}", 0.0) for i in range(1000)) == 0


def test_sampling_gives_the_same_answer_in_another_process() -> None:
    # Another interpreter (its own string hash seed): a process-local hash would answer otherwise.
    ids = [f"r{i}" for i in range(200)]
    code = (
        "import json, sys; from featurestore.serving_log import sampled; "
        "print(json.dumps([sampled(i, 0.3) for i in json.loads(sys.argv[1])]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ids)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)
    assert theirs == [sampled(i, 0.3) for i in ids]
    assert 20 < sum(theirs) < 100  # a real sample, not all or none


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path, store: FeatureStore) -> None:
    run(store)
    release = threading.Event()
    log = ServedVectorLog(ServingLogConfig(sample_rate=1.0, queue_size=2), tmp_path / "served")
    original = serving_log._Batch.add

    def stuck(self: Any, entry: Any) -> int:
        release.wait(30)
        return original(self, entry)

    response = store.get_online_features(SERVICE, {"customer_id": [1]}, log_served=False)
    plan = store._lookup_plan(SERVICE, False)
    serving_log._Batch.add = stuck  # type: ignore[method-assign, assignment]
    try:
        started = time.perf_counter()
        results = [log.log(response, plan, consumer="c", service=SERVICE) for _ in range(50)]
        elapsed = time.perf_counter() - started
    finally:
        release.set()
        serving_log._Batch.add = original  # type: ignore[method-assign]
    assert elapsed < 0.5  # 50 calls while the writer is stuck: none waited
    # The writer holds one lookup (once it took it), the queue two more: the others were dropped and counted.
    assert log.dropped == results.count(False) in (47, 48)
    log.close()
    assert log.stats().rows_written == results.count(True)


def test_a_lookup_that_cannot_be_converted_loses_only_its_own_rows(tmp_path: Path, store: FeatureStore) -> None:
    run(store)
    log = ServedVectorLog(ServingLogConfig(sample_rate=1.0, flush_seconds=3600, flush_rows=10**6), tmp_path / "s")
    good = store.get_online_features(SERVICE, {"customer_id": [1, 2]}, log_served=False)
    assert log.log(good, store._lookup_plan(SERVICE, False), consumer="c", service=SERVICE)
    # The first lookup of another plan (full names), with a value orjson refuses to encode.
    bad = store.get_online_features(SERVICE, {"customer_id": [3]}, full_feature_names=True, log_served=False)
    bad.columns[f"{VIEW}__spend"][0] = object()
    assert log.log(bad, store._lookup_plan(SERVICE, True), consumer="c", service=SERVICE)
    log.close()
    (file,) = (tmp_path / "s").glob("date=*/service=spend_model/*.parquet")
    assert pq.read_table(file).column("key:customer_id").to_pylist() == [1, 2]
    assert (log.stats().write_errors, log.stats().rows_written) == (1, 2)


def test_close_writes_what_is_queued(tmp_path: Path, store: FeatureStore) -> None:
    run(store)
    log = ServedVectorLog(ServingLogConfig(sample_rate=1.0, flush_seconds=3600, flush_rows=10**6), tmp_path / "s")
    response = store.get_online_features(SERVICE, {"customer_id": [1, 2]}, log_served=False)
    for _ in range(3):
        assert log.log(response, store._lookup_plan(SERVICE, False), consumer="c", service=SERVICE)
    assert not list((tmp_path / "s").glob("**/*.parquet"))  # nothing written before the flush
    log.close()
    (file,) = (tmp_path / "s").glob("date=*/service=spend_model/*.parquet")
    assert pq.read_table(file).num_rows == 6
    assert not log.log(response, store._lookup_plan(SERVICE, False), consumer="c", service=SERVICE)


def test_the_store_closes_its_log(root: Path) -> None:
    with FeatureStore(root) as s:
        run(s)
        s.get_online_features(SERVICE, {"customer_id": [1]})
    assert list((root / "data" / "offline" / "_served_vectors").glob("date=*/service=spend_model/*.parquet"))


def test_off_by_default_and_the_settings_are_checked(tmp_path: Path) -> None:
    config = ProjectConfig.from_mapping({"project": "p"}, root=tmp_path)
    assert config.serving_log.sample_rate == 0 and ServedVectorLog.from_config(config) is None
    with pytest.raises(ConfigError, match=r"serving_log.sample_rate.*at most 1"):
        ProjectConfig.from_mapping({"project": "p", "serving_log": {"sample_rate": 2}}, root=tmp_path)
    with pytest.raises(ConfigError, match=r"serving_log\.rate"):
        ProjectConfig.from_mapping({"project": "p", "serving_log": {"rate": 0.5}}, root=tmp_path)


def test_the_cli_prints_and_records_the_report(store: FeatureStore, root: Path) -> None:
    run(store)
    lookup(store)
    start = since().isoformat()
    result = CliRunner().invoke(cli, ["-C", str(root), "skew", SERVICE, "--since", start])
    assert result.exit_code == 0, result.output
    assert "match rate 100.00%" in result.output and "daily_spend:spend" in result.output
    result = CliRunner().invoke(cli, ["-C", str(root), "skew", SERVICE, "--since", start, "--json"])
    assert json.loads(result.output)["counts"]["match"] == 8
    result = CliRunner().invoke(cli, ["-C", str(root), "skew", "spend_modl", "--since", start])
    assert result.exit_code != 0


def test_an_unknown_service_is_named(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="Did you mean 'spend_model'"):
        store.skew_report("spend_modl", since())


def test_the_latest_report_is_a_metric(store: FeatureStore) -> None:
    run(store)
    lookup(store)
    store.skew_report(SERVICE, since())
    families = {m.name: m for m in SkewCollector(store.registry, store.project).collect()}
    rates = {s.labels["feature"]: s.value for s in families["featurestore_skew_match_rate"].samples}
    assert rates == {"spend": 1.0, "n": 1.0}


def test_the_datamart_logs_lookups_flushes_on_shutdown_and_serves_reports_and_metrics(store: FeatureStore) -> None:
    from datamart.app import create_app
    from tests.api.conftest import TestClient  # imported there with Starlette's httpx warning silenced

    run(store)
    with TestClient(create_app(store)) as client:
        body = {"features": [SERVICE], "entities": {"customer_id": [1, 2, 3]}}
        assert client.post("/v1/online-features", json=body).status_code == 200
    # The app's shutdown flushed the log (the store stays open): the report sees the lookup.
    report = store.skew_report(SERVICE, since())
    assert (report.rows, report.mismatches) == (3, 0)
    with TestClient(create_app(store)) as client:
        reports = client.get("/v1/skew-reports", params={"service": SERVICE}).json()
        assert [r["id"] for r in reports] == [report.id] and reports[0]["counts"]["match"] == 6
        assert client.get("/v1/skew-reports", params={"service": "spend_modl"}).status_code == 404
        metrics = client.get("/v1/metrics").text
    assert (
        'featurestore_skew_match_rate{feature="spend",project="cards",service="spend_model",view="daily_spend"} 1.0'
        in metrics
    )


def test_the_datamart_routes_take_and_echo_the_clients_request_id(store: FeatureStore, root: Path) -> None:
    from datamart.app import create_app
    from featurestore.model_serving import ModelServer
    from tests.api.conftest import TestClient

    class Model:
        def predict(self, frame: Any) -> list[float]:
            return [1.0] * len(frame)

    run(store)
    server = ModelServer(store, loader=lambda uri: Model())
    server.versions = lambda model: {1: _version_record(store, 1)}  # type: ignore[method-assign]
    app = create_app(store)
    app.state.model_servers = {store.project: server}
    entities = {"customer_id": [1, 2]}
    calls = {
        "online-1": ("/v1/online-features", {"features": [SERVICE], "entities": entities}),
        "feast-2": ("/get-online-features", {"feature_service": SERVICE, "entities": entities}),
        "predict-3": ("/v1/models/churn/predict", {"entities": entities}),
    }
    with TestClient(app) as client:
        for rid, (path, body) in calls.items():
            answer = client.post(path, json=body, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            assert answer.headers.get("x-request-id") == rid, path
        for bad in ("x" * 129, "tab\there"):  # too long, not printable: ignored, not echoed
            answer = client.post("/v1/online-features", json=calls["online-1"][1], headers={"X-Request-ID": bad})
            assert answer.status_code == 200 and "x-request-id" not in answer.headers
    logged = read_served(root / "data" / "offline" / "_served_vectors", SERVICE, since())
    ids = logged.column("request_id").to_pylist()
    assert ids[:6] == ["online-1"] * 2 + ["feast-2"] * 2 + ["predict-3"] * 2
    assert len(set(ids[6:])) == 2 and not set(ids[6:]) & {"x" * 129, "tab\there"}


def test_the_view_and_model_pages_show_the_newest_report(store: FeatureStore) -> None:
    from datamart.app import create_app
    from tests.api.conftest import TestClient

    with TestClient(create_app(store)) as client:
        assert "No skew report yet" in client.get(f"/ui/views/{VIEW}").text
    run(store)
    view = store.get_feature_view(VIEW)
    tampered = pa.table({"customer_id": [2], "as_of": pa.array([utc(2024, 3, 4)], UTC_US), "spend": [999.0], "n": [1]})
    store.online_store.write(view, tampered.cast(view_schema(view)))
    lookup(store, keys=[1, 2])
    store.skew_report(SERVICE, since())
    store.register_model("churn", SERVICE)
    with TestClient(create_app(store)) as client:
        for path in (f"/ui/views/{VIEW}", "/ui/models/churn"):
            page = client.get(path).text
            assert "Served values against offline (skew)" in page
            assert "<code>daily_spend:spend</code>" in page and "50.00 %" in page and "differs: entity" in page
        assert "No skew report yet" in client.get(f"/ui/views/{SHORT}").text  # no report covers it


def test_the_pages_show_skew_only_to_who_may_read_statistics(store: FeatureStore) -> None:
    from featurestore.auth import Authenticator
    from featurestore.config import AuthConfig
    from registry_ui import create_app as create_ui_app
    from tests.api.conftest import TestClient

    run(store)
    lookup(store, keys=[1])
    store.skew_report(SERVICE, since())
    registry, project = store.registry, store.project
    tokens = {role: registry.create_token(project, role, role, actor="test")[1] for role in ("scientist", "analyst")}
    auth = Authenticator(AuthConfig(enabled=True, cache_seconds=0), registry, project)
    with TestClient(create_ui_app(store, auth=auth)) as client:
        for role, shown in (("scientist", True), ("analyst", False)):
            page = client.get(f"/views/{VIEW}", headers={"Authorization": f"Bearer {tokens[role]}"})
            assert page.status_code == 200
            assert ("Served values against offline (skew)" in page.text) is shown, role


def test_lookups_naming_features_are_logged_only_when_the_setting_says_so(tmp_path: Path) -> None:
    features = [f"{VIEW}:spend", f"{VIEW}:n"]
    for setting, logged in ((False, False), (True, True)):
        root = logged_project(tmp_path / str(setting), log_feature_lists=setting)
        with FeatureStore(root) as s:
            run(s)
            s.get_online_features(features, {"customer_id": [1, 2]})
            s.get_online_features(SERVICE, {"customer_id": [3]})
            assert s.serving_log is not None and s.serving_log.flush()
        folder = root / "data" / "offline" / "_served_vectors"
        assert bool(list(folder.glob("date=*/service=_views/*.parquet"))) is logged, setting
        assert read_served(folder, SERVICE, since()).num_rows == 1


def test_lookups_with_and_without_full_names_are_all_compared(store: FeatureStore) -> None:
    run(store)
    store.get_online_features(SERVICE, {"customer_id": [1, 2]}, full_feature_names=True)
    lookup(store, keys=[3])
    report = store.skew_report(SERVICE, since())
    assert (report.feature("spend").served, report.mismatches) == (3, 0)
