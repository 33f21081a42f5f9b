"""The quality gate and run statistics on a run's files (the embedded engine's output), in DuckDB.

The embedded engine leaves what it computed as one Parquet file per date
(:class:`~featurestore.frames.DayFiles`); this backend reads them with DuckDB instead of loading
them, so the gate's memory does not grow with the run. An Arrow table is accepted too.

The built-in expectations have the meaning :mod:`quality.gate` (Great Expectations on pandas)
and :mod:`quality.spark` give them, and ``tests/quality`` checks the three agree: nulls (and
NaN) are not checked by ``InRange``, ``InSet`` and ``MatchesRegex``; ``NotNull`` counts NaN as
missing; ``UniqueKeys`` fails every row of a repeated (keys, event time) (files the engine wrote
hold none: it keeps one row of each, so the check is known to pass); ``Fresh`` compares the
newest event time with reference time - max_age. All SQL checks are one aggregation over the
files; ``MatchesRegex`` is evaluated with Python's ``re.search`` (as Great Expectations on pandas
does; DuckDB's RE2 differs on some patterns), a batch of its column at a time. Examples of
failing rows are the first ones in the files' order. :class:`GxExpectation` s go through Great
Expectations on the rows loaded into memory: only a view that declares one pays for it.

Statistics: one DuckDB aggregation for the counts (values, distinct values, a timestamp's min
and max), done by the gate's own scan when the gate checked the same files (kept for
:func:`statistics`, which then does not scan again); the numeric features' count, mean, sample
stddev of the finite values and histograms (:func:`quality.statistics.bucket_counts`, the bins
that module defines) and the drift against the previous run's histogram in numpy, the files a
date at a time, their min and max from the files' Parquet statistics; a run begins these sums in a
thread of their own while the gate scans the files (:func:`start_statistics`). Distinct values are counted exactly up to
:data:`EXACT_DISTINCT_ROWS` rows, and above with DuckDB's HyperLogLog (``approx_count_distinct``):
relative error measured within ±6 % (standard deviation ~2.5 %), where an exact count of ten
float columns cost ~40 % of a 10M-row run; ``distinct_approximate`` says which.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.definitions import FeatureView
from featurestore.expectations import (
    Expectation,
    Fresh,
    GxExpectation,
    InRange,
    InSet,
    MatchesRegex,
    NotNull,
    RowCount,
    UniqueKeys,
)
from featurestore.frames import DayFiles
from featurestore.schema import view_schema
from featurestore.sql import cursor
from featurestore.sql import literal as sql_literal
from featurestore.sql import quote as _quote
from featurestore.types import ValueType
from quality.report import (
    DEFAULT_EXAMPLES,
    ExpectationResult,
    QualityReport,
    example_columns,
    json_value,
    reference_time_for,
)
from quality.statistics import (
    DEFAULT_BINS,
    DEFAULT_PSI_THRESHOLD,
    bucket_counts,
    histogram_edges,
    is_numeric,
    with_drift,
)

__all__ = [
    "PendingStatistics",
    "needs_gx",
    "quarantinable",
    "reference_time_for",
    "split",
    "start_statistics",
    "statistics",
    "validate",
]

log = logging.getLogger(__name__)

EXACT_DISTINCT_ROWS = 100_000
"""Up to this many rows, distinct values are counted exactly; above, approximately."""

_SQL_CHECKS = (NotNull, InRange, InSet)
_ROW_LEVEL = (NotNull, InRange, InSet, MatchesRegex, UniqueKeys)
Frame: TypeAlias = DayFiles | pa.Table


def needs_gx(view: FeatureView) -> bool:
    """Whether validating the view needs Great Expectations: only for :class:`GxExpectation` s."""
    return any(isinstance(e, GxExpectation) for e in view.expectations)


def _rows(frame: Frame) -> int:
    return frame.rows if isinstance(frame, DayFiles) else frame.num_rows


@contextmanager
def _source(view: FeatureView, frame: Frame) -> Iterator[tuple[Any, str]]:
    """A DuckDB cursor and the table expression reading ``frame``."""
    con = cursor()
    try:
        if isinstance(frame, DayFiles) and frame.files:
            yield con, frame.sql()
        else:
            table = frame if isinstance(frame, pa.Table) else view_schema(view).empty_table()
            con.register("__frame", table)
            yield con, "__frame"
    finally:
        con.close()


def _floating(view: FeatureView, column: str) -> bool:
    return column in {f.name for f in view.features if f.dtype is ValueType.FLOAT64}


def _literal(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"'{value}'::DOUBLE"
    return sql_literal(value)


def _failing_sql(view: FeatureView, expectation: Expectation) -> str:
    """A SQL condition true for the rows that fail ``expectation`` (``NotNull``, ``InRange``, ``InSet``)."""
    assert isinstance(expectation, NotNull | InRange | InSet)
    c = _quote(expectation.column)
    missing = f"({c} IS NULL OR isnan({c}))" if _floating(view, expectation.column) else f"({c} IS NULL)"
    if isinstance(expectation, NotNull):
        return missing
    if isinstance(expectation, InRange):
        outside = []
        if expectation.min is not None:
            outside.append(f"{c} {'<=' if expectation.strict_min else '<'} {_literal(expectation.min)}")
        if expectation.max is not None:
            outside.append(f"{c} {'>=' if expectation.strict_max else '>'} {_literal(expectation.max)}")
        return f"(NOT {missing} AND ({' OR '.join(outside) or 'FALSE'}))"
    values = ", ".join(_literal(v) for v in expectation.values)
    return f"(NOT {missing} AND {c} NOT IN ({values}))"


def _batches(view: FeatureView, frame: Frame, columns: list[str]) -> Iterator[pa.Table]:
    """``frame``'s ``columns`` a batch at a time, in order."""
    if isinstance(frame, pa.Table):
        yield frame.select(columns)
        return
    for path in frame.paths:  # a date at a time
        yield pq.ParquetFile(path).read(columns=columns)  # not pq.read_table: its dataset module imports pandas


