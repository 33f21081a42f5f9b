"""Run throughput and peak memory of the engines: the embedded one (DuckDB) and Spark.

For each size (1M and 10M generated rows by default) and engine, one run of one feature view
that writes offline (Parquet, the manifest layout) and online (the embedded SQLite store) in the
same run, as ``featurestore run`` does. Each run is its own process, so that peak memory is that
run's: the process tree's resident memory (the Python driver, Spark's JVM and its Python
workers) is sampled every 0.1 s and its largest sum printed, next to rows per second.

    .venv/bin/python bench/etl.py [--rows 1000000,10000000] [--engines local,spark] [--entities 100000]

The workload: ``events`` with an int64 ``customer_id`` (``--entities`` of them), a UTC event
time (unique per row, spread over 30 days) and 8 float64 values; the view ``bench_events`` keeps
every row with two computed columns (10 features), so the offline store gets every row and the
online store the newest row of each entity; it declares 11 expectations, so each run also pays
the quality gate and the run's statistics, printed apart as a share of the run. ``--online sqlite,redis`` runs each
size once per online store (Redis at ``--redis-url``, keys under a prefix of the run's own,
removed after it); ``--floor`` then publishes the same rows by bench/etl_floor.py's floor (the
least code that leaves the same files and online values), checks that they are the same and
prints our run's time over the floor's. Spark runs ``local[*]`` with
``--spark-driver-memory`` (4g by default: 10M rows do not fit Spark's default 1g comfortably).
Rows per second count the run (compute, offline, online, publish), not the Spark session's start,
printed apart. On a 2-core machine, run nothing beside it.

After the full run, the window of the last ``--rerun-days`` days is re-run three times (what a
daily job or a correction does): the median time of that windowed re-run and of its online step
(deriving the window's entities from offline) are printed. The same script runs against older
checkouts (``PYTHONPATH=<checkout>``), so the cost of deriving online can be compared with the
"newer wins" write it replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Run as a script, this file's folder comes first on sys.path, and this file (etl.py) would
# hide the project's ``etl`` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

VIEW = "bench_events"
VALUES = 8
FEATURES_PY = f'''
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, InRange, Int64, NotNull, UniqueKeys

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
events = FileSource(name="events", path="events.parquet", timestamp_field="ts")
bench_events = FeatureView(
    name="{VIEW}",
    entities=(customer,),
    source=events,
    timestamp_field="ts",
    ttl=timedelta(days=90),
    transformation="""
        SELECT customer_id, ts, {", ".join(f"v{i}" for i in range(VALUES))},
               v0 + v1 AS v_sum, greatest(v2, v3) AS v_max
        FROM events
    """,
    features=tuple(Feature(f"v{{i}}", Float64) for i in range({VALUES})) + (Feature("v_sum", Float64), Feature("v_max", Float64)),
    # The quality gate's cost is part of every run: one expectation per feature, and unique keys.
    expectations=tuple(NotNull(f"v{{i}}") for i in range({VALUES}))
    + (InRange("v_sum", min=-1000.0, max=1000.0), InRange("v_max", min=-500.0, max=500.0), UniqueKeys()),
)
'''


def generate(path: Path, rows: int, entities: int, seed: int = 0) -> None:
    """``rows`` events, written in row groups of 1M so that 10M rows need little memory."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    step_us = int(timedelta(days=30).total_seconds() * 1_000_000 // rows)
    schema = pa.schema(
        [("customer_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))]
        + [(f"v{i}", pa.float64()) for i in range(VALUES)]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - lo)
            ts = int(start.timestamp() * 1_000_000) + (np.arange(lo, lo + n, dtype=np.int64) * step_us)
            columns = [pa.array(rng.integers(0, entities, n)), pa.array(ts, pa.timestamp("us", tz="UTC"))]
            columns += [pa.array(rng.normal(100, 30, n).round(2)) for _ in range(VALUES)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _tree_rss(root: int) -> dict[int, tuple[str, int]]:
    """Resident memory of ``root`` and each of its descendants (pid → command name, bytes), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, tuple[str, int]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                resident = int(f.read().split()[1]) * page
        except OSError:
            continue
        name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
        ppid = int(rest.split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = (name, resident)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in rss:
            out[pid] = rss[pid]
        todo.extend(children.get(pid, []))
    return out


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, from /proc."""
    return sum(resident for _, resident in _tree_rss(root).values())


class PeakMemory:
    """Samples the process tree's resident memory in a thread; ``peak`` is the largest sum seen,
    ``peak_self`` this process's largest and ``peak_jvm`` that of its Java children (Spark's
    driver JVM, started by pyspark as a child of the Python driver)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.peak = self.peak_self = self.peak_jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def _take(self) -> None:
        tree = _tree_rss(os.getpid())
        self.peak = max(self.peak, sum(resident for _, resident in tree.values()))
        self.peak_self = max(self.peak_self, tree.get(os.getpid(), ("", 0))[1])
        self.peak_jvm = max(self.peak_jvm, sum(resident for name, resident in tree.values() if name == "java"))

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._take()
        self._stop.set()
        self._thread.join()


def child(
    engine_name: str,
    data: Path,
    driver_memory: str,
    rerun_days: int,
    online: str = "sqlite",
    floor: bool = False,
    spark_master: str = "local[*]",
) -> dict[str, Any]:
    """One run in a fresh project beside ``data``; returns its figures. ``online``: ``sqlite`` or
    a Redis URL. ``floor``: then bench/etl_floor.py publishes the same rows, timed and compared.
    ``spark_master``: ``local[*]`` or a standalone cluster's ``spark://host:port`` (the driver is
    this process and its JVM; executors run under the cluster's worker)."""
    from etl.local import LocalEngine
    from featurestore.project_files import load_definitions
    from featurestore.store import FeatureStore
    from featurestore.validation import validate_project

    with tempfile.TemporaryDirectory(prefix=f"bench-etl-{engine_name}-") as tmp:
        root = Path(tmp)
        (root / "events.parquet").symlink_to(data)
        (root / "features.py").write_text(FEATURES_PY)
        online_yaml = "{type: sqlite, path: online.db}" if online == "sqlite" else f"{{type: redis, url: '{online}'}}"
        # The project names the Redis keys' prefix: one of its own, removed at the end.
        (root / "featurestore.yaml").write_text(
            f"project: bench_etl_{os.getpid()}\ndefinitions: [features.py]\nregistry: sqlite:///registry.db\n"
            f"offline_store: {{type: parquet, path: offline}}\nonline_store: {online_yaml}\n"
        )
        floor_figures: dict[str, Any] = {}
        with PeakMemory() as memory, FeatureStore(root) as store:
            objects = load_definitions(store.config)
            store.apply(objects)
            views = {v.name: v for v in validate_project(objects).feature_views}
            session_s = 0.0
            engine: Any
            if engine_name == "spark":
                from etl.spark import SparkEngine
                from featurestore.config import SparkEngineConfig

                conf: dict[str, str | int | float | bool] = {"spark.ui.enabled": "false"}
                conf["spark.driver.memory"] = driver_memory
                engine = SparkEngine(store, config=SparkEngineConfig(master=spark_master, conf=conf))
                t0 = time.perf_counter()
                engine.spark.range(1).count()
                session_s = time.perf_counter() - t0
            else:
                engine = LocalEngine(store)
            t0, c0 = time.perf_counter(), time.process_time()
            result = engine.run(VIEW, definitions=views, progress=False)
            run_s, run_cpu_s = time.perf_counter() - t0, time.process_time() - c0
            reruns: list[tuple[float, float]] = []
            end = datetime(2024, 1, 31, tzinfo=UTC)
            for _ in range(3 if rerun_days else 0):
                t0 = time.perf_counter()
                again = engine.run(
                    VIEW, start=end - timedelta(days=rerun_days), end=end, definitions=views, progress=False
                )
                reruns.append((time.perf_counter() - t0, again.timings.get("online_write_s", 0.0)))
            peak, peak_self, peak_jvm = memory.peak, memory.peak_self, memory.peak_jvm
            if floor:
                sys.path.append(str(Path(__file__).resolve().parent))  # after the project's ``etl``, imported by now
                from etl_floor import compare, floor_run, floor_view

                view = views[VIEW]
                c0 = time.process_time()
                timings = floor_run(floor_view(view), view.source.name, data, root / "floor", store.online_store)
                floor_cpu_s = time.process_time() - c0
                problems = compare(view, store.offline_store.files(view), root / "floor", store.online_store)
                floor_figures = {"floor_s": round(timings["total_s"], 2), "floor_timings": timings}
                # CPU time of the process (every thread): steadier than wall time when other work
                # shares the machine; the ratio of the two says how much of it is ours.
                floor_figures["floor_cpu_s"] = round(floor_cpu_s, 2)
                floor_figures["same_output"] = not problems
                floor_figures["differences"] = problems
            if online != "sqlite":
                redis_store: Any = store.online_store
                client = redis_store._client  # the bench's own keys, by their prefix
                for key in client.scan_iter(match=f"{store.project}:*", count=10_000):
                    client.unlink(key)
        rerun_s = statistics.median(r[0] for r in reruns) if reruns else 0.0
        rerun_online_s = statistics.median(r[1] for r in reruns) if reruns else 0.0
        return {
            "engine": engine_name,
            "rows": result.rows_offline,
            "rows_online": result.rows_online,
            "run_s": round(run_s, 2),
            "run_cpu_s": round(run_cpu_s, 2),
            "rows_per_s": round(result.rows_offline / run_s),
            "session_start_s": round(session_s, 2),
            "online": "sqlite" if online == "sqlite" else "redis",
            "peak_rss_mb": round(peak / 2**20),
            "peak_rss_python_mb": round(peak_self / 2**20),
            "peak_rss_jvm_mb": round(peak_jvm / 2**20),
            "timings": {k: round(v, 2) for k, v in result.timings.items()},
            "rerun_s": round(rerun_s, 3),
            "rerun_online_s": round(rerun_online_s, 3),
            **floor_figures,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument("--engines", default="local,spark")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--spark-driver-memory", default="4g")
    parser.add_argument("--spark-master", default="local[*]", help="local[*] or spark://host:port")
    parser.add_argument("--rerun-days", type=int, default=3, help="re-run the last N days' window (0: no re-run)")
    parser.add_argument("--online", default="sqlite", help="comma-separated: sqlite and/or redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:16380/0")
    parser.add_argument("--floor", action="store_true", help="also time bench/etl_floor.py's floor (local engine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        online = "sqlite" if args.online == "sqlite" else args.redis_url
        figures = child(
            args.child, args.data, args.spark_driver_memory, args.rerun_days, online, args.floor, args.spark_master
        )
        print(json.dumps(figures))
        return
    if not args.json:
        print(
            f"{'engine':6} {'store':6} {'rows':>11} {'online':>8} {'run s':>8} {'rows/s':>10} {'peak RSS':>10} {'session s':>9}"
            f"  {'floor s (ratio)':>16}  {'quality: validate + statistics (share of the run)'}  {'re-run of the last days: run / online (median)'}"
        )
    with tempfile.TemporaryDirectory(prefix="bench-etl-data-") as tmp:
        for rows in (int(r) for r in args.rows.split(",")):
            data = Path(tmp) / f"events-{rows}.parquet"
            generate(data, rows, args.entities)
            for engine, online in ((e, o) for e in args.engines.split(",") for o in args.online.split(",")):
                cmd = [sys.executable, __file__, "--child", engine, "--data", str(data), "--online", online]
                cmd += ["--spark-driver-memory", args.spark_driver_memory, "--rerun-days", str(args.rerun_days)]
                cmd += ["--spark-master", args.spark_master]
                cmd += ["--redis-url", args.redis_url] + (["--floor"] if args.floor and engine == "local" else [])
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(f"{engine:6} {rows:>11,} {online} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                    if args.json:
                        print(
                            json.dumps({"engine": engine, "online": online, "rows": rows, "error": proc.stderr[-500:]})
                        )
                    continue
                figures = json.loads(proc.stdout.strip().splitlines()[-1])
                if args.json:
                    print(json.dumps(figures))
                    continue
                timings = figures["timings"]
                quality_s = timings.get("validate_s", 0.0) + timings.get("statistics_s", 0.0)
                print(
                    f"{engine:6} {figures['online']:6} {figures['rows']:>11,} {figures['rows_online']:>8,} {figures['run_s']:>8.1f} "
                    f"{figures['rows_per_s']:>10,} {figures['peak_rss_mb']:>7,} MB {figures['session_start_s']:>9.1f}"
                    f"  {floor_cell(figures):>16}  {timings.get('validate_s', 0.0):.2f} s + {timings.get('statistics_s', 0.0):.2f} s"
                    f" ({quality_s / figures['run_s']:.0%})"
                    f"  {figures['rerun_s']:.2f} s / {figures['rerun_online_s']:.2f} s"
                )
            data.unlink()


def floor_cell(figures: dict[str, Any]) -> str:
    if "floor_s" not in figures:
        return "-"
    same = "" if figures["same_output"] else " DIFFERS"
    cpu = figures["run_cpu_s"] / figures["floor_cpu_s"] if figures.get("floor_cpu_s") else 0.0
    return f"{figures['floor_s']:.1f} ({figures['run_s'] / figures['floor_s']:.2f}x, CPU {cpu:.2f}x){same}"


if __name__ == "__main__":
    main()
