"""What an engine calls between computing a run and publishing it: :func:`check_run`.

1. Validate the computed frame against the view's expectations with the engine's backend
   (:mod:`quality.files` for the embedded engine's date files, read with DuckDB;
   :mod:`quality.gate` for Arrow tables, on Great Expectations; :mod:`quality.spark` for Spark
   DataFrames).
2. On a blocking failure: when quarantine is on (``quality.quarantine`` in the project file, or
   the run's own flag) and every blocking failure names its rows, set those rows aside in
   ``<offline store>/_quarantine/<view>/<run id>.parquet`` and check the rows left again;
   otherwise, or if the rows left still fail, record the report and raise
   :class:`QualityCheckFailedError`: the engine then publishes nothing.
3. Compute the statistics of the rows to publish, with drift against the view's previous
   successful run, and record report and statistics in the registry under the run's id.

The quarantine file is written before the run publishes; if the run then fails (an online store
down, say), the file stays, named by the failed run's id, for inspection.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.definitions import FeatureView
from featurestore.errors import QualityCheckFailedError
from featurestore.store import FeatureStore
from featurestore.validation import import_great_expectations
from quality.report import QualityReport, QuarantineInfo

log = logging.getLogger(__name__)

QUARANTINE_DIR = "_quarantine"


@dataclass(frozen=True)
class CheckedFrame:
    """The rows a run may publish (an Arrow table, or a Spark DataFrame on Spark), with the
    quality report and the statistics recorded for the run."""

    frame: Any
    rows_computed: int
    rows_quarantined: int
    report: QualityReport
    statistics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


BACKENDS = {"arrow": "quality.gate", "files": "quality.files", "spark": "quality.spark"}
"""The gate's backends, by the name an engine declares (``Engine.quality_backend``)."""


def quarantine_path(store: FeatureStore, view: FeatureView, run_id: str) -> Path:
    """Where a run's quarantined rows go: beside the views in the offline store's folder."""
    root = store.config.resolve(store.config.offline_store.path)
    return root / QUARANTINE_DIR / view.name / f"{run_id}.parquet"


def check_run(
    store: FeatureStore,
    view: FeatureView,
    frame: Any,
    *,
    run_id: str,
    end: datetime | None = None,
    quarantine: bool | None = None,
    backend: str = "arrow",
) -> CheckedFrame:
    """Validate a run's computed ``frame`` (Arrow table or Spark DataFrame), quarantine failing
    rows if asked to, compute statistics and record both under ``run_id``; raise
    :class:`QualityCheckFailedError` (after recording the report) when the run must not publish.
    ``end`` is the run's window end (freshness is judged at it); ``quarantine`` overrides the
    project's ``quality.quarantine``; ``backend`` is the engine's (see :data:`BACKENDS`)."""
    config = store.config.quality
    quarantine = config.quarantine if quarantine is None else quarantine
    if backend not in BACKENDS:
        raise ValueError(f"unknown quality backend {backend!r}; one of {sorted(BACKENDS)}")
    spark = backend == "spark"
    timings: dict[str, float] = {}
    # Both modules offer the same functions: validate, quarantinable, split, statistics.
    engine: ModuleType = importlib.import_module(BACKENDS[backend])
    if engine.needs_gx(view) and "great_expectations" not in sys.modules:
        t0 = time.perf_counter()
        import_great_expectations()  # once per process, 5-9 s: timed apart from the validation
        timings["gx_import_s"] = time.perf_counter() - t0
    previous = store.registry.list_statistics(store.project, view.name, limit=1)
    baseline = previous[0]["statistics"] if previous else None
    options = {"previous": baseline, "psi_threshold": config.psi_threshold, "bins": config.histogram_bins}
    t0 = time.perf_counter()
    # A backend that can (the embedded engine's files) sums up the statistics in a thread while
    # the gate scans the same frame; discarded if the gate fails or sets rows aside.
    start = getattr(engine, "start_statistics", None)
    pending = start(view, frame, **options) if start is not None else None
    checked = frame
    try:
        reference_time = engine.reference_time_for(end)
        report = engine.validate(view, frame, reference_time=reference_time, examples=config.examples)
        rows_computed = report.rows
        rows_quarantined = 0
        if report.blocked and quarantine and engine.quarantinable(report):
            table_or_df = frame if backend != "arrow" else _arrow(frame)
            good, bad, counts = engine.split(view, table_or_df, report, reference_time=reference_time)
            path = quarantine_path(store, view, run_id)
            after = engine.validate(view, good, reference_time=reference_time, examples=config.examples)
            rows_quarantined = rows_computed - after.rows
            report = report.with_quarantine(QuarantineInfo(rows_quarantined, str(path), counts), after)
            if not report.blocked:
                _write_quarantine(bad, path, spark)
                frame = good
    except BaseException:
        if pending is not None:
            pending.discard()
        raise
    timings["validate_s"] = time.perf_counter() - t0
    if pending is not None and (report.blocked or frame is not checked):
        pending.discard()  # of rows that are not published
        pending = None
    if report.blocked:
        store.registry.record_run_quality(run_id, report.to_dict(), {})
        raise QualityCheckFailedError(
            f"Run of feature view '{view.name}' stopped by its quality gate; nothing was published.\n{report.render()}",
            report=report.to_dict(),
        )
    for warning in report.warnings:
        log.warning("feature view '%s': %s", view.name, warning.line().strip())
    if report.quarantine is not None:
        log.warning(
            "feature view '%s': quarantined %d of %d rows to %s",
            view.name,
            rows_quarantined,
            rows_computed,
            report.quarantine.path,
        )
    t0 = time.perf_counter()  # begun beside the gate: what the statistics add after it
    statistics = pending.result() if pending is not None else engine.statistics(view, frame, **options)
    timings["statistics_s"] = time.perf_counter() - t0
    store.registry.record_run_quality(run_id, report.to_dict(), statistics)
    drifting = [f for f, s in statistics.items() if s.get("drift")]
    if drifting:
        log.warning(
            "feature view '%s': drift above PSI %.2f against the previous run in %s",
            view.name,
            config.psi_threshold,
            ", ".join(f"{f} ({statistics[f]['psi']:.3f})" for f in drifting),
        )
    return CheckedFrame(
        frame=frame,
        rows_computed=rows_computed,
        rows_quarantined=rows_quarantined,
        report=report,
        statistics=statistics,
        timings=timings,
    )


def _arrow(frame: Any) -> pa.Table:
    return frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)


def _write_quarantine(rows: Any, path: Path, spark: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if spark:
        rows.write.mode("overwrite").parquet(str(path))
        return
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(rows, tmp)
    os.replace(tmp, path)
