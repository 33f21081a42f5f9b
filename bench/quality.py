"""What the quality gate costs: validation (Great Expectations) and run statistics on 1M rows, as
a fraction of a local run's time.

The workload is bench/etl.py's: ``events`` with an int64 ``customer_id`` (100,000 entities), a
UTC event time spread over 30 days and 8 float64 values; the view ``bench_events`` keeps every
row with two computed columns (10 features). Here the view also declares 22 expectations, as a
careful team would: every feature not null and within bounds, unique (keys, event time), a
minimum row count, freshness, and one Great Expectations expectation by name (the mean of
``v_sum``). Statistics (counts, nulls, min/max/mean/stddev, distinct values, a 10-bin histogram
and PSI against the previous run) cover the 10 features.

One process: Great Expectations' import (5-9 s, once per process) is timed and printed apart; a
warm-up run, then ``--runs`` timed runs of the same window, each publishing offline (Parquet)
and online (SQLite) as ``featurestore run`` does. Medians are printed per step, then the
overhead: (validate + statistics) / the whole run, and / the run without them.

    .venv/bin/python bench/quality.py [--rows 1000000] [--runs 3] [--json]

On a 2-core machine, run nothing beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
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

VIEW = "bench_events"
VALUES = 8
START = datetime(2024, 1, 1, tzinfo=UTC)
FEATURES_PY = f'''
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.expectations import Fresh, GxExpectation, InRange, NotNull, RowCount, UniqueKeys

FEATURES = [f"v{{i}}" for i in range({VALUES})] + ["v_sum", "v_max"]

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
    features=tuple(Feature(name, Float64) for name in FEATURES),
    expectations=(
        *(NotNull(name) for name in FEATURES),
        *(InRange(name, min=-1000, max=1000) for name in FEATURES[:{VALUES}]),
        UniqueKeys(),
        RowCount(min=1),
        Fresh(timedelta(days=2)),
        GxExpectation("expect_column_mean_to_be_between", {{"column": "v_sum", "min_value": 0, "max_value": 1000}}),
    ),
)
'''


def generate(path: Path, rows: int, entities: int, seed: int = 0) -> None:
    """bench/etl.py's events: ``rows`` of them, in row groups of 1M."""
    rng = np.random.default_rng(seed)
    step_us = int(timedelta(days=30).total_seconds() * 1_000_000 // rows)
    schema = pa.schema(
        [("customer_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))]
        + [(f"v{i}", pa.float64()) for i in range(VALUES)]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - lo)
            ts = int(START.timestamp() * 1_000_000) + (np.arange(lo, lo + n, dtype=np.int64) * step_us)
            columns = [pa.array(rng.integers(0, entities, n)), pa.array(ts, pa.timestamp("us", tz="UTC"))]
            columns += [pa.array(rng.normal(100, 30, n).round(2)) for _ in range(VALUES)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs, after one warm-up run")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout (the table on stderr)")
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout

    from etl.local import LocalEngine
    from featurestore.config import render_default_config
    from featurestore.project_files import load_definitions
    from featurestore.store import FeatureStore
    from featurestore.validation import import_great_expectations, validate_project

    t0 = time.perf_counter()
    import_great_expectations()
    gx_import_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        root = Path(tmp)
        (root / "featurestore.yaml").write_text(render_default_config("bench"))
        (root / "features.py").write_text(FEATURES_PY)
        generate(root / "events.parquet", args.rows, args.entities)
        with FeatureStore(root) as store:
            engine = LocalEngine(store)
            objects = load_definitions(store.config)
            store.apply(objects, schema_resolver=engine.infer_schema)
            views = {v.name: v for v in validate_project(objects).feature_views}
            window = {"start": START, "end": START + timedelta(days=30)}
            timings: list[dict[str, float]] = []
            for i in range(args.runs + 1):
                result = engine.run(VIEW, definitions=views, progress=False, **window)
                if result.quality != "passed":
                    raise SystemExit(f"the benchmark's expectations should pass, got {result.quality}")
                if i:  # the first run warms caches up
                    timings.append(result.timings)
            rows = result.rows_offline

    steps = list(timings[0])
    median = {s: statistics.median(t[s] for t in timings) for s in steps}
    totals = [sum(t.values()) for t in timings]
    quality = [t["validate_s"] + t["statistics_s"] for t in timings]
    share = statistics.median(q / total for q, total in zip(quality, totals, strict=True))
    added = statistics.median(q / (total - q) for q, total in zip(quality, totals, strict=True))
    print(
        f"{rows:,} rows, 10 features, 22 expectations; medians of {args.runs} runs after a warm-up "
        f"(load average {os.getloadavg()[0]:.2f})",
        file=out,
    )
    print(f"  {'great_expectations import (once per process)':46} {gx_import_s:7.2f} s", file=out)
    for s in steps:
        print(f"  {s:46} {median[s]:7.2f} s", file=out)
    print(f"  {'run':46} {statistics.median(totals):7.2f} s", file=out)
    print(
        f"validation + statistics: {statistics.median(quality):.2f} s = {share:.1%} of the run's time, "
        f"+{added:.1%} on a run without them "
        f"(validation {median['validate_s']:.2f} s, statistics {median['statistics_s']:.2f} s)",
        file=out,
    )
    if args.json:
        summary: dict[str, Any] = {
            "rows": rows,
            "runs": args.runs,
            "gx_import_s": gx_import_s,
            "median_s": median,
            "run_s": statistics.median(totals),
            "quality_share_of_run": share,
            "quality_added_to_run": added,
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
