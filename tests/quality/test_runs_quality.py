"""The quality gate inside runs, on both engines (every test runs once on the local engine and
once on Spark): blocking failures publish nothing, warnings publish and are recorded,
quarantine splits rows exactly, and every run keeps statistics (checked here against figures
computed independently with pandas and numpy) with drift against the run before. The rows are those of ``quality_projects``: ``CLEAN`` passes, ``BAD`` adds customers 4
(balance -5), 5 (no segment) and 6 (balance -1, no segment)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from quality_projects import (
    BAD,
    CLEAN,
    COLUMNS,
    FAILING,
    RUN_ENGINES,
    USUAL,
    VIEW,
    Row,
    new_project,
    offline_rows,
    online_rows,
    run,
    tree_snapshot,
    utc,
    write_features,
    write_rows,
)

from featurestore import QualityCheckFailedError, RunError
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from quality.checked_run import quarantine_path


@pytest.fixture(params=RUN_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The engine that runs the view (see ``quality_projects.RUN_ENGINES``)."""
    if request.param == "spark":
        request.getfixturevalue("spark")  # the session SparkEngine will find running
    return str(request.param)


NEWEST_CLEAN = {1: (120.0, "mass", 4, True), 2: (240.0, "affluent", 2, False), 3: (10.0, "student", 1, None)}


def online_files(root: Path) -> dict[str, bytes]:
    """The online store's SQLite files (database, write-ahead log, shared memory), byte for byte."""
    return {p.name: p.read_bytes() for p in sorted((root / "data").glob("online.db*"))}


def as_tuples(rows: list[Row]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in rows)


# ---------------------------------------------------------------------- blocking


