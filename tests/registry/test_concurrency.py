"""Several processes sharing one registry: they open it (racing to create it), ``apply`` the same
and competing definitions of one project, and record runs, all at once. Versions stay
consecutive (no duplicate, no lost version, each one what some process applied and was told),
every run record is complete, and no process fails.

Processes, not threads: separate connections and separate interpreters, as the workers of a
server, a scheduler and an engineer's ``featurestore apply`` would be. Started with ``spawn``
(no state inherited from pytest) and released together by a barrier.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.registry import Registry
from featurestore.validation import validate_project

PROJECT = "cards"
WORKERS = 6
ROUNDS = 8
CUSTOMER = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
TRANSACTIONS = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")
SHARED = FeatureView(
    name="shared",
    entities=(CUSTOMER,),
    source=TRANSACTIONS,
    timestamp_field="ts",
    ttl=timedelta(days=30),
    features=(Feature("spend_30d", Float64),),
)


def contested(worker: int, round_: int) -> FeatureView:
    """The view every process changes: its features say who applied it, and when."""
    return FeatureView(
        name="contested",
        entities=(CUSTOMER,),
        source=TRANSACTIONS,
        timestamp_field="ts",
        ttl=timedelta(days=30),
        features=(Feature("amount", Float64), Feature(f"by_worker_{worker}_round_{round_}", Int64)),
    )


@dataclass
class Outcome:
    """What one process did, sent back to the test."""

    worker: int
    error: str | None = None
    # (version the apply reported for "contested", fingerprint applied)
    versions: list[tuple[int, str]] = field(default_factory=list)
    unchanged: int = 0
    runs: list[str] = field(default_factory=list)


def work(url: str, worker: int, barrier: Any, queue: Any) -> None:
    outcome = Outcome(worker)
    registry: Registry | None = None
    try:
        barrier.wait(timeout=120)
        registry = Registry(url)  # the first ones race to create the schema
        for round_ in range(ROUNDS):
            view = contested(worker, round_)
            report = registry.apply(PROJECT, validate_project([CUSTOMER, TRANSACTIONS, SHARED, view]))
            made = [line for line in report.created + report.updated if line.startswith("feature view contested")]
            if made:  # "feature view contested (version 7...)"
                version = int(made[0].split("(version ")[1].split(")")[0].split(":")[0])
                outcome.versions.append((version, view.schema_fingerprint()))
            else:
                outcome.unchanged += 1
            for name in ("shared", "contested"):
                run_id = registry.start_run(
                    PROJECT,
                    name,
                    engine="local",
                    window_start=datetime(2024, 3, 1, tzinfo=UTC),
                    window_end=datetime(2024, 3, 2, tzinfo=UTC),
                )
                registry.finish_run(
                    run_id,
                    status="succeeded",
                    rows_computed=100 + worker,
                    rows_offline=100 + worker,
                    rows_online=10 + round_,
                    timings={"compute": 0.1 * worker},
                    watermark=datetime(2024, 3, 1, round_, tzinfo=UTC),
                    entities_affected=10 + round_,
                    rows_online_removed=0,
                )
                outcome.runs.append(run_id)
    except BaseException:
        outcome.error = traceback.format_exc()
    finally:
        if registry is not None:
            registry.close()
        queue.put(outcome)


def run_workers(url: str) -> list[Outcome]:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(WORKERS), ctx.Queue()
    processes = [ctx.Process(target=work, args=(url, w, barrier, queue)) for w in range(WORKERS)]
    for p in processes:
        p.start()
    try:
        outcomes = [queue.get(timeout=300) for _ in processes]
    finally:
        for p in processes:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
    return sorted(outcomes, key=lambda o: o.worker)


@pytest.mark.parametrize("registry_url", ["sqlite", "postgresql"], indirect=True)
def test_concurrent_applies_and_runs_keep_versions_and_run_records_consistent(registry_url: str) -> None:
    outcomes = run_workers(registry_url)

    failed = {o.worker: o.error for o in outcomes if o.error}
    assert not failed, "\n".join(f"--- worker {w}\n{e}" for w, e in failed.items())
    assert len(outcomes) == WORKERS

    registry = Registry(registry_url)
    try:
        # Every apply of a new fingerprint made exactly one version, numbered in order.
        reported = [v for o in outcomes for v in o.versions]
        numbers = sorted(n for n, _ in reported)
        history = registry.view_versions(PROJECT, "contested")
        assert [v.version for v in history] == list(range(1, len(history) + 1))
        assert numbers == [v.version for v in history]  # none lost, none reported twice
        assert {n: fp for n, fp in reported} == {v.version: v.fingerprint for v in history}
        # Each worker's own applies changed the view each round unless another's equal apply came
        # between (impossible: features name the worker and round), so all made a version.
        assert sum(o.unchanged for o in outcomes) == 0
        assert len(history) == WORKERS * ROUNDS
        assert registry.view_version(PROJECT, "contested") == len(history)
        # The view everyone applied the same way has one version.
        assert [v.version for v in registry.view_versions(PROJECT, "shared")] == [1]
        assert registry.view_version(PROJECT, "shared") == 1
        assert [v.name for v in registry.list_feature_views(PROJECT)] == ["contested", "shared"]
        # The catalog holds the features of the last applied version only.
        latest = history[-1].spec
        assert {f.name for f in registry.list_features(PROJECT) if f.view == "contested"} == {
            f["name"] for f in latest["features"]
        }

        # Every run recorded, complete, against a version that existed.
        ids = [r for o in outcomes for r in o.runs]
        assert len(ids) == len(set(ids)) == WORKERS * ROUNDS * 2
        runs = {r.id: r for r in registry.list_runs(PROJECT, limit=10 * len(ids))}
        assert set(runs) == set(ids)
        for o in outcomes:
            for run_id in o.runs:
                run = runs[run_id]
                assert run.status == "succeeded"
                assert (run.rows_computed, run.rows_offline) == (100 + o.worker, 100 + o.worker)
                assert run.rows_online is not None and run.entities_affected == run.rows_online
                assert run.finished_at is not None and run.finished_at >= run.started_at
                assert run.started_at.tzinfo is UTC and run.finished_at.tzinfo is UTC
                assert run.window_start == datetime(2024, 3, 1, tzinfo=UTC)
                assert run.timings == {"compute": pytest.approx(0.1 * o.worker)}
                top = 1 if run.view == "shared" else len(history)
                assert 1 <= run.view_version <= top
        assert registry.watermark(PROJECT, "shared") == datetime(2024, 3, 1, ROUNDS - 1, tzinfo=UTC)
    finally:
        registry.close()


def featurestore_cli(*args: str) -> subprocess.Popen[str]:
    """``featurestore ARGS...`` in a process of its own, as a user or a scheduler would run it."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("featurestore")), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{out}\n{err}"
        outputs.append(out)
    return outputs


