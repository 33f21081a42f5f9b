"""Feast's side of the Feast tests: run with Feast's own interpreter (``.venv-feast/bin/python``).

Feast pins its dependencies against the project's, so it cannot be imported by the tests; they
run this script with a job file instead, and read what it writes::

    .venv-feast/bin/python tests/integration/feast_scripts/feast_side.py JOB.json

The job (JSON) says, in order, what to do:

* ``repo``: the folder of the Feast repository (created); ``project``: its name.
* ``online_store``: Feast's ``online_store`` section, e.g. ``{"type": "redis", "connection_string":
  "127.0.0.1:16406,db=1"}`` or ``{"type": "remote", "path": "http://127.0.0.1:18420"}``;
  ``auth`` (optional): Feast's ``auth`` section of the client.
* ``stats_path``, ``profile_path``: the Parquet files of the two sources.
* ``materialize_end`` (optional): materialize every view from 2000-01-01 to this ISO time.
* ``online``: lookups, each ``{"features": [...]} or {"feature_service": name}``, ``entities``
  (columns), ``full_feature_names``; answered in ``online_out`` (JSON list, one per lookup: the
  names, values and statuses of Feast's ``OnlineResponse``, or the error Feast's client raised).
* ``historical`` (optional): ``{"spine": parquet, "features": [...], "out": parquet}``:
  ``get_historical_features`` of the spine (its extra columns kept), written as Parquet.

Several jobs in one interpreter (importing Feast takes 7-14 s of CPU here, typeguard instrumenting
Feast's classes at import): ``{"jobs": [JOB, ...], "done": path}`` runs each job in turn, with its
``env`` (optional: variables set for that job only, e.g. the token Feast's client reads), and
closes each job's store (Feast's client caches one HTTP session per process), then writes ``done``.
With ``"serve": {"repo": folder, "host": ..., "port": ...}`` the process then goes on as Feast's
feature server on that repository: what ``feast serve -h HOST -p PORT`` run in ``repo`` does (a new
``FeatureStore`` of the folder, ``serve`` with the command's defaults), without starting Feast again.

The repository is the equivalent of the tests' project of ours (``driver_hourly_stats``,
``driver_profile``, the feature service ``driver_activity``), written with Feast's SDK here.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml


def definitions(stats_path: str, profile_path: str) -> list[Any]:
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float64, Int64, String

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    stats_source = FileSource(name="driver_stats", path=stats_path, timestamp_field="event_timestamp")
    profile_source = FileSource(name="driver_profiles", path=profile_path, timestamp_field="updated_at")
    stats = FeatureView(
        name="driver_hourly_stats",
        entities=[driver],
        ttl=timedelta(days=1),
        schema=[
            Field(name="conv_rate", dtype=Float64),
            Field(name="acc_rate", dtype=Float64),
            Field(name="avg_daily_trips", dtype=Int64),
        ],
        source=stats_source,
        online=True,
    )
    profile = FeatureView(
        name="driver_profile",
        entities=[driver],
        ttl=timedelta(days=3650),
        schema=[Field(name="home_city", dtype=String), Field(name="licensed", dtype=Bool)],
        source=profile_source,
        online=True,
    )
    activity = FeatureService(
        name="driver_activity", features=[stats[["conv_rate", "avg_daily_trips"]], profile[["home_city"]]]
    )
    return [driver, stats_source, profile_source, stats, profile, activity]


def online(store: Any, request: dict[str, Any]) -> dict[str, Any]:
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    features: Any = request.get("features")
    try:
        if request.get("feature_service"):
            features = store.get_feature_service(request["feature_service"])
        response = store.get_online_features(
            features=features,
            entity_rows=request["entities"],
            full_feature_names=request.get("full_feature_names", False),
        )
    except Exception as err:  # the test compares what Feast's client raised
        return {"error": {"module": type(err).__module__, "class": type(err).__name__, "message": str(err)}}
    from feast.feature_server_utils import _timestamp_to_str

    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    answer: dict[str, Any] = {
        "names": names,
        "values": response.to_dict(),
        "statuses": {n: [FieldStatus.Name(s) for s in r.statuses] for n, r in zip(names, proto.results, strict=True)},
    }
    if any(r.event_timestamps for r in proto.results):  # the remote store does not pass them on
        answer["event_timestamps"] = {
            n: [_timestamp_to_str(t) for t in r.event_timestamps] for n, r in zip(names, proto.results, strict=True)
        }
    return answer


def run_job(job: dict[str, Any]) -> None:
    import asyncio

    from feast import FeatureStore

    repo = Path(job["repo"])
    repo.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "project": job["project"],
        "provider": "local",
        "registry": str(repo / "registry.db"),
        "online_store": job["online_store"],
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    if job.get("auth"):
        config["auth"] = job["auth"]
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    store = FeatureStore(repo_path=str(repo))
    try:
        store.apply(definitions(job["stats_path"], job["profile_path"]))
        if job.get("materialize_end"):
            end = datetime.fromisoformat(job["materialize_end"])
            store.materialize(start_date=datetime(2000, 1, 1, tzinfo=UTC), end_date=end)
        if job.get("online"):
            answers = [online(store, r) for r in job["online"]]
            Path(job["online_out"]).write_text(json.dumps(answers, default=str))
        if job.get("historical"):
            import pandas as pd

            h = job["historical"]
            spine = pd.read_parquet(h["spine"])
            frame = store.get_historical_features(entity_df=spine, features=h["features"]).to_df()
            frame.to_parquet(h["out"], index=False)
    finally:
        # Closes the HTTP session Feast's remote store keeps for the whole process, so the next job's
        # client starts without this one's (its auth header included).
        asyncio.run(store.close())


def serve(section: dict[str, Any]) -> None:
    """``feast serve -h HOST -p PORT`` in ``repo``: the command builds a ``FeatureStore`` of the
    folder and calls ``serve`` with its options' defaults, which are these."""
    import os

    from feast import FeatureStore

    os.chdir(section["repo"])
    store = FeatureStore(repo_path=str(Path(section["repo"])))
    store.serve(
        host=section["host"],
        port=int(section["port"]),
        type_="http",
        no_access_log=False,
        workers=1,
        worker_connections=1000,
        max_requests=1000,
        max_requests_jitter=50,
        metrics=False,
        keep_alive_timeout=30,
        tls_key_path="",
        tls_cert_path="",
        registry_ttl_sec=60,
    )


def main(job_path: str) -> None:
    import os

    document = json.loads(Path(job_path).read_text())
    for job in document.get("jobs", [document]):
        env = {k: str(v) for k, v in (job.get("env") or {}).items()}
        before = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            run_job(job)
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if document.get("done"):
        Path(document["done"]).write_text("done\n")
    if document.get("serve"):
        serve(document["serve"])


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
