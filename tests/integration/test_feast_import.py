"""``featurestore import-feast``: Feast repositories read by Feast's own SDK, imported, applied,
run and looked up.

Two repositories, each read by Feast once (the reader imports Feast, 20-50 s here; the two reads
run at the same time, the every-object one in a thread while ``feast init`` and the CLI's import
of the template run): Feast's own
template (``feast init``, the driver_hourly_stats example and its data file), imported through the
CLI; and one written here exercising every object the import supports (entities with Int64 and
String keys, a view of two entities, file sources with a created timestamp and a field mapping,
tags, owners, descriptions, TTLs of hours and 0, Float32/Int32/Bool/UnixTimestamp/String types,
services with a projection and an alias, a SQLite online store) and three it does not (an
on-demand view, a push source, a Kafka source), which the report must name. Feast runs in its
own venv (``feast_python``, installed by ``infra/feast/install.sh`` when missing).
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast_project import FEAST_OPTIMIZE

from featurestore.definitions import Entity, FeatureService, FeatureView, FileSource
from featurestore.feast_import import FeastImportError, convert, read_feast_repository, write_project
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore

REPO = Path(__file__).resolve().parents[2]
RUFF = REPO / ".venv" / "bin" / "ruff"


def featurestore(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "featurestore", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"featurestore {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def files_of(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}  # __pycache__ included


def assert_ruff_clean(path: Path) -> None:
    for args in (
        ["check", "--isolated", "--line-length", "120"],
        ["format", "--check", "--isolated", "--line-length", "120"],
    ):
        proc = subprocess.run([str(RUFF), *args, str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"ruff {' '.join(args)} {path}:\n{proc.stdout}{proc.stderr}"


@dataclass(frozen=True)
class EveryObject:
    feast_repo: Path
    document: dict[str, Any]
    now: datetime


def _read_every_object(repo: Path, feast_python: Path, now: datetime) -> EveryObject:
    started = time.perf_counter()
    document = read_feast_repository(repo, [str(feast_python)])
    print(f"Feast read of the every-object repository: {time.perf_counter() - started:.1f} s")
    return EveryObject(feast_repo=repo, document=document, now=now)


@pytest.fixture(scope="module")
def every_object_read(feast_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[EveryObject]]:
    """The every-object repository (``write_every_object_repository``), being read by Feast in a
    thread: the template's fixture asks for it so that both reads (each a Feast interpreter,
    mostly importing Feast) go on at once."""
    repo = tmp_path_factory.mktemp("feast-every") / "repo"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write_every_object_repository(repo, now)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feast-read") as pool:
        yield pool.submit(_read_every_object, repo, feast_python, now)


@pytest.fixture(scope="module")
def every_object(every_object_read: Future[EveryObject]) -> EveryObject:
    return every_object_read.result()


# ---------------------------------------------------------------------------- Feast's template


@dataclass(frozen=True)
class TemplateImport:
    feast_repo: Path
    out: Path
    stdout: str
    files_before: dict[str, float]


@pytest.fixture(scope="module")
def template(
    feast_python: Path, tmp_path_factory: pytest.TempPathFactory, every_object_read: Future[EveryObject]
) -> TemplateImport:
    # every_object_read: Feast reads the other repository meanwhile, in a thread of its own.
    base = tmp_path_factory.mktemp("feast-template")
    init = subprocess.run(
        [str(feast_python), FEAST_OPTIMIZE, str(feast_python.parent / "feast"), "init", "driver_repo"],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert init.returncode == 0, f"feast init failed:\n{init.stdout}\n{init.stderr}"
    feast_repo = base / "driver_repo" / "feature_repo"
    before = files_of(feast_repo)
    out = base / "imported"
    started = time.perf_counter()
    proc = featurestore("import-feast", feast_repo, "--out", out, "--feast-python", feast_python)
    print(f"import-feast of feast init's template: {time.perf_counter() - started:.1f} s")
    return TemplateImport(feast_repo=feast_repo, out=out, stdout=proc.stdout, files_before=before)


def newest_rows(parquet: Path, key: str) -> dict[Any, dict[str, Any]]:
    """Each key's newest row, by event time then created time (how Feast breaks ties)."""
    newest: dict[Any, dict[str, Any]] = {}
    for row in pq.read_table(parquet).to_pylist():
        seen = newest.get(row[key])
        if seen is None or (row["event_timestamp"], row["created"]) > (seen["event_timestamp"], seen["created"]):
            newest[row[key]] = row
    return newest


