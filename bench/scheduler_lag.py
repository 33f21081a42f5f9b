"""Scheduler lag: how long after a view's due time its data is published, on the real clock.

A project in a temporary folder with ``--views`` feature views (10), each on a source of its own
(a folder of Parquet files, read as one glob) and ``schedule=timedelta(minutes=1)``. A writer
thread lands each source's next minute of events ``--write-ahead`` seconds before every due time
(``--rows-per-minute`` rows, event times over the minute up to that instant), as an upstream job
would. The real :class:`etl.scheduler.Scheduler` (the local engine, ``--workers`` runs at once:
1, as ``featurestore scheduler`` runs) then runs for ``--minutes`` minutes on the real clock.

Per due time ``d`` reached while it ran, and per view, from the registry's run history:

* **lag**: the ``finished_at`` of the successful run whose window ends at ``d`` (the instant its
  data was published offline and online) minus ``d``;
* **start delay**: that run's ``started_at`` minus ``d`` (the tick, and waiting for the runs of
  other views before it);
* **watermark lag**: ``d`` minus the watermark that run published (its newest event time: the
  writer's ``--write-ahead`` by construction, more if a run missed rows).

Printed: p50/p95/max per view and overall. The floor: the same runs without the scheduler,
``--floor-reps`` times (each time ``--rows-per-minute`` new rows landed in every source, then
every view run from its watermark, back to back in the scheduler's order); a view's floor lag is
when its run finished counted from the first run's start (what the lag would be with runs started
at the due time one after the other, as one worker runs them), and its pure run time. Ratio: lag
p50 / floor lag p50, and run time under the scheduler / pure run time.

    .venv/bin/python bench/scheduler_lag.py [--minutes 10] [--views 10] [--json]

The first due time is the first whole minute after the scheduler starts; due times before it are
left out (the views were published up to the minute before by an initial run). Expect
``--minutes`` plus up to a minute to reach the first due time, plus the floor.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
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

# Run as a script, this file's folder comes first on sys.path, and bench/etl.py would hide the
# project's ``etl`` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from etl.local import LocalEngine  # noqa: E402
from etl.scheduler import Scheduler  # noqa: E402
from featurestore.project_files import load_definitions  # noqa: E402
from featurestore.store import FeatureStore  # noqa: E402
from featurestore.validation import validate_project  # noqa: E402

MINUTE = timedelta(minutes=1)
FEATURES = 10


def features_py(views: int) -> str:
    head = """
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
"""
    view = """