def _regex_failures(
    view: FeatureView, frame: Frame, expectation: MatchesRegex, examples: int
) -> tuple[int, list[dict[str, Any]]]:
    """Rows whose non-null value has no match of the pattern (``re.search``), and the first ones."""
    pattern = re.compile(expectation.pattern)
    cols = example_columns(view, expectation, view_schema(view).names)
    failed, shown = 0, list[dict[str, Any]]()
    for table in _batches(view, frame, cols):
        values = table.column(expectation.column).to_pylist()
        positions = [i for i, v in enumerate(values) if v is not None and pattern.search(str(v)) is None]
        failed += len(positions)
        if positions and len(shown) < examples:
            shown += table.take(pa.array(positions[: examples - len(shown)], pa.int64())).to_pylist()
    return failed, shown


def _regex_mask(view: FeatureView, table: pa.Table, expectation: MatchesRegex) -> pa.Array:
    pattern = re.compile(expectation.pattern)
    values = table.column(expectation.column).to_pylist()
    return pa.array([v is not None and pattern.search(str(v)) is None for v in values], pa.bool_())


def _duplicates(con: Any, view: FeatureView, source: str) -> int:
    keys = ", ".join(_quote(k) for k in (*view.join_keys, view.timestamp_field))
    row = con.execute(
        f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {source} GROUP BY {keys}) WHERE n > 1"
    ).fetchall()[0]
    return int(row[0]) if row else 0


