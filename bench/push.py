"""Push ingestion: rows per second through the SDK and over HTTP, and push → visible online.

For each online store (the embedded SQLite one and Redis) the script builds a project in a
temporary folder with the benchmarks' view (100,000 entities, 10 float64 features, one run of
the local engine publishes them offline and online first, so that pushes land on a realistic
view), then measures:

1. **SDK**: ``etl.push.push(store, view, rows)`` with batches of 1, 100 and 1,000 rows (an Arrow
   table of distinct random entities, event times newer than anything published): rows/s over
   ``--pushes`` pushes of each size, median of ``--reps`` repetitions. Beside it, in the same
   process and interleaved repetition by repetition, the **floor**: the least code that leaves
   the same data behind, one new Parquet file of the batch (what a push file is) and the online
   store's own ``sync`` of the same rows (the encoded value per entity, one SQLite transaction of
   ``INSERT OR REPLACE`` / one Redis ``MSET``) into a copy of the view. Printed: ours/floor (time
   per row) and the median of each step of the push's ``timings``.
2. **HTTP**: the same batches as JSON (``POST /v1/push/{view}``, body ``{"rows": [...]}``, ISO
   times) sent with httpx to the datamart served by uvicorn in a subprocess (one worker, access
   log off, uvloop/httptools when installed, as ``featurestore serve`` picks them).
3. **Push → visible**: ``--events`` single-row pushes over HTTP, each followed by polling
   ``POST /v1/online-features`` until the pushed value is returned; p50/p99 of send → seen, and of
   the push call alone. A push answers only once its entities are derived online, so the first
   lookup already sees the value: this latency is the push's own.

Before each repetition (untimed) the view's push files are folded into its partitions
(``etl.push.compact``), so that every repetition starts from the same files: push files pile up
in the pushed date until the next run or ``featurestore compact`` folds them, and each push reads
that date to derive its entities online (``--no-compact`` measures the pile-up instead).

    REDIS_PORT=16380 infra/redis/start.sh
    .venv/bin/python bench/push.py [--stores sqlite,redis] [--redis-port 16380] [--json]

Redis: ``--redis-port`` (default 16380); when nothing answers there the script starts it with
``infra/redis/start.sh`` and stops it at the end. Its keys (prefix ``bench_push_<pid>``) are
removed at the end. With ``--json`` the tables go to stderr and stdout gets one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Run as a script, this file's folder comes first on sys.path, and bench/etl.py would hide the
# project's ``etl`` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from etl.local import LocalEngine  # noqa: E402
from etl.push import compact, push  # noqa: E402
from featurestore.project_files import load_definitions  # noqa: E402
from featurestore.schema import view_schema  # noqa: E402
from featurestore.store import FeatureStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]
VIEW = "bench_features"
BATCHES = (1, 100, 1000)
FEATURES_PY = f'''
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
{VIEW} = FeatureView(
    name="{VIEW}",
    entities=(customer,),
    source=FileSource(name="bench_source", path="bench.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=365),
    features=tuple(Feature(f"f{{i}}", Float64) for i in range({len(FEATURES)})),
)
'''


def log(text: str = "") -> None:
    print(text, file=sys.stderr if ARGS.json else sys.stdout, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def workload(path: Path) -> None:
    """One row per entity, event times over the 7 days before an hour ago (seed 0)."""
    rng = np.random.default_rng(0)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    offsets = rng.integers(0, 7 * 24 * 3600, ENTITIES) * 1_000_000
    ts = np.int64(end.timestamp() * 1_000_000) - offsets
    cols: dict[str, Any] = {
        "customer_id": pa.array(np.arange(1, ENTITIES + 1)),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
    }
    for f in FEATURES:
        cols[f] = pa.array(rng.normal(size=ENTITIES))
    pq.write_table(pa.table(cols), path)


class Rows:
    """Batches of distinct random entities, each row at a new event time (now, plus a microsecond
    per row so that no two rows share an entity and time)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.next_us = int(datetime.now(UTC).timestamp() * 1_000_000)

    def table(self, n: int, schema: pa.Schema) -> pa.Table:
        ids = self.rng.choice(np.arange(1, ENTITIES + 1), size=n, replace=False)
        ts = np.arange(self.next_us, self.next_us + n, dtype=np.int64)
        self.next_us += n
        cols = [pa.array(ids, pa.int64()), pa.array(ts, pa.timestamp("us", tz="UTC"))]
        cols += [pa.array(self.rng.normal(size=n)) for _ in FEATURES]
        return pa.Table.from_arrays(cols, schema=schema)

    def json(self, n: int, schema: pa.Schema) -> list[dict[str, Any]]:
        table = self.table(n, schema)
        rows: list[dict[str, Any]] = table.to_pylist()
        for row in rows:
            row["ts"] = row["ts"].isoformat()
        return rows


