"""Online lookup latency: embedded (SQLite), Redis and Cassandra, in process and through the API.

Builds the workload (100,000 entities, 10 numeric features), writes it to each online store
through the same code path as a run, then prints p50/p95/p99 latency of 1-entity and
100-entity lookups, next to the raw client round trip on the same machine (one GET / MGET /
HGETALL for Redis, one CQL select for Cassandra) and the ratio between them.

    .venv/bin/python bench/online_lookup.py [--stores sqlite,redis,cassandra] [--api]

Redis and Cassandra must be running (infra/redis/start.sh, infra/cassandra/start.sh).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.config import ProjectConfig
from featurestore.online.cassandra import CassandraOnlineConfig, CassandraOnlineStore
from featurestore.online.redis import RedisOnlineConfig, RedisOnlineStore
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.registry import Registry
from featurestore.store import FeatureStore

ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
VIEW = FeatureView(
    name="bench_features",
    entities=(customer,),
    source=FileSource(name="bench_source", path="bench.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=365),
    features=tuple(Feature(f, Float64) for f in FEATURES),
)


def percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    a = np.array(samples_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def measure(fn: Callable[[], Any], n: int, warmup: int = 50) -> tuple[float, float, float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return percentiles(out)


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


def row(label: str, p: tuple[float, float, float], raw: tuple[float, float, float] | None = None) -> None:
    ratio = f"  {p[0] / raw[0]:5.2f}x raw p50" if raw else ""
    print(f"  {label:46} p50 {p[0]:7.3f} ms  p95 {p[1]:7.3f} ms  p99 {p[2]:7.3f} ms{ratio}", flush=True)


def make_store(kind: str, tmp: Path) -> Any:
    if kind == "sqlite":
        return SqliteOnlineStore(tmp / "online.db")
    if kind == "redis":
        return RedisOnlineStore(
            RedisOnlineConfig(url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")), project="bench"
        )
    port = int(os.environ.get("CASSANDRA_PORT", "9042"))
    return CassandraOnlineStore(CassandraOnlineConfig(port=port, consistency="ONE"), project="bench")


def raw_round_trips(kind: str, keys1: list[int], keys100: list[int]) -> dict[str, tuple[float, float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    if kind == "redis":
        import redis

        r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        r.hset("bench:hash:1", mapping={f: 1.0 for f in FEATURES})
        names1 = [f"bench:bench_features:{k}" for k in keys1]
        names100 = [f"bench:bench_features:{k}" for k in keys100]
        out["raw GET (1 key)"] = measure(lambda: r.get(names1[0]), 2000)
        out["raw HGETALL (10 fields)"] = measure(lambda: r.hgetall("bench:hash:1"), 2000)
        out["raw MGET (100 keys)"] = measure(lambda: r.mget(names100), 1000)
        r.close()
    elif kind == "cassandra":
        from cassandra.cluster import Cluster

        cluster = Cluster(["127.0.0.1"], port=int(os.environ.get("CASSANDRA_PORT", "9042")), protocol_version=5)
        session = cluster.connect()
        stmt = session.prepare(
            'SELECT entity_key, event_us, value FROM "bench"."fv_bench_features" WHERE entity_key = ?'
        )
        out["raw CQL select (1 key)"] = measure(lambda: session.execute(stmt, (str(keys1[0]),)).one(), 1000)
        cluster.shutdown()
    elif kind == "sqlite":
        import sqlite3

        con = sqlite3.connect(os.environ["BENCH_SQLITE"])
        q = 'SELECT entity_key, event_us, value FROM "fv_bench_features" WHERE entity_key = ?'
        out["raw SQLite select (1 key)"] = measure(lambda: con.execute(q, (str(keys1[0]),)).fetchone(), 2000)
        con.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_store(kind: str, table: pa.Table, tmp: Path, api: bool) -> None:
    print(f"\n{kind}", flush=True)
    store = make_store(kind, tmp)
    store.prepare([VIEW])
    t0 = time.perf_counter()
    for batch in table.to_batches(max_chunksize=10_000):
        store.write(VIEW, pa.Table.from_batches([batch]))
    print(f"  wrote {table.num_rows:,} entities in {time.perf_counter() - t0:.1f}s")
    os.environ["BENCH_SQLITE"] = str(tmp / "online.db")
    rng = random.Random(1)
    keys1 = [rng.randint(1, ENTITIES)]
    keys100 = rng.sample(range(1, ENTITIES + 1), 100)
    raw = raw_round_trips(kind, keys1, keys100)
    for label, p in raw.items():
        row(label, p)
    raw1 = next(iter(raw.values()))

    project = tmp / kind
    project.mkdir(exist_ok=True)
    config = ProjectConfig.from_mapping({"project": "bench"}, root=project)
    registry = Registry(config.registry_url)
    fs = FeatureStore(config, registry=registry, online_store=store)
    from featurestore.definitions import Project

    registry.apply("bench", Project.collect([VIEW]))
    refs = [f"bench_features:{f}" for f in FEATURES]
    one = pa.table({"customer_id": keys1})

    row("store.read, 1 entity", measure(lambda: store.read(VIEW, one, FEATURES), 2000), raw1)
    row(
        "FeatureStore.get_online_features, 1 entity",
        measure(lambda: fs.get_online_features(refs, {"customer_id": keys1}), 2000),
        raw1,
    )
    p100 = measure(lambda: fs.get_online_features(refs, {"customer_id": keys100}), 500)
    row("FeatureStore.get_online_features, 100 entities", p100)
    if api:
        bench_api(kind, tmp, refs, keys1, keys100)
    fs.close()


def bench_api(kind: str, tmp: Path, refs: list[str], keys1: list[int], keys100: list[int]) -> None:
    import httpx

    project = tmp / kind
    online = {
        "sqlite": {"type": "sqlite", "path": str(tmp / "online.db")},
        "redis": {"type": "redis", "url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")},
        "cassandra": {"type": "cassandra", "port": int(os.environ.get("CASSANDRA_PORT", "9042")), "consistency": "ONE"},
    }[kind]
    import yaml

    (project / "featurestore.yaml").write_text(yaml.safe_dump({"project": "bench", "online_store": online}))
    port = free_port()
    exe = Path(sys.executable).with_name("featurestore")
    proc = subprocess.Popen(
        [str(exe), "-C", str(project), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=base) as client:
            body1 = {"features": refs, "entities": {"customer_id": keys1}}
            body100 = {"features": refs, "entities": {"customer_id": keys100}}
            row(
                "HTTP POST /v1/online-features, 1 entity",
                measure(lambda: client.post("/v1/online-features", json=body1), 1000),
            )
            row(
                "HTTP POST /v1/online-features, 100 entities",
                measure(lambda: client.post("/v1/online-features", json=body100), 300),
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,redis,cassandra")
    parser.add_argument("--api", action="store_true", help="also measure through the datamart API")
    args = parser.parse_args()
    table = workload()
    print(f"workload: {ENTITIES:,} entities x {len(FEATURES)} float features; medians of repeated calls, one process")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            try:
                bench_store(kind, table, Path(tmp), args.api)
            except Exception as err:  # report and go on with the other stores
                print(f"  {kind}: skipped: {type(err).__name__}: {err}")


if __name__ == "__main__":
    main()
