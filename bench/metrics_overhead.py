"""What ``/metrics`` costs an online lookup: the datamart's per-request bookkeeping, timed with timeit.

Per request to ``POST /v1/online-features`` the datamart (``datamart.metrics``) reads the clock
twice, finds the project's metrics, counts the request and observes its latency
(``MeasuredRoute``), and counts the statuses of the values it returns (``count_values``). This
times those steps alone, in process, with no server and no store: 1 entity and 100 entities of
the benchmarks' 10 features. Medians of 7 repeats, in microseconds per request.

    .venv/bin/python bench/metrics_overhead.py
"""

from __future__ import annotations

import os
import time
import timeit
from types import SimpleNamespace
from typing import Any, cast

from starlette.requests import Request

from datamart.metrics import ProjectMetrics, _observe
from featurestore.lookup import FeatureStatus
from featurestore.store import FeatureStore

FEATURES = [f"f{i}" for i in range(10)]


def _median_us(stmt: Any, number: int) -> float:
    runs = sorted(timeit.repeat(stmt, number=number, repeat=7))
    return runs[len(runs) // 2] / number * 1e6


def main() -> None:
    # ProjectMetrics reads only the project's name and keeps its registry for scrapes (none here).
    metrics = ProjectMetrics(cast(FeatureStore, SimpleNamespace(project="bench", registry=None)))
    app = SimpleNamespace(state=SimpleNamespace(metrics={"bench": metrics}, default_metrics=metrics))
    request = Request({"type": "http", "app": app, "path_params": {}, "state": {"metric_target": "bench_service"}})
    one = {f: [FeatureStatus.PRESENT] for f in FEATURES}
    hundred = {f: [FeatureStatus.PRESENT] * 90 + [FeatureStatus.MISSING] * 10 for f in FEATURES}
    started = time.perf_counter()

    rows = [
        (
            "request counted and timed (MeasuredRoute)",
            _median_us(lambda: _observe(request, "online", 200, started), 100_000),
        ),
        (
            "value statuses, 1 entity x 10 features",
            _median_us(lambda: metrics.count_values("bench_service", one), 100_000),
        ),
        (
            "value statuses, 100 entities x 10 features",
            _median_us(lambda: metrics.count_values("bench_service", hundred), 20_000),
        ),
    ]
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, us in rows:
        print(f"{name:<45} {us:6.2f} us")
    print(f"{'per 1-entity lookup':<45} {rows[0][1] + rows[1][1]:6.2f} us")
    print(f"{'per 100-entity lookup':<45} {rows[0][1] + rows[2][1]:6.2f} us")


if __name__ == "__main__":
    main()