def validate(
    view: FeatureView,
    frame: Frame,
    *,
    reference_time: datetime | None = None,
    examples: int = DEFAULT_EXAMPLES,
) -> QualityReport:
    """Check ``frame`` (the view's computed rows: date files or an Arrow table) against the
    view's expectations and report every result; nothing is raised for failures."""
    reference_time = reference_time or datetime.now(UTC)
    checked_at = datetime.now(UTC)
    checks = view.expectations
    rows = _rows(frame)
    results: dict[int, ExpectationResult] = {}
    with _source(view, frame) as (con, source):
        aggregates = ["count(*)"]
        positions = {}
        for i, e in enumerate(checks):
            if isinstance(e, _SQL_CHECKS):
                positions[i] = len(aggregates)
                aggregates.append(f"count(*) FILTER (WHERE {_failing_sql(view, e)})")
        fresh_at = len(aggregates)
        aggregates.append(f"max({_quote(view.timestamp_field)})")
        # The statistics' counts ride along (one scan of the files instead of two); kept for
        # :func:`statistics` of the same files, which follows when the gate passes.
        counts_at = len(aggregates)
        counted = isinstance(frame, DayFiles) and bool(frame.files)
        if counted:
            aggregates += _count_aggregates(view, rows)
        figures = con.execute(f"SELECT {', '.join(aggregates)} FROM {source}").fetchall()[0]
        assert figures is not None
        if counted:
            _keep_counts(frame, (figures[0], *figures[counts_at:]))
        rows = int(figures[0])
        newest = figures[fresh_at]
        for i, e in enumerate(checks):
            common: dict[str, Any] = {
                "expectation": e.describe(),
                "kind": e.kind,
                "severity": e.severity,
                "spec": e.to_spec(),
                "rows_checked": rows,
            }
            if isinstance(e, _ROW_LEVEL):
                shown: list[dict[str, Any]] = []
                if isinstance(e, MatchesRegex):
                    failed, shown = _regex_failures(view, frame, e, examples)
                elif isinstance(e, UniqueKeys):
                    failed = 0 if isinstance(frame, DayFiles) and frame.unique else _duplicates(con, view, source)
                    if failed and examples:
                        keys = ", ".join(_quote(k) for k in (*view.join_keys, view.timestamp_field))
                        cols = ", ".join(_quote(c) for c in example_columns(view, e, view_schema(view).names))
                        shown = (
                            con.sql(
                                f"SELECT {cols} FROM {source} QUALIFY count(*) OVER (PARTITION BY {keys}) > 1 "
                                f"LIMIT {int(examples)}"
                            )
                            .to_arrow_table()
                            .to_pylist()
                        )
                else:
                    failed = int(figures[positions[i]])
                    if failed and examples:
                        cols = ", ".join(_quote(c) for c in example_columns(view, e, view_schema(view).names))
                        condition = _failing_sql(view, e)
                        shown = (
                            con.sql(f"SELECT {cols} FROM {source} WHERE {condition} LIMIT {int(examples)}")
                            .to_arrow_table()
                            .to_pylist()
                        )
                results[i] = ExpectationResult(
                    success=failed == 0, failed_rows=failed, examples=tuple(shown[:examples]), **common
                )
            elif isinstance(e, RowCount):
                ok = (e.min is None or rows >= e.min) and (e.max is None or rows <= e.max)
                results[i] = ExpectationResult(success=ok, observed=rows, **common)
            elif isinstance(e, Fresh):
                when = _aware(newest)
                ok = when is not None and when >= reference_time - e.max_age
                results[i] = ExpectationResult(success=ok, observed=json_value(when), **common)
    results.update(_gx_results(view, frame, checks, reference_time, examples))
    return QualityReport(
        view=view.name,
        rows=rows,
        engine="duckdb",
        checked_at=checked_at,
        reference_time=reference_time,
        results=tuple(results[i] for i in range(len(checks))),
    )


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    when: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return when


def _gx_results(
    view: FeatureView, frame: Frame, checks: Sequence[Expectation], reference_time: datetime, examples: int
) -> dict[int, ExpectationResult]:
    """Results of the :class:`GxExpectation` s, by position: Great Expectations on the rows in memory."""
    positions = [i for i, e in enumerate(checks) if isinstance(e, GxExpectation)]
    if not positions:
        return {}
    from quality.gate import _result, _run_suite

    table = _table(view, frame)
    selected = [checks[i] for i in positions]
    raw = _run_suite(view, table, selected, reference_time, {"result_format": "SUMMARY"}, examples)
    return {i: _result(view, e, r, table, examples) for i, e, r in zip(positions, selected, raw, strict=True)}


def _table(view: FeatureView, frame: Frame) -> pa.Table:
    return frame if isinstance(frame, pa.Table) else frame.read(view_schema(view))


