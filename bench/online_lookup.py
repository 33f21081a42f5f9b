"""Online lookup latency: embedded (SQLite), Redis and Cassandra, in process and through the API.

Builds the workload (100,000 entities, 10 float features), writes it to each online store
through the same code path as a run, then prints p50/p95/p99 latency of 1-entity and
100-entity lookups next to the raw client round trip on the same machine (Redis: one GET of
the same packed value, one HGETALL of a 10-field hash, one MGET of 100 keys; Cassandra: one
prepared CQL select, one IN query of 100 keys; SQLite: one select) and the ratio between them.
On Redis the 100-entity floor is the raw MGET *and* one orjson parse of the 100 values into
columns: a lookup returns decoded numbers, so the floor decodes the same bytes the cheapest way
(the raw MGET alone is printed beside it).
Our calls and the raw ones are interleaved, call by call, so that a busy machine slows both
alike and the ratio stays meaningful. Medians are quoted.

    .venv/bin/python bench/online_lookup.py [--stores sqlite,redis,cassandra] [--api] [--feast]

Servers: REDIS_URL (default redis://127.0.0.1:6379/0, start with infra/redis/start.sh),
CASSANDRA_PORT (default 9042, start with infra/cassandra/start.sh). ``--feast`` also runs
bench/feast_reference.py in ``.venv-feast`` (see bench/README.md) on the same Redis and prints
the 100-entity ratio against Feast. HTTP throughput against a trivial FastAPI endpoint is
bench/api_throughput.py (it needs wrk).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from urllib.parse import urlparse

import numpy as np
import orjson
import pyarrow as pa

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.config import ProjectConfig
from featurestore.definitions import Project
from featurestore.online.cassandra import CassandraOnlineConfig, CassandraOnlineStore
from featurestore.online.redis import RedisOnlineConfig, RedisOnlineStore
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.registry import Registry
from featurestore.store import FeatureStore

ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]
REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CASSANDRA_PORT = int(os.environ.get("CASSANDRA_PORT", "9042"))

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
VIEW = FeatureView(
    name="bench_features",
    entities=(customer,),
    source=FileSource(name="bench_source", path="bench.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=365),
    features=tuple(Feature(f, Float64) for f in FEATURES),
)

Percentiles = tuple[float, float, float]
FLOOR100 = "raw MGET + decode, 100 keys"
"""Redis's floor for 100 entities: the raw MGET and one orjson parse of the values into columns."""


def percentiles(samples_s: list[float]) -> Percentiles:
    a = np.array(samples_s) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def measure(fns: dict[str, Callable[[], Any]], n: int, warmup: int = 100) -> dict[str, Percentiles]:
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


def lookup_keys() -> tuple[list[int], list[int]]:
    """One entity and 100 distinct ones (bench/feast_reference.py draws the same)."""
    rng = random.Random(1)
    return [rng.randint(1, ENTITIES)], rng.sample(range(1, ENTITIES + 1), 100)


def line(label: str, p: Percentiles, ratio: str = "") -> None:
    print(f"  {label:52} p50 {p[0]:7.3f} ms  p95 {p[1]:7.3f} ms  p99 {p[2]:7.3f} ms  {ratio}", flush=True)


def make_store(kind: str, tmp: Path) -> Any:
    if kind == "sqlite":
        return SqliteOnlineStore(tmp / "online.db")
    if kind == "redis":
        return RedisOnlineStore(RedisOnlineConfig(url=REDIS_URL), project="bench")
    return CassandraOnlineStore(CassandraOnlineConfig(port=CASSANDRA_PORT, consistency="ONE"), project="bench")