def test_feast_template_imports_runs_and_serves_the_newest_conv_rate(template: TemplateImport) -> None:
    out = template.out
    assert files_of(template.feast_repo) == template.files_before, "reading the Feast repository changed it"
    report = (out / "IMPORT_REPORT.md").read_text()
    assert report in template.stdout  # printed and written
    no_equivalent = report.split("## No equivalent")[1]
    for name in (
        "on-demand feature view `transformed_conv_rate`",
        "push source `driver_stats_push_source`",
        "request source `vals_to_add`",
        "label view `driver_quality_labels`",
        "feature `driver_hourly_stats:driver_metadata`",
        "feature `driver_hourly_stats:driver_profile`",
    ):
        assert name in no_equivalent, f"{name} missing from the report's no-equivalent list:\n{report}"
    assert "created_timestamp_column 'created'" in report
    assert_ruff_clean(out / "features.py")

    featurestore("-C", out, "apply")
    featurestore("-C", out, "run", "--all", "--no-progress")

    newest = newest_rows(Path(template.feast_repo) / "data" / "driver_stats.parquet", "driver_id")
    drivers = sorted(newest)
    assert len(drivers) == 5
    store = FeatureStore(out)
    response = store.get_online_features(
        ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"], {"driver_id": drivers}
    )
    assert response.columns["conv_rate"] == [newest[d]["conv_rate"] for d in drivers]
    assert response.columns["avg_daily_trips"] == [newest[d]["avg_daily_trips"] for d in drivers]
    assert {s.value for s in response.statuses["conv_rate"]} == {"present"}
    # The feature service keeps its name and its projection (conv_rate only).
    service = store.get_online_features("driver_activity_v1", {"driver_id": drivers[:1]})
    assert list(service.columns) == ["conv_rate"]
    assert service.columns["conv_rate"] == [newest[drivers[0]]["conv_rate"]]


# ---------------------------------------------------------------------------- every object


FEATURE_STORE_YAML = """\
project: every_object
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
entity_key_serialization_version: 3
"""

DEFINITIONS = """\
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, KafkaSource, PushSource, ValueType
from feast.data_format import JsonFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

driver = Entity(
    name="driver", join_keys=["driver_id"], value_type=ValueType.INT64, description="A driver",
    owner="fleet@example.com", tags={"domain": "fleet"},
)
rider = Entity(name="rider", join_keys=["rider_code"], value_type=ValueType.STRING, description="A rider")

stats = FileSource(
    name="driver_stats_file", path="data/driver_stats.parquet", timestamp_field="ts",
    created_timestamp_column="created", description="Hourly driver statistics",
)
trips = FileSource(name="trips_file", path="data/trips.parquet", timestamp_field="trip_ts", field_mapping={"fare_raw": "fare"})

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(hours=36),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32, description="Conversion rate"),
        Field(name="trips_today", dtype=Int32),
        Field(name="rating", dtype=Float64, tags={"unit": "stars"}),
        Field(name="city", dtype=String),
        Field(name="active", dtype=Bool),
        Field(name="last_seen", dtype=UnixTimestamp),
    ],
    source=stats,
    online=True,
    description="Driver statistics, hourly",
    owner="fleet@example.com",
    tags={"team": "fleet", "tier": "gold"},
)

driver_rider_trips = FeatureView(
    name="driver_rider_trips",
    entities=[driver, rider],
    ttl=timedelta(seconds=0),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="rider_code", dtype=String),
        Field(name="fare", dtype=Float64),
        Field(name="trip_count", dtype=Int64),
    ],
    source=trips,
    description="Trips of a driver with a rider",
)

pushed = PushSource(name="stats_push", batch_source=stats)
driver_stats_fresh = FeatureView(
    name="driver_stats_fresh", entities=[driver], ttl=timedelta(hours=1),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32)], source=pushed,
)

kafka = KafkaSource(
    name="stats_stream", kafka_bootstrap_servers="localhost:9092", topic="driver_stats", timestamp_field="ts",
    batch_source=stats, message_format=JsonFormat(schema_json="driver_id integer, ts timestamp, conv_rate double"),
)
driver_stats_stream = FeatureView(
    name="driver_stats_stream", entities=[driver], ttl=timedelta(hours=1),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32)], source=kafka,
)


@on_demand_feature_view(sources=[driver_stats], schema=[Field(name="conv_pct", dtype=Float64)], mode="python")
def conv_percent(inputs: dict) -> dict:
    return {"conv_pct": [v * 100 for v in inputs["conv_rate"]]}


scoring = FeatureService(
    name="scoring",
    features=[driver_stats[["conv_rate", "rating"]], driver_rider_trips],
    description="Features of the scoring model",
    owner="ds@example.com",
    tags={"model": "scoring"},
)
aliased = FeatureService(name="aliased", features=[driver_stats.with_name("stats_v2"), conv_percent])
"""