lag_view_{i} = FeatureView(
    name="lag_view_{i}",
    entities=(customer,),
    source=FileSource(name="lag_source_{i}", path="sources/{i}/*.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=30),
    schedule=timedelta(minutes=1),
    features=tuple(Feature(f"f{{j}}", Float64) for j in range({features})),
)
"""
    return head + "".join(view.format(i=i, features=FEATURES) for i in range(views))


class Sources:
    """Each source's files: a day of history first, then a file per minute."""

    def __init__(self, root: Path, views: int, entities: int, rows_per_minute: int) -> None:
        self.root, self.views, self.entities, self.rows_per_minute = root, views, entities, rows_per_minute
        self.rng = np.random.default_rng(0)
        self.files = 0
        self.last = datetime.now(UTC)
        """The newest event time landed so far, in every source."""

    def land(self) -> datetime:
        """Each source's events since the previous landing, up to now; returns now."""
        now = datetime.now(UTC)
        for v in range(self.views):
            self.write(v, self.last, now, self.rows_per_minute)
        self.last = now
        return now

    def write(self, view: int, start: datetime, end: datetime, rows: int) -> None:
        lo, hi = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
        ts = np.sort(self.rng.integers(lo, hi, rows))
        cols: dict[str, Any] = {
            "customer_id": pa.array(self.rng.integers(1, self.entities + 1, rows)),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        }
        for j in range(FEATURES):
            cols[f"f{j}"] = pa.array(self.rng.normal(size=rows))
        folder = self.root / "sources" / str(view)
        folder.mkdir(parents=True, exist_ok=True)
        self.files += 1
        tmp = folder / f".part-{self.files}.tmp"
        pq.write_table(pa.table(cols), tmp)
        os.replace(tmp, folder / f"part-{self.files:06d}.parquet")  # a reader never sees half a file


def writer(sources: Sources, ahead: float, stop: threading.Event) -> None:
    """Before each due time, each source's events since the previous file, up to now."""
    while not stop.is_set():
        due = floor_minute(datetime.now(UTC)) + MINUTE
        wake = due - timedelta(seconds=ahead)
        if stop.wait(max(0.0, (wake - datetime.now(UTC)).total_seconds())):
            return
        sources.land()
        stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary_line(label: str, values: list[float]) -> str:
    return f"  {label:14} p50 {pct(values, 50):7.2f} s  p95 {pct(values, 95):7.2f} s  max {max(values):7.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10, help="how long the scheduler runs")
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--entities", type=int, default=10_000, help="entities per source")
    parser.add_argument("--history-rows", type=int, default=100_000, help="rows per source before the start (a day)")
    parser.add_argument("--rows-per-minute", type=int, default=1_000, help="rows landed per source and minute")
    parser.add_argument("--write-ahead", type=float, default=5.0, help="seconds before each due time data lands")
    parser.add_argument("--workers", type=int, default=1, help="the scheduler's runs at once (the CLI's: 1)")
    parser.add_argument("--floor-reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="tables to stderr, one JSON line to stdout")
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    say(
        f"{args.views} views, schedule every minute, {args.rows_per_minute:,} rows per source and minute "
        f"(landed {args.write_ahead:g} s before each due time), {args.history_rows:,} rows of history per source, "
        f"{args.entities:,} entities; {args.workers} worker(s); {os.cpu_count()} cores; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        root = Path(tmp)
        (root / "features.py").write_text(features_py(args.views))
        (root / "featurestore.yaml").write_text(
            "project: lag\ndefinitions: [features.py]\nregistry: sqlite:///registry.db\n"
            "offline_store: {type: parquet, path: offline}\nonline_store: {type: sqlite, path: online.db}\n"
        )
        sources = Sources(root, args.views, args.entities, args.rows_per_minute)
        start = datetime.now(UTC)
        for v in range(args.views):
            sources.write(v, start - timedelta(days=1), start, args.history_rows)
        sources.last = start
        with FeatureStore(root) as store:
            objects = load_definitions(store.config)
            store.apply(objects)
            views = {v.name: v for v in validate_project(objects).feature_views}
            names = sorted(views)
            engine = LocalEngine(store)
            # Published up to the last due time: the scheduler's first due time is the next one.
            t0 = time.perf_counter()
            first_end = floor_minute(datetime.now(UTC))
            for name in names:
                engine.run(name, end=first_end, definitions=views, progress=False)
            say(f"initial runs up to {first_end:%H:%M}: {time.perf_counter() - t0:.1f} s for {args.views} views")

            stop = threading.Event()
            landing = threading.Thread(target=writer, args=(sources, args.write_ahead, stop), daemon=True)
            scheduler = Scheduler(store, engine, definitions=lambda: views, workers=args.workers)
            started = datetime.now(UTC)
            landing.start()
            loop = threading.Thread(target=scheduler.run_forever, name="scheduler", daemon=True)
            loop.start()
            stop_at = started + timedelta(minutes=args.minutes)
            say(f"scheduler started at {started:%H:%M:%S}; stopping at {stop_at:%H:%M:%S}")
            while datetime.now(UTC) < stop_at:
                time.sleep(1)
            stopped = datetime.now(UTC)
            scheduler.stop()
            loop.join()  # the runs in progress finish
            stop.set()
            landing.join()

            per_view: dict[str, dict[str, list[float]]] = {}
            missed = 0
            dues = []
            d = floor_minute(started) + MINUTE
            while d <= stopped:
                dues.append(d)
                d += MINUTE
            for name in names:
                runs = [r for r in store.registry.list_runs(store.project, name, limit=1000) if r.status == "succeeded"]
                by_end = {utc(r.window_end): r for r in runs if r.window_end is not None}
                figures: dict[str, list[float]] = {"lag": [], "start_delay": [], "watermark_lag": [], "run": []}
                for due in dues:
                    run = by_end.get(due)
                    if run is None or run.finished_at is None:
                        missed += 1
                        continue
                    figures["lag"].append((utc(run.finished_at) - due).total_seconds())
                    figures["start_delay"].append((utc(run.started_at) - due).total_seconds())
                    figures["run"].append((utc(run.finished_at) - utc(run.started_at)).total_seconds())
                    if run.watermark is not None:
                        figures["watermark_lag"].append((due - utc(run.watermark)).total_seconds())
                per_view[name] = figures

            # The floor: the same runs (a minute's rows landed in each source, each view run from
            # its watermark), back to back with no scheduler and no writer running.
            order = sorted(names, key=lambda n: statistics.median(per_view[n]["start_delay"] or [0.0]))
            floor_runs: dict[str, list[float]] = {n: [] for n in names}
            floor_done: dict[str, list[float]] = {n: [] for n in names}
            for _ in range(args.floor_reps):
                end = sources.land() + timedelta(microseconds=1)
                t0 = time.perf_counter()
                for name in order:
                    t1 = time.perf_counter()
                    watermark = store.registry.watermark(store.project, name)
                    engine.run(name, start=watermark, end=end, definitions=views, progress=False)
                    floor_runs[name].append(time.perf_counter() - t1)
                    floor_done[name].append(time.perf_counter() - t0)

    say(
        f"\n{len(dues)} due times from {dues[0]:%H:%M} to {dues[-1]:%H:%M} x {args.views} views; "
        f"{missed} without a successful run"
    )
    say(
        f"  {'view':12} {'lag p50':>8} {'p95':>7} {'max':>7}   {'start delay p50':>15}   {'run p50':>8}   "
        f"{'watermark lag p50':>17} {'max':>6}   {'floor: run':>10} {'lag':>6}"
    )
    result: dict[str, Any] = {"views": {}, "dues": len(dues), "missed": missed, "workers": args.workers}
    for name in names:
        f = per_view[name]
        if not f["lag"]:
            say(f"  {name:12} no run finished for any due time")
            continue
        run_floor = statistics.median(floor_runs[name])
        lag_floor = statistics.median(floor_done[name])
        say(
            f"  {name:12} {pct(f['lag'], 50):7.2f}s {pct(f['lag'], 95):6.2f}s {max(f['lag']):6.2f}s   "
            f"{pct(f['start_delay'], 50):14.2f}s   {pct(f['run'], 50):7.2f}s   "
            f"{pct(f['watermark_lag'], 50):16.2f}s {max(f['watermark_lag'] or [float('nan')]):5.2f}s   "
            f"{run_floor:9.2f}s {lag_floor:5.2f}s"
        )
        result["views"][name] = {
            "lag_p50_s": round(pct(f["lag"], 50), 3),
            "lag_p95_s": round(pct(f["lag"], 95), 3),
            "lag_max_s": round(max(f["lag"]), 3),
            "start_delay_p50_s": round(pct(f["start_delay"], 50), 3),
            "run_p50_s": round(pct(f["run"], 50), 3),
            "watermark_lag_p50_s": round(pct(f["watermark_lag"], 50), 3),
            "watermark_lag_max_s": round(max(f["watermark_lag"] or [float("nan")]), 3),
            "floor_run_s": round(run_floor, 3),
            "floor_lag_s": round(lag_floor, 3),
        }
    every = {k: [x for f in per_view.values() for x in f[k]] for k in ("lag", "start_delay", "watermark_lag", "run")}
    floor_lag = [statistics.median(floor_done[n]) for n in names]
    floor_run = [statistics.median(floor_runs[n]) for n in names]
    say("\noverall (every view and due time)")
    say(summary_line("lag", every["lag"]))
    say(summary_line("start delay", every["start_delay"]))
    say(summary_line("run time", every["run"]))
    say(summary_line("watermark lag", every["watermark_lag"]))
    say(summary_line("floor lag", floor_lag))
    say(summary_line("floor run", floor_run))
    ratio = pct(every["lag"], 50) / pct(floor_lag, 50)
    say(
        f"  lag p50 / floor lag p50 (the same runs back to back, no scheduler): {ratio:.2f}; "
        f"run time under the scheduler p50 / floor run p50: {pct(every['run'], 50) / pct(floor_run, 50):.2f}"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    say(f"load average after: {load}")
    result["overall"] = {
        **{f"{k}_{q}_s": round(pct(v, n), 3) for k, v in every.items() for q, n in (("p50", 50), ("p95", 95))},
        **{f"{k}_max_s": round(max(v), 3) for k, v in every.items() if v},
        "floor_lag_p50_s": round(pct(floor_lag, 50), 3),
        "floor_run_p50_s": round(pct(floor_run, 50), 3),
        "lag_over_floor": round(ratio, 2),
    }
    result["load_average"] = load
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
