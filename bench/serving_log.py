"""The served-vector log's cost: 100-entity online lookups with the log off and at 100 %.

Two ``FeatureStore`` objects on the same registry and online store (Redis by default), one with
``serving_log`` off, one logging every lookup (``sample_rate: 1``, its writer thread writing
Parquet in this process as a server's would). Rounds alternate: ``--calls`` timed lookups with
the log off, then as many with it on; after each logged phase the log is flushed, untimed, so
that no backlog of the writer falls into the next phase off. The writer's work during a logged
phase (converting each lookup, writing a file every ``flush_rows`` rows) is in that phase's
times, as it would be in a server's. p50 and p99 are per phase; medians over the rounds are
quoted, and the target: p99 with the log at 100 % at most 1.10x p99 with it off.

Each round also prints how many lookups of each phase took over 2 ms (a 100-entity lookup takes
~0.5 ms), the load average, and at the end the garbage collector's full passes during the timed
lookups, p50/p99 over all rounds' lookups together, the CPU time of the log's writer thread per
logged lookup (during the timed lookups, and in the untimed flush after each phase), and the
medians of the rounds in which no lookup of either phase took over 2 ms. Why p99 moves from run
to run: on our shared 2-core machines (load 2-6) another process holds a core for milliseconds
at a time, and 0-13 % of the lookups of a phase, log on or off alike, take 2-5 ms; p99 (the 10th
slowest of 1,000) lands in that tail or not by the luck of the round, so the ratio of two p99s
swings (0.35-3.2 per round, 0.92-1.43 as medians of 7 rounds, 2026-11-29). The full collector ran
in no timed phase. In the rounds the machine left alone the log's own cost shows: the writer
thread shares the interpreter lock with the lookups, which here follow each other without a
pause. With the writer converting each lookup as it comes (orjson lines, woken per lookup), p50
and p99 both grew ~2x in such rounds (0.31 -> 0.61 ms, 0.57 -> 1.45 ms); its thread uses
~195-235 us of CPU per logged lookup during the timed lookups (load 1-2, 2026-11-29). Tried and
reverted the same day (2e44d06, e5b3a53; reverted by a1cfb4c): keeping the
responses and converting them a chunk of ~20 lookups at a time with one pa.array per column,
taken every 10 ms, cut that to ~145-183 us and the p50 ratio to 1.08-1.24, but lookups over
2 ms in the logged phases went from 2-28 to 61-114 per run and the p99 ratio from 1.29-1.36 to
3.1-3.7 (runs alternated), and each run had a full garbage collection (80-230 ms) in a logged
phase: the responses kept alive until their chunk is converted are promoted to the old
generation. Dropping only the statuses' and versions' filler lists from the orjson lines (made
at the flush instead) saved no measurable CPU (182-206 us).

    .venv/bin/python bench/serving_log.py [--store redis|sqlite] [--rounds 7] [--calls 1000] [--json]

Redis: REDIS_URL (default redis://127.0.0.1:6379/0; start one with
``REDIS_PORT=N bash infra/redis/start.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

# The workload of bench/online_lookup.py (this file's folder is first on sys.path when run as a script).
from online_lookup import ENTITIES, FEATURES, workload

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64
from featurestore.config import ProjectConfig, ServingLogConfig
from featurestore.definitions import Project
from featurestore.online.redis import RedisOnlineConfig, RedisOnlineStore
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.registry import Registry
from featurestore.store import FeatureStore

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
BOUND = 1.10
SLOW_MS = 2.0
"""Lookups slower than this are counted per phase: a 100-entity lookup takes ~0.5 ms here, so
these are the ones another process or thread held up (what moves p99)."""

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
VIEW = FeatureView(
    name="bench_features",
    entities=(customer,),
    source=FileSource(name="bench_source", path="bench.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=365),
    features=tuple(Feature(f, Float64) for f in FEATURES),
)
SERVICE = FeatureService(name="bench_service", features=(VIEW,))


class Collections:
    """The garbage collector's full (generation 2) passes in this process: how many, how long."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, event: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if event == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._started