STATS_SCHEMA = pa.schema(
    [
        ("driver_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("conv_rate", pa.float32()),
        ("trips_today", pa.int32()),
        ("rating", pa.float64()),
        ("city", pa.string()),
        ("active", pa.bool_()),
        ("last_seen", pa.timestamp("us", tz="UTC")),
    ]
)
TRIPS_SCHEMA = pa.schema(
    [
        ("driver_id", pa.int64()),
        ("rider_code", pa.string()),
        ("trip_ts", pa.timestamp("us", tz="UTC")),
        ("fare_raw", pa.float64()),
        ("trip_count", pa.int64()),
    ]
)
CORRECTED_CONV_RATE = 0.999


def write_every_object_repository(repo: Path, now: datetime) -> None:
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML)
    (repo / "definitions.py").write_text(DEFINITIONS)
    rows: list[dict[str, Any]] = []
    for driver in (1, 2, 3):
        for hour in range(5):
            ts = now - timedelta(hours=5 - hour)
            rows.append(
                {
                    "driver_id": driver,
                    "ts": ts,
                    "created": ts,
                    "conv_rate": 0.1 * driver + 0.01 * hour,
                    "trips_today": hour,
                    "rating": 4.0 + hour / 10,
                    "city": f"city{driver}",
                    "active": hour % 2 == 0,
                    "last_seen": ts - timedelta(minutes=5),
                }
            )
    # Driver 1's newest row again, created later with another value: Feast (and the import) keep it.
    rows.append({**rows[4], "created": rows[4]["created"] + timedelta(minutes=1), "conv_rate": CORRECTED_CONV_RATE})
    pq.write_table(pa.Table.from_pylist(rows, STATS_SCHEMA), repo / "data" / "driver_stats.parquet")
    trips = [
        {"driver_id": 1, "rider_code": "r1", "trip_ts": now - timedelta(days=400), "fare_raw": 12.5, "trip_count": 3},
        {"driver_id": 1, "rider_code": "r2", "trip_ts": now - timedelta(days=400), "fare_raw": 7.0, "trip_count": 1},
    ]
    pq.write_table(pa.Table.from_pylist(trips, TRIPS_SCHEMA), repo / "data" / "trips.parquet")


def imported(every: EveryObject, out: Path, document: dict[str, Any] | None = None) -> str:
    result = convert(document or every.document)
    write_project(result, out)
    return result.report.markdown()


def test_every_supported_object_is_imported_with_its_names_and_metadata(
    every_object: EveryObject, tmp_path: Path
) -> None:
    from featurestore.config import ProjectConfig

    out = tmp_path / "every"
    report = imported(every_object, out)
    assert_ruff_clean(out / "features.py")
    assert "online_store:\n  type: sqlite\n  path: data/online.db" in (out / "featurestore.yaml").read_text()
    objects = load_definitions(ProjectConfig.load(out))
    by_name = {o.name: o for o in objects if isinstance(o, Entity | FeatureView | FeatureService)}

    driver, rider = by_name["driver"], by_name["rider"]
    assert isinstance(driver, Entity) and isinstance(rider, Entity)
    assert (driver.join_keys, [t.value for t in driver.key_types]) == (("driver_id",), ["int64"])
    assert (driver.description, driver.owner, driver.tags) == ("A driver", "fleet@example.com", ("domain:fleet",))
    assert (rider.join_keys, [t.value for t in rider.key_types]) == (("rider_code",), ["string"])

    stats = by_name["driver_stats"]
    assert isinstance(stats, FeatureView)
    assert stats.ttl == timedelta(hours=36)
    assert (stats.description, stats.owner, stats.tags) == (
        "Driver statistics, hourly",
        "fleet@example.com",
        ("team:fleet", "tier:gold"),
    )
    assert stats.timestamp_field == "ts"
    assert [(f.name, f.dtype.value) for f in stats.features] == [
        ("conv_rate", "float64"),
        ("trips_today", "int64"),
        ("rating", "float64"),
        ("city", "string"),
        ("active", "bool"),
        ("last_seen", "timestamp"),
    ]
    assert stats.feature("conv_rate").description == "Conversion rate"
    assert stats.feature("rating").tags == ("unit:stars",)

    trips = by_name["driver_rider_trips"]
    assert isinstance(trips, FeatureView)
    assert trips.join_keys == ("driver_id", "rider_code")
    assert trips.ttl == timedelta(days=36500)  # Feast's 0: no expiry
    scoring = by_name["scoring"]
    assert isinstance(scoring, FeatureService)
    assert [(s.view, s.features) for s in scoring.selections()] == [
        ("driver_stats", ("conv_rate", "rating")),
        ("driver_rider_trips", ("fare", "trip_count")),
    ]
    assert (scoring.description, scoring.owner, scoring.tags) == (
        "Features of the scoring model",
        "ds@example.com",
        ("model:scoring",),
    )

    no_equivalent = report.split("## No equivalent")[1]
    for name in ("on-demand feature view `conv_percent`", "push source `stats_push`", "stream source `stats_stream`"):
        assert name in no_equivalent, f"{name} missing from the report's no-equivalent list:\n{report}"
    assert "alias 'stats_v2'" in report
    assert "ttl 0" in report

    featurestore("-C", out, "apply")
    featurestore("-C", out, "run", "--all", "--no-progress")
    store = FeatureStore(out)
    response = store.get_online_features("scoring", {"driver_id": [1, 1, 2], "rider_code": ["r1", "r2", "r1"]})
    assert response.columns["conv_rate"][0] == pytest.approx(CORRECTED_CONV_RATE, abs=1e-6)  # the row created last
    assert response.columns["conv_rate"][2] == pytest.approx(0.2 + 0.04, abs=1e-6)
    assert response.columns["fare"] == [12.5, 7.0, None]  # mapped from fare_raw; (2, r1) has no trip
    assert response.columns["trip_count"] == [3, 1, None]


