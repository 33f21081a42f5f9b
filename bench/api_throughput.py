"""API throughput: the datamart's online lookup endpoint against a trivial FastAPI endpoint.

The target (issue 14, target 3): ``featurestore serve`` at least 0.9 of the throughput of a
trivial FastAPI endpoint doing one Redis read, and at most 1.2 times its p99, under the same
bounded load. This script:

1. builds the workload of bench/online_lookup.py (100,000 entities ``customer_id`` int64,
   10 float64 features, view ``bench_features``) in a project in a temporary folder whose
   online store is Redis, written through the project's own online store write;
2. starts the datamart (``datamart.app:create_app_from_env``, as ``featurestore serve`` does)
   and a trivial FastAPI app (``create_trivial_app`` below: parse the same body, one Redis
   ``GET`` of the entity's packed value with redis-py, return it) under uvicorn with the same
   settings: one worker, uvloop and httptools when installed, access log off;
3. runs ``wrk`` with the same closed-loop load against both, alternating, ``--reps`` times:
   ``POST /v1/online-features`` for one random entity per request (Lua ``math.random``), and
   prints req/s and latency p50/p99 per repetition, the medians, and datamart/trivial.

    REDIS_PORT=16380 infra/redis/start.sh
    .venv/bin/python bench/api_throughput.py --redis-port 16380 [--variants datamart,trivial,datamart-no-usage] [--json]

``serve`` is the command itself, ``featurestore -C <project> serve --port N`` as the README
starts it (its own uvicorn settings: log level info, the access log as ``datamart.access_log``
says, on by default); compare it with ``trivial`` under uvicorn's defaults too
(``--log-level info --access-log``). ``datamart-no-usage`` is the datamart with its usage log replaced by a no-op: the difference to
``datamart`` is what recording every read in the registry costs. Needs Debian's ``wrk``
(``apt-get install wrk``). Requests go to 127.0.0.1 only, for a bounded time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]
VIEW_NAME = "bench_features"
PROJECT = "bench_api"  # also the Redis key prefix: apart from bench/online_lookup.py's "bench"
PATH = "/v1/online-features"

THROUGHPUT_BOUND = 0.9
"""Issue 14, target 3: the datamart's throughput at least 0.9 of the trivial endpoint's..."""
P99_BOUND = 1.2
"""...and its p99 latency at most 1.2 times the trivial endpoint's, under the same wrk load."""

REDIS_URL_ENV = "BENCH_REDIS_URL"
KEY_PREFIX_ENV = "BENCH_KEY_PREFIX"

# wrk's script: a POST of one request body per call with random entity ids, and a JSON line of
# the figures at the end (wrk's own summary rounds and mixes units).
WRK_LUA = """
local features = '%(features)s'
local n = %(entities)d
local path = '%(path)s'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Consumer"] = "bench"

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  local ids = {}
  for i = 1, n do ids[i] = tostring(math.random(1, %(max_id)d)) end
  local body = '{"features":' .. features .. ',"entities":{"customer_id":[' .. table.concat(ids, ",") .. ']}}'
  return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# ---------------------------------------------------------------------- the servers' apps


class TrivialBody(BaseModel):
    """The datamart's request body, as the trivial app parses it (at module level, so that
    FastAPI resolves the handler's annotation)."""

    features: list[str] | str
    entities: dict[str, list[int]]


def create_trivial_app() -> Any:
    """The baseline: a FastAPI endpoint that parses the same request body, does one Redis
    ``GET`` of the entity's packed value (redis-py, hiredis when installed) and returns it.
    A plain ``def`` handler: FastAPI runs it in anyio's thread pool, as the datamart runs its
    lookup in a thread (of its own threads, see ``datamart.routes.reads._LookupThreads``)."""
    import redis
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    client = redis.Redis.from_url(os.environ[REDIS_URL_ENV])
    prefix = f"{os.environ[KEY_PREFIX_ENV]}:{VIEW_NAME}:"
    app = FastAPI()

    @app.post(PATH)
    def lookup(body: TrivialBody) -> JSONResponse:
        (entity,) = body.entities["customer_id"]
        value = client.get(f"{prefix}{entity}")
        return JSONResponse({"customer_id": entity, "value": value.decode() if value is not None else None})

    return app