def test_a_blocking_failure_publishes_nothing_offline_or_online(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank")
    with FeatureStore(root) as store:
        first = run(store, engine)
        assert first.quality == "passed"
        offline_before, online_before = tree_snapshot(store.offline_store.root), online_files(root)
        write_rows(root, BAD)

        with pytest.raises(QualityCheckFailedError) as caught:
            run(store, engine)

        message = str(caught.value)
        assert message.startswith(
            "Run of feature view 'accounts' stopped by its quality gate; nothing was published.\n"
            "Quality gate of feature view 'accounts' on 9 computed rows: BLOCKED (2 blocking expectations failed)"
        )
        assert "FAILED (block)  segment is not null: 2 of 9 rows fail (22.22%)" in message
        assert "FAILED (block)  balance in [0, +inf): 2 of 9 rows fail (22.22%)" in message
        assert "e.g. customer_id=4, ts='2024-03-02T00:00:00+00:00', balance=-5.0" in message
        assert "e.g. customer_id=5, ts='2024-03-02T00:00:00+00:00', segment=None" in message
        assert "2 expectations passed" in message

        # Byte for byte: no file or folder added, changed or removed, offline or online.
        assert tree_snapshot(store.offline_store.root) == offline_before
        assert online_files(root) == online_before
        assert offline_rows(store) == as_tuples(CLEAN)
        assert online_rows(store) == NEWEST_CLEAN
        assert not quarantine_path(store, store.get_feature_view(VIEW), "x").parent.exists()

        failed, succeeded = store.registry.list_runs(store.project, VIEW)
        assert (failed.status, succeeded.status) == ("failed", "succeeded")
        assert failed.error is not None
        assert failed.error.startswith(
            "QualityCheckFailedError: Run of feature view 'accounts' stopped by its quality gate"
        )
        assert failed.watermark is None and failed.rows_offline is None
        assert store.registry.watermark(store.project, VIEW) == utc(2024, 3, 2)

        recorded = store.registry.get_run_quality(failed.id)
        assert recorded is not None
        assert recorded["statistics"] == {}
        validation = recorded["validation"]
        gate_engine = "duckdb" if engine == "local" else "spark"
        assert (validation["status"], validation["rows"], validation["engine"]) == ("blocked", 9, gate_engine)
        outcomes = {r["expectation"]: r for r in validation["results"]}
        assert {e: (r["success"], r["failed_rows"]) for e, r in outcomes.items()} == {
            "segment is not null": (False, 2),
            "balance in [0, +inf)": (False, 2),
            "segment in {'mass', 'affluent', 'student'}": (True, 0),
            "(entity keys, event time) unique": (True, 0),
        }
        examples = sorted(outcomes["balance in [0, +inf)"]["examples"], key=lambda e: e["customer_id"])
        assert [e["customer_id"] for e in examples] == [4, 6]
        assert examples[0] == {
            "customer_id": 4,
            "ts": "2024-03-02T00:00:00+00:00",
            "balance": -5.0,
        }
        # Only the published run has statistics.
        assert [s["run_id"] for s in store.registry.list_statistics(store.project, VIEW)] == [succeeded.id]


def test_a_blocked_first_run_leaves_no_offline_or_online_data(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", rows=BAD)
    with FeatureStore(root) as store, pytest.raises(QualityCheckFailedError):
        run(store, engine)
    with FeatureStore(root) as store:
        assert store.offline_store.files(VIEW) == []
        assert [
            p for p in store.offline_store.root.rglob("*") if p.is_file() and p.name not in (".lock", ".run.lock")
        ] == []
        assert online_rows(store) == {}


# ---------------------------------------------------------------------- warnings


def test_a_warning_publishes_everything_and_records_the_failure(
    engine: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checks = 'NotNull("segment", severity="warn"), InRange("balance", min=0, severity="warn"), UniqueKeys()'
    root = new_project(tmp_path / "bank", expectations=checks, rows=BAD)
    with FeatureStore(root) as store, caplog.at_level(logging.WARNING, logger="quality.checked_run"):
        result = run(store, engine)
        assert (result.status, result.quality) == ("succeeded", "warned")
        assert (result.rows_computed, result.rows_offline, result.rows_quarantined) == (9, 9, 0)
        assert offline_rows(store) == as_tuples(BAD)
        assert set(online_rows(store)) == {1, 2, 3, 4, 5, 6}

        recorded = store.registry.get_run_quality(result.run_id)
        assert recorded is not None
        validation = recorded["validation"]
        assert validation["status"] == "warned"
        failed = {r["expectation"]: r["failed_rows"] for r in validation["results"] if not r["success"]}
        assert failed == {"segment is not null": 2, "balance in [0, +inf)": 2}
        assert all(r["severity"] == "warn" for r in validation["results"] if not r["success"])
        assert recorded["statistics"]["balance"]["count"] == 9
    assert "feature view 'accounts': FAILED (warn)   balance in [0, +inf): 2 of 9 rows fail (22.22%)" in caplog.text


# ---------------------------------------------------------------------- quarantine


def test_quarantine_publishes_the_good_rows_and_sets_the_failing_ones_aside(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", rows=BAD)
    with FeatureStore(root) as store:
        result = run(store, engine, quarantine=True)
        assert (result.status, result.quality) == ("succeeded", "quarantined")
        assert (result.rows_computed, result.rows_offline, result.rows_quarantined) == (9, 6, 3)
        assert offline_rows(store) == as_tuples(CLEAN)
        assert online_rows(store) == NEWEST_CLEAN

        path = quarantine_path(store, store.get_feature_view(VIEW), result.run_id)
        assert path == store.offline_store.root / "_quarantine" / VIEW / f"{result.run_id}.parquet"
        quarantined = pq.read_table(path)
        assert quarantined.column_names == list(COLUMNS)
        assert sorted(zip(*(quarantined.column(c).to_pylist() for c in COLUMNS), strict=True)) == as_tuples(FAILING)
        # Exactly a split: together, the published and the quarantined rows are the computed ones.
        assert sorted(offline_rows(store) + as_tuples(FAILING)) == as_tuples(BAD)

        (record,) = store.registry.list_runs(store.project, VIEW)
        assert (record.rows_computed, record.rows_offline) == (9, 6)
        recorded = store.registry.get_run_quality(result.run_id)
        assert recorded is not None
        validation = recorded["validation"]
        assert validation["status"] == "quarantined"
        assert validation["quarantine"] == {
            "rows": 3,
            "path": str(path),
            "by_expectation": {"segment is not null": 2, "balance in [0, +inf)": 2},
        }
        assert validation["after_quarantine"] == []
        assert recorded["statistics"]["balance"]["count"] == 6
        assert recorded["statistics"]["balance"]["min"] == 0.0


def test_quarantine_is_off_unless_asked_for(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", rows=BAD)
    with FeatureStore(root) as store:
        with pytest.raises(QualityCheckFailedError):
            run(store, engine)
        assert not (store.offline_store.root / "_quarantine").exists()
        assert offline_rows(store) == []


def test_the_project_file_can_turn_quarantine_on_and_a_run_can_turn_it_off(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", rows=BAD, quality={"quarantine": True})
    with FeatureStore(root) as store:
        with pytest.raises(QualityCheckFailedError):
            run(store, engine, quarantine=False)
        assert offline_rows(store) == []
        result = run(store, engine)
        assert (result.quality, result.rows_quarantined) == ("quarantined", 3)
        assert offline_rows(store) == as_tuples(CLEAN)


def test_a_failure_that_names_no_rows_is_not_quarantined(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", expectations=f"{USUAL}, RowCount(max=5)", rows=BAD)
    with FeatureStore(root) as store:
        with pytest.raises(QualityCheckFailedError, match=r"FAILED \(block\)  row count in \[0, 5\]: observed 9"):
            run(store, engine, quarantine=True)
        assert not (store.offline_store.root / "_quarantine").exists()
        assert offline_rows(store) == []


def test_quarantine_leaving_too_few_rows_blocks_the_run(engine: str, tmp_path: Path) -> None:
    # 9 rows pass RowCount(min=7); the 6 left after quarantine do not.
    root = new_project(tmp_path / "bank", expectations=f"{USUAL}, RowCount(min=7)", rows=BAD)
    with FeatureStore(root) as store:
        with pytest.raises(QualityCheckFailedError) as caught:
            run(store, engine, quarantine=True)
        assert "row count in [7, +inf]: observed 6 (on the rows left after quarantine)" in str(caught.value)
        assert not (store.offline_store.root / "_quarantine").exists()
        assert offline_rows(store) == []
        (failed,) = store.registry.list_runs(store.project, VIEW)
        recorded = store.registry.get_run_quality(failed.id)
        assert recorded is not None and recorded["validation"]["status"] == "blocked"


# ---------------------------------------------------------------------- definitions and runs


def test_changed_expectations_need_an_apply_but_no_new_version(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank")
    with FeatureStore(root) as store:
        write_features(root, f"{USUAL}, RowCount(min=1)")
        with pytest.raises(RunError, match="its expectations have changed since it was applied"):
            run(store, engine)
        report = store.apply(load_definitions(store.config))
        assert report.updated == ["feature view accounts (expectations changed; same version)"]
        assert store.registry.view_version(store.project, VIEW) == 1
        assert [e.kind for e in store.get_feature_view(VIEW).expectations] == [
            "not_null",
            "in_range",
            "in_set",
            "unique_keys",
            "row_count",
        ]
        assert run(store, engine).quality == "passed"


# ---------------------------------------------------------------------- statistics


def generated_rows(seed: int, *, shift: float = 0.0, n: int = 400) -> list[Row]:
    """``n`` customers on one day: normal balances (mean 100 + shift), a few nulls everywhere."""
    rng = np.random.default_rng(seed)
    balances = rng.normal(100 + shift, 15, n).round(2)
    counts = rng.integers(0, 20, n)
    segments = rng.choice(["mass", "affluent", "student"], n)
    actives = rng.random(n) < 0.3
    rows: list[Row] = []
    for i in range(n):
        rows.append(
            (
                i + 1,
                utc(2024, 3, 1),
                None if i % 17 == 0 else float(balances[i]),
                None if i % 23 == 0 else str(segments[i]),
                None if i % 29 == 0 else int(counts[i]),
                None if i % 31 == 0 else bool(actives[i]),
            )
        )
    return rows


def expected_numeric(values: pd.Series, n_rows: int) -> dict[str, Any]:
    """The statistics of a numeric column, computed independently with pandas and numpy."""
    present = values.dropna().astype(float)
    counts, edges = np.histogram(present.to_numpy(), bins=10, range=(present.min(), present.max()))
    return {
        "count": n_rows,
        "null_fraction": values.isna().sum() / n_rows,
        "distinct": present.nunique(),
        "min": present.min(),
        "max": present.max(),
        "mean": present.mean(),
        "stddev": present.std(ddof=1),
        "edges": edges.tolist(),
        "counts": counts.tolist(),
    }


def test_statistics_match_figures_computed_independently(engine: str, tmp_path: Path) -> None:
    rows = generated_rows(seed=1)
    root = new_project(tmp_path / "bank", expectations="UniqueKeys()", rows=rows)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    with FeatureStore(root) as store:
        result = run(store, engine)
        recorded = store.registry.get_run_quality(result.run_id)
    assert recorded is not None
    stats = recorded["statistics"]
    assert list(stats) == ["balance", "segment", "n", "active"]
    for name in ("balance", "n"):
        want = expected_numeric(frame[name], len(rows))
        got = stats[name]
        assert got["count"] == want["count"]
        # Spark counts distinct values approximately (HyperLogLog++, about 5% relative error).
        assert got["distinct"] == pytest.approx(want["distinct"], rel=0.05 if engine == "spark" else 0)
        for key in ("null_fraction", "min", "max", "mean", "stddev"):
            assert got[key] == pytest.approx(want[key], rel=1e-12), (name, key)
        assert got["histogram"]["edges"] == pytest.approx(want["edges"], rel=1e-12)
        assert got["histogram"]["counts"] == want["counts"]
        assert sum(got["histogram"]["counts"]) == frame[name].notna().sum()
        assert (got["psi"], got["drift"]) == (None, None)  # no run before it
    active = frame["active"].dropna().astype(float)
    assert stats["active"]["mean"] == pytest.approx(active.mean())
    assert (stats["active"]["min"], stats["active"]["max"], stats["active"]["distinct"]) == (0.0, 1.0, 2)
    assert stats["active"]["null_fraction"] == pytest.approx(frame["active"].isna().mean())
    segment = stats["segment"]
    assert segment["distinct"] == frame["segment"].nunique() == 3
    assert segment["null_fraction"] == pytest.approx(frame["segment"].isna().mean())
    assert (segment["min"], segment["mean"], segment["histogram"]) == (None, None, None)


def independent_psi(previous_edges: list[float], previous_counts: list[int], values: np.ndarray[Any, Any]) -> float:
    """PSI of ``values`` against a previous histogram, its outer bins open-ended."""
    lows = [-np.inf, *previous_edges[1:-1]]
    highs = [*previous_edges[1:-1], np.inf]
    actual = np.array([((values >= lo) & (values < hi)).sum() for lo, hi in zip(lows, highs, strict=True)], float)
    expected = np.array(previous_counts, float)
    a = np.maximum(actual / actual.sum(), 1e-4)
    e = np.maximum(expected / expected.sum(), 1e-4)
    return float(((a - e) * np.log(a / e)).sum())


def test_drift_against_the_previous_run_is_flagged_above_the_threshold(engine: str, tmp_path: Path) -> None:
    before = generated_rows(seed=1)
    # Balances move up by two standard deviations; counts, segments and flags keep their distribution.
    after = [(r[0], r[1], None if r[2] is None else r[2] + 30.0, *r[3:]) for r in before]
    root = new_project(tmp_path / "bank", expectations="UniqueKeys()", rows=before, quality={"psi_threshold": 0.25})
    with FeatureStore(root) as store:
        first = run(store, engine)
        write_rows(root, after)
        second = run(store, engine)
        history = store.registry.list_statistics(store.project, VIEW)
    assert [h["run_id"] for h in history] == [second.run_id, first.run_id]
    assert set(history[0]) == {"run_id", "started_at", "rows", "statistics"}
    assert history[0]["rows"] == len(after)
    newest, oldest = history[0]["statistics"], history[1]["statistics"]
    values = np.array([r[2] for r in after if r[2] is not None])
    psi = independent_psi(oldest["balance"]["histogram"]["edges"], oldest["balance"]["histogram"]["counts"], values)
    assert newest["balance"]["psi"] == pytest.approx(psi, rel=1e-9)
    assert psi > 0.25 and newest["balance"]["drift"] is True
    assert newest["n"]["psi"] == pytest.approx(0.0, abs=1e-12) and newest["n"]["drift"] is False
    assert newest["active"]["drift"] is False
    assert newest["segment"]["psi"] is None  # strings have no histogram
    assert oldest["balance"]["psi"] is None


def test_statistics_are_kept_for_every_run_even_without_expectations(engine: str, tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", expectations="")
    with FeatureStore(root) as store:
        result = run(store, engine)
        assert result.quality == "passed"
        recorded = store.registry.get_run_quality(result.run_id)
        assert recorded is not None
        assert recorded["validation"]["results"] == []
        assert recorded["statistics"]["balance"]["max"] == 250.5
        assert "gx_import_s" not in result.timings
