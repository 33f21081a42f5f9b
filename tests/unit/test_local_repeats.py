"""The local engine's check for repeated (keys, event time) in the date files its fast path
writes (``etl.local._day_figures``): a transformation that emits repeats is computed again in
emission order and the last row emitted wins; one that emits none stays on the fast path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tiny_projects import new_project, utc

from etl.local import LocalEngine, _day_figures
from featurestore.errors import RunError
from featurestore.sql import connect
from featurestore.store import FeatureStore
from tests.unit.test_runs import SQL, TRANSACTIONS, VIEW, definitions, offline_rows, online_rows, write_transactions

# One row per transaction, timed at the next midnight: customer 1's two transactions of 03-01
# (10.0, then 5.0) repeat (1, 03-02).
PER_TRANSACTION = """
    SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of, amount AS spend, 1 AS n
    FROM transactions
"""


def run(tmp_path: Path, sql: str, caplog: pytest.LogCaptureFixture) -> FeatureStore:
    root = new_project(tmp_path / "cards", "cards")
    write_transactions(root, TRANSACTIONS)
    project = definitions(sql)
    with FeatureStore(root) as store:
        store.apply([*project.entities, *project.sources, *project.feature_views])
    store = FeatureStore(root)
    with caplog.at_level(logging.INFO, logger="etl.local"):
        LocalEngine(store).run(VIEW, definitions={v.name: v for v in project.feature_views}, progress=False)
    return store


def test_repeated_keys_and_times_are_computed_again_and_the_last_row_emitted_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run(tmp_path, PER_TRANSACTION, caplog) as store:
        assert "computing again in emission order" in caplog.text
        rows = offline_rows(store)
        assert [r for r in rows if r[:2] == (1, utc(2024, 3, 2))] == [(1, utc(2024, 3, 2), 5.0, 1)]
        assert len(rows) == len(TRANSACTIONS) - 1
        assert online_rows(store)[1] == (utc(2024, 3, 5), 1.0, 1)


def test_rows_without_repeats_stay_on_the_fast_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with run(tmp_path, SQL, caplog) as store:
        assert "computing again" not in caplog.text
        assert len(offline_rows(store)) == 6


def test_the_check_counts_the_rows_beyond_the_first_of_each_key_and_time_and_null_keys(tmp_path: Path) -> None:
    view = definitions().feature_views[0]
    con = connect()
    try:
        path = tmp_path / "day.parquet"
        con.execute(
            f"COPY (SELECT * FROM (VALUES (1, TIMESTAMPTZ '2024-03-02', 1.0, 1), (1, TIMESTAMPTZ '2024-03-02', 2.0, 1), "
            "(1, TIMESTAMPTZ '2024-03-02', 3.0, 1), (2, TIMESTAMPTZ '2024-03-02', 1.0, 1), (NULL, TIMESTAMPTZ '2024-03-02', 1.0, 1), "
            "(NULL, TIMESTAMPTZ '2024-03-02', 1.0, 1), (NULL, TIMESTAMPTZ '2024-03-03', 1.0, 1)) "
            f"t(customer_id, as_of, spend, n)) TO '{path}' (FORMAT parquet)"
        )
        # (1, 03-02) three times: 2 beyond the first; (NULL, 03-02) twice: 1 more; 3 null keys.
        assert _day_figures(con, view, [path]) == {"repeated": 3, "customer_id": 3}
    finally:
        con.close()


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        (
            "customer_id",
            SQL.replace(
                "SELECT customer_id,", "SELECT CASE WHEN customer_id = 3 THEN NULL ELSE customer_id END AS customer_id,"
            ),
        ),
        (
            "as_of",
            SQL.replace(
                "date_trunc('day', ts) + INTERVAL 1 DAY AS as_of",
                "CASE WHEN customer_id = 3 THEN NULL ELSE date_trunc('day', ts) + INTERVAL 1 DAY END AS as_of",
            ),
        ),
    ],
)
def test_a_null_key_or_time_fails_the_run_naming_the_column_and_publishes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, column: str, sql: str
) -> None:
    with pytest.raises(RunError, match=f"1 computed row\\(s\\) have a null '{column}'"):
        run(tmp_path, sql, caplog)
    with FeatureStore(tmp_path / "cards") as store:
        assert offline_rows(store) == []


class _WithoutReturnStats:
    """A DuckDB connection that refuses ``RETURN_STATS`` as DuckDB before 1.3 does."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def execute(self, sql: str, *args: Any) -> Any:
        if "RETURN_STATS" in sql:
            raise duckdb.ParserException("unrecognized option RETURN_STATS")
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_without_return_stats_the_written_files_are_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = LocalEngine._connect
    monkeypatch.setattr(LocalEngine, "_connect", lambda self, spill: _WithoutReturnStats(real(self, spill)))
    with run(tmp_path, SQL, caplog) as store:
        assert "computing again" not in caplog.text
        assert len(offline_rows(store)) == 6