def raw_calls(kind: str, store: Any, tmp: Path, keys1: list[int], keys100: list[int]) -> dict[str, Callable[[], Any]]:
    """The server's own client doing the least a lookup must do: one round trip."""
    if kind == "redis":
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        r.hset("bench:hash:1", mapping={f: 1.0 for f in FEATURES})
        one = f"bench:bench_features:{keys1[0]}"
        many = [f"bench:bench_features:{k}" for k in keys100]

        def mget_decoded() -> list[tuple[Any, ...]]:
            # The least code that gives what a lookup gives: the stored values of the 100 keys,
            # decoded into Python numbers, a column per position (event µs, layout, features),
            # by the cheapest decode of the stored format: one orjson parse of them all.
            rows = orjson.loads(b"[%b]" % b",".join(r.mget(many)))  # type: ignore[arg-type]
            return list(zip(*rows, strict=True))

        return {
            "raw GET, 1 key": lambda: r.get(one),
            "raw HGETALL, 10 fields": lambda: r.hgetall("bench:hash:1"),
            "raw MGET, 100 keys": lambda: r.mget(many),
            FLOOR100: mget_decoded,
        }
    if kind == "cassandra":
        session = store._session
        table = store._table(VIEW)
        one_stmt = session.prepare(f"SELECT entity_key, value FROM {table} WHERE entity_key = ? LIMIT 1")
        many_stmt = session.prepare(
            f"SELECT entity_key, value FROM {table} WHERE entity_key IN ? PER PARTITION LIMIT 1"
        )
        return {
            "raw CQL select, 1 key": lambda: session.execute(one_stmt, (str(keys1[0]),)).one(),
            "raw CQL IN select, 100 keys": lambda: list(session.execute(many_stmt, ([str(k) for k in keys100],))),
        }
    import sqlite3

    con = sqlite3.connect(tmp / "online.db")
    q1 = 'SELECT entity_key, value FROM "fv_bench_features" WHERE entity_key = ?'
    q100 = f'SELECT entity_key, value FROM "fv_bench_features" WHERE entity_key IN ({",".join("?" * 100)})'
    return {
        "raw SQLite select, 1 key": lambda: con.execute(q1, (str(keys1[0]),)).fetchone(),
        "raw SQLite IN select, 100 keys": lambda: con.execute(q100, [str(k) for k in keys100]).fetchall(),
    }


