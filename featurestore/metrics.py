"""What the registry knows, as Prometheus metrics: runs, rows published, freshness, consistency.

Runs, watermarks and consistency checks are written by other processes (the CLI, a scheduler),
so these figures are read from the registry when Prometheus scrapes, not counted in the process
that serves them: :class:`RegistryCollector` is a custom collector for a
``prometheus_client.CollectorRegistry``. It reads at most every ``cache_seconds`` (four queries,
summed in the database whatever the length of the history), so scrapes stay cheap; the freshness
lag is computed at each scrape from the cached watermark. The datamart serves it on ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from featurestore.registry import Registry
from featurestore.registry.records import ConsistencyCheckRecord, RunTotals

log = logging.getLogger(__name__)

RUN_DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600)
"""Seconds: a run of the embedded engine takes seconds, a backfill on Spark hours."""
DEFAULT_CACHE_SECONDS = 5.0
"""How long a scrape's registry reads serve the next scrapes (Prometheus scrapes every 15 to 60 s)."""


@dataclass(frozen=True)
class _Snapshot:
    runs: Sequence[RunTotals]
    watermarks: dict[str, datetime]
    checks: Sequence[ConsistencyCheckRecord]
    freshness: dict[str, float]


class RegistryCollector:
    """The metrics of one project read from its registry (see the module docs), each labelled by
    ``project`` and ``view``. A registry that cannot be read gives ``featurestore_registry_up 0``
    and no other figure, rather than failing the whole scrape."""

    def __init__(
        self,
        registry: Registry,
        project: str,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._project = project
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._read_at = -1e18  # time.monotonic() of the last registry read

    def _read(self) -> _Snapshot:
        with self._lock:  # concurrent scrapes: one reads, the others wait for its result
            if self._snapshot is None or time.monotonic() - self._read_at > self._cache_seconds:
                self._snapshot = _Snapshot(
                    runs=self._registry.run_totals(self._project, RUN_DURATION_BUCKETS),
                    watermarks=self._registry.watermarks(self._project),
                    checks=self._registry.last_consistency_checks(self._project),
                    freshness={
                        v.name: v.freshness.total_seconds()
                        for v in self._registry.list_feature_views(self._project)
                        if v.freshness is not None
                    },
                )
                self._read_at = time.monotonic()
            return self._snapshot

    def describe(self) -> Iterator[Metric]:
        """The families this collector yields (no samples): lets a ``CollectorRegistry`` refuse a
        second collector with the same names."""
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        project = self._project
        up = GaugeMetricFamily(
            "featurestore_registry_up", "1 when the registry answered the last read, else 0.", labels=["project"]
        )
        try:
            snapshot = self._read()
        except Exception as err:  # a store error or any driver's: a scrape must not fail on it
            log.warning("metrics: reading the registry of project '%s' failed: %s", project, err)
            up.add_metric([project], 0)
            yield up
            return
        up.add_metric([project], 1)
        yield up
        (runs, in_progress, duration, rows, watermark, lag, objective, mismatches, checked, checked_at) = _families()
        for t in snapshot.runs:
            if t.status == "running":
                in_progress.add_metric([project, t.view], t.runs)
                continue
            runs.add_metric([project, t.view, t.status], t.runs)
            buckets = [(_bound(b), n) for b, n in t.buckets] + [("+Inf", t.runs)]
            duration.add_metric([project, t.view, t.status], buckets, t.duration_seconds)
            if t.status == "succeeded":
                rows.add_metric([project, t.view, "offline"], t.rows_offline)
                rows.add_metric([project, t.view, "online"], t.rows_online)
        now = self._clock()
        for view, at in sorted(snapshot.watermarks.items()):
            watermark.add_metric([project, view], at.timestamp())
            lag.add_metric([project, view], max(0.0, now - at.timestamp()))
        for view, seconds in sorted(snapshot.freshness.items()):
            objective.add_metric([project, view], seconds)
        for c in snapshot.checks:
            for kind in ("mismatched", "missing", "extra"):
                mismatches.add_metric([project, c.view, kind], getattr(c, kind))
            checked.add_metric([project, c.view], c.checked)
            checked_at.add_metric([project, c.view], c.checked_at.timestamp())
        yield from (runs, in_progress, duration, rows, watermark, lag, objective, mismatches, checked, checked_at)


def _bound(seconds: float) -> str:
    return repr(float(seconds))


def _families() -> tuple[
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    CounterMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
]:
    view = ["project", "view"]
    return (
        CounterMetricFamily(
            "featurestore_runs",
            "Finished runs of a feature view, by outcome (succeeded, failed, abandoned).",
            labels=[*view, "status"],
        ),
        GaugeMetricFamily("featurestore_runs_in_progress", "Runs of a feature view recorded as running.", labels=view),
        HistogramMetricFamily(
            "featurestore_run_duration_seconds",
            "How long finished runs of a feature view took, by outcome.",
            labels=[*view, "status"],
        ),
        CounterMetricFamily(
            "featurestore_rows_published",
            "Rows successful runs published: offline (rows written to the view's partitions) and online "
            "(entities derived online).",
            labels=[*view, "store"],
        ),
        GaugeMetricFamily(
            "featurestore_watermark_timestamp_seconds",
            "The newest event time a successful run of the view published (Unix time).",
            labels=view,
        ),
        GaugeMetricFamily(
            "featurestore_freshness_lag_seconds",
            "Now minus the view's published watermark: how old its newest published data is.",
            labels=view,
        ),
        GaugeMetricFamily(
            "featurestore_freshness_objective_seconds",
            "The view's declared freshness: a lag beyond it is stale (views that declare one).",
            labels=view,
        ),
        GaugeMetricFamily(
            "featurestore_consistency_mismatches",
            "Entities the view's last consistency check found differing between online and offline, by kind: "
            "mismatched (a value or event time differs), missing (not online), extra (online only).",
            labels=[*view, "kind"],
        ),
        GaugeMetricFamily(
            "featurestore_consistency_checked_entities",
            "Entities the view's last consistency check compared.",
            labels=view,
        ),
        GaugeMetricFamily(
            "featurestore_consistency_last_check_timestamp_seconds",
            "When the view's last consistency check ran (Unix time).",
            labels=view,
        ),
    )
