"""The model server's overhead over a plain online lookup, in process and over HTTP.

The workload of bench/online_lookup.py (100,000 entities, 10 float64 features of
``bench_features``, seed 0) in the embedded online store (SQLite), behind a feature service
``bench_service``. A scikit-learn logistic regression over the 10 features is saved as an MLflow
model in a local folder (``mlflow.sklearn.save_model``; no tracking server: ``mlflow.pyfunc``
loads a folder as it loads a ``models:/`` URI) and recorded in the registry as versions 1 and 2
of ``bench_model``.

Floor: the same feature service's lookup, ``FeatureStore.get_online_features`` in process and
``POST /v1/online-features`` over HTTP. Ours: ``ModelServer.predict`` in process (one version;
then a 50/50 split, two model calls) and ``POST /v1/models/bench_model/versions/1/predict``
over HTTP (``featurestore serve``, as the README starts it). Shown beside them: the model's own
``predict`` on a ready pandas frame, the part no server can avoid. Calls are interleaved call by
call, so that a busy machine slows both alike; medians (p50) and p99 are quoted, with the ratio
and the difference (the overhead) over the floor.

    .venv/bin/python bench/model_server.py [--n1 2000] [--n100 1000] [--no-http] [--json]

With ``--json`` the lines go to stderr and stdout gets one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and bench/etl.py would hide the
# etl package: drop it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64  # noqa: E402
from featurestore.config import ProjectConfig  # noqa: E402
from featurestore.definitions import Project  # noqa: E402
from featurestore.model_serving import ModelServer, set_model_traffic  # noqa: E402
from featurestore.online.sqlite import SqliteOnlineStore  # noqa: E402
from featurestore.registry import ModelVersionRecord, Registry  # noqa: E402
from featurestore.store import FeatureStore  # noqa: E402

ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]
MODEL = "bench_model"
SERVICE = "bench_service"
OUT = sys.stdout

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
VIEW = FeatureView(
    name="bench_features",
    entities=(customer,),
    source=FileSource(name="bench_source", path="bench.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=365),
    features=tuple(Feature(f, Float64) for f in FEATURES),
)
FEATURE_SERVICE = FeatureService(name=SERVICE, features=(VIEW,))

Percentiles = tuple[float, float, float]


def percentiles(samples_s: list[float]) -> Percentiles:
    a = np.array(samples_s) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def measure(fns: dict[str, Callable[[], Any]], n: int, warmup: int = 50) -> dict[str, Percentiles]:
    """Time each function ``n`` times, interleaved call by call (so noise hits all alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    clock = time.perf_counter
    for _ in range(n):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            samples[name].append(clock() - t0)
    return {name: percentiles(s) for name, s in samples.items()}


def line(label: str, p: Percentiles, floor: Percentiles | None = None) -> None:
    extra = ""
    if floor is not None:
        extra = (
            f"  {p[0] / floor[0]:.2f}x floor p50 (+{p[0] - floor[0]:.3f} ms), "
            f"{p[2] / floor[2]:.2f}x p99 (+{p[2] - floor[2]:.3f} ms)"
        )
    print(f"  {label:58} p50 {p[0]:7.3f} ms  p95 {p[1]:7.3f} ms  p99 {p[2]:7.3f} ms{extra}", file=OUT, flush=True)


def workload() -> pa.Table:
    rng = np.random.default_rng(0)
    now = datetime.now(UTC).replace(microsecond=0)
    cols: dict[str, Any] = {
        "customer_id": np.arange(1, ENTITIES + 1),
        "ts": pa.array(
            [now - timedelta(minutes=int(m)) for m in rng.integers(0, 10_000, ENTITIES)], pa.timestamp("us", tz="UTC")
        ),
    }
    for f in FEATURES:
        cols[f] = rng.normal(size=ENTITIES)
    return pa.table(cols)


def save_model(table: pa.Table, folder: Path, seed: int) -> str:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    frame = table.select(FEATURES).slice(0, 5000).to_pandas()
    labels = np.random.default_rng(seed).integers(0, 2, len(frame))
    model = LogisticRegression().fit(frame, labels)
    mlflow.sklearn.save_model(model, str(folder), serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    return str(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n1", type=int, default=2000, help="timed calls of 1 entity, each")
    parser.add_argument("--n100", type=int, default=1000, help="timed calls of 100 entities, each")
    parser.add_argument("--no-http", action="store_true", help="in process only")
    parser.add_argument("--json", action="store_true", help="lines to stderr, one JSON line to stdout")
    args = parser.parse_args()
    if args.json:
        OUT = sys.stderr
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", file=OUT, flush=True)
    summary: dict[str, Any] = {"load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-model-server-") as tmp_name:
        tmp = Path(tmp_name)
        table = workload()
        online = SqliteOnlineStore(tmp / "online.db")
        online.prepare([VIEW])
        for batch in table.to_batches(max_chunksize=10_000):
            online.write(VIEW, pa.Table.from_batches([batch]))
        project = tmp / "project"
        project.mkdir()
        config = ProjectConfig.from_mapping({"project": "bench"}, root=project)
        registry = Registry(config.registry_url)
        registry.apply("bench", Project.collect([VIEW, FEATURE_SERVICE]))
        for version in (1, 2):
            uri = save_model(table, tmp / f"model-{version}", seed=version)
            registry.record_model_version(
                ModelVersionRecord(
                    "bench", MODEL, version, "0" * 32, uri, SERVICE, {VIEW.name: 1}, (), datetime.now(UTC), "bench"
                )
            )
        fs = FeatureStore(config, registry=registry, online_store=online)
        server = ModelServer(fs)
        rng = np.random.default_rng(1)
        keys1 = {"customer_id": [int(rng.integers(1, ENTITIES + 1))]}
        keys100 = {"customer_id": [int(k) for k in rng.choice(np.arange(1, ENTITIES + 1), 100, replace=False)]}
        # Checked before timing: the server predicts what the model predicts on the stored values.
        model = server.model(server.version(MODEL, 1))
        frame100 = fs.get_online_features(SERVICE, keys100).values.select(FEATURES).to_pandas()
        frame1 = frame100.head(1)
        expected = model.predict(frame100).tolist()
        if server.predict(MODEL, keys100, version=1).predictions != expected:
            raise SystemExit("the model server predicted other values than the model: figures would be meaningless")

        print("\nin process (SQLite online store)", file=OUT, flush=True)
        for n, keys, frame, count in ((1, keys1, frame1, args.n1), (100, keys100, frame100, args.n100)):
            floor = f"get_online_features, {n} entit{'y' if n == 1 else 'ies'} (floor)"
            ours = f"ModelServer.predict, {n}, one version"
            alone = f"the model's predict on a ready frame, {n}"
            got = measure(
                {
                    floor: lambda keys=keys: fs.get_online_features(SERVICE, keys),
                    ours: lambda keys=keys: server.predict(MODEL, keys, version=1),
                    alone: lambda frame=frame: model.predict(frame),
                },
                count,
            )
            for name, p in got.items():
                line(name, p, None if name == floor else got[floor])
            summary[f"in_process_{n}"] = {"floor": got[floor], "ours": got[ours], "model_alone": got[alone]}
        set_model_traffic(fs, MODEL, {1: 50, 2: 50}, actor="bench")
        split = ModelServer(fs)
        got = measure(
            {
                "get_online_features, 100 entities (floor)": lambda: fs.get_online_features(SERVICE, keys100),
                "ModelServer.predict, 100, split 50/50": lambda: split.predict(MODEL, keys100),
            },
            args.n100,
        )
        floor_p = got["get_online_features, 100 entities (floor)"]
        line("ModelServer.predict, 100, split 50/50", got["ModelServer.predict, 100, split 50/50"], floor_p)
        summary["in_process_100_split"] = {"floor": floor_p, "ours": got["ModelServer.predict, 100, split 50/50"]}
        fs.close()
        if not args.no_http:
            summary["http"] = bench_http(tmp, project, keys1, keys100, args)
    if args.json:
        print(json.dumps(summary))


def bench_http(
    tmp: Path, project: Path, keys1: dict[str, list[int]], keys100: dict[str, list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    import httpx
    import yaml

    (project / "featurestore.yaml").write_text(
        yaml.safe_dump({"project": "bench", "online_store": {"type": "sqlite", "path": str(tmp / "online.db")}})
    )
    port = free_port()
    exe = Path(sys.executable).with_name("featurestore")
    proc = subprocess.Popen(
        [str(exe), "-C", str(project), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict[str, Any] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        print(f"\nover HTTP (featurestore serve, port {port})", file=OUT, flush=True)
        with httpx.Client(base_url=base) as client:
            path = f"/v1/models/{MODEL}/versions/1/predict"
            for n, keys, count in ((1, keys1, args.n1 // 2), (100, keys100, args.n100)):
                floor = f"POST /v1/online-features, {n} (floor)"
                ours = f"POST {path}, {n}"
                first = client.post(path, json={"entities": keys}, timeout=300)  # the first loads the model
                if first.status_code != 200:
                    raise SystemExit(f"{path}: {first.status_code} {first.text}")
                got = measure(
                    {
                        floor: lambda keys=keys: client.post(
                            "/v1/online-features", json={"features": SERVICE, "entities": keys}
                        ),
                        ours: lambda keys=keys: client.post(path, json={"entities": keys}),
                    },
                    count,
                )
                for name, p in got.items():
                    line(name, p, None if name == floor else got[floor])
                out[str(n)] = {"floor": got[floor], "ours": got[ours]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out


if __name__ == "__main__":
    main()
