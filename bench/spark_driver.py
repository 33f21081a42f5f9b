"""Spark standalone cluster: the driver's memory and the run time from 10M to 30M rows.

Issue 14, target 2: on Spark, the driver's memory stays flat from 10M to 30M rows and the run
time grows linearly. This script starts a one-master, one-worker standalone cluster on ports of
its own (``infra/spark/start.sh`` with ``SPARK_MASTER_PORT`` 17277, web UIs 18277 and 18278, so
that the test suite's cluster on 7077 is not disturbed), generates bench/etl.py's workload at
each size, and runs one view per size with bench/etl.py's child (a process of its own: the
driver is that Python process and the JVM pyspark starts as its child; the executors run under
the cluster's worker, outside the driver). Per size it prints the run's time and rows per second,
the driver's peak resident memory (Python, JVM, and both with any other child), sampled every
0.1 s, the CPU time of the driver and of the executors the worker starts for the run (sampled
every 0.5 s: on a shared machine CPU time stretches far less than wall time) and the executors'
peak memory, then the ratios 30M/10M: memory (flat: about 1), time per row and the executors'
CPU per row (linear: about 1).
The cluster is stopped at the end (``infra/spark/stop.sh``), also on failure.

    .venv/bin/python bench/spark_driver.py [--rows 10000000,30000000] [--driver-memory 1g] [--data-dir DIR] [--json]

``--data-dir``: keep the generated sources there (``events-<rows>.parquet``) and reuse them in
later runs (generating 30M rows takes about a minute); by default a temporary folder.

42 minutes measured on 2 cores at load average 9-16, under ``nice -n 10`` (10M: 696 s, 30M:
1,800 s, each plus its session's start); 30M rows need a 0.7 GB source file in the temporary
folder, and the run's offline files beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
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


def _processes() -> dict[int, tuple[int, float, int]]:
    """Every process: pid -> (parent pid, CPU seconds (user + system), resident bytes), from /proc."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                resident = int(f.read().split()[1]) * page
        except (OSError, IndexError):
            continue
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, resident)
    return out


def _descendants(table: dict[int, tuple[int, float, int]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class ClusterCpu:
    """CPU seconds of a run's driver (its process tree) and of the executors the cluster's worker
    starts for it (the worker's descendants that were not there before), sampled every 0.5 s
    (a process's last sample counts: an executor exits with its application); and the executors'
    peak resident memory, summed. CPU time grows with the work done whatever share of the cores
    other work leaves the run, so "time linear in the rows" is judged on it as well as on the
    wall time."""

    def __init__(self, worker: int | None) -> None:
        self.worker = worker
        self.before = set(_descendants(_processes(), worker)) if worker else set()
        self.cpu: dict[int, tuple[str, float]] = {}
        self.executor_peak = 0

    def sample(self, driver: int) -> None:
        table = _processes()
        for pid in [driver, *_descendants(table, driver)]:
            if pid in table:
                self.cpu[pid] = ("driver", table[pid][1])
        executors = [p for p in _descendants(table, self.worker) if p not in self.before] if self.worker else []
        for pid in executors:
            self.cpu[pid] = ("executor", table[pid][1])
        self.executor_peak = max(self.executor_peak, sum(table[p][2] for p in executors))

    def seconds(self, role: str) -> float:
        return round(sum(cpu for r, cpu in self.cpu.values() if r == role), 1)


def _worker_pid(args: argparse.Namespace) -> int | None:
    state = Path(os.environ.get("SPARK_STATE", f"/tmp/featurestore-spark-{args.master_port}"))
    try:
        return int((state / "worker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def run_size(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    master = f"spark://127.0.0.1:{args.master_port}"
    cmd = [sys.executable, str(BENCH / "etl.py"), "--child", "spark", "--data", str(data), "--online", "sqlite"]
    cmd += ["--spark-master", master, "--spark-driver-memory", args.driver_memory, "--rerun-days", "0"]
    cpu = ClusterCpu(_worker_pid(args))
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
        # The pipes are read in threads: a child blocked on a full pipe would stop the run.
        output: dict[str, str] = {}
        readers = [
            threading.Thread(target=lambda n=name, s=stream: output.__setitem__(n, s.read()), daemon=True)
            for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        for reader in readers:
            reader.start()
        while proc.poll() is None:
            cpu.sample(proc.pid)
            time.sleep(0.5)
        for reader in readers:
            reader.join()
    if proc.returncode != 0:
        return {"error": output.get("stderr", "")[-2000:]}
    figures: dict[str, Any] = json.loads(output["stdout"].strip().splitlines()[-1])
    figures["driver_cpu_s"] = cpu.seconds("driver")
    figures["executor_cpu_s"] = cpu.seconds("executor")
    figures["peak_rss_executors_mb"] = round(cpu.executor_peak / 2**20)
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
                else:  # each size as soon as it is measured: a later size may be stopped
                    print(json.dumps(figures), file=sys.stderr, flush=True)
    finally:
        subprocess.run(["bash", str(REPO / "infra" / "spark" / "stop.sh")], env=env, check=False, stdout=out)
    print(
        f"Spark standalone cluster (spark://127.0.0.1:{args.master_port}, 1 worker), driver memory "
        f"{args.driver_memory}; peak resident memory of the driver process tree",
        file=out,
    )
    print(
        f"  {'rows':>11} {'run s':>7} {'rows/s':>9} {'session s':>9} {'Python MB':>10} {'JVM MB':>8} "
        f"{'tree MB':>8} {'CPU s: driver':>13} {'executors':>9} {'executors MB':>12}  load",
        file=out,
    )
    ok = [r for r in results if "error" not in r]
    for r in ok:
        print(
            f"  {r['rows']:>11,} {r['run_s']:>7.1f} {r['rows_per_s']:>9,} {r['session_start_s']:>9.1f} "
            f"{r['peak_rss_python_mb']:>10,} {r['peak_rss_jvm_mb']:>8,} {r['peak_rss_mb']:>8,} "
            f"{r['driver_cpu_s']:>13.1f} {r['executor_cpu_s']:>9.1f} {r['peak_rss_executors_mb']:>12,}  "
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
        # The executors' CPU: the driver's Python process also runs etl.py's memory sampler (a
        # listing of /proc every 0.1 s), whose CPU grows with the wall time, not with the rows.
        if base["executor_cpu_s"]:
            ratios["cpu_per_row"] = round(last["executor_cpu_s"] / base["executor_cpu_s"] / scale, 2)
        print(
            f"  {last['rows'] // 1_000_000}M/{base['rows'] // 1_000_000}M: rows {ratios['rows']}x; driver memory "
            f"Python {ratios['driver_python']}x, JVM {ratios['driver_jvm']}x, tree {ratios['driver_tree']}x; "
            f"time {ratios['time']}x (per row {ratios['time_per_row']}x); executors' CPU per row "
            f"{ratios.get('cpu_per_row', '-')}x",
            file=out,
        )
    if args.json:
        print(json.dumps({"runs": results, "ratios": ratios, "driver_memory": args.driver_memory}))


if __name__ == "__main__":
    main()