def test_feast_redis_and_cassandra_settings_map_to_ours(
    every_object: EveryObject, tmp_path: Path, redis_server: Any
) -> None:
    document = copy.deepcopy(every_object.document)
    document["config"]["project"] = "feast_import_redis"
    document["config"]["online_store"] = {
        "type": "redis",
        "redis_type": "redis",
        "connection_string": f"{redis_server.host}:{redis_server.port},db=3",
    }
    out = tmp_path / "redis"
    imported(every_object, out, document)
    assert f'url: "redis://{redis_server.host}:{redis_server.port}/3"' in (out / "featurestore.yaml").read_text()
    featurestore("-C", out, "apply")
    featurestore("-C", out, "run", "driver_stats", "--no-progress")
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=3)
    try:
        response = FeatureStore(out).get_online_features(["driver_stats:city"], {"driver_id": [3]})
        assert response.columns["city"] == ["city3"]
        assert any(True for _ in client.scan_iter(match="feast_import_redis*", count=1000))
    finally:
        for key in client.scan_iter(match="feast_import_redis*", count=1000):
            client.delete(key)
        client.close()

    document["config"]["online_store"] = {
        "type": "redis",
        "redis_type": "redis_cluster",
        "connection_string": "10.0.0.1:7000,10.0.0.2:7000,password=s3cret,ssl=true",
    }
    result = convert(document)
    assert 'url: "rediss://:${REDIS_PASSWORD}@10.0.0.1:7000/0"\n  cluster: true' in result.config
    assert "s3cret" not in result.config + result.report.markdown()

    document["config"]["online_store"] = {
        "type": "cassandra",
        "hosts": ["10.0.0.5", "10.0.0.6"],
        "port": 9142,
        "keyspace": "features",
        "username": "feast",
        "password": "s3cret",
        "load_balancing": {"load_balancing_policy": "TokenAwarePolicy(DCAwareRoundRobinPolicy)", "local_dc": "dc2"},
    }
    result = convert(document)
    for line in (
        'hosts: ["10.0.0.5", "10.0.0.6"]',
        "port: 9142",
        'keyspace: "features"',
        'local_dc: "dc2"',
        "password: ${CASSANDRA_PASSWORD}",
    ):
        assert line in result.config
    assert "s3cret" not in result.config + result.report.markdown()

    document["config"]["online_store"] = {"type": "dynamodb", "region": "eu-west-1"}
    result = convert(document)
    assert "type: sqlite" in result.config
    assert "online store `dynamodb`" in result.report.markdown().split("## No equivalent")[1]


# ---------------------------------------------------------------------------- errors


def test_a_missing_path_and_a_folder_without_feature_store_yaml_are_named(tmp_path: Path) -> None:
    missing = featurestore("import-feast", tmp_path / "nowhere", "--out", tmp_path / "out", check=False)
    assert missing.returncode == 1
    assert f"'{tmp_path / 'nowhere'}' does not exist: give the folder of a Feast feature repository" in missing.stderr

    project = tmp_path / "project"
    (project / "feature_repo").mkdir(parents=True)
    (project / "feature_repo" / "feature_store.yaml").write_text("project: p\n")
    not_feast = featurestore("import-feast", project, "--out", tmp_path / "out", check=False)
    assert not_feast.returncode == 1
    assert "holds no feature_store.yaml, so it is not a Feast feature repository" in not_feast.stderr
    assert f"Did you mean '{project / 'feature_repo'}'?" in not_feast.stderr
    assert not (tmp_path / "out").exists()