class _NoUsage:
    """Stands in for the store's usage log: records nothing, whatever the log's methods take."""

    def record(self, *args: Any, **kwargs: Any) -> None:
        pass

    def pending(self) -> int:
        return 0

    def flush(self) -> int:
        return 0

    def close(self) -> None:
        pass


def create_datamart_without_usage() -> Any:
    """The datamart app of ``featurestore serve`` with its usage log replaced by a no-op."""
    from datamart.app import create_app
    from featurestore.store import FeatureStore

    store = FeatureStore(os.environ["FEATURESTORE_PROJECT_DIR"])
    if not hasattr(store, "usage"):
        raise RuntimeError("FeatureStore has no 'usage' attribute any more: update bench/api_throughput.py")
    store.usage = _NoUsage()  # type: ignore[assignment]
    return create_app(store, close_store=True)


# ---------------------------------------------------------------------- setup


def write_workload(project_dir: Path, redis_url: str) -> None:
    """A project in ``project_dir`` with the workload written to its Redis online store."""
    import numpy as np
    import pyarrow as pa
    import yaml

    from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
    from featurestore.definitions import Project
    from featurestore.store import FeatureStore

    # The workload of bench/online_lookup.py (same definitions, same seed). Keep them in step.
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    view = FeatureView(
        name=VIEW_NAME,
        entities=(customer,),
        source=FileSource(name="bench_source", path="bench.parquet", timestamp_field="ts"),
        timestamp_field="ts",
        ttl=timedelta(days=365),
        features=tuple(Feature(f, Float64) for f in FEATURES),
    )
    rng = np.random.default_rng(0)
    now = np.datetime64("now", "us")
    cols: dict[str, Any] = {
        "customer_id": np.arange(1, ENTITIES + 1),
        "ts": pa.array(now - rng.integers(0, 10_000, ENTITIES).astype("timedelta64[m]"), pa.timestamp("us", tz="UTC")),
    }
    for f in FEATURES:
        cols[f] = rng.normal(size=ENTITIES)
    table = pa.table(cols)

    (project_dir / "featurestore.yaml").write_text(
        yaml.safe_dump({"project": PROJECT, "online_store": {"type": "redis", "url": redis_url}})
    )
    fs = FeatureStore(project_dir)
    try:
        fs.registry.apply(PROJECT, Project.collect([view]))
        fs.online_store.prepare([view])
        t0 = time.perf_counter()
        for batch in table.to_batches(max_chunksize=10_000):
            fs.online_store.write(view, pa.Table.from_batches([batch]))
        print(f"wrote {ENTITIES:,} entities to {redis_url} in {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        fs.close()


def delete_keys(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{PROJECT}:{VIEW_NAME}:*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.close()


# ---------------------------------------------------------------------- servers and load


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_options(loop: str, http: str) -> tuple[str, str]:
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def start_server(name: str, app: str, env: dict[str, str], opts: list[str], log_dir: Path) -> Server:
    port = free_port()
    log = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port), *opts]
    if app == SERVE:  # the command itself, as the README starts it: its own uvicorn settings
        featurestore = str(Path(sys.executable).with_name("featurestore"))
        cmd = [featurestore, "-C", env["FEATURESTORE_PROJECT_DIR"], "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    return Server(name, port, proc, log)


def wait_ready(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Waits until the server answers the benchmark's request and returns its answer."""
    import httpx

    url = f"http://127.0.0.1:{server.port}{PATH}"
    deadline = time.monotonic() + 60
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
        try:
            resp = httpx.post(url, json=body, headers={"X-Consumer": "bench"}, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not answer within 60 s") from None
            time.sleep(0.2)
            continue
        if resp.status_code != 200:
            raise RuntimeError(
                f"{server.name} answered {resp.status_code}: {resp.text[:500]}\n{server.log.read_text()[-3000:]}"
            )
        answer: dict[str, Any] = resp.json()
        return answer


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown runs the app's lifespan
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float | None = None
    """The server process's CPU time (user + system, all threads) per request: steadier than
    req/s when other work shares the machine."""


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process so far, from /proc; None where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, port: int, script: Path, threads: int, connections: int, seconds: int) -> WrkResult:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{PATH}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    out = done.stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return WrkResult(
        rps=r["requests"] / (r["duration_us"] / 1e6),
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        requests=r["requests"],
        errors=errors,
    )


# ---------------------------------------------------------------------- main


SERVE = "featurestore serve"
APPS = {
    "datamart": "datamart.app:create_app_from_env",
    "serve": SERVE,
    "datamart-no-usage": "api_throughput:create_datamart_without_usage",
    "trivial": "api_throughput:create_trivial_app",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=16380)
    parser.add_argument("--variants", default="datamart,trivial", help=f"comma separated, of {sorted(APPS)}")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (-c): the bounded load")
    parser.add_argument("--duration", type=int, default=15, help="seconds per repetition (-d)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of untimed load before each repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--loop", default="auto", help="uvicorn --loop (auto: uvloop when installed)")
    parser.add_argument("--http", default="auto", help="uvicorn --http (auto: httptools when installed)")
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's access log on (both servers)")
    parser.add_argument("--log-level", default="warning", help="uvicorn --log-level (info: uvicorn's default)")
    parser.add_argument("--keep-keys", action="store_true", help="leave the workload's keys in Redis")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the rest goes to stderr)")
    args = parser.parse_args()
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):
            figures = run(args)
        print(json.dumps(figures))
    else:
        run(args)


