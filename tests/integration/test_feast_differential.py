"""Differential tests against Feast 0.67: the same repository and data, Feast's answers and ours.

The driver project of ``feast_project.py`` (300 drivers: rows out of time order, nulls, drivers
whose rows are all past the TTL, drivers without stats rows) is materialized by Feast into Redis
database 1 and run by us into database 0 of the same server. Compared:

* training sets: ours against Feast's ``get_historical_features`` for every spine row (spine
  rows of known and unknown drivers at random times over four days), matched by a row id;
* online values of every driver (and unknown ones): our SDK against Feast's SDK;
* HTTP: the same requests to Feast's own feature server (what ``feast serve`` runs, in Feast's
  venv, on a free loopback port or ``FEATURESTORE_TEST_FEAST_SERVE_PORT``) and to our datamart's
  ``POST /get-online-features``.

Feast runs once (one interpreter: importing Feast is most of its time): it applies, materializes,
answers the lookups and the training set, then serves the repository as ``feast serve`` does; our
project is built meanwhile.

Every difference is classified by ``feast_compare`` (which says what explains each kind); the test
fails on any it does not explain, with the readable report in the assertion message.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast_compare import NO_TIME, Difference, Stored, compare_online, compare_training, report
from feast_project import (
    FEATURES,
    PROFILE,
    REFS,
    SERVICE,
    SERVICE_FEATURES,
    STATS,
    TTL,
    DriverData,
    FeastProcess,
    build_ours,
    generate,
    start_feast,
)

from datamart.app import create_app
from featurestore.lookup import FeatureStatus, OnlineResponse
from featurestore.store import FeatureStore
from tests.api.conftest import serving

N_DRIVERS = 300
UNKNOWN = [900_001, 900_002, 900_003]
FEAST_STATUS = {
    FeatureStatus.PRESENT: "PRESENT",
    FeatureStatus.NULL: "NULL_VALUE",
    FeatureStatus.MISSING: "NOT_FOUND",
    FeatureStatus.EXPIRED: "OUTSIDE_MAX_AGE",
    FeatureStatus.INVALID: "INVALID",
}
FEATURE_VIEW = {f: view for view, names in FEATURES.items() for f in names}
FEATURE_TTL = {
    **{f: TTL[v] for f, v in FEATURE_VIEW.items()},
    **{f"{v}__{f}": TTL[v] for f, v in FEATURE_VIEW.items()},
}


@dataclass(frozen=True)
class Both:
    data: DriverData
    ours: Path
    feast_repo: Path
    folder: Path
    spine: pa.Table
    feast_online: list[dict[str, Any]]
    feast_training: list[dict[str, Any]]
    lookups: list[dict[str, Any]]
    feast: FeastProcess
    feast_url: str
    """Feast's feature server on ``feast_repo`` (started once the jobs are done: see ``feast_server``)."""


def _serve_port() -> int:
    """``FEATURESTORE_TEST_FEAST_SERVE_PORT``, else a port free now (other sessions run tests too)."""
    if os.environ.get("FEATURESTORE_TEST_FEAST_SERVE_PORT"):
        port = int(os.environ["FEATURESTORE_TEST_FEAST_SERVE_PORT"])
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pytest.fail(
                f"something already listens on 127.0.0.1:{port}: stop it, or give Feast's server another "
                "port with FEATURESTORE_TEST_FEAST_SERVE_PORT (or unset it: a free port is taken)"
            )
        return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spine(data: DriverData, folder: Path) -> pa.Table:
    """Three rows per driver and per unknown driver, at random times over the last four days."""
    rng = random.Random(5)
    ids = [d for d in [*data.drivers, *UNKNOWN] for _ in range(3)]
    times = [data.now - timedelta(seconds=rng.randint(60, 4 * 86400)) for _ in ids]
    table = pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
            "row_id": pa.array(range(len(ids)), pa.int64()),
        }
    )
    pq.write_table(table, folder / "spine.parquet")
    return table


