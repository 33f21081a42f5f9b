"""One suite, three backends: the quality gate and the run statistics give the same answers on an
Arrow table (checked by Great Expectations on pandas), on date files (the local engine's output,
checked with DuckDB SQL by ``quality.files``) and on a Spark DataFrame (the Spark engine's
output, checked with Spark SQL, and Great Expectations on Spark for ``GxExpectation``). Every
test runs once per backend.

The Spark session is ``conftest.spark``'s (``local[2]``, stopped at this module's end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from quality_projects import BAD, CLEAN, FAILING, Row, accounts, table, utc

from featurestore import FeatureView
from featurestore.expectations import (
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
from quality import files as quality_files
from quality import gate
from quality.report import QualityReport

ENGINES = ("local", "files", "spark")
SPARK_SCHEMA = "customer_id long, ts timestamp, balance double, segment string, n long, active boolean"
AT = utc(2024, 3, 3)  # freshness is judged at this time


@dataclass(frozen=True)
class Engine:
    """The gate's functions for one engine, and how to hand it rows."""

    name: str
    frame: Callable[[list[Row]], Any]
    module: Any

    def validate(self, view: FeatureView, rows: list[Row], **options: Any) -> QualityReport:
        report: QualityReport = self.module.validate(view, self.frame(rows), reference_time=AT, **options)
        return report

    def rows(self, frame: Any) -> list[tuple[Any, ...]]:
        if isinstance(frame, DayFiles):
            frame = pa.concat_tables([pq.read_table(p) for p in frame.paths])
        records = frame.to_pylist() if isinstance(frame, pa.Table) else [r.asDict() for r in frame.collect()]
        return sorted(tuple(r[c] for c in ("customer_id", "balance", "segment", "n", "active")) for r in records)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "local":
        return Engine("local", table, gate)
    if request.param == "files":

        def files(rows: list[Row]) -> DayFiles:
            data = table(rows)
            folder = tmp_path / f"frame-{len(list(tmp_path.iterdir()))}"
            folder.mkdir()
            days = pc.strftime(data.column("ts"), format="%Y-%m-%d").to_pylist()
            out = {}
            for day in sorted(set(days)):
                out[day] = folder / f"{day}.parquet"
                pq.write_table(data.filter(pc.equal(pa.array(days), day)), out[day])
            return DayFiles(files=out, rows=data.num_rows)

        return Engine("files", files, quality_files)
    session = request.getfixturevalue("spark")
    from quality import spark as on_spark

    def frame(rows: list[Row]) -> Any:
        return session.createDataFrame([tuple(r) for r in rows], SPARK_SCHEMA)

    return Engine("spark", frame, on_spark)


def outcomes(report: QualityReport) -> dict[str, tuple[bool, int | None]]:
    return {r.expectation: (r.success, r.failed_rows) for r in report.results}


# ---------------------------------------------------------------------- the gate


def test_the_built_in_expectations_count_the_same_failing_rows(engine: Engine) -> None:
    rows: list[Row] = [
        *BAD,
        (7, utc(2024, 3, 2), 5.0, "VIP", None, None),  # a segment out of the set, not matching the pattern
        (7, utc(2024, 3, 2), 5.0, "VIP", None, None),  # the same keys and time twice
    ]
    view = accounts(
        NotNull("segment"),
        NotNull("n"),
        InRange("balance", min=0),
        InRange("balance", min=0, max=250, strict_min=True, severity="warn"),
        InSet("segment", ("mass", "affluent", "student")),
        MatchesRegex("segment", "^[a-z]+$"),
        UniqueKeys(),
        RowCount(min=1, max=10),
        Fresh(timedelta(days=1)),
        Fresh(timedelta(hours=12), severity="warn"),
    )
    report = engine.validate(view, rows)
    assert report.engine == {"local": "pandas", "files": "duckdb", "spark": "spark"}[engine.name]
    assert report.rows == 11
    assert outcomes(report) == {
        "segment is not null": (False, 2),
        "n is not null": (False, 2),
        "balance in [0, +inf)": (False, 2),
        "balance in (0, 250]": (False, 4),  # -5, -1, 0 and 250.5
        "segment in {'mass', 'affluent', 'student'}": (False, 2),
        "segment matches /^[a-z]+$/": (False, 2),
        "(entity keys, event time) unique": (False, 2),
        "row count in [1, 10]": (False, None),
        "newest event time at most 1 day, 0:00:00 old": (True, None),
        "newest event time at most 12:00:00 old": (False, None),
    }
    by_name = {r.expectation: r for r in report.results}
    assert by_name["row count in [1, 10]"].observed == 11
    assert by_name["newest event time at most 1 day, 0:00:00 old"].observed == "2024-03-02T00:00:00+00:00"
    assert report.status == "blocked"
    assert {r.expectation for r in report.blocking_failures} == {
        "segment is not null",
        "n is not null",
        "balance in [0, +inf)",
        "segment in {'mass', 'affluent', 'student'}",
        "segment matches /^[a-z]+$/",
        "(entity keys, event time) unique",
        "row count in [1, 10]",
    }
    assert {r.expectation for r in report.warnings} == {"balance in (0, 250]", "newest event time at most 12:00:00 old"}
    examples = by_name["balance in [0, +inf)"].examples
    assert sorted(examples, key=lambda e: e["customer_id"]) == [
        {"customer_id": 4, "ts": utc(2024, 3, 2), "balance": -5.0},
        {"customer_id": 6, "ts": utc(2024, 3, 2), "balance": -1.0},
    ]
    assert len(by_name["segment is not null"].examples) == 2


