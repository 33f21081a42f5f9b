"""Spark standalone cluster: the driver's memory and the run time from 10M to 30M rows.

Issue 14, target 2: on Spark, the driver's memory stays flat from 10M to 30M rows and the run
time grows linearly. This script starts a one-master, one-worker standalone cluster on ports of
its own (``infra/spark/start.sh`` with ``SPARK_MASTER_PORT`` 17277, web UIs 18277 and 18278, so
that the test suite's cluster on 7077 is not disturbed), generates bench/etl.py's workload at
each size, and runs one view per size with bench/etl.py's child (a process of its own: the
driver is that Python process and the JVM pyspark starts as its child; the executors run under
the cluster's worker, outside the driver). Per size it prints the run's time and rows per second,
the driver's peak resident memory (Python, JVM, and both with any other child), sampled every
0.1 s, then the ratios 30M/10M: memory (flat: about 1) and time per row (linear: about 1).
The cluster is stopped at the end (``infra/spark/stop.sh``), also on failure.

    .venv/bin/python bench/spark_driver.py [--rows 10000000,30000000] [--driver-memory 1g] [--data-dir DIR] [--json]

``--data-dir``: keep the generated sources there (``events-<rows>.parquet``) and reuse them in
later runs (generating 30M rows takes about a minute); by default a temporary folder.

About 10 minutes on 2 cores with nothing else running (30M rows: a 0.7 GB source file in the
temporary folder, and the run's offline files beside it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent


def _cluster_env(args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_MASTER_PORT": str(args.master_port),
        "SPARK_MASTER_WEBUI_PORT": str(args.ui_port),
        "SPARK_WORKER_WEBUI_PORT": str(args.worker_ui_port),
        "SPARK_WORKER_MEMORY": args.worker_memory,
    }


def _generate(path: Path, rows: int, entities: int) -> None:
    """bench/etl.py's workload (loaded from its file: this folder is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_etl", BENCH / "etl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(path, rows, entities)


def run_size(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    master = f"spark://127.0.0.1:{args.master_port}"
    cmd = [sys.executable, str(BENCH / "etl.py"), "--child", "spark", "--data", str(data), "--online", "sqlite"]
    cmd += ["--spark-master", master, "--spark-driver-memory", args.driver_memory, "--rerun-days", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000000,30000000", help="comma-separated sizes (the first is the base)")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--driver-memory", default="1g", help="spark.driver.memory (Spark's default: 1g)")
    parser.add_argument("--worker-memory", default="4g", help="the worker's memory for executors")
    parser.add_argument("--master-port", type=int, default=17277)
    parser.add_argument("--ui-port", type=int, default=18277)
    parser.add_argument("--worker-ui-port", type=int, default=18278)
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the generated sources in this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the table goes to stderr)")
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout
    env = _cluster_env(args)
    subprocess.run(["bash", str(REPO / "infra" / "spark" / "start.sh")], env=env, check=True, stdout=out)
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-spark-driver-") as tmp:
            folder = args.data_dir or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            for rows in (int(r) for r in args.rows.split(",")):
                data = folder / f"events-{rows}.parquet"
                if args.data_dir is None or not data.exists():
                    partial = data.with_suffix(".partial")  # an interrupted generation is not reused
                    _generate(partial, rows, args.entities)
                    os.replace(partial, data)
                figures = run_size(args, data)
                figures["rows_requested"] = rows
                figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
                results.append(figures)
                if args.data_dir is None:
                    data.unlink()
                if "error" in figures:
                    print(f"{rows:>11,} rows failed:\n{figures['error']}", file=sys.stderr)
    finally:
        subprocess.run(["bash", str(REPO / "infra" / "spark" / "stop.sh")], env=env, check=False, stdout=out)
    print(
        f"Spark standalone cluster (spark://127.0.0.1:{args.master_port}, 1 worker), driver memory "
        f"{args.driver_memory}; peak resident memory of the driver process tree",
        file=out,
    )
    print(
        f"  {'rows':>11} {'run s':>7} {'rows/s':>9} {'session s':>9} {'Python MB':>10} {'JVM MB':>8} "
        f"{'tree MB':>8}  load",
        file=out,
    )
    ok = [r for r in results if "error" not in r]
    for r in ok:
        print(
            f"  {r['rows']:>11,} {r['run_s']:>7.1f} {r['rows_per_s']:>9,} {r['session_start_s']:>9.1f} "
            f"{r['peak_rss_python_mb']:>10,} {r['peak_rss_jvm_mb']:>8,} {r['peak_rss_mb']:>8,}  "
            f"{' '.join(str(x) for x in r['load_average'])}",
            file=out,
        )
    ratios: dict[str, float] = {}
    if len(ok) >= 2:
        base, last = ok[0], ok[-1]
        scale = last["rows"] / base["rows"]
        ratios = {
            "rows": round(scale, 2),
            "driver_python": round(last["peak_rss_python_mb"] / base["peak_rss_python_mb"], 2),
            "driver_jvm": round(last["peak_rss_jvm_mb"] / max(base["peak_rss_jvm_mb"], 1), 2),
            "driver_tree": round(last["peak_rss_mb"] / base["peak_rss_mb"], 2),
            "time": round(last["run_s"] / base["run_s"], 2),
            "time_per_row": round(last["run_s"] / base["run_s"] / scale, 2),
        }
        print(
            f"  {last['rows'] // 1_000_000}M/{base['rows'] // 1_000_000}M: rows {ratios['rows']}x; driver memory "
            f"Python {ratios['driver_python']}x, JVM {ratios['driver_jvm']}x, tree {ratios['driver_tree']}x; "
            f"time {ratios['time']}x (per row {ratios['time_per_row']}x)",
            file=out,
        )
    if args.json:
        print(json.dumps({"runs": results, "ratios": ratios, "driver_memory": args.driver_memory}))


if __name__ == "__main__":
    main()
