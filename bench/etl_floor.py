"""The floor of a run: the least code that leaves the same offline files and online values.

Used by ``bench/etl.py --floor``: after our run of a view, the same view's rows are computed and
published by hand, under a copy of the view named ``<view>_floor``:

1. one DuckDB query: the view's SQL transformation over the source Parquet file, into Arrow;
2. offline: one Parquet file per UTC date of the event time, in the store's layout
   (``date=YYYY-MM-DD/<file>.parquet``), by DuckDB's ``COPY ... PARTITION_BY (date)``;
3. online: the newest row of each entity (DuckDB ``QUALIFY row_number()``) handed to the
   online store's own ``sync`` (one SQLite transaction of ``INSERT OR REPLACE`` / Redis ``MSET``
   of the encoded values: the same bytes a run stores).

No lock, manifest, registry record, statistics or quality gate: what the floor leaves out is
what our run pays for them. Event times are unique per entity in bench/etl.py's workload, so
the floor skips the run's de-duplication of (keys, event time). :func:`compare` checks that the
floor's files hold the same rows per date as ours and that every entity's stored value is the
same bytes (or, where a run stored a source's -0.0 as 0.0, the same numbers).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import duckdb
from orjson import loads


def floor_view(view: Any) -> Any:
    return dataclasses.replace(view, name=f"{view.name}_floor")


def floor_run(view: Any, source_name: str, data: Path, folder: Path, online: Any) -> dict[str, float]:
    """Publish ``view`` (the floor's copy) from ``data`` into ``folder`` and ``online``; seconds per step."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # dates of event times are UTC dates, as the store's
        con.execute(f"CREATE VIEW {source_name} AS SELECT * FROM read_parquet('{data}')")
        con.execute(f"CREATE TEMP TABLE frame AS {view.transformation}")
        timings["compute_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        ts = view.timestamp_field
        con.execute(
            f"COPY (SELECT *, CAST({ts} AS DATE) AS date FROM frame) TO '{folder}' "
            "(FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE)"
        )
        timings["offline_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        keys = ", ".join(view.join_keys)
        latest = con.sql(
            f"SELECT * FROM frame QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC) = 1"
        ).to_arrow_table()
    finally:
        con.close()
    online.prepare([view])
    removed = latest.select(list(view.join_keys)).slice(0, 0)
    online.sync(view, latest, removed)
    timings["online_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return timings


def _by_date(files: list[Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in files:
        out.setdefault(f.parent.name, []).append(f)
    return out


def compare(view: Any, ours_files: list[Path], folder: Path, online: Any) -> list[str]:
    """What differs between our run's output and the floor's (empty: the same)."""
    problems: list[str] = []
    ours = _by_date(ours_files)
    floor = _by_date(sorted(folder.glob("date=*/*.parquet")))
    if sorted(ours) != sorted(floor):
        problems.append(f"dates differ: ours {len(ours)}, floor {len(floor)}")
    columns = [*view.join_keys, view.timestamp_field, *view.feature_names]
    order = ", ".join([*view.join_keys, view.timestamp_field])
    con = duckdb.connect()
    try:
        for day in sorted(set(ours) & set(floor)):
            a, b = (
                con.sql(
                    f"SELECT {', '.join(columns)} FROM read_parquet({[str(f) for f in files]}) ORDER BY {order}"
                ).to_arrow_table()
                for files in (ours[day], floor[day])
            )
            if not a.equals(b.cast(a.schema)):
                problems.append(f"{day}: offline rows differ ({a.num_rows:,} ours, {b.num_rows:,} floor)")
    finally:
        con.close()
    copy = floor_view(view)
    keys = sorted(online.entity_keys(view))
    if keys != sorted(online.entity_keys(copy)):
        problems.append("online entities differ")
    else:
        ours_values, floor_values = online.read_packed(view, keys), online.read_packed(copy, keys)
        # Bytes, else as numbers: a run stores -0.0 of the source as 0.0 (equal as numbers).
        pairs = zip(ours_values, floor_values, strict=True)
        differ = [i for i, (x, y) in enumerate(pairs) if x != y and (x is None or y is None or loads(x) != loads(y))]
        if differ:
            i = differ[0]
            problems.append(
                f"online values of {len(differ):,} entities differ, e.g. {keys[i]}: "
                f"ours {ours_values[i]!r}, floor {floor_values[i]!r}"
            )
    return problems