@pytest.fixture(scope="module")
def both(
    feast_python: Path, redis_server: Any, redis_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Both]:
    folder = tmp_path_factory.mktemp("feast-differential")
    data = generate(folder / "data", N_DRIVERS)
    prefix = f"feastdiff-{uuid.uuid4().hex[:8]}"
    online = (
        f"online_store:\n  type: redis\n  url: redis://{redis_server.host}:{redis_server.port}/0\n"
        f"  key_prefix: {prefix}\n"
    )
    spine = _spine(data, folder)
    ids = [*data.drivers, *UNKNOWN]
    lookups: list[dict[str, Any]] = [
        {"features": REFS, "entities": {"driver_id": ids}},
        {"feature_service": SERVICE, "entities": {"driver_id": ids}, "full_feature_names": True},
    ]
    project = f"drivers_{uuid.uuid4().hex[:8]}"
    job = {
        "repo": str(folder / "feast_repo"),
        "project": project,
        "online_store": {"type": "redis", "connection_string": f"{redis_server.host}:{redis_server.port},db=1"},
        "stats_path": str(data.stats_path),
        "profile_path": str(data.profile_path),
        "materialize_end": (data.now + timedelta(minutes=1)).isoformat(),
        "online": lookups,
        "online_out": str(folder / "feast_online.json"),
        "historical": {
            "spine": str(folder / "spine.parquet"),
            "features": REFS,
            "out": str(folder / "feast_hist.parquet"),
        },
    }
    port = _serve_port()
    feast = start_feast(feast_python, [job], folder, serve={"repo": job["repo"], "host": "127.0.0.1", "port": port})
    try:
        ours = build_ours(folder / "ours", data, online_store=online)  # while Feast works
        feast.wait_done()
        yield Both(
            data=data,
            ours=ours,
            feast_repo=Path(str(job["repo"])),
            folder=folder,
            spine=spine,
            feast_online=json.loads((folder / "feast_online.json").read_text()),
            feast_training=pq.read_table(folder / "feast_hist.parquet").to_pylist(),
            lookups=lookups,
            feast=feast,
            feast_url=f"http://127.0.0.1:{port}",
        )
    finally:
        feast.stop()
        import redis

        feast_db = redis.Redis(host=redis_server.host, port=redis_server.port, db=1)
        stale = [k for k in feast_db.scan_iter(count=1000) if project.encode() in k]
        if stale:
            feast_db.delete(*stale)
        feast_db.close()
        ours_keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
        if ours_keys:
            redis_client.delete(*ours_keys)


@pytest.fixture(scope="module")
def store(both: Both) -> Iterator[FeatureStore]:
    with FeatureStore(both.ours) as s:
        yield s


