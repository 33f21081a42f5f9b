"""The row-level built-in expectations evaluated on an Arrow table with Arrow compute: which rows
of a pushed batch fail (``etl/push.py``).

A run's gate checks its frame with Great Expectations (``quality.gate``; Spark SQL in
``quality.spark``), which costs ~0.2 s per call in context and suite set-up: fine once per run,
two orders of magnitude more than the rest of a one-row push. The five row-level kinds are simple
enough to evaluate here with the same meaning as the two backends (``tests/quality/test_rows.py``
checks all three agree): ``not_null`` fails nulls (and NaN in float columns); ``in_range``,
``in_set`` and ``matches_regex`` (Python's ``re.search``, as Great Expectations on pandas) fail
non-null values outside; ``unique_keys`` fails every row whose join keys and event time repeat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from featurestore.definitions import FeatureView
from featurestore.expectations import Expectation, InRange, InSet, MatchesRegex, NotNull, UniqueKeys

ROW_LEVEL = (NotNull, InRange, InSet, MatchesRegex, UniqueKeys)
"""The expectations :func:`failing_rows` evaluates."""


def failing_rows(view: FeatureView, table: pa.Table, checks: Sequence[Expectation]) -> dict[Expectation, list[int]]:
    """For each of ``checks`` (row-level built-ins) that some rows fail, those rows' positions."""
    out: dict[Expectation, list[int]] = {}
    for expectation in checks:
        mask = _failing(view, table, expectation)
        positions = [i for i, failed in enumerate(mask.to_pylist()) if failed]
        if positions:
            out[expectation] = positions
    return out


def _failing(view: FeatureView, table: pa.Table, expectation: Expectation) -> pa.Array | pa.ChunkedArray:
    if isinstance(expectation, UniqueKeys):
        on = [*view.join_keys, view.timestamp_field]
        indexed = table.select(on).append_column("__i", pa.array(range(table.num_rows), pa.int64()))
        groups = indexed.group_by(on).aggregate([("__i", "list")])
        repeated = {i for ids in groups.column("__i_list").to_pylist() if len(ids) > 1 for i in ids}
        return pa.array([i in repeated for i in range(table.num_rows)], pa.bool_())
    if not isinstance(expectation, NotNull | InRange | InSet | MatchesRegex):
        raise TypeError(f"{expectation!r} is not a row-level built-in expectation")
    col = table.column(expectation.column)
    missing = pc.is_null(col, nan_is_null=True) if pa.types.is_floating(col.type) else pc.is_null(col)
    if isinstance(expectation, NotNull):
        return missing
    if isinstance(expectation, InRange):
        outside = pa.array([False] * table.num_rows, pa.bool_())
        if expectation.min is not None:
            low = pa.scalar(expectation.min)
            below = pc.less_equal(col, low) if expectation.strict_min else pc.less(col, low)
            outside = pc.or_(outside, pc.fill_null(below, False))
        if expectation.max is not None:
            high = pa.scalar(expectation.max)
            above = pc.greater_equal(col, high) if expectation.strict_max else pc.greater(col, high)
            outside = pc.or_(outside, pc.fill_null(above, False))
        return pc.and_(pc.invert(missing), outside)
    values = col.to_pylist()
    if isinstance(expectation, InSet):
        allowed = set(expectation.values)
        wrong = pa.array([v is not None and v not in allowed for v in values], pa.bool_())
    else:
        pattern = re.compile(expectation.pattern)
        wrong = pa.array([v is not None and pattern.search(str(v)) is None for v in values], pa.bool_())
    return pc.and_(pc.invert(missing), wrong)