# ---------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_server(port: int) -> Iterator[None]:
    """Redis on ``port``: the one answering there, or one started by infra/redis/start.sh (and
    stopped at the end)."""
    if redis_answers(port):
        yield
        return
    env = {**os.environ, "REDIS_PORT": str(port)}
    started = subprocess.run([str(REPO / "infra/redis/start.sh")], env=env, capture_output=True, text=True)
    if started.returncode != 0 or not redis_answers(port):
        raise SystemExit(
            f"Redis does not answer on 127.0.0.1:{port} and infra/redis/start.sh could not start it:\n"
            f"{started.stdout}{started.stderr}Start it with REDIS_PORT={port} infra/redis/start.sh, "
            "or measure only the embedded store with --stores sqlite"
        )
    log(f"started Redis on 127.0.0.1:{port} (stopped at the end)")
    try:
        yield
    finally:
        subprocess.run([str(REPO / "infra/redis/stop.sh")], env=env, capture_output=True)


@contextmanager
def datamart(root: Path) -> Iterator[str]:
    """The project's datamart under uvicorn in a subprocess, as ``featurestore serve`` runs it
    (its loop and HTTP parser: uvicorn's auto choice), access log off."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "datamart.app:create_app_from_env"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    cmd += ["--no-access-log"]
    errors = root / "uvicorn.log"
    with errors.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env={**os.environ, "FEATURESTORE_PROJECT_DIR": str(root)}, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"the datamart did not start:\n{errors.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------- measuring


def project(tmp: Path, kind: str, port: int) -> Path:
    root = tmp / kind
    root.mkdir()
    workload(root / "bench.parquet")
    (root / "features.py").write_text(FEATURES_PY)
    online = (
        "{type: sqlite, path: online.db}"
        if kind == "sqlite"
        else f"{{type: redis, url: 'redis://127.0.0.1:{port}/0', key_prefix: bench_push_{os.getpid()}}}"
    )
    (root / "featurestore.yaml").write_text(
        "project: bench\ndefinitions: [features.py]\nregistry: sqlite:///registry.db\n"
        f"offline_store: {{type: parquet, path: offline}}\nonline_store: {online}\n"
    )
    return root


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("nan")


def timed(fn: Callable[[Any], Any], batches: list[Any]) -> float:
    """Seconds to call ``fn`` on every batch, one after the other."""
    t0 = time.perf_counter()
    for batch in batches:
        fn(batch)
    return time.perf_counter() - t0


def push_recording(store: FeatureStore, timings: list[dict[str, float]], table: pa.Table) -> None:
    timings.append(push(store, VIEW, table).timings)


def bench_store(kind: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    root = project(tmp, kind, args.redis_port)
    out: dict[str, Any] = {}
    with FeatureStore(root) as store:
        objects = load_definitions(store.config)
        store.apply(objects)
        view = store.get_feature_view(VIEW)
        t0 = time.perf_counter()
        first = LocalEngine(store).run(VIEW, progress=False)
        log(
            f"\n{kind}: first run published {first.rows_offline:,} rows, {first.rows_online:,} entities online "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        schema = view_schema(view)
        floor_view = dataclasses.replace(view, name="bench_push_floor")
        online = store.online_store
        online.prepare([floor_view])
        no_keys = pa.table({"customer_id": pa.array([], pa.int64())})
        floor_dir = root / "floor"
        floor_dir.mkdir()
        files = iter(range(10**9))

        def floor(table: pa.Table) -> None:
            pq.write_table(table, floor_dir / f"push-{next(files)}.parquet")
            online.sync(floor_view, table, no_keys)

        rows = Rows(seed=1)
        sdk: dict[str, Any] = {}
        log(f"  SDK, etl.push.push: median rows/s of {args.reps} repetitions (each: --pushes {args.pushes} pushes)")
        for size in BATCHES:
            ours_s: list[float] = []
            floor_s: list[float] = []
            timings: list[dict[str, float]] = []
            for _ in range(args.reps):
                if not args.no_compact:
                    compact(store, VIEW)
                batches = [rows.table(size, schema) for _ in range(args.pushes)]
                ours_s.append(timed(functools.partial(push_recording, store, timings), batches))
                floor_s.append(timed(floor, [rows.table(size, schema) for _ in range(args.pushes)]))
            ours = statistics.median(rate(size * args.pushes, s) for s in ours_s)
            base = statistics.median(rate(size * args.pushes, s) for s in floor_s)
            steps = {k: statistics.median(t.get(k, 0.0) for t in timings) * 1000 for k in timings[0]}
            sdk[str(size)] = {
                "rows_per_s": round(ours, 1),
                "floor_rows_per_s": round(base, 1),
                "ours_over_floor": round(base / ours, 2),
                "push_ms": round(1000 * size / ours, 2),
                "steps_ms": {k: round(v, 2) for k, v in steps.items()},
            }
            log(
                f"    batch {size:>5,}: {ours:>9,.0f} rows/s ({1000 * size / ours:6.1f} ms a push)   floor "
                f"{base:>10,.0f} rows/s   ours/floor {base / ours:5.1f}x the time"
            )
            log("                 push steps, median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
        out["sdk"] = sdk

        http: dict[str, Any] = {}
        with datamart(root) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:

            def send(body: list[dict[str, Any]]) -> None:
                response = client.post(f"/v1/push/{VIEW}", json={"rows": body})
                if response.status_code != 200:
                    raise SystemExit(f"push over HTTP answered {response.status_code}: {response.text[:2000]}")

            send(rows.json(1, schema))  # warm-up: the server's first push loads what a push imports
            log(f"  HTTP, POST /v1/push/{VIEW}: median rows/s of {args.reps} repetitions")
            for size in BATCHES:
                spent = []
                for _ in range(args.reps):
                    if not args.no_compact:
                        compact(store, VIEW)
                    spent.append(timed(send, [rows.json(size, schema) for _ in range(args.pushes)]))
                ours = statistics.median(rate(size * args.pushes, s) for s in spent)
                sdk_rate = sdk[str(size)]["rows_per_s"]
                floor_rate = sdk[str(size)]["floor_rows_per_s"]
                http[str(size)] = {
                    "rows_per_s": round(ours, 1),
                    "push_ms": round(1000 * size / ours, 2),
                    "over_sdk": round(sdk_rate / ours, 2),
                    "over_floor": round(floor_rate / ours, 2),
                }
                log(
                    f"    batch {size:>5,}: {ours:>9,.0f} rows/s ({1000 * size / ours:6.1f} ms a push)   "
                    f"{sdk_rate / ours:4.2f}x the SDK's time, {floor_rate / ours:5.1f}x the floor's"
                )
            out["http"] = http
            out["visible"] = visibility(client, rows, schema, store, args)
    out["load_average"] = load_average()
    return out


def visibility(
    client: Any, rows: Rows, schema: pa.Schema, store: FeatureStore, args: argparse.Namespace
) -> dict[str, Any]:
    """``--events`` one-row pushes, each polled for by online lookups until its value shows."""
    if not args.no_compact:
        compact(store, VIEW)
    visible, pushed, polls = [], [], []
    lookup = {"features": [f"{VIEW}:f0"]}
    for i in range(args.events):
        row = rows.json(1, schema)
        row[0]["f0"] = value = 1e6 + i  # no feature holds such a value before
        body = {**lookup, "entities": {"customer_id": [row[0]["customer_id"]]}}
        t0 = time.perf_counter()
        response = client.post(f"/v1/push/{VIEW}", json={"rows": row})
        t1 = time.perf_counter()
        if response.status_code != 200:
            raise SystemExit(f"push over HTTP answered {response.status_code}: {response.text[:2000]}")
        n = 0
        while True:
            n += 1
            got = client.post("/v1/online-features", json=body).json()
            if got["features"]["f0"]["values"][0] == value:
                break
            if time.perf_counter() - t0 > 30:
                raise SystemExit(f"event {i}: the pushed value was not visible online after 30 s")
        visible.append(time.perf_counter() - t0)
        pushed.append(t1 - t0)
        polls.append(n)

    def pct(samples: list[float], q: float) -> float:
        return round(float(np.percentile(np.array(samples) * 1000, q)), 2)

    quarter = max(1, args.events // 4)
    figures = {
        "events": args.events,
        "visible_p50_ms": pct(visible, 50),
        "visible_p99_ms": pct(visible, 99),
        "push_p50_ms": pct(pushed, 50),
        "push_p99_ms": pct(pushed, 99),
        "lookups_until_seen_max": max(polls),
        "push_p50_first_quarter_ms": pct(pushed[:quarter], 50),
        "push_p50_last_quarter_ms": pct(pushed[-quarter:], 50),
    }
    log(
        f"  push -> visible online, {args.events} one-row pushes over HTTP: p50 {figures['visible_p50_ms']:.1f} ms, "
        f"p99 {figures['visible_p99_ms']:.1f} ms (the push call alone: p50 {figures['push_p50_ms']:.1f} ms, "
        f"p99 {figures['push_p99_ms']:.1f} ms; lookups until seen: at most {max(polls)})"
    )
    log(
        f"    push p50, first quarter {figures['push_p50_first_quarter_ms']:.1f} ms, last quarter "
        f"{figures['push_p50_last_quarter_ms']:.1f} ms ({args.events} push files pile up in today's date)"
    )
    return figures


def remove_keys(port: int) -> None:
    import redis

    client = redis.Redis(port=port)
    prefix = f"bench_push_{os.getpid()}"
    for pattern in (f"{prefix}:*", f"{prefix}#*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--redis-port", type=int, default=16380)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (the median is quoted)")
    parser.add_argument("--pushes", type=int, default=20, help="pushes per repetition and batch size")
    parser.add_argument("--events", type=int, default=200, help="one-row pushes timed until visible online")
    parser.add_argument("--no-compact", action="store_true", help="let push files pile up between repetitions")
    parser.add_argument("--json", action="store_true", help="tables to stderr, one JSON line to stdout")
    global ARGS
    ARGS = args = parser.parse_args()
    log(
        f"workload: {ENTITIES:,} entities x {len(FEATURES)} float features; batches of {', '.join(map(str, BATCHES))} "
        f"rows; {os.cpu_count()} cores; load average {load_average()}"
    )
    summary: dict[str, Any] = {
        "entities": ENTITIES,
        "features": len(FEATURES),
        "reps": args.reps,
        "pushes": args.pushes,
        "load_average_before": load_average(),
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        for kind in args.stores.split(","):
            if kind == "redis":
                with redis_server(args.redis_port):
                    try:
                        summary["stores"][kind] = bench_store(kind, Path(tmp), args)
                    finally:
                        remove_keys(args.redis_port)
            else:
                summary["stores"][kind] = bench_store(kind, Path(tmp), args)
    summary["load_average_after"] = load_average()
    log(f"\nload average after: {summary['load_average_after']}")
    if args.json:
        print(json.dumps(summary))


ARGS = argparse.Namespace(json=False)

if __name__ == "__main__":
    main()
