"""The row-level built-in expectations evaluated with Arrow compute (``quality.rows``, what a push
checks) fail exactly the rows Great Expectations fails (``quality.gate``, what a run checks)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
from quality_projects import BAD, accounts, table, utc

from featurestore.expectations import InRange, InSet, MatchesRegex, NotNull, UniqueKeys
from quality import gate, rows

EXPECTATIONS = (
    NotNull("segment"),
    NotNull("n"),
    NotNull("balance"),
    InRange("balance", min=0),
    InRange("balance", min=0, max=250, strict_min=True),
    InRange("balance", max=100, strict_max=True),
    InRange("n", min=1, max=3),
    InSet("segment", ("mass", "affluent", "student")),
    MatchesRegex("segment", "^[a-z]+$"),
    MatchesRegex("segment", "ss"),  # anywhere in the value, as re.search
    UniqueKeys(),
)


def test_arrow_and_great_expectations_fail_the_same_rows() -> None:
    data = table(
        [
            *BAD,
            (7, utc(2024, 3, 2), 5.0, "VIP", None, None),
            (7, utc(2024, 3, 2), 5.0, "VIP", None, None),
            (8, utc(2024, 3, 2), None, "mass", 3, True),
            (9, utc(2024, 3, 2), float("nan"), "Mass", 7, True),
        ]
    )
    view = accounts(*EXPECTATIONS)
    at = utc(2024, 3, 3)
    report = gate.validate(view, data, reference_time=at)
    by_arrow = rows.failing_rows(view, data, EXPECTATIONS)
    assert by_arrow, "the table must fail some expectations"
    for expectation, result in zip(EXPECTATIONS, report.results, strict=True):
        one = dataclasses.replace(view, expectations=(expectation,))
        single = gate.validate(one, data, reference_time=at)
        mask, _ = gate.failing_rows(one, data, single, reference_time=at)
        expected = [int(i) for i in mask.nonzero()[0]]
        assert by_arrow.get(expectation, []) == expected, expectation.describe()
        assert (result.failed_rows or 0) == len(expected), expectation.describe()


def test_a_clean_batch_fails_nothing() -> None:
    data = table([(1, utc(2024, 3, 1), 50.0, "mass", 2, True)])
    assert rows.failing_rows(accounts(*EXPECTATIONS), data, EXPECTATIONS[:-1]) == {}
    assert isinstance(data, pa.Table)