def quarantinable(report: QualityReport) -> bool:
    """Whether every blocking failure names its failing rows, so that setting those rows aside
    leaves rows that may be published (a row count or freshness failure names none)."""
    blocking = [r for r in report.results if not r.success and r.severity == "block"]
    return bool(blocking) and all(r.row_level for r in blocking)


def split(
    view: FeatureView, frame: Frame, report: QualityReport, *, reference_time: datetime
) -> tuple[Frame, pa.Table, dict[str, int]]:
    """The rows passing every failed blocking row-level expectation of ``report`` (date files
    again, beside the frame's), the rows failing one or more, and how many rows each failed."""
    failed = [
        e
        for e, r in zip(view.expectations, report.results, strict=True)
        if not r.success and r.severity == "block" and r.row_level
    ]
    if any(isinstance(e, GxExpectation) for e in failed):
        # Great Expectations names the failing rows' positions in the rows in memory.
        from quality import gate

        good_table, bad, counts = gate.split(view, _table(view, frame), report, reference_time=reference_time)
        return _like(view, frame, good_table), bad, counts
    counts = {r.expectation: int(r.failed_rows or 0) for r in report.results if not r.success}
    counts = {e.describe(): counts.get(e.describe(), 0) for e in failed}
    if not isinstance(frame, DayFiles):
        mask = _mask(view, frame, failed)
        return frame.filter(pc.invert(mask)), frame.filter(mask), counts
    good: dict[str, Path] = {}
    bad_parts = []
    schema = view_schema(view)
    for day, path in sorted(frame.files.items()):
        table = pq.ParquetFile(path).read().cast(schema)  # a day at a time
        mask = _mask(view, table, failed)
        target = path.with_name(f"{day}.passed.parquet")
        pq.write_table(table.filter(pc.invert(mask)), target)
        good[day] = target
        bad_parts.append(table.filter(mask))
    rows = sum(pq.read_metadata(p).num_rows for p in good.values())
    bad_rows = pa.concat_tables(bad_parts) if bad_parts else schema.empty_table()
    return DayFiles(files=good, rows=rows, unique=frame.unique), bad_rows, counts


def _mask(view: FeatureView, table: pa.Table, failed: Sequence[Expectation]) -> pa.Array:
    """Rows of ``table`` failing any of ``failed`` (row-level built-ins)."""
    mask = pa.array([False] * table.num_rows, pa.bool_())
    sql: list[Expectation] = [e for e in failed if isinstance(e, (*_SQL_CHECKS, UniqueKeys))]
    if sql:
        con = cursor()
        try:
            con.register("__rows", table)
            parts = []
            for e in sql:
                if isinstance(e, UniqueKeys):
                    keys = ", ".join(_quote(k) for k in (*view.join_keys, view.timestamp_field))
                    parts.append(f"(count(*) OVER (PARTITION BY {keys}) > 1)")
                else:
                    parts.append(_failing_sql(view, e))
            # Positions kept so the window cannot reorder the rows.
            out = con.sql(
                f"SELECT ({' OR '.join(parts)}) AS failing FROM "
                f"(SELECT *, row_number() OVER () AS __i FROM __rows) ORDER BY __i"
            ).to_arrow_table()
        finally:
            con.close()
        mask = pc.or_(mask, pc.fill_null(out.column("failing").combine_chunks(), False))
    for e in failed:
        if isinstance(e, MatchesRegex):
            mask = pc.or_(mask, _regex_mask(view, table, e))
    return mask


def _like(view: FeatureView, frame: Frame, table: pa.Table) -> Frame:
    """``table`` in ``frame``'s form: date files beside the frame's, or the table."""
    if not isinstance(frame, DayFiles) or not frame.files:
        return table
    folder = frame.paths[0].parent
    days = pc.strftime(table.column(view.timestamp_field), format="%Y-%m-%d", locale="C")
    files: dict[str, Path] = {}
    for day in sorted(set(days.to_pylist())):
        target = folder / f"{day}.passed.parquet"
        pq.write_table(table.filter(pc.equal(days, day)), target)
        files[day] = target
    return DayFiles(files=files, rows=table.num_rows, unique=frame.unique)


