"""Feast reference: the same online lookups as bench/online_lookup.py, served by Feast on Redis.

The issue's target is "100-entity lookups at least 10x faster than Feast 0.67 on the same data".
This script measures that reference here: it builds the same workload (100,000 entities
``customer_id`` int64, 10 float64 features, seed 0) into a Feast repository in a temporary
folder (Parquet file source offline, Redis online), applies it, materializes it into Redis,
then times ``FeatureStore.get_online_features`` for 1 and for 100 entities, alone and with
``.to_dict()`` (the caller's values in hand). It removes its Redis keys when done.

Feast pins its own dependencies, so it lives in its own venv, never the project's:

    python3 -m venv .venv-feast
    .venv-feast/bin/pip install -r bench/requirements-feast.txt
    REDIS_PORT=16380 infra/redis/start.sh
    .venv-feast/bin/python bench/feast_reference.py --redis-port 16380 [--json]

With ``--json`` the figures are also printed as one JSON line on stdout (the table then
goes to stderr), for bench/online_lookup.py to read.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The workload of bench/online_lookup.py, repeated here because that file imports the project,
# which is not installed in Feast's venv. Keep the two in step.
ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]
VIEW = "bench_features"
PROJECT = "feast_bench"


def workload(now: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {
        "customer_id": np.arange(1, ENTITIES + 1, dtype=np.int64),
        "ts": pd.to_datetime([now - timedelta(minutes=int(m)) for m in rng.integers(0, 10_000, ENTITIES)], utc=True),
    }
    for f in FEATURES:
        cols[f] = rng.normal(size=ENTITIES)
    return pd.DataFrame(cols)


def lookup_keys() -> tuple[list[int], list[int]]:
    """The same keys as bench/online_lookup.py: one entity, and 100 distinct ones."""
    rng = random.Random(1)
    keys1 = [rng.randint(1, ENTITIES)]
    keys100 = rng.sample(range(1, ENTITIES + 1), 100)
    return keys1, keys100


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.array(samples_ms)
    return {f"p{q}": round(float(np.percentile(a, q)), 3) for q in (50, 95, 99)}


def measure(fn: Callable[[], Any], n: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return {**percentiles(out), "n": n}


def build_store(repo: Path, host: str, port: int, data: pd.DataFrame) -> Any:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
    from feast.types import Float64

    parquet = repo / "bench.parquet"
    data.to_parquet(parquet, index=False)
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry={"registry_type": "file", "path": str(repo / "registry.db"), "cache_ttl_seconds": 600},
        online_store={"type": "redis", "connection_string": f"{host}:{port},db=0"},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=repo,
    )
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(name="bench_source", path=str(parquet), timestamp_field="ts")
    view = FeatureView(
        name=VIEW,
        entities=[customer],
        ttl=timedelta(days=365),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=source,
        online=True,
    )
    store = FeatureStore(config=config)
    store.apply([customer, source, view])
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=16380)
    parser.add_argument("--n1", type=int, default=1000, help="timed 1-entity lookups")
    parser.add_argument("--n100", type=int, default=300, help="timed 100-entity lookups")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line on stdout")
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    try:
        import feast
    except ImportError:
        sys.exit(
            "feast is not installed in this interpreter: run this script with .venv-feast/bin/python "
            "(python3 -m venv .venv-feast && .venv-feast/bin/pip install -r bench/requirements-feast.txt)"
        )

    now = datetime.now(UTC).replace(microsecond=0)
    data = workload(now)
    keys1, keys100 = lookup_keys()
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    say(
        f"Feast {feast.__version__}: {ENTITIES:,} entities x {len(FEATURES)} float64 features, Redis {args.redis_host}:{args.redis_port}"
    )

    with tempfile.TemporaryDirectory(prefix="feast-bench-") as tmp:
        t0 = time.perf_counter()
        store = build_store(Path(tmp), args.redis_host, args.redis_port, data)
        say(f"  apply {time.perf_counter() - t0:.1f}s")
        try:
            t0 = time.perf_counter()
            store.materialize(start_date=now - timedelta(days=30), end_date=now + timedelta(minutes=1))
            materialize_s = time.perf_counter() - t0
            say(f"  materialize {ENTITIES:,} entities {materialize_s:.1f}s")

            got = store.get_online_features(features=refs, entity_rows={"customer_id": keys100}).to_dict()
            expected = data.set_index("customer_id").loc[keys100, "f0"].tolist()
            if got["f0"] != expected:
                sys.exit("Feast returned other values than were materialized: the reference would be meaningless")

            cases: dict[str, tuple[Callable[[], Any], int]] = {
                "get_online_features_1": (
                    lambda: store.get_online_features(features=refs, entity_rows={"customer_id": keys1}),
                    args.n1,
                ),
                "get_online_features_1_to_dict": (
                    lambda: store.get_online_features(features=refs, entity_rows={"customer_id": keys1}).to_dict(),
                    args.n1,
                ),
                "get_online_features_100": (
                    lambda: store.get_online_features(features=refs, entity_rows={"customer_id": keys100}),
                    args.n100,
                ),
                "get_online_features_100_to_dict": (
                    lambda: store.get_online_features(features=refs, entity_rows={"customer_id": keys100}).to_dict(),
                    args.n100,
                ),
            }
            results: dict[str, dict[str, float]] = {}
            for name, (fn, n) in cases.items():
                results[name] = p = measure(fn, n, args.warmup)
                say(f"  {name:34} p50 {p['p50']:7.3f} ms  p95 {p['p95']:7.3f} ms  p99 {p['p99']:7.3f} ms  (n={n})")
        finally:
            store.teardown()  # deletes this project's keys from Redis

    if args.json:
        print(
            json.dumps(
                {
                    "system": "feast",
                    "version": feast.__version__,
                    "entities": ENTITIES,
                    "features": len(FEATURES),
                    "online_store": f"redis://{args.redis_host}:{args.redis_port}/0",
                    "materialize_s": round(materialize_s, 2),
                    "unit": "ms",
                    "results": results,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