def test_examples_are_limited_to_the_number_asked(engine: Engine) -> None:
    report = engine.validate(accounts(InRange("balance", max=0)), CLEAN, examples=2)
    (result,) = report.results
    assert result.failed_rows == 5
    assert len(result.examples) == 2


def test_clean_rows_pass(engine: Engine) -> None:
    view = accounts(NotNull("segment"), InRange("balance", min=0), UniqueKeys(), RowCount(min=6, max=6))
    report = engine.validate(view, CLEAN)
    assert report.status == "passed"
    assert all(r.success for r in report.results)


def test_a_run_with_no_rows_fails_freshness_and_a_minimum_row_count(engine: Engine) -> None:
    report = engine.validate(accounts(Fresh(timedelta(days=30)), RowCount(min=1), NotNull("segment")), [])
    assert outcomes(report) == {
        "newest event time at most 30 days, 0:00:00 old": (False, None),
        "row count in [1, +inf]": (False, None),
        "segment is not null": (True, 0),
    }


def test_a_gx_expectation_gives_the_same_verdict(engine: Engine) -> None:
    view = accounts(
        GxExpectation("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 3}),
        GxExpectation("expect_column_mean_to_be_between", {"column": "balance", "min_value": 0, "max_value": 50}),
    )
    per_row, mean = engine.validate(view, CLEAN).results
    assert (per_row.success, per_row.failed_rows, per_row.rows_checked) == (False, 1, 6)  # n = 4
    # Example rows on pandas (and files, checked on pandas); on Spark, Great Expectations gives the failing values only.
    assert [e["n"] if engine.name != "spark" else e["value"] for e in per_row.examples] == [4]
    assert (mean.success, mean.failed_rows) == (False, None)
    assert mean.observed == pytest.approx(np.mean([100.0, 250.5, 0.0, 120.0, 240.0, 10.0]))


def test_quarantine_splits_the_rows_exactly(engine: Engine) -> None:
    view = accounts(NotNull("segment"), InRange("balance", min=0), InSet("segment", ("mass", "affluent", "student")))
    report = engine.validate(view, BAD)
    assert engine.module.quarantinable(report)
    good, bad, counts = engine.module.split(view, engine.frame(BAD), report, reference_time=AT)
    assert engine.rows(good) == engine.rows(engine.frame(CLEAN))
    assert engine.rows(bad) == engine.rows(engine.frame(FAILING))
    assert counts == {"segment is not null": 2, "balance in [0, +inf)": 2}


def test_a_table_level_failure_cannot_be_quarantined(engine: Engine) -> None:
    report = engine.validate(accounts(NotNull("segment"), RowCount(max=3)), BAD)
    assert not engine.module.quarantinable(report)


# ---------------------------------------------------------------------- statistics


def generated(seed: int, n: int = 300, shift: float = 0.0) -> list[Row]:
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    for i in range(n):
        out.append(
            (
                i,
                utc(2024, 3, 1),
                None if i % 11 == 0 else float(round(rng.normal(50 + shift, 10), 3)),
                None if i % 13 == 0 else str(rng.choice(["mass", "affluent", "student"])),
                None if i % 7 == 0 else int(rng.integers(0, 9)),
                None if i % 5 == 0 else bool(rng.random() < 0.4),
            )
        )
    return out


def test_statistics_are_the_same_on_both_engines(engine: Engine) -> None:
    view = accounts()
    before, after = generated(1), generated(2, shift=8.0)
    reference_first = gate.statistics(view, table(before))
    reference = gate.statistics(view, table(after), previous=reference_first, psi_threshold=0.1)
    first = engine.module.statistics(view, engine.frame(before))
    stats = engine.module.statistics(view, engine.frame(after), previous=first, psi_threshold=0.1)
    assert list(stats) == ["balance", "segment", "n", "active"]
    for name, want in reference.items():
        got = stats[name]
        assert got["histogram"] == want["histogram"], name  # the same edges and exact counts
        for key in ("count", "null_fraction", "min", "max", "drift"):
            assert got[key] == want[key], (name, key)
        for key in ("mean", "stddev", "psi"):
            assert got[key] == (None if want[key] is None else pytest.approx(want[key], rel=1e-9)), (name, key)
        # Spark counts distinct values approximately (HyperLogLog++, about 5% relative error).
        assert got["distinct"] == pytest.approx(want["distinct"], rel=0.05 if engine.name == "spark" else 0)
    assert stats["balance"]["drift"] is True
    assert stats["n"]["drift"] is False