def statistics(
    view: FeatureView,
    frame: Frame,
    *,
    previous: Mapping[str, Any] | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> dict[str, dict[str, Any]]:
    """Per-feature statistics of the rows a run publishes (see :mod:`quality.statistics`)."""
    return start_statistics(view, frame, previous=previous, psi_threshold=psi_threshold, bins=bins).result()


class PendingStatistics:
    """:func:`statistics` begun by :func:`start_statistics`: the numeric features' moments and
    histograms are summed up in a thread of their own (pyarrow reads the files, numpy sums;
    both release the GIL) while the caller runs the quality gate's DuckDB scan of the same
    files. :meth:`result` waits for them and adds the counts (the gate's, else a scan of its
    own); :meth:`discard` waits and drops them (the gate failed, or set rows aside)."""

    def __init__(
        self,
        view: FeatureView,
        frame: Frame,
        previous: Mapping[str, Any] | None,
        psi_threshold: float,
        bins: int,
    ) -> None:
        self.view, self.frame, self.previous = view, frame, previous
        self.psi_threshold, self.bins = psi_threshold, bins
        numeric = [f for f in view.features if is_numeric(f)]
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statistics")
        self._moments = self._pool.submit(_numeric_moments, view, frame, numeric, previous, bins, self._stop)
        self._pool.shutdown(wait=False)  # the thread ends with its one task

    def discard(self) -> None:
        """Stop the thread at its next batch, wait for it (it reads the frame's files: a run
        that failed or was interrupted must not leave it reading) and drop what it summed up."""
        self._stop.set()
        try:
            self._moments.result()
        except Exception:  # the statistics are not wanted: their error is not the run's
            log.debug("feature view '%s': discarded statistics failed", self.view.name, exc_info=True)

    def result(self) -> dict[str, dict[str, Any]]:
        """The statistics (a failure in the thread is raised here)."""
        try:
            return _assemble(self.view, self.frame, self._moments, self.previous, self.psi_threshold)
        except BaseException:
            self.discard()
            raise


def start_statistics(
    view: FeatureView,
    frame: Frame,
    *,
    previous: Mapping[str, Any] | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> PendingStatistics:
    """:func:`statistics` begun in a thread, to overlap the gate's :func:`validate` of the same
    frame (see :class:`PendingStatistics`)."""
    return PendingStatistics(view, frame, previous, psi_threshold, bins)


def _assemble(
    view: FeatureView,
    frame: Frame,
    pending_moments: Future[dict[str, _Moments]],
    previous: Mapping[str, Any] | None,
    psi_threshold: float,
) -> dict[str, dict[str, Any]]:
    """The statistics of ``frame`` from its counts and the numeric moments summed up in the thread."""
    rows = _rows(frame)
    approximate = rows > EXACT_DISTINCT_ROWS
    kept = _kept_counts(frame)
    if kept is not None:
        figures = kept
    else:  # DuckDB counts (its own threads, the GIL released) while the thread sums up the numbers
        aggregates = ["count(*)", *_count_aggregates(view, rows)]
        with _source(view, frame) as (con, source):
            figures = tuple(con.execute(f"SELECT {', '.join(aggregates)} FROM {source}").fetchall()[0])
    moments = pending_moments.result()
    rows = int(figures[0])
    cells: dict[str, tuple[Any, ...]] = {}
    at = 1
    for f in view.features:
        width = 4 if f.dtype is ValueType.TIMESTAMP else 2
        cells[f.name] = figures[at : at + width]
        at += width
    out: dict[str, dict[str, Any]] = {}
    for f in view.features:
        valid, distinct = int(cells[f.name][0]), int(cells[f.name][1] or 0)
        stats: dict[str, Any] = {
            "dtype": f.dtype.value,
            "count": rows,
            "null_fraction": (rows - valid) / rows if rows else None,
            "distinct": distinct,
            "distinct_approximate": approximate,
            "min": None,
            "max": None,
            "mean": None,
            "stddev": None,
            "histogram": None,
            "psi": None,
            "drift": None,
        }
        m = moments.get(f.name)
        if m is not None:
            stats["null_fraction"] = m.nulls / rows if rows else None
            if m.n:
                stats.update(
                    min=m.low,
                    max=m.high,
                    mean=m.mean,
                    stddev=math.sqrt(m.m2 / (m.n - 1)) if m.n > 1 else None,
                    histogram={"edges": m.edges, "counts": [int(c) for c in m.counts]},
                )
                if m.previous_edges is not None:
                    stats = with_drift(
                        stats,
                        (previous or {}).get(f.name),
                        lambda _, m=m: [int(c) for c in m.previous_counts],
                        psi_threshold,
                    )
        elif f.dtype is ValueType.TIMESTAMP:
            low, high = _aware(cells[f.name][2]), _aware(cells[f.name][3])
            stats.update(min=None if low is None else low.isoformat(), max=None if high is None else high.isoformat())
        out[f.name] = stats
    return out


def _count_aggregates(view: FeatureView, rows: int) -> list[str]:
    """The statistics' SQL aggregates per feature: values, distinct values (approximate above
    :data:`EXACT_DISTINCT_ROWS` rows), and a timestamp's min and max."""
    out = []
    for f in view.features:
        c = _quote(f.name)
        distinct = f"approx_count_distinct({c})" if rows > EXACT_DISTINCT_ROWS else f"count(DISTINCT {c})"
        out += [f"count({c})", distinct]
        if f.dtype is ValueType.TIMESTAMP:
            out += [f"min({c})", f"max({c})"]
    return out


_counted: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_counted_lock = threading.Lock()


def _files_key(frame: DayFiles) -> tuple[Any, ...]:
    """The files as they are: paths, sizes and modification times (a file written again differs)."""
    stats = [p.stat() for p in frame.paths]
    return frame.rows, *((str(p), st.st_size, st.st_mtime_ns) for p, st in zip(frame.paths, stats, strict=True))


def _keep_counts(frame: DayFiles, figures: tuple[Any, ...]) -> None:
    """The statistics' counts of ``frame``'s files, computed by the gate's scan; one run's files
    are written once and read by the gate, then by the statistics."""
    with _counted_lock:
        if len(_counted) > 16:  # runs whose gate failed leave theirs: keep the memory bounded
            _counted.clear()
        _counted[_files_key(frame)] = figures


def _kept_counts(frame: Frame) -> tuple[Any, ...] | None:
    if not isinstance(frame, DayFiles) or not frame.files:
        return None
    with _counted_lock:
        return _counted.pop(_files_key(frame), None)


class _Moments:
    """A numeric feature's finite values summed up a batch at a time: count, min, max, mean and
    sum of squared deviations (merged by Chan et al.'s formula), nulls, and histogram counts."""

    def __init__(self, low: float, high: float, bins: int, previous_edges: list[float] | None) -> None:
        self.low, self.high = low, high
        self.edges = histogram_edges(low, high, bins)
        self.previous_edges = previous_edges
        self.n, self.mean, self.m2, self.nulls = 0, 0.0, 0.0, 0
        self.counts = np.zeros(bins, np.int64)
        self.previous_counts = np.zeros(len(previous_edges) - 1 if previous_edges else 0, np.int64)

    def add(self, values: Any, nulls: int) -> None:
        self.nulls += nulls
        if len(values) == 0:
            return
        n, mean = len(values), float(values.mean())
        deviations = values - mean
        # Squared and summed by numpy's own loops, not ``deviations @ deviations``: that is
        # OpenBLAS's threaded dot, whose threads hand off per call; with DuckDB's threads on a
        # busy 2-core machine one call of 33k values took 7-23 ms instead of ~30 us (6.9 s of a
        # 1M-row run's statistics).
        m2 = float(np.square(deviations, out=deviations).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.counts += bucket_counts(values, self.edges)
        if self.previous_edges is not None:
            self.previous_counts += bucket_counts(values, self.previous_edges)


def _float64(column: pa.ChunkedArray | pa.Array) -> Any:
    """A float64 column without nulls as a numpy array, from its buffer (Arrow's ``to_numpy``
    imports pandas, ~0.35 s, which a run otherwise never needs)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return np.empty(0, dtype=np.float64)
    return np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8)


def _finite_values(column: pa.ChunkedArray | pa.Array) -> tuple[Any, int]:
    """A numeric column's finite values as float64 (booleans as 0/1), and its nulls (NaN included)."""
    if pa.types.is_boolean(column.type):
        column = pc.cast(column, pa.int8())
    nulls = column.null_count
    values = _float64(pc.cast(column.drop_null() if nulls else column, pa.float64(), safe=False))
    finite = np.isfinite(values)
    if not finite.all():
        nulls += int(np.isnan(values).sum())
        values = values[finite]
    return values, nulls


def _numeric_moments(
    view: FeatureView,
    frame: Frame,
    numeric: Sequence[Any],
    previous: Mapping[str, Any] | None,
    bins: int,
    stop: threading.Event | None = None,
) -> dict[str, _Moments]:
    """Moments and histograms of the numeric features, in one pass over ``frame`` a batch at a
    time (the bins need each feature's min and max first: the files' Parquet statistics give
    them, or a first pass when those are missing or not finite). ``stop`` set: abandoned
    (:class:`_Stopped`) before the next batch."""
    names = [f.name for f in numeric]
    if not names:
        return {}
    bounds = _bounds(frame, names)
    if any(b is None for b in bounds.values()):
        bounds = {}
        for table in _batches(view, frame, names):
            _check(stop)
            for name in names:
                values, _ = _finite_values(table.column(name))
                if len(values):
                    low, high = float(values.min()), float(values.max())
                    got = bounds.get(name)
                    bounds[name] = (low, high) if got is None else (min(got[0], low), max(got[1], high))
    out: dict[str, _Moments] = {}
    for name in names:
        prev = ((previous or {}).get(name) or {}).get("histogram")
        prev_edges = [float(e) for e in prev["edges"]] if prev and prev.get("edges") else None
        low, high = bounds.get(name) or (0.0, 0.0)
        out[name] = _Moments(low, high, bins, prev_edges)
    # One column after the other in this thread: the sums cost ~0.1 s per 10M values (pyarrow's
    # reading, threaded, costs more), and a thread pool's hand-offs per date and column cost far
    # more than that on a busy machine (statistics of 1M rows took 22 s at load 20 with one).
    for table in _batches(view, frame, names):
        _check(stop)
        for name in names:
            out[name].add(*_finite_values(table.column(name)))
    return out


class _Stopped(Exception):
    """Statistics abandoned: :meth:`PendingStatistics.discard` asked the thread to stop."""


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise _Stopped


def _bounds(frame: Frame, names: list[str]) -> dict[str, tuple[float, float] | None]:
    """Each column's min and max from the files' Parquet statistics; None for a column whose
    statistics are missing in some row group, or not finite (infinities are left out of the
    statistics' min and max, so they must be read)."""
    out: dict[str, tuple[float, float] | None] = {}
    if not isinstance(frame, DayFiles):
        return {n: None for n in names}
    for path in frame.paths:
        meta = pq.read_metadata(path)
        index = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for name in names:
                if name in out and out[name] is None:
                    continue
                stats = group.column(index[name]).statistics
                if group.num_rows == 0:
                    continue
                if stats is not None and stats.has_null_count and stats.null_count == group.num_rows:
                    continue  # only nulls: no bound
                if stats is None or not stats.has_min_max:
                    out[name] = None
                    continue
                # + 0.0: Parquet writers store -0.0 as the min of a group holding 0.0.
                low, high = float(stats.min) + 0.0, float(stats.max) + 0.0
                if not (math.isfinite(low) and math.isfinite(high)):
                    out[name] = None
                    continue
                got = out.get(name)
                out[name] = (low, high) if got is None else (min(got[0], low), max(got[1], high))
    return {n: out.get(n, (0.0, 0.0)) for n in names}  # a column of nulls only has no values to bin