COLLECTIONS = Collections()
GC_PASSES: dict[str, list[float]] = {"off": [0, 0.0], "on": [0, 0.0]}
"""Per phase: full collections and their seconds, over all rounds."""


def phase(store: FeatureStore, keys: list[list[int]], name: str) -> np.ndarray:
    """The time (ms) of one lookup per key list."""
    samples = []
    clock = time.perf_counter
    count, seconds = COLLECTIONS.count, COLLECTIONS.seconds
    for k in keys:
        t0 = clock()
        store.get_online_features("bench_service", {"customer_id": k}, consumer="bench")
        samples.append(clock() - t0)
    GC_PASSES[name][0] += COLLECTIONS.count - count
    GC_PASSES[name][1] += COLLECTIONS.seconds - seconds
    return np.array(samples) * 1000


def writer_clock(store: FeatureStore) -> int:
    """The CPU clock of the log's writer thread (started by the warm-up)."""
    assert store.serving_log is not None and store.serving_log._thread is not None
    ident = store.serving_log._thread.ident
    assert ident is not None
    return time.pthread_getcpuclockid(ident)


def percentiles(a: np.ndarray) -> tuple[float, float]:
    """p50 and p99 of ``a``."""
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        online: Any = (
            RedisOnlineStore(RedisOnlineConfig(url=REDIS_URL), project="bench_serving_log")
            if args.store == "redis"
            else SqliteOnlineStore(tmp / "online.db")
        )
        online.prepare([VIEW])
        for batch in workload().to_batches(max_chunksize=10_000):
            online.write(VIEW, pa.Table.from_batches([batch]))
        config = ProjectConfig.from_mapping({"project": "bench"}, root=tmp)
        registry = Registry(config.registry_url)
        registry.apply("bench", Project.collect([customer, VIEW, SERVICE]))
        logged_config = dataclasses.replace(
            config, serving_log=ServingLogConfig(sample_rate=1.0, path=tmp / "served", flush_seconds=5.0)
        )
        off = FeatureStore(config, registry=registry, online_store=online)
        on = FeatureStore(logged_config, registry=registry, online_store=online)
        assert on.serving_log is not None and off.serving_log is None
        rng = random.Random(1)
        keys = [rng.sample(range(1, ENTITIES + 1), 100) for _ in range(args.calls)]
        for store in (off, on):  # warm-up: plans cached, connections open, the writer started
            phase(store, keys[:200], "off" if store is off else "on")
        on.serving_log.flush()
        GC_PASSES.update({"off": [0, 0.0], "on": [0, 0.0]})  # the timed lookups' only
        rounds: list[dict[str, tuple[float, float]]] = []
        samples: dict[str, list[np.ndarray]] = {"off": [], "on": []}
        quiet: list[dict[str, tuple[float, float]]] = []
        writer = writer_clock(on)
        writer_cpu = {"phase": 0.0, "flush": 0.0}
        for i in range(args.rounds):
            off_times = phase(off, keys, "off")
            cpu0 = time.clock_gettime(writer)
            times = {"off": off_times, "on": phase(on, keys, "on")}
            cpu1 = time.clock_gettime(writer)
            on.serving_log.flush()
            writer_cpu["phase"] += cpu1 - cpu0
            writer_cpu["flush"] += time.clock_gettime(writer) - cpu1
            result = {k: percentiles(t) for k, t in times.items()}
            for k, t in times.items():
                samples[k].append(t)
            rounds.append(result)
            slow = {k: int((t > SLOW_MS).sum()) for k, t in times.items()}
            if not any(slow.values()):
                quiet.append(result)
            print(
                f"  round {i + 1}: off p50 {result['off'][0]:.3f} p99 {result['off'][1]:.3f} ms; "
                f"100 % p50 {result['on'][0]:.3f} p99 {result['on'][1]:.3f} ms; "
                f"p99 ratio {result['on'][1] / result['off'][1]:.2f}; over {SLOW_MS:g} ms: "
                f"{slow['off']} off, {slow['on']} on; load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
        pooled = {k: percentiles(np.concatenate(t)) for k, t in samples.items()}
        print(
            "  the garbage collector's full passes during the timed lookups: "
            + "; ".join(f"{k} {int(n)} ({s * 1000:.0f} ms)" for k, (n, s) in GC_PASSES.items()),
            file=sys.stderr,
            flush=True,
        )
        print(
            f"  all rounds' lookups together: off p50 {pooled['off'][0]:.3f} p99 {pooled['off'][1]:.3f} ms; "
            f"100 % p50 {pooled['on'][0]:.3f} p99 {pooled['on'][1]:.3f} ms; "
            f"p99 ratio {pooled['on'][1] / pooled['off'][1]:.2f}",
            file=sys.stderr,
            flush=True,
        )
        logged_calls = args.rounds * args.calls
        per_lookup = {k: v / logged_calls * 1e6 for k, v in writer_cpu.items()}
        print(
            f"  the writer thread's CPU per logged lookup: {per_lookup['phase']:.0f} us during the timed "
            f"lookups, {per_lookup['flush']:.0f} us more in the untimed flush after each phase",
            file=sys.stderr,
            flush=True,
        )
        quiet_medians = {
            k: (statistics.median(r[k][0] for r in quiet), statistics.median(r[k][1] for r in quiet)) if quiet else None
            for k in ("off", "on")
        }
        if quiet:
            print(
                f"  the {len(quiet)} rounds with no lookup over {SLOW_MS:g} ms (medians): "
                f"off p50 {quiet_medians['off'][0]:.3f} p99 {quiet_medians['off'][1]:.3f} ms; "  # type: ignore[index]
                f"100 % p50 {quiet_medians['on'][0]:.3f} p99 {quiet_medians['on'][1]:.3f} ms",  # type: ignore[index]
                file=sys.stderr,
                flush=True,
            )
        stats = on.serving_log.stats()
        off_p50 = statistics.median(r["off"][0] for r in rounds)
        off_p99 = statistics.median(r["off"][1] for r in rounds)
        on_p50 = statistics.median(r["on"][0] for r in rounds)
        on_p99 = statistics.median(r["on"][1] for r in rounds)
        on.close()
        registry.close()
    return {
        "unit": "ms",
        "store": args.store,
        "rounds": args.rounds,
        "calls": args.calls,
        "off": {"p50": off_p50, "p99": off_p99},
        "on": {"p50": on_p50, "p99": on_p99},
        "p50_ratio": on_p50 / off_p50,
        "p99_ratio": on_p99 / off_p99,
        "pooled": {
            "off": {"p50": pooled["off"][0], "p99": pooled["off"][1]},
            "on": {"p50": pooled["on"][0], "p99": pooled["on"][1]},
        },
        "met": on_p99 / off_p99 <= BOUND,
        "writer_cpu_us_per_lookup": per_lookup,
        "quiet_rounds": len(quiet),
        "quiet": {k: None if v is None else {"p50": v[0], "p99": v[1]} for k, v in quiet_medians.items()},
        "logged": {"queued": stats.queued, "dropped": stats.dropped, "rows": stats.rows_written},
        "files": stats.files_written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1000, help="timed lookups per phase")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the rest goes to stderr)")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):
        r = run(args)
    if args.json:
        print(json.dumps(r))
        return
    print(
        f"100-entity lookups ({args.store}, {args.rounds} rounds of {args.calls} calls each way, medians):\n"
        f"  log off:   p50 {r['off']['p50']:.3f} ms  p99 {r['off']['p99']:.3f} ms\n"
        f"  log 100 %: p50 {r['on']['p50']:.3f} ms  p99 {r['on']['p99']:.3f} ms\n"
        f"  ratio: p50 {r['p50_ratio']:.3f}x, p99 {r['p99_ratio']:.3f}x (target p99 <= {BOUND:.2f}x): "
        f"{'met' if r['met'] else 'NOT met'}; {r['logged']['rows']:,} entity rows logged in {r['files']} files, "
        f"{r['logged']['dropped']} dropped"
    )


if __name__ == "__main__":
    main()