def test_existing_files_are_kept_without_force_and_a_wrong_feast_python_is_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text("project: p\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "features.py").write_text("# mine\n")
    kept = featurestore("import-feast", repo, "--out", out, check=False)
    assert kept.returncode == 1
    assert "features.py already exist" in kept.stderr and "--force" in kept.stderr
    assert (out / "features.py").read_text() == "# mine\n"

    inside = featurestore("import-feast", repo, "--out", repo / "imported", check=False)
    assert inside.returncode == 1 and "is inside the Feast repository" in inside.stderr
    assert not (repo / "imported").exists()

    wrong = featurestore(
        "import-feast", repo, "--out", tmp_path / "other", "--feast-python", tmp_path / "nopython", check=False
    )
    assert wrong.returncode == 1
    assert "--feast-python names" in wrong.stderr and "infra/feast/install.sh" in wrong.stderr


def test_no_python_with_feast_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import featurestore.feast_import as feast_import

    monkeypatch.delenv(feast_import.FEAST_PYTHON_ENV, raising=False)
    monkeypatch.setattr(feast_import, "REPOSITORY_ROOT", tmp_path)  # no .venv-feast there
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FeastImportError, match=r"run infra/feast/install.sh .* --feast-python"):
        feast_import.feast_python(None)


@pytest.fixture(autouse=True)
def _no_feast_python_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The tests choose the interpreter themselves; one set by the caller would change what runs.
    monkeypatch.delenv("FEATURESTORE_FEAST_PYTHON", raising=False)
    yield


def field(name: str, value_type: str) -> dict[str, Any]:
    return {"name": name, "value_type": value_type, "dtype": value_type.title(), "description": "", "tags": {}}


def test_names_python_cannot_take_as_they_are_still_make_a_loadable_project(tmp_path: Path) -> None:
    """Reader-shaped input without Feast: a source named by its path (Feast's default), a view
    named like an entity and one named like a Python keyword, an entityless view and a bytes key
    (both reported), keep their names in a features.py that loads."""
    from featurestore.config import ProjectConfig

    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"id": [1], "ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC)]), "x": [1.0]}), data)
    common = {"description": "", "owner": "", "tags": {}}
    view = {
        **common,
        "class": "FeatureView",
        "entities": ["thing"],
        "entity_columns": [field("id", "INT64")],
        "features": [field("x", "DOUBLE")],
        "ttl_seconds": 3600.0,
        "online": True,
        "batch_source": str(data),
        "stream_source": "",
    }
    document = {
        "feast_version": "0.67.0",
        "repository": str(tmp_path),
        "config": {"project": "odd_names", "provider": "local", "online_store": {"type": "sqlite"}},
        "entities": [
            {**common, "name": "thing", "join_keys": ["id"], "value_type": "UNKNOWN"},
            {**common, "name": "blob", "join_keys": ["blob_id"], "value_type": "BYTES"},
        ],
        "data_sources": [
            {
                **common,
                "name": str(data),
                "kind": "file",
                "path": str(data),
                "resolved_path": str(data),
                "uri": False,
                "file_format": "ParquetFormat",
                "timestamp_field": "ts",
                "created_timestamp_column": "",
                "field_mapping": {},
            }
        ],
        "feature_views": [
            {**view, "name": "thing"},
            {**view, "name": "class"},
            {**view, "name": "everyone", "entities": []},
            {**view, "name": "by_blob", "entities": ["blob"]},
        ],
        "feature_services": [
            {
                **common,
                "name": "svc",
                "projections": [{"view": "class", "alias": "", "features": ["x"], "join_key_map": {}}],
            }
        ],
    }
    result = convert(document)
    write_project(result, tmp_path / "out")
    assert_ruff_clean(tmp_path / "out" / "features.py")
    objects = load_definitions(ProjectConfig.load(tmp_path / "out"))
    names = sorted(o.name for o in objects if isinstance(o, Entity | FeatureView | FeatureService))
    assert names == ["class", "svc", "thing", "thing"]  # the entity and the view 'thing'
    assert [o.name for o in objects if isinstance(o, FileSource)] == ["data"]  # named by its file
    no_equivalent = result.report.markdown().split("## No equivalent")[1]
    assert "entity `blob`" in no_equivalent and "feature view `by_blob`" in no_equivalent
    assert "feature view `everyone`: it has no entity" in no_equivalent
