"""The quality gate and run statistics on Spark DataFrames (the Spark engine's output).

The built-in expectations are evaluated with Spark SQL, all in one aggregation over the
DataFrame, with the same semantics as Great Expectations gives them on pandas
(:mod:`quality.gate`): nulls (and NaN) are not checked by ``InRange``, ``InSet`` and
``MatchesRegex``; ``NotNull`` counts NaN as missing; ``UniqueKeys`` fails every row of a
duplicated (keys, event time); ``Fresh`` compares the newest event time with reference time -
max_age. Spark SQL rather than Great Expectations' Spark data source for them: it works with
pyspark 4, but ran the built-ins 5-10x slower on 1M rows (several Spark jobs per expectation)
and does not name the failing rows, which quarantine needs. :class:`GxExpectation` s do go
through Great Expectations' Spark data source (``add_spark``); their failing rows are not
known, so a blocking failure of one cannot be quarantined.

Statistics: one aggregation for counts, nulls, min, max, mean, sample stddev and distinct
values (``approx_count_distinct``, relative error about 5%), then one for the histograms
(cumulative counts at each bin edge, exact, with the same edges and bins as
:mod:`quality.statistics`) and the drift against the previous run's histogram.

Timestamps are read as microseconds since the epoch (``unix_micros``) so that results do not
depend on the Spark session's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
from featurestore.types import ValueType
from featurestore.validation import import_great_expectations
from quality.gate import gx_context, gx_error, run_gx_suite
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
    histogram_edges,
    is_numeric,
    with_drift,
)

__all__ = ["quarantinable", "reference_time_for", "split", "statistics", "validate", "validate_spark"]

_DUPLICATE = "__featurestore_duplicate"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def needs_gx(view: FeatureView) -> bool:
    """Whether validating the view needs Great Expectations: only for :class:`GxExpectation` s."""
    return any(isinstance(e, GxExpectation) for e in view.expectations)


def _from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=int(value))


def _dtype(df: Any, column: str) -> str:
    return str(dict(df.dtypes).get(column, ""))


def _failing(view: FeatureView, expectation: Expectation, df: Any) -> Any:
    """A boolean Spark column: whether a row fails the row-level built-in ``expectation``."""
    from pyspark.sql import functions as F

    if isinstance(expectation, UniqueKeys):
        return F.col(_DUPLICATE)
    if not isinstance(expectation, NotNull | InRange | InSet | MatchesRegex):
        raise TypeError(f"{expectation!r} is not a row-level built-in expectation")
    c = F.col(expectation.column)
    floating = _dtype(df, expectation.column) in ("double", "float")
    missing = (c.isNull() | F.isnan(c)) if floating else c.isNull()
    if isinstance(expectation, NotNull):
        return missing
    if isinstance(expectation, InRange):
        outside = F.lit(False)
        if expectation.min is not None:
            outside = outside | ((c <= expectation.min) if expectation.strict_min else (c < expectation.min))
        if expectation.max is not None:
            outside = outside | ((c >= expectation.max) if expectation.strict_max else (c > expectation.max))
        return ~missing & outside
    if isinstance(expectation, InSet):
        return ~missing & ~c.isin(list(expectation.values))
    return ~missing & ~c.rlike(expectation.pattern)


_ROW_LEVEL = (NotNull, InRange, InSet, MatchesRegex, UniqueKeys)


def _with_duplicates(view: FeatureView, df: Any, checks: Sequence[Expectation]) -> Any:
    if not any(isinstance(e, UniqueKeys) for e in checks):
        return df
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    group = Window.partitionBy(*view.join_keys, view.timestamp_field)
    return df.withColumn(_DUPLICATE, F.count(F.lit(1)).over(group) > 1)


def _rows(df: Any, columns: Sequence[str], limit: int) -> tuple[dict[str, Any], ...]:
    """The first ``limit`` rows of ``df``'s ``columns``, timestamps as aware UTC datetimes."""
    from pyspark.sql import functions as F

    if limit <= 0:
        return ()
    stamps = {c for c in columns if _dtype(df, c).startswith("timestamp")}
    selected = [F.unix_micros(F.col(c)).alias(c) if c in stamps else F.col(c) for c in columns]
    out = []
    for row in df.select(*selected).limit(limit).collect():
        values = row.asDict()
        out.append({c: _from_micros(values[c]) if c in stamps else values[c] for c in columns})
    return tuple(out)