def test_the_cli_applying_and_running_one_project_from_several_processes_keeps_the_registry_consistent(
    registry_url: str, tmp_path: Path
) -> None:
    """``featurestore init``'s project with its registry at ``registry_url``: three ``apply``
    processes at once create version 1 once, then two ``run --all`` processes at once record
    two complete runs (the view's lock makes the second wait for the first)."""
    project = tmp_path / "drivers"
    finish([featurestore_cli("init", str(project))])
    config = project / "featurestore.yaml"
    config.write_text(config.read_text().replace("registry: sqlite:///data/registry.db", f"registry: {registry_url}"))
    assert f"registry: {registry_url}\n" in config.read_text()

    applied = finish([featurestore_cli("-C", str(project), "apply") for _ in range(3)])
    assert sum("created  feature view driver_daily (version 1)" in out for out in applied) == 1, applied
    finish([featurestore_cli("-C", str(project), "run", "--all", "--no-progress") for _ in range(2)])

    registry = Registry(registry_url)
    try:
        assert [v.version for v in registry.view_versions("drivers", "driver_daily")] == [1]
        runs = registry.list_runs("drivers", "driver_daily")
        assert len(runs) == 2
        for run in runs:
            assert (run.status, run.view_version, run.error) == ("succeeded", 1, None)
            assert run.rows_offline is not None and run.rows_offline > 0
            assert run.finished_at is not None and run.watermark is not None
    finally:
        registry.close()
