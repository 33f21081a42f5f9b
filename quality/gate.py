"""The quality gate on Arrow tables and pandas frames (the local engine's output), with Great
Expectations 1.x in an ephemeral context: no GE project, files or configuration.

Every expectation of the view becomes one Great Expectations expectation, all validated as one
suite in one pass over the frame:

==================  ================================================================
``NotNull``         ``expect_column_values_to_not_be_null``
``InRange``         ``expect_column_values_to_be_between`` (nulls not checked)
``InSet``           ``expect_column_values_to_be_in_set`` (nulls not checked)
``MatchesRegex``    ``expect_column_values_to_match_regex`` (nulls not checked)
``UniqueKeys``      ``expect_compound_columns_to_be_unique`` over keys + event time
``RowCount``        ``expect_table_row_count_to_be_between``
``Fresh``           ``expect_column_max_to_be_between`` on the event time, from
                    reference time - max_age
``GxExpectation``   the named expectation with its arguments
==================  ================================================================

Great Expectations is imported on the first validation of a view that has expectations (it
takes 5-9 s); a view without expectations is never sent to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
from featurestore.validation import build_gx_expectation, import_great_expectations
from quality.report import (
    DEFAULT_EXAMPLES,
    ExpectationResult,
    QualityReport,
    example_columns,
    json_value,
    reference_time_for,
)
from quality.statistics import DEFAULT_BINS, DEFAULT_PSI_THRESHOLD, compute_statistics

__all__ = [
    "DEFAULT_EXAMPLES",
    "example_columns",
    "failing_rows",
    "needs_gx",
    "quarantinable",
    "reference_time_for",
    "split",
    "statistics",
    "validate",
    "validate_spark",
]

_INDEX_META = "featurestore_index"


def validate(
    view: FeatureView,
    frame: pa.Table | pd.DataFrame,
    *,
    reference_time: datetime | None = None,
    examples: int = DEFAULT_EXAMPLES,
    expectations: Sequence[Expectation] | None = None,
) -> QualityReport:
    """Check ``frame`` (the view's computed rows) against the view's expectations (or the
    ``expectations`` given) and report every result; nothing is raised for failures."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    reference_time = reference_time or datetime.now(UTC)
    checks = tuple(view.expectations if expectations is None else expectations)
    checked_at = datetime.now(UTC)
    results: tuple[ExpectationResult, ...] = ()
    if checks:
        raw = _run_suite(view, table, checks, reference_time, {"result_format": "SUMMARY"}, examples)
        results = tuple(_result(view, e, r, table, examples) for e, r in zip(checks, raw, strict=True))
    return QualityReport(
        view=view.name,
        rows=table.num_rows,
        engine="pandas",
        checked_at=checked_at,
        reference_time=reference_time,
        results=results,
    )


def validate_spark(
    view: FeatureView, df: Any, *, reference_time: datetime | None = None, examples: int = DEFAULT_EXAMPLES
) -> QualityReport:
    """:func:`validate` for a Spark DataFrame (see :mod:`quality.spark`, loaded on first use)."""
    from quality import spark

    return spark.validate(view, df, reference_time=reference_time, examples=examples)


def needs_gx(view: FeatureView) -> bool:
    """Whether validating the view needs Great Expectations (here: whenever it has expectations)."""
    return bool(view.expectations)


def split(
    view: FeatureView, table: pa.Table, report: QualityReport, *, reference_time: datetime
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """The rows passing every failed blocking row-level expectation of ``report``, the rows
    failing one or more, and how many rows each expectation failed."""
    mask, counts = failing_rows(view, table, report, reference_time=reference_time)
    failing = pa.array(mask, pa.bool_())
    return table.filter(pc.invert(failing)), table.filter(failing), counts


def statistics(
    view: FeatureView,
    frame: pa.Table | pd.DataFrame,
    *,
    previous: Mapping[str, Any] | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> dict[str, dict[str, Any]]:
    """Per-feature statistics of the rows a run publishes (see :mod:`quality.statistics`)."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    return compute_statistics(view, table, previous=previous, psi_threshold=psi_threshold, bins=bins)


def quarantinable(report: QualityReport) -> bool:
    """Whether every blocking failure names its failing rows, so that setting those rows aside
    leaves rows that may be published (a row count or freshness failure names none)."""
    blocking = [r for r in report.results if not r.success and r.severity == "block"]
    return bool(blocking) and all(r.row_level for r in blocking)


def failing_rows(
    view: FeatureView, table: pa.Table, report: QualityReport, *, reference_time: datetime
) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], dict[str, int]]:
    """A mask of the rows failing the report's failed blocking row-level expectations, and how
    many rows each of them failed. Great Expectations gives every failing row's position."""
    failed = [
        (e, r)
        for e, r in zip(view.expectations, report.results, strict=True)
        if not r.success and r.severity == "block" and r.row_level
    ]
    mask = np.zeros(table.num_rows, dtype=np.bool_)
    counts: dict[str, int] = {}
    if not failed:
        return mask, counts
    checks = [e for e, _ in failed]
    raw = _run_suite(view, table, checks, reference_time, {"result_format": "COMPLETE"}, 0)
    for expectation, result in zip(checks, raw, strict=True):
        positions = np.asarray(result.result.get("unexpected_index_list") or [], dtype=np.int64)
        mask[positions] = True
        counts[expectation.describe()] = len(positions)
    return mask, counts


# ---------------------------------------------------------------------- Great Expectations


def to_gx(view: FeatureView, expectation: Expectation, reference_time: datetime) -> Any:
    """The Great Expectations expectation object standing for ``expectation`` on ``view``."""
    gx = import_great_expectations()
    E = gx.expectations
    if isinstance(expectation, NotNull):
        return E.ExpectColumnValuesToNotBeNull(column=expectation.column)
    if isinstance(expectation, InRange):
        return E.ExpectColumnValuesToBeBetween(
            column=expectation.column,
            min_value=expectation.min,
            max_value=expectation.max,
            strict_min=expectation.strict_min,
            strict_max=expectation.strict_max,
        )
    if isinstance(expectation, InSet):
        return E.ExpectColumnValuesToBeInSet(column=expectation.column, value_set=list(expectation.values))
    if isinstance(expectation, MatchesRegex):
        return E.ExpectColumnValuesToMatchRegex(column=expectation.column, regex=expectation.pattern)
    if isinstance(expectation, UniqueKeys):
        return E.ExpectCompoundColumnsToBeUnique(column_list=[*view.join_keys, view.timestamp_field])
    if isinstance(expectation, RowCount):
        return E.ExpectTableRowCountToBeBetween(min_value=expectation.min, max_value=expectation.max)
    if isinstance(expectation, Fresh):
        return E.ExpectColumnMaxToBeBetween(column=view.timestamp_field, min_value=reference_time - expectation.max_age)
    if isinstance(expectation, GxExpectation):
        return build_gx_expectation(view.name, expectation)
    raise TypeError(f"unknown expectation {expectation!r}")  # pragma: no cover - the definitions' kinds are closed


def gx_context(gx: Any, source_kind: str = "pandas") -> Any:
    """A fresh ephemeral Great Expectations context with one data source of ``source_kind``
    (``pandas`` or ``spark``) and a whole-frame batch definition; no progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    add = context.data_sources.add_spark if source_kind == "spark" else context.data_sources.add_pandas
    return add("featurestore").add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")


def run_gx_suite(
    view: FeatureView,
    batch_definition: Any,
    frame: Any,
    checks: Sequence[Expectation],
    reference_time: datetime,
    result_format: dict[str, Any],
) -> list[Any]:
    """Validate ``checks`` on ``frame`` as one suite; their Great Expectations results, in order."""
    gx = import_great_expectations()
    objects = []
    for i, expectation in enumerate(checks):
        obj = to_gx(view, expectation, reference_time)
        obj.meta = {**(obj.meta or {}), _INDEX_META: i}
        objects.append(obj)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name=f"featurestore_{view.name}", expectations=objects)
    outcome = batch.validate(suite, result_format=result_format)
    by_index = {r.expectation_config.meta[_INDEX_META]: r for r in outcome.results}
    return [by_index[i] for i in range(len(checks))]


def _run_suite(
    view: FeatureView,
    table: pa.Table,
    checks: Sequence[Expectation],
    reference_time: datetime,
    result_format: dict[str, Any],
    examples: int,
) -> list[Any]:
    gx = import_great_expectations()
    if any(isinstance(e, GxExpectation) for e in checks):
        columns = list(table.column_names)  # a table-level expectation may read any column
    else:
        wanted = {c for e in checks for c in e.columns(view.join_keys, view.timestamp_field)}
        columns = [c for c in table.column_names if c in wanted]
    frame = table.select(columns).to_pandas()
    fmt = {**result_format, "partial_unexpected_count": max(examples, 1)}
    return run_gx_suite(view, gx_context(gx), frame, checks, reference_time, fmt)


def gx_error(exception_info: Any) -> str | None:
    """The message of an exception Great Expectations caught while evaluating an expectation."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "unknown error")
    for info in exception_info.values():
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "unknown error")
    return None


def _result(view: FeatureView, expectation: Expectation, raw: Any, table: pa.Table, examples: int) -> ExpectationResult:
    result = dict(raw.result or {})
    error = gx_error(raw.exception_info)
    positions = [int(i) for i in (result.get("partial_unexpected_index_list") or [])[:examples]]
    shown: tuple[dict[str, Any], ...] = ()
    if positions:
        cols = example_columns(view, expectation, table.column_names)
        shown = tuple(table.select(cols).take(pa.array(positions, pa.int64())).to_pylist())
    failed = result.get("unexpected_count")
    return ExpectationResult(
        expectation=expectation.describe(),
        kind=expectation.kind,
        severity=expectation.severity,
        spec=expectation.to_spec(),
        success=bool(raw.success) and error is None,
        rows_checked=int(result.get("element_count", table.num_rows)),
        failed_rows=None if failed is None else int(failed),
        observed=json_value(result.get("observed_value")),
        examples=shown,
        error=error,
    )