def validate(
    view: FeatureView,
    df: Any,
    *,
    reference_time: datetime | None = None,
    examples: int = DEFAULT_EXAMPLES,
) -> QualityReport:
    """Check a Spark DataFrame of the view's computed rows against its expectations."""
    from pyspark.sql import functions as F

    reference_time = reference_time or datetime.now(UTC)
    checked_at = datetime.now(UTC)
    checks = view.expectations
    work = _with_duplicates(view, df, checks)
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, e in enumerate(checks):
        if isinstance(e, _ROW_LEVEL):
            aggregates.append(F.sum(F.when(_failing(view, e, work), 1).otherwise(0)).alias(f"failed_{i}"))
    if any(isinstance(e, Fresh) for e in checks):
        aggregates.append(F.unix_micros(F.max(F.col(view.timestamp_field))).alias("newest"))
    figures = work.agg(*aggregates).first().asDict()
    rows = int(figures["rows"])
    gx_results = _gx_results(view, df, checks, reference_time, examples)
    results = []
    for i, e in enumerate(checks):
        common: dict[str, Any] = {
            "expectation": e.describe(),
            "kind": e.kind,
            "severity": e.severity,
            "spec": e.to_spec(),
            "rows_checked": rows,
        }
        if isinstance(e, _ROW_LEVEL):
            failed = int(figures[f"failed_{i}"] or 0)
            shown: tuple[dict[str, Any], ...] = ()
            if failed:
                cols = example_columns(view, e, df.columns)
                shown = _rows(work.filter(_failing(view, e, work)), cols, examples)
            results.append(ExpectationResult(success=failed == 0, failed_rows=failed, examples=shown, **common))
        elif isinstance(e, RowCount):
            ok = (e.min is None or rows >= e.min) and (e.max is None or rows <= e.max)
            results.append(ExpectationResult(success=ok, observed=rows, **common))
        elif isinstance(e, Fresh):
            newest = _from_micros(figures["newest"])
            ok = newest is not None and newest >= reference_time - e.max_age
            results.append(ExpectationResult(success=ok, observed=json_value(newest), **common))
        else:
            results.append(gx_results[i])
    return QualityReport(
        view=view.name,
        rows=rows,
        engine="spark",
        checked_at=checked_at,
        reference_time=reference_time,
        results=tuple(results),
    )


validate_spark = validate


def _gx_results(
    view: FeatureView, df: Any, checks: Sequence[Expectation], reference_time: datetime, examples: int
) -> dict[int, ExpectationResult]:
    """Results of the :class:`GxExpectation` s, by position, from Great Expectations on Spark."""
    positions = [i for i, e in enumerate(checks) if isinstance(e, GxExpectation)]
    if not positions:
        return {}
    gx = import_great_expectations()
    fmt = {"result_format": "SUMMARY", "partial_unexpected_count": max(examples, 1)}
    selected = [checks[i] for i in positions]
    raw = run_gx_suite(view, gx_context(gx, "spark"), df, selected, reference_time, fmt)
    out = {}
    for i, e, r in zip(positions, selected, raw, strict=True):
        result = dict(r.result or {})
        error = gx_error(r.exception_info)
        failed = result.get("unexpected_count")
        values = (result.get("partial_unexpected_list") or [])[:examples]
        out[i] = ExpectationResult(
            expectation=e.describe(),
            kind=e.kind,
            severity=e.severity,
            spec=e.to_spec(),
            success=bool(r.success) and error is None,
            rows_checked=int(result.get("element_count") or 0),
            # On Spark, Great Expectations does not tell which rows failed: not quarantinable.
            failed_rows=None if failed is None else int(failed),
            observed=json_value(result.get("observed_value")),
            examples=tuple({"value": json_value(v)} for v in values),
            error=error,
        )
    return out


def quarantinable(report: QualityReport) -> bool:
    """Whether every blocking failure is of a built-in row-level expectation (the rows that
    fail a Great Expectations expectation on Spark are not known)."""
    blocking = [r for r in report.results if not r.success and r.severity == "block"]
    return bool(blocking) and all(r.row_level and r.kind != GxExpectation.kind for r in blocking)


def split(
    view: FeatureView, df: Any, report: QualityReport, *, reference_time: datetime
) -> tuple[Any, Any, dict[str, int]]:
    """The rows passing every failed blocking row-level expectation, the rows failing one or
    more, and how many rows each of those expectations failed."""
    failed = [
        e
        for e, r in zip(view.expectations, report.results, strict=True)
        if not r.success and r.severity == "block" and isinstance(e, _ROW_LEVEL)
    ]
    work = _with_duplicates(view, df, failed)
    condition = None
    for e in failed:
        c = _failing(view, e, work)
        condition = c if condition is None else condition | c
    counts = {
        r.expectation: int(r.failed_rows or 0)
        for r in report.results
        if r.expectation in {e.describe() for e in failed}
    }
    if condition is None:
        return df, df.limit(0), counts
    columns = list(df.columns)
    return work.filter(~condition).select(*columns), work.filter(condition).select(*columns), counts


