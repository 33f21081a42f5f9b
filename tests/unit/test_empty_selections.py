"""Commands whose window, as-of time or spine selects no data say so, naming where the data is,
and exit with status 0 only where that is the expected outcome (``run``); a window whose start
is not before its end is refused (``run``, ``validate``).

One ``featurestore init`` project, applied and run once: ``driver_daily`` over trips from
2024-01-01 01:00 UTC to the end of yesterday, published at each next midnight (2024-01-02 on).
Scaffolding, applying and running it is itself a test (the first below): it costs ~4 s, paid once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from featurestore.coverage import DataRange, duration_text, rows_with_values, window_text
from tests.unit.test_cli import Outcome, featurestore


@dataclass(frozen=True)
class Scaffolded:
    root: Path
    created: Outcome
    applied: Outcome
    ran: Outcome


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Scaffolded:
    root = tmp_path_factory.mktemp("empty") / "drivers"
    created = featurestore("init", root)
    applied = featurestore("-C", root, "apply")
    ran = featurestore("-C", root, "run", "--all", "--no-progress")
    return Scaffolded(root, created, applied, ran)


@pytest.fixture
def project(scaffolded: Scaffolded) -> Path:
    for outcome in (scaffolded.created, scaffolded.applied, scaffolded.ran):
        assert outcome.code == 0, outcome.err
    return scaffolded.root


def test_init_scaffolds_a_project_that_apply_and_run_accept(scaffolded: Scaffolded) -> None:
    project, created, applied, ran = scaffolded.root, scaffolded.created, scaffolded.applied, scaffolded.ran
    assert created.code == 0, created.err
    for name in ("featurestore.yaml", "features.py", "data/trips.csv", "spine.csv"):
        assert (project / name).is_file()
        assert f"created {project / name}" in created.out

    assert applied.code == 0, applied.err
    assert "created  feature view driver_daily (version 1)" in applied.out
    assert "created  feature service driver_ranking" in applied.out

    assert ran.code == 0, ran.err
    # The example data: a trip every four hours from 2024-01-01 01:00 UTC to the end of yesterday,
    # drivers 1, 2, 3 in turn, rating 3 + (trip number mod 3): each driver makes 2 trips a day,
    # driver 1 always rated 3. One row per driver and day, published at the next midnight.
    days = (datetime.now(UTC).date() - date(2024, 1, 1)).days
    assert f"driver_daily: {3 * days:,} rows offline, 3 online" in ran.out
    looked_up = featurestore("-C", project, "lookup", "-f", "driver_ranking", "-k", "driver_id=1")
    assert looked_up.code == 0, looked_up.err
    (row,) = json.loads(looked_up.out)
    assert row["trips"] == {"value": 2, "status": "present"}
    assert row["avg_rating"] == {"value": 3.0, "status": "present"}


YESTERDAY = f"{(datetime.now(UTC) - timedelta(days=1)):%Y-%m-%d}"
TODAY = f"{datetime.now(UTC):%Y-%m-%d}"
WHERE = (
    f"its source 'trips' spans 2024-01-01 01:00:00..{YESTERDAY} 21:00:00; its published data spans 2024-01-02..{TODAY}"
)


def test_run_over_an_empty_window_says_so_and_exits_0(project: Path) -> None:
    ran = featurestore("-C", project, "run", "driver_daily", "--start", "2023-03-01", "--end", "2023-03-08")
    assert ran.code == 0, ran.err
    assert "driver_daily: 0 rows offline" in ran.out
    assert f"note: driver_daily has no rows between 2023-03-01 and 2023-03-08; {WHERE}" in ran.err


def test_run_over_a_window_with_data_says_nothing_of_the_kind(project: Path) -> None:
    ran = featurestore("-C", project, "run", "driver_daily", "--start", "2024-03-01", "--end", "2024-03-08")
    assert ran.code == 0, ran.err
    assert "driver_daily: 21 rows offline" in ran.out
    assert "no rows" not in ran.err


def test_validate_over_an_empty_window_exits_1_naming_the_data_range(project: Path) -> None:
    checked = featurestore("-C", project, "validate", "driver_daily", "--start", "2023-03-01", "--end", "2023-03-08")
    assert checked.code == 1
    assert "PASSED" not in checked.out
    assert (
        f"driver_daily has no rows between 2023-03-01 and 2023-03-08, so there is nothing to validate; {WHERE}"
        in checked.err
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_start_after_the_end_is_refused(project: Path, command: str) -> None:
    refused = featurestore("-C", project, command, "driver_daily", "--start", "2024-03-08", "--end", "2024-03-01")
    assert refused.code == 1
    assert "PASSED" not in refused.out and "rows offline" not in refused.out
    assert re.search(r"start 2024-03-08 00:00:00\+00:00 is not before (its )?end 2024-03-01", refused.err), refused.err


def test_reference_data_before_the_data_exits_1_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.csv"
    ref = featurestore("-C", project, "reference-data", "driver_daily", "--as-of", "2023-03-01", "--out", out)
    assert ref.code == 1
    assert not out.exists()
    assert (
        "driver_daily has no rows as of 2023-03-01 (each entity's latest row at or before it, within its TTL "
        f"of 2 days); {WHERE}" in ref.err
    )


def test_training_set_whose_spine_matches_nothing_exits_1_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("driver_id,ts\n1,2023-01-01T00:00:00Z\n2,2023-02-01T12:00:00Z\n")
    out = tmp_path / "train.parquet"
    built = featurestore(
        "-C",
        project,
        "training-set",
        "--spine",
        spine,
        "-f",
        "driver_ranking",
        "--timestamp-column",
        "ts",
        "--out",
        out,
    )
    assert built.code == 1
    assert not out.exists()
    assert "none of the spine's 2 rows got a feature value" in built.err
    assert "the spine's ts spans 2023-01-01..2023-02-01 12:00:00" in built.err
    assert f"driver_daily: {WHERE}" in built.err


def test_training_set_with_some_matching_rows_is_written(project: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("driver_id,ts\n1,2023-01-01T00:00:00Z\n2,2024-03-05T12:00:00Z\n")
    out = tmp_path / "train.csv"
    built = featurestore(
        "-C",
        project,
        "training-set",
        "--spine",
        spine,
        "-f",
        "driver_ranking",
        "--timestamp-column",
        "ts",
        "--out",
        out,
    )
    assert built.code == 0, built.err
    assert "wrote 2 rows" in built.out


def test_texts_of_ranges_windows_and_durations() -> None:
    day = datetime(2024, 3, 1, tzinfo=UTC)
    assert str(DataRange(day, day + timedelta(days=7))) == "2024-03-01..2024-03-08"
    assert str(DataRange(day, day + timedelta(hours=5))) == "2024-03-01..2024-03-01 05:00:00"
    assert window_text(day, None) == "from 2024-03-01 on"
    assert window_text(None, day) == "before 2024-03-01"
    assert duration_text(timedelta(days=2)) == "2 days"
    assert duration_text(timedelta(hours=36)) == "36 hours"
    assert duration_text(timedelta(seconds=90)) == "90 seconds"


def test_rows_with_values_counts_rows_with_any_feature() -> None:
    table = pa.table({"k": [1, 2, 3], "a": [None, 1.0, None], "b": [None, None, 2]})
    assert rows_with_values(table, ["a", "b"]) == 2
    assert rows_with_values(table, ["a"]) == 1
    assert rows_with_values(table.slice(0, 1), ["a", "b"]) == 0