def run(args: argparse.Namespace) -> dict[str, Any]:

    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian's package)")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in APPS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; choose from {sorted(APPS)}")
    if "trivial" not in variants:
        print("note: no 'trivial' variant, so no ratio", flush=True)

    redis_url = f"redis://{args.redis_host}:{args.redis_port}/0"
    loop, http = uvicorn_options(args.loop, args.http)
    opts = ["--workers", "1", "--loop", loop, "--http", http, "--log-level", args.log_level]
    if not args.access_log:
        opts.append("--no-access-log")
    features = json.dumps([f"{VIEW_NAME}:{f}" for f in FEATURES])

    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project_dir = tmp / "project"
        project_dir.mkdir()
        write_workload(project_dir, redis_url)
        script = tmp / "lookup.lua"
        script.write_text(
            WRK_LUA % {"features": features, "entities": 1, "path": PATH, "max_id": ENTITIES},
        )
        env = {
            "FEATURESTORE_PROJECT_DIR": str(project_dir),
            REDIS_URL_ENV: redis_url,
            KEY_PREFIX_ENV: PROJECT,
            "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p),
        }
        servers: dict[str, Server] = {}
        try:
            for v in variants:
                servers[v] = start_server(v, APPS[v], env, opts, tmp)
            probe = {"features": json.loads(features), "entities": {"customer_id": [42]}}
            for v, server in servers.items():
                answer = wait_ready(server, probe)
                if v != "trivial" and answer["features"]["f0"]["statuses"] != ["present"]:
                    raise RuntimeError(f"{v} did not find entity 42: {answer}")
                if v == "trivial" and answer["value"] is None:
                    raise RuntimeError(f"trivial app did not find entity 42 under {PROJECT}:{VIEW_NAME}:42")

            print(
                f"uvicorn: 1 worker, --loop {loop} --http {http}, access log {'on' if args.access_log else 'off'}; "
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
                f"POST {PATH} with 1 random entity of {ENTITIES:,}, {len(FEATURES)} features; "
                f"{args.warmup}s warmup before each run; {os.cpu_count()} cores shared by wrk, uvicorn and Redis",
                flush=True,
            )
            print(f"load average before: {load_average()}", flush=True)
            results: dict[str, list[WrkResult]] = {v: [] for v in variants}
            for rep in range(1, args.reps + 1):
                for v in variants:  # alternating, so that drift hits every variant alike
                    port = servers[v].port
                    if args.warmup > 0:
                        run_wrk(wrk, port, script, args.threads, args.connections, args.warmup)
                    cpu0 = cpu_seconds(servers[v].proc.pid)
                    r = run_wrk(wrk, port, script, args.threads, args.connections, args.duration)
                    cpu1 = cpu_seconds(servers[v].proc.pid)
                    if cpu0 is not None and cpu1 is not None and r.requests:
                        r.cpu_us_per_request = (cpu1 - cpu0) / r.requests * 1e6
                    results[v].append(r)
                    errs = f"  ERRORS {r.errors}" if r.errors else ""
                    print(
                        f"  rep {rep}  {v:18} {r.rps:8.1f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
                        f"  server CPU {fmt_us(r.cpu_us_per_request)}/req  ({r.requests:,} requests){errs}",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                stop_server(server)

        print(f"load average after: {load_average()} (other work on the machine skews these figures)", flush=True)
        print(f"medians of {args.reps} runs", flush=True)
        medians: dict[str, float] = {}
        cpu_medians: dict[str, float] = {}
        figures: dict[str, Any] = {"reps": args.reps, "duration_s": args.duration, "loop": loop, "http": http}
        for v, rs in results.items():
            medians[v] = statistics.median(r.rps for r in rs)
            p50 = statistics.median(r.p50_ms for r in rs)
            p99 = statistics.median(r.p99_ms for r in rs)
            cpus = [r.cpu_us_per_request for r in rs if r.cpu_us_per_request is not None]
            cpu = statistics.median(cpus) if cpus else None
            if cpu is not None:
                cpu_medians[v] = cpu
            errors = sum(r.errors for r in rs)
            figures[v] = {"rps": round(medians[v], 1), "p50_ms": p50, "p99_ms": p99, "cpu_us": cpu, "errors": errors}
            print(
                f"  {v:18} {medians[v]:8.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  server CPU {fmt_us(cpu)}/req",
                flush=True,
            )
        if "trivial" in medians:
            for v in variants:
                if v != "trivial":
                    ratio = medians[v] / medians["trivial"]
                    verdict = "meets" if ratio >= THROUGHPUT_BOUND else "misses"
                    print(
                        f"  {v}/trivial throughput: {ratio:.2f} ({verdict} the >= {THROUGHPUT_BOUND:.2f} target)",
                        flush=True,
                    )
                    p99 = figures[v]["p99_ms"] / figures["trivial"]["p99_ms"]
                    verdict = "meets" if p99 <= P99_BOUND else "misses"
                    print(f"  {v}/trivial p99: {p99:.2f} ({verdict} the <= {P99_BOUND:.2f} target)", flush=True)
                    if v in cpu_medians and "trivial" in cpu_medians:
                        cpu_ratio = cpu_medians["trivial"] / cpu_medians[v]
                        print(f"    by server CPU per request, trivial/{v}: {cpu_ratio:.2f}", flush=True)
        if any(r.errors for rs in results.values() for r in rs):
            print("warning: some requests failed (see ERRORS above); figures are not comparable", flush=True)
        report_usage(project_dir)
        if not args.keep_keys:
            delete_keys(redis_url)
    return figures


def fmt_us(us: float | None) -> str:
    return f"{us:4.0f} us" if us is not None else "   ? us"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report_usage(project_dir: Path) -> None:
    """How much usage the datamart recorded in the registry during the runs."""
    from featurestore.store import FeatureStore

    fs = FeatureStore(project_dir)
    try:
        summary = fs.registry.usage_summary(PROJECT)
    finally:
        fs.close()
    reads = sum(int(r["reads"]) for r in summary if r["consumer"] == "bench")
    db = project_dir / "data" / "registry.db"
    size = f"{db.stat().st_size / 1e6:.1f} MB" if db.exists() else "?"
    print(f"usage recorded in the registry: {reads:,} feature reads by 'bench' (registry file {size})", flush=True)


if __name__ == "__main__":
    main()