def statistics(
    view: FeatureView,
    df: Any,
    *,
    previous: Mapping[str, Any] | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> dict[str, dict[str, Any]]:
    """Per-feature statistics of the rows a run publishes (see :mod:`quality.statistics`)."""
    from pyspark.sql import functions as F

    numeric = [f for f in view.features if is_numeric(f)]

    def value(name: str) -> Any:
        c = F.col(name)
        kind = _dtype(df, name)
        if kind == "boolean":
            return c.cast("int").cast("double")
        if kind in ("double", "float"):
            return F.when(~F.isnan(c) & (F.abs(c) != float("inf")), c.cast("double"))
        return c.cast("double")

    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, f in enumerate(view.features):
        c = F.col(f.name)
        missing = (c.isNull() | F.isnan(c)) if _dtype(df, f.name) in ("double", "float") else c.isNull()
        aggregates.append(F.sum(F.when(missing, 1).otherwise(0)).alias(f"nulls_{i}"))
        aggregates.append(F.approx_count_distinct(c).alias(f"distinct_{i}"))
        if f in numeric:
            v = value(f.name)
            aggregates += [
                F.count(v).alias(f"n_{i}"),
                F.min(v).alias(f"min_{i}"),
                F.max(v).alias(f"max_{i}"),
                F.avg(v).alias(f"mean_{i}"),
                F.stddev_samp(v).alias(f"std_{i}"),
            ]
        elif f.dtype is ValueType.TIMESTAMP:
            aggregates += [F.unix_micros(F.min(c)).alias(f"min_{i}"), F.unix_micros(F.max(c)).alias(f"max_{i}")]
    figures = df.agg(*aggregates).first().asDict()
    rows = int(figures["rows"])

    # Second pass: for each numeric feature, how many values reach each interior edge of its
    # own bins and of the previous run's bins; bin counts are the differences.
    edges: dict[tuple[int, str], list[float]] = {}
    for i, f in enumerate(view.features):
        if f not in numeric or not figures[f"n_{i}"]:
            continue
        edges[(i, "own")] = histogram_edges(float(figures[f"min_{i}"]), float(figures[f"max_{i}"]), bins)
        prev = ((previous or {}).get(f.name) or {}).get("histogram")
        if prev and prev.get("edges"):
            edges[(i, "previous")] = [float(e) for e in prev["edges"]]
    cumulative: dict[str, Any] = {}
    if edges:
        reach = [
            F.sum(F.when(value(view.features[i].name) >= e, 1).otherwise(0)).alias(f"reach_{i}_{which}_{k}")
            for (i, which), es in edges.items()
            for k, e in enumerate(es[1:-1])
        ]
        cumulative = df.agg(*reach).first().asDict()

    def counts(i: int, which: str, n: int) -> list[int]:
        interior = len(edges[(i, which)]) - 2
        reached = [int(cumulative[f"reach_{i}_{which}_{k}"] or 0) for k in range(interior)]
        bounds = [n, *reached, 0]
        return [bounds[k] - bounds[k + 1] for k in range(interior + 1)]

    out: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(view.features):
        nulls = int(figures[f"nulls_{i}"] or 0)
        stats: dict[str, Any] = {
            "dtype": f.dtype.value,
            "count": rows,
            "null_fraction": nulls / rows if rows else None,
            "distinct": int(figures[f"distinct_{i}"] or 0),
            "min": None,
            "max": None,
            "mean": None,
            "stddev": None,
            "histogram": None,
            "psi": None,
            "drift": None,
        }
        if f in numeric and (i, "own") in edges:
            n = int(figures[f"n_{i}"])
            std = figures[f"std_{i}"]
            stats.update(
                min=float(figures[f"min_{i}"]),
                max=float(figures[f"max_{i}"]),
                mean=float(figures[f"mean_{i}"]),
                stddev=None if std is None or n < 2 else float(std),
                histogram={"edges": edges[(i, "own")], "counts": counts(i, "own", n)},
            )
            if (i, "previous") in edges:
                stats = with_drift(
                    stats, (previous or {}).get(f.name), lambda _, i=i, n=n: counts(i, "previous", n), psi_threshold
                )
        elif f.dtype is ValueType.TIMESTAMP:
            low, high = _from_micros(figures[f"min_{i}"]), _from_micros(figures[f"max_{i}"])
            stats.update(min=json_value(low), max=json_value(high))
        out[f.name] = stats
    return out
