"""bench/run_all.py's verdicts: a ratio within the issue's bound is met, outside it is not, an
unmeasured target is neither, and a floor whose output differs never counts as met."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


def _run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _etl(rows: int, run_s: float, floor_s: float, peak: int, same: bool = True) -> dict[str, object]:
    return {
        "rows": rows,
        "online": "sqlite",
        "run_s": run_s,
        "floor_s": floor_s,
        "peak_rss_mb": peak,
        "same_output": same,
        "differences": [] if same else ["online values differ"],
        "timings": {},
    }


def test_etl_ratio_memory_bound_and_growth() -> None:
    run_all = _run_all()
    rows = run_all.etl_rows(
        [_etl(10_000_000, 14.0, 10.0, 1500), _etl(30_000_000, 50.0, 30.0, 1900)], [1_000_000, 10_000_000]
    )
    verdicts = {r.target: r.met for r in rows}
    assert verdicts["1 ETL 10M rows, sqlite"] is True  # 1.4x <= 1.5x
    assert verdicts["1 ETL 30M rows, sqlite"] is False  # 1.67x
    assert verdicts["2 peak RSS 10M rows"] is True
    assert verdicts["2 peak RSS 30M / 10M"] is False  # 1.27x: growing


def test_a_floor_with_other_output_is_not_met_and_missing_sizes_are_unmeasured() -> None:
    run_all = _run_all()
    rows = run_all.etl_rows([_etl(1_000_000, 1.0, 1.0, 800, same=False)], [1_000_000])
    verdicts = {r.target: r.met for r in rows}
    assert verdicts["1 ETL 1M rows, sqlite"] is False
    assert verdicts["2 peak RSS 30M rows"] is None


def test_datamart_needs_both_throughput_and_p99() -> None:
    run_all = _run_all()
    server = {"rps": 950.0, "p50_ms": 3.0, "p99_ms": 13.0, "cpu_us": 500.0, "errors": 0}
    trivial = {"rps": 1000.0, "p50_ms": 2.0, "p99_ms": 10.0, "cpu_us": 400.0, "errors": 0}
    throughput, p99 = run_all.datamart_rows([{"serve": server, "trivial": trivial}])
    assert throughput.met is True  # 0.95 >= 0.9
    assert p99.met is False  # 1.3 > 1.2
    failed = run_all.datamart_rows([{"error": "exit 1"}])
    assert [r.met for r in failed] == [None, None]


def _spark(rows: int, run_s: float, python_mb: int, jvm_mb: int) -> dict[str, object]:
    return {
        "rows": rows,
        "run_s": run_s,
        "peak_rss_mb": python_mb + jvm_mb,
        "peak_rss_python_mb": python_mb,
        "peak_rss_jvm_mb": jvm_mb,
    }


def test_spark_driver_flat_and_time_linear_are_judged_from_spark_drivers_ratios() -> None:
    run_all = _run_all()
    runs = [_spark(10_000_000, 300.0, 700, 540), _spark(30_000_000, 1000.0, 760, 550)]
    ratios = {"rows": 3.0, "driver_tree": 1.06, "time": 3.33, "time_per_row": 1.11, "cpu_per_row": 1.02}
    driver, time_per_row = run_all.spark_rows([{"runs": runs, "ratios": ratios, "driver_memory": "1g"}], True)
    assert driver.met is True  # 1.06x: flat
    assert time_per_row.met is False  # 1.11x per row: not linear
    assert "1.02x" in time_per_row.note  # CPU per row shown beside
    growing = {**ratios, "driver_tree": 1.5, "time_per_row": 1.0}
    driver, time_per_row = run_all.spark_rows([{"runs": runs, "ratios": growing}], True)
    assert (driver.met, time_per_row.met) == (False, True)


def test_spark_driver_unmeasured_without_full_and_failed_runs_are_neither_met_nor_not() -> None:
    run_all = _run_all()
    rows = run_all.spark_rows([], False)
    assert [r.met for r in rows] == [None, None]
    assert all("spark_driver.py" in r.note for r in rows)
    one_failed = [{"runs": [_spark(10_000_000, 300.0, 700, 540), {"error": "exit 1: OutOfMemoryError"}], "ratios": {}}]
    rows = run_all.spark_rows(one_failed, True)
    assert [r.met for r in rows] == [None]
    assert "OutOfMemoryError" in rows[0].note
