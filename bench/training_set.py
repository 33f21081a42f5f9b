"""Training sets: ``FeatureStore.get_training_set`` and the HTTP upload route against a DuckDB floor.

The workload: ``--rows`` (1,000,000) feature rows of 100,000 entities (int64 ``customer_id``),
10 float64 features ``f0``…``f9`` in the view ``bench_features`` (TTL 7 days), event times over
30 days, published by one local run (untimed) into a project in a temporary folder; a spine of
``--spine`` (100,000) rows: random entities (some unknown) at random times over the same days
plus 3, with a label column.

Timed, interleaved repetition by repetition (``--reps``, 5; one untimed warm-up each), medians:

- **ours**: ``FeatureStore.get_training_set(spine, refs)`` in process;
- **floor**: the least that gives the same rows: one DuckDB ``ASOF LEFT JOIN`` of the spine
  (an Arrow table, with a row number) against ``read_parquet`` of the view's published files,
  the TTL as a ``CASE``, ``ORDER BY`` the row number, to Arrow, on a connection opened once;
- **HTTP**: ``DatamartClient.get_training_set`` (the spine up as Parquet, the result down as an
  Arrow IPC stream, ``POST /v1/training-set/upload``) against the datamart under uvicorn in a
  thread of this process (``datamart.app.create_app``, access log off);
- **HTTP floor** (a detail, not a target): the floor's join behind the least HTTP endpoint, one
  Starlette route under the same uvicorn settings taking the spine as an Arrow IPC stream body
  and answering one, called with ``httpx``: what the transport alone costs.

The issue's HTTP target compares HTTP with the in-process floor (the 0.5 left for the transport),
not with the HTTP floor. Ours, HTTP and the HTTP floor are checked to equal the floor's output
(every feature column, spine order) before timing.

    .venv/bin/python bench/training_set.py [--rows 1000000] [--spine 100000] [--reps 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

VIEW = "bench_features"
FEATURES = [f"f{i}" for i in range(10)]
ENTITIES = 100_000
TTL_DAYS = 7
START = datetime(2024, 1, 1, tzinfo=UTC)
FEATURES_PY = f'''
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
source = FileSource(name="bench_source", path="source.parquet", timestamp_field="ts")
bench_features = FeatureView(
    name="{VIEW}",
    entities=(customer,),
    source=source,
    timestamp_field="ts",
    ttl=timedelta(days={TTL_DAYS}),
    features=tuple(Feature(f"f{{i}}", Float64) for i in range({len(FEATURES)})),
)
'''


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * 1_000_000)
    span_us = 30 * 86_400 * 1_000_000
    ts = np.sort(start_us + rng.integers(0, span_us, rows))
    columns: dict[str, Any] = {
        "customer_id": pa.array(rng.integers(0, ENTITIES, rows)),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
    }
    for f in FEATURES:
        columns[f] = pa.array(rng.normal(100, 30, rows).round(3))
    pq.write_table(pa.table(columns), path)


def spine_table(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * 1_000_000)
    span_us = 33 * 86_400 * 1_000_000
    return pa.table(
        {
            "customer_id": pa.array(rng.integers(0, int(ENTITIES * 1.05), rows)),  # ~5 % unknown entities
            "event_timestamp": pa.array(start_us + rng.integers(0, span_us, rows), pa.timestamp("us", tz="UTC")),
            "label": pa.array(rng.integers(0, 2, rows)),
        }
    )


def floor_join(con: duckdb.DuckDBPyConnection, spine: pa.Table, files: list[Path]) -> pa.Table:
    """The spine with the features as of each row, in spine order: one ASOF JOIN in DuckDB."""
    work = spine.append_column("__row", pa.array(np.arange(spine.num_rows)))
    con.register("spine", work)
    paths = ", ".join(f"'{f}'" for f in files)
    fresh = f"s.event_timestamp - fv.ts <= INTERVAL {TTL_DAYS} DAYS"
    feats = ", ".join(f"CASE WHEN {fresh} THEN fv.{f} END AS {f}" for f in FEATURES)
    sql = (
        f"SELECT s.customer_id, s.event_timestamp, s.label, {feats} FROM spine s "
        f"ASOF LEFT JOIN read_parquet([{paths}]) fv ON s.customer_id = fv.customer_id AND s.event_timestamp >= fv.ts "
        "ORDER BY s.__row"
    )
    out = con.sql(sql).to_arrow_table()
    con.unregister("spine")
    return out


def same_features(a: pa.Table, b: pa.Table) -> bool:
    return a.num_rows == b.num_rows and all(
        a.column(f).combine_chunks().equals(b.column(f).combine_chunks()) for f in ["customer_id", *FEATURES]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def http_floor_app(files: list[Path]) -> Any:
    """The floor's join behind the least HTTP endpoint: an Arrow IPC stream in, one out."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    con = duckdb.connect()  # the server thread's own

    async def join(request: Request) -> Response:
        spine = pa.ipc.open_stream(await request.body()).read_all()
        return Response(ipc_bytes(floor_join(con, spine, files)), media_type="application/vnd.apache.arrow.stream")

    return Starlette(routes=[Route("/join", join, methods=["POST"])])