def _check(differences: list[Difference], compared: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    text = report(differences, compared)
    with capsys.disabled():
        print("\n" + text)
    assert all(d.explained_by for d in differences), text


def _stored(data: DriverData) -> Stored:
    """From the data files: each driver's newest row of each view, per feature (by its name and its
    full name), as the comparator checks its explanations against it."""
    out: dict[str, dict[Any, tuple[Any, datetime]]] = {}
    for view, path, time_column in (
        (STATS, data.stats_path, "event_timestamp"),
        (PROFILE, data.profile_path, "updated_at"),
    ):
        newest: dict[int, dict[str, Any]] = {}
        for row in pq.read_table(path).to_pylist():
            kept = newest.get(row["driver_id"])
            if kept is None or row[time_column] > kept[time_column]:
                newest[row["driver_id"]] = row
        for feature in FEATURES[view]:
            values = {d: (row[feature], row[time_column]) for d, row in newest.items()}
            out[feature] = out[f"{view}__{feature}"] = values
    return out


def _has_row_in_ttl(rows: dict[int, list[datetime]], spine: pa.Table, ttl: timedelta) -> dict[int, bool]:
    """Per spine row: whether its driver has a row within ``ttl`` at or before its time."""
    out = {}
    for row in spine.to_pylist():
        ts = row["event_timestamp"]
        out[row["row_id"]] = any(ts - ttl <= t <= ts for t in rows.get(row["driver_id"], []))
    return out


def test_training_sets_agree_but_for_the_rows_feast_drops(
    both: Both, store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = store.get_training_set(both.spine, REFS, timestamp_column="event_timestamp").to_pylist()
    assert [r["row_id"] for r in ours] == both.spine.column("row_id").to_pylist()  # every row, in order
    differences = compare_training(
        ours,
        both.feast_training,
        row_key="row_id",
        features=FEATURE_VIEW,
        has_row_in_ttl={
            "driver_hourly_stats": _has_row_in_ttl(both.data.stats_rows, both.spine, TTL["driver_hourly_stats"]),
            "driver_profile": _has_row_in_ttl(both.data.profile_rows, both.spine, TTL["driver_profile"]),
        },
    )
    compared = {"spine rows": len(ours), "rows from Feast": len(both.feast_training)}
    _check(differences, compared, capsys)
    dropped = [d for d in differences if d.explained_by == "feast-drops-row"]
    assert dropped, "Feast dropped no spine row: the data no longer has rows before any entity's first"
    assert len(both.feast_training) + len(dropped) == len(ours)


def _ours_online(response: OnlineResponse, views: dict[str, str]) -> dict[str, dict[str, list[Any]]]:
    """Our lookup in Feast's shape (join key first, statuses by Feast's names, whole-second times)."""

    def text(t: datetime | None) -> str:
        return "1970-01-01T00:00:00Z" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")

    out: dict[str, dict[str, list[Any]]] = {}
    for key, values in response.keys.items():
        n = len(values)
        out[key] = {"values": values, "statuses": ["PRESENT"] * n, "event_timestamps": ["1970-01-01T00:00:00Z"] * n}
    for name, values in response.columns.items():
        out[name] = {
            "values": values,
            "statuses": [FEAST_STATUS[s] for s in response.statuses[name]],
            "event_timestamps": [text(t) for t in response.event_timestamps[views[name]]],
        }
    return out


def _feast_sdk(answer: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    return {
        n: {
            "values": answer["values"][n],
            "statuses": answer["statuses"][n],
            "event_timestamps": answer["event_timestamps"][n],
        }
        for n in answer["names"]
    }


def test_online_values_of_every_entity_agree_but_for_status_and_ttl(
    both: Both, store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    differences: list[Difference] = []
    compared = 0
    now = both.data.now
    stored = _stored(both.data)
    for lookup, answer in zip(both.lookups, both.feast_online, strict=True):
        full = lookup.get("full_feature_names", False)
        features = lookup.get("feature_service") or lookup["features"]
        response = store.get_online_features(features, lookup["entities"], full_feature_names=full)
        views = {**FEATURE_VIEW, **{f"{v}__{f}": v for f, v in FEATURE_VIEW.items()}}
        ours = _ours_online(response, views)
        label = f"online {lookup.get('feature_service') or 'features'}"
        keys = lookup["entities"]["driver_id"]
        differences += compare_online(
            ours, _feast_sdk(answer), keys=keys, ttl=FEATURE_TTL, stored=stored, now=now, label=label
        )
        compared += len(keys) * len(ours)
    if lookup.get("feature_service"):
        assert set(_feast_sdk(answer)) == {"driver_id", *(f"{v}__{f}" for f, v in SERVICE_FEATURES.items())}
    _check(differences, {"online values": compared}, capsys)
    kinds = {d.explained_by for d in differences}
    assert {"feast-present-missing", "feast-no-online-ttl", "feast-present-null"} <= kinds, kinds


@pytest.fixture(scope="module")
def feast_server(both: Both) -> str:
    """Feast's own feature server on the Feast repository (Redis database 1), which Feast's process
    starts once its jobs are done (``feast serve``'s code; stopped with that process)."""
    deadline = time.monotonic() + 120
    while True:
        if both.feast.proc.poll() is not None:
            pytest.fail(both.feast.failure(f"exited {both.feast.proc.returncode} instead of serving"), pytrace=False)
        try:
            if httpx.get(f"{both.feast_url}/health", timeout=2).status_code == 200:
                return both.feast_url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(both.feast.failure(f"did not answer {both.feast_url}/health within 120 s"), pytrace=False)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def our_server(store: FeatureStore) -> Iterator[str]:
    with serving(create_app(store)) as url:
        yield url


def test_http_answers_of_feasts_server_and_ours_agree_but_for_status_and_ttl(
    both: Both, feast_server: str, our_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    requests: list[dict[str, Any]] = [
        *both.lookups,
        {
            "features": ["driver_profile:licensed", "driver_hourly_stats:acc_rate"],
            "entities": {"driver_id": [1001, 1002, 900_001]},
        },
    ]
    differences: list[Difference] = []
    compared = 0
    now = both.data.now
    stored = _stored(both.data)
    for body in requests:
        theirs = httpx.post(f"{feast_server}/get-online-features", json=body, timeout=60)
        mine = httpx.post(f"{our_server}/get-online-features", json=body, timeout=60)
        assert (mine.status_code, theirs.status_code) == (200, 200), (mine.text, theirs.text)
        a, b = mine.json(), theirs.json()
        assert set(a) == set(b) == {"metadata", "results"}
        by_name_a = dict(zip(a["metadata"]["feature_names"], a["results"], strict=True))
        by_name_b = dict(zip(b["metadata"]["feature_names"], b["results"], strict=True))
        keys = body["entities"]["driver_id"]
        label = f"HTTP {body.get('feature_service') or ','.join(body['features'])}"
        differences += compare_online(
            by_name_a, by_name_b, keys=keys, ttl=FEATURE_TTL, stored=stored, now=now, label=label
        )
        compared += len(keys) * len(by_name_a)
    # Errors: the same Feast error class for an unknown view and an unknown service.
    for body in (
        {"features": ["driver_hourly_stat:conv_rate"], "entities": {"driver_id": [1001]}},
        {"feature_service": "driver_activty", "entities": {"driver_id": [1001]}},
    ):
        theirs = httpx.post(f"{feast_server}/get-online-features", json=body, timeout=60)
        mine = httpx.post(f"{our_server}/get-online-features", json=body, timeout=60)
        assert mine.status_code == theirs.status_code == 404
        assert json.loads(mine.json())["class"] == json.loads(theirs.json())["class"]
        compared += 1
    _check(differences, {"HTTP values": compared}, capsys)


def test_the_comparator_explains_only_what_our_semantics_explain() -> None:
    """No servers: the comparator lets the documented differences through, each only when the data
    (the entity's newest offline row) bears out what the explanation claims, and nothing else."""
    now = datetime(2026, 1, 10, tzinfo=UTC)
    fresh, stale = "2026-01-09T12:00:00Z", "2026-01-08T00:00:00Z"
    at_fresh, at_stale = datetime(2026, 1, 9, 12, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC)
    # Entities 1-5: differences the semantics explain (and 5, another value, which nothing explains);
    # 6-9: the same statuses as 2-4 where the data contradicts the explanation.
    ours: dict[str, dict[str, list[Any]]] = {
        "conv_rate": {
            "values": [0.5, None, None, None, 0.25, None, None, None, None],
            "statuses": [
                "PRESENT",
                "OUTSIDE_MAX_AGE",
                "NOT_FOUND",
                "NULL_VALUE",
                "PRESENT",
                "OUTSIDE_MAX_AGE",
                "NOT_FOUND",
                "NULL_VALUE",
                "NULL_VALUE",
            ],
            "event_timestamps": [fresh, stale, NO_TIME, fresh, fresh, stale, NO_TIME, fresh, stale],
        }
    }
    feast: dict[str, dict[str, list[Any]]] = {
        "conv_rate": {
            "values": [0.5, 0.7, None, None, 0.26, 0.9, None, None, None],
            "statuses": ["PRESENT"] * 9,
            "event_timestamps": [fresh, stale, NO_TIME, fresh, fresh, stale, NO_TIME, fresh, stale],
        }
    }
    stored: dict[str, dict[Any, tuple[Any, datetime]]] = {
        "conv_rate": {
            1: (0.5, at_fresh),
            2: (0.7, at_stale),
            4: (None, at_fresh),
            5: (0.25, at_fresh),
            6: (0.7, at_stale),  # Feast serves 0.9 past the TTL: not what is stored
            7: (0.3, at_fresh),  # Feast says PRESENT-null for an entity that has a row
            8: (0.4, at_fresh),  # the stored value is not null
            9: (None, at_stale),  # a null past the TTL that we call NULL_VALUE
        }
    }
    ttl = {"conv_rate": timedelta(days=1)}
    keys = list(range(1, 10))
    found = compare_online(ours, feast, keys=keys, ttl=ttl, stored=stored, now=now, label="t")
    assert [(d.where, d.explained_by) for d in found] == [
        ("t: conv_rate of 2", "feast-no-online-ttl"),
        ("t: conv_rate of 3", "feast-present-missing"),
        ("t: conv_rate of 4", "feast-present-null"),
        ("t: conv_rate of 5", None),  # another value: never explained
        ("t: conv_rate of 6", None),
        ("t: conv_rate of 7", None),
        ("t: conv_rate of 8", None),
        ("t: conv_rate of 9", None),
    ]
    # Withheld as expired though within the TTL: not explained.
    ours["conv_rate"]["event_timestamps"][1] = feast["conv_rate"]["event_timestamps"][1] = fresh
    stored["conv_rate"][2] = (0.7, at_fresh)
    found = compare_online(ours, feast, keys=keys, ttl=ttl, stored=stored, now=now, label="t")
    assert ("t: conv_rate of 2", None) in [(d.where, d.explained_by) for d in found]
    # A dropped training row is explained only when a view had no row in its TTL and ours are null there.
    row = {"row_id": 0, "conv_rate": None, "home_city": "Porto"}
    views = {"conv_rate": "stats", "home_city": "profile"}
    dropped = compare_training(
        [row], [], row_key="row_id", features=views, has_row_in_ttl={"stats": {0: False}, "profile": {0: True}}
    )
    assert [d.explained_by for d in dropped] == ["feast-drops-row"]
    kept = compare_training(
        [row], [], row_key="row_id", features=views, has_row_in_ttl={"stats": {0: True}, "profile": {0: True}}
    )
    assert [d.explained_by for d in kept] == [None]
    valued = {**row, "conv_rate": 0.5}
    wrong = compare_training(
        [valued], [], row_key="row_id", features=views, has_row_in_ttl={"stats": {0: False}, "profile": {0: True}}
    )
    assert [d.explained_by for d in wrong] == [None]