def bench_store(kind: str, table: pa.Table, tmp: Path, args: argparse.Namespace, summary: dict[str, Any]) -> None:
    print(f"\n{kind}", flush=True)
    store = make_store(kind, tmp)
    store.prepare([VIEW])
    t0 = time.perf_counter()
    for batch in table.to_batches(max_chunksize=10_000):
        store.write(VIEW, pa.Table.from_batches([batch]))
    print(f"  wrote {table.num_rows:,} entities in {time.perf_counter() - t0:.1f}s")
    keys1, keys100 = lookup_keys()
    raw = raw_calls(kind, store, tmp, keys1, keys100)
    raw1_name = next(iter(raw))
    raw100_name = [k for k in raw if k != FLOOR100][-1]
    floor100_name = FLOOR100 if FLOOR100 in raw else raw100_name

    project = tmp / kind
    project.mkdir(exist_ok=True)
    config = ProjectConfig.from_mapping({"project": "bench"}, root=project)
    registry = Registry(config.registry_url)
    registry.apply("bench", Project.collect([VIEW]))
    fs = FeatureStore(config, registry=registry, online_store=store)
    refs = [f"bench_features:{f}" for f in FEATURES]
    e1, e100 = {"customer_id": keys1}, {"customer_id": keys100}
    got = fs.get_online_features(refs, e100)
    expected = table.take([k - 1 for k in keys100]).column("f0").to_pylist()
    if got.columns["f0"] != expected:
        raise SystemExit(f"{kind}: lookups returned other values than were written; figures would be meaningless")

    ours1 = "FeatureStore.get_online_features, 1 entity"
    ours100 = "FeatureStore.get_online_features, 100 entities"
    small = measure(
        {
            **{k: v for k, v in raw.items() if k not in (raw100_name, floor100_name)},
            ours1: lambda: fs.get_online_features(refs, e1),
        },
        args.n1,
    )
    large = measure(
        {
            raw100_name: raw[raw100_name],
            floor100_name: raw[floor100_name],
            ours100: lambda: fs.get_online_features(refs, e100),
        },
        args.n100,
    )
    for name, p in {**small, **large}.items():
        if name == ours1:
            line(name, p, f"{p[0] / small[raw1_name][0]:.2f}x {raw1_name} p50")
        elif name == ours100:
            line(name, p, f"{p[0] / large[floor100_name][0]:.2f}x {floor100_name} p50")
            if floor100_name != raw100_name:
                print(f"  {'':52} {p[0] / large[raw100_name][0]:.2f}x {raw100_name} p50 (no decode)", flush=True)
        else:
            line(name, p)
    summary[kind] = {
        "ours1": small[ours1],
        "raw1": small[raw1_name],
        "ours100": large[ours100],
        "raw100": large[raw100_name],
        "raw100_name": raw100_name,
        "floor100": large[floor100_name],
        "floor100_name": floor100_name,
    }
    if args.api:
        bench_api(kind, tmp, refs, keys1, keys100, args, summary)
    fs.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_api(
    kind: str,
    tmp: Path,
    refs: list[str],
    keys1: list[int],
    keys100: list[int],
    args: argparse.Namespace,
    summary: dict[str, Any],
) -> None:
    import httpx
    import yaml

    project = tmp / kind
    online = {
        "sqlite": {"type": "sqlite", "path": str(tmp / "online.db")},
        "redis": {"type": "redis", "url": REDIS_URL},
        "cassandra": {"type": "cassandra", "port": CASSANDRA_PORT, "consistency": "ONE"},
    }[kind]
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
        for _ in range(150):
            try:
                httpx.get(f"{base}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=base) as client:
            body1 = {"features": refs, "entities": {"customer_id": keys1}}
            body100 = {"features": refs, "entities": {"customer_id": keys100}}
            health = measure({"HTTP GET /v1/health (the HTTP floor)": lambda: client.get("/v1/health")}, args.n1 // 2)
            one = measure(
                {"HTTP POST /v1/online-features, 1 entity": lambda: client.post("/v1/online-features", json=body1)},
                args.n1 // 2,
            )
            hundred = measure(
                {
                    "HTTP POST /v1/online-features, 100 entities": lambda: client.post(
                        "/v1/online-features", json=body100
                    )
                },
                args.n100,
            )
            for name, p in {**health, **one, **hundred}.items():
                line(name, p)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def feast_reference(args: argparse.Namespace) -> dict[str, Any] | None:
    python = REPO / ".venv-feast" / "bin" / "python"
    if not python.exists():
        print("\nfeast: .venv-feast is missing; see bench/README.md to create it")
        return None
    url = urlparse(REDIS_URL)
    proc = subprocess.run(
        [
            str(python),
            str(REPO / "bench" / "feast_reference.py"),
            "--json",
            "--redis-host",
            url.hostname or "127.0.0.1",
            "--redis-port",
            str(url.port or 6379),
            "--n1",
            str(args.n1 // 2),
            "--n100",
            str(args.n100),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"\nfeast: the reference failed:\n{proc.stderr[-2000:]}")
        return None
    print("\nfeast (reference, its own venv, same Redis)")
    for text in proc.stderr.splitlines()[1:]:
        print(text)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,redis,cassandra")
    parser.add_argument("--api", action="store_true", help="also measure through the datamart API")
    parser.add_argument("--feast", action="store_true", help="also measure Feast on the same Redis (needs .venv-feast)")
    parser.add_argument("--n1", type=int, default=3000, help="timed 1-entity lookups per function")
    parser.add_argument("--n100", type=int, default=500, help="timed 100-entity lookups per function")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the rest goes to stderr)")
    args = parser.parse_args()
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):
            summary = run(args)
        print(json.dumps({"unit": "ms", "n1": args.n1, "n100": args.n100, "stores": summary}))
    else:
        run(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    table = workload()
    print(f"workload: {ENTITIES:,} entities x {len(FEATURES)} float features; our calls interleaved with the raw ones")
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            try:
                bench_store(kind, table, Path(tmp), args, summary)
            except Exception as err:  # report and go on with the other stores
                print(f"  {kind}: not measured: {type(err).__name__}: {err}")
    feast = feast_reference(args) if args.feast else None

    print("\ntargets")
    if "redis" in summary:
        s = summary["redis"]
        ratio = s["ours1"][0] / s["raw1"][0]
        print(
            f"  Redis, 1 entity in process: {ratio:.2f}x the raw GET at p50 (target <= 2x): {'met' if ratio <= 2 else 'NOT met'}"
        )
        ratio = s["ours100"][0] / s["floor100"][0]
        print(
            f"  Redis, 100 entities in process: {ratio:.2f}x {s['floor100_name']} at p50 (target <= 1.2x): "
            f"{'met' if ratio <= 1.2 else 'NOT met'}"
        )
    if feast and "redis" in summary:
        f100 = feast["results"]["get_online_features_100"]["p50"]
        ours = summary["redis"]["ours100"][0]
        print(
            f"  Redis, 100 entities: Feast {feast['version']} p50 {f100:.2f} ms, ours {ours:.2f} ms: "
            f"{f100 / ours:.1f}x faster (target >= 10x): {'met' if f100 / ours >= 10 else 'NOT met'}"
        )
    print("  HTTP throughput against a trivial FastAPI endpoint: bench/api_throughput.py")
    return summary


if __name__ == "__main__":
    main()