def start_server(app: Any) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--spine", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object (the table goes to stderr)")
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout

    import httpx

    from datamart.app import create_app
    from datamart.client import DatamartClient
    from etl.local import LocalEngine
    from featurestore.project_files import load_definitions
    from featurestore.store import FeatureStore
    from featurestore.validation import validate_project

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root = Path(tmp)
        generate(root / "source.parquet", args.rows)
        (root / "features.py").write_text(FEATURES_PY)
        (root / "featurestore.yaml").write_text(
            "project: bench\ndefinitions: [features.py]\nregistry: sqlite:///registry.db\n"
            "offline_store: {type: parquet, path: offline}\nonline_store: {type: sqlite, path: online.db}\n"
        )
        spine = spine_table(args.spine)
        refs = [f"{VIEW}:{f}" for f in FEATURES]
        with FeatureStore(root) as store:
            objects = load_definitions(store.config)
            store.apply(objects)
            views = {v.name: v for v in validate_project(objects).feature_views}
            LocalEngine(store).run(VIEW, definitions=views, progress=False)
            files = store.offline_store.files(VIEW)
            con = duckdb.connect()
            server, thread, base = start_server(create_app(store))
            floor_server, floor_thread, floor_base = start_server(http_floor_app(files))
            try:
                client = DatamartClient(base, consumer="bench", timeout=300)
                raw = httpx.Client(base_url=floor_base, timeout=300)
                calls: dict[str, Callable[[], pa.Table]] = {
                    "floor": lambda: floor_join(con, spine, files),
                    "ours": lambda: store.get_training_set(spine, refs),
                    "http": lambda: client.get_training_set(spine, refs),
                    "http_floor": lambda: pa.ipc.open_stream(
                        raw.post("/join", content=ipc_bytes(spine)).raise_for_status().content
                    ).read_all(),
                }
                expected = calls["floor"]()
                matched = expected.column("f0").null_count
                for name in ("ours", "http", "http_floor"):
                    got = calls[name]()
                    if not same_features(got, expected):
                        raise SystemExit(
                            f"{name}: the training set differs from the floor's; figures would be meaningless"
                        )
                samples: dict[str, list[float]] = {name: [] for name in calls}
                for _ in range(args.reps):
                    for name, call in calls.items():
                        t0 = time.perf_counter()
                        call()
                        samples[name].append(time.perf_counter() - t0)
                client.close()
                raw.close()
            finally:
                server.should_exit = floor_server.should_exit = True
                thread.join(timeout=10)
                floor_thread.join(timeout=10)
                con.close()

    med = {name: statistics.median(s) for name, s in samples.items()}
    print(
        f"training set: spine {args.spine:,} rows x {len(FEATURES)} features of {args.rows:,} rows "
        f"({matched:,} spine rows without a value); medians of {args.reps}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        file=out,
    )
    for name in calls:
        print(f"  {name:10} {med[name] * 1000:8.0f} ms  {med[name] / med['floor']:5.2f}x the floor", file=out)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "spine": args.spine,
                    "reps": args.reps,
                    "median_s": {k: round(v, 4) for k, v in med.items()},
                    "samples_s": {k: [round(x, 4) for x in v] for k, v in samples.items()},
                }
            )
        )


if __name__ == "__main__":
    main()
