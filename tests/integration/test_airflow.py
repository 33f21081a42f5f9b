"""``featurestore airflow-dag`` run by Apache Airflow itself.

A small project (card events; ``daily_spend`` from them, ``big_spender`` from ``daily_spend``'s
offline files, ``event_count`` beside them) gets its DAG written by the CLI. ``infra/airflow/
install.sh`` installs Airflow 3 in its own venv (``.airflow-venv``; a minute or less cold, at once
when installed), and ``airflow dags test`` (Airflow's own runner: no scheduler, tasks in
dependency order, in a fresh AIRFLOW_HOME) runs one DAG run. Then Airflow's metadata database
says every task succeeded; our registry has one successful run per view over the data interval
Airflow passed; ``big_spender`` ran after ``daily_spend`` (and found its new rows); online equals
offline for every view. A missing Airflow is installed, never a reason to skip.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from featurestore.store import FeatureStore
from tests.unit.test_cli import featurestore
from tests.unit.tiny_projects import UTC_US, new_project, utc, write_parquet

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "infra" / "airflow" / "install.sh"
AIRFLOW_VENV = Path(os.environ.get("AIRFLOW_VENV", REPO / ".airflow-venv"))
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 300

BASE_VIEWS = '''\
from datetime import timedelta

from featurestore import Bool, Entity, Feature, FeatureView, FileSource, Float64, Int64

user = Entity(name="user", join_keys=("user_id",), key_types=(Int64,))
events = FileSource(name="events", path="data/events/*.parquet", timestamp_field="ts")

daily_spend = FeatureView(
    name="daily_spend",
    entities=(user,),
    source=events,
    timestamp_field="as_of",
    ttl=timedelta(days=2),
    transformation="""
        SELECT user_id, CAST(date_trunc('day', ts) + INTERVAL 1 DAY AS TIMESTAMP) AS as_of, sum(amount) AS spend
        FROM events GROUP BY ALL
    """,
    features=(Feature("spend", Float64),),
    schedule="0 0 * * *",
)

event_count = FeatureView(
    name="event_count",
    entities=(user,),
    source=events,
    timestamp_field="ts",
    ttl=timedelta(days=2),
    transformation="SELECT user_id, ts, count(*) OVER (PARTITION BY user_id ORDER BY ts) AS n FROM events",
    features=(Feature("n", Int64),),
    schedule="0 0 * * *",
)
'''
READER_VIEW = """
# daily_spend's published files: big_spender runs after daily_spend.
daily_spend_files = FileSource(
    name="daily_spend_files", path="data/offline/daily_spend/date=*/*.parquet", timestamp_field="as_of"
)

big_spender = FeatureView(
    name="big_spender",
    entities=(user,),
    source=daily_spend_files,
    timestamp_field="as_of",
    ttl=timedelta(days=2),
    transformation="SELECT user_id, as_of, spend > 100 AS big FROM daily_spend_files",
    features=(Feature("big", Bool),),
    schedule="0 0 * * *",
)
"""
VIEWS = ("daily_spend", "event_count", "big_spender")
LOGICAL_DATE = "2024-03-04"
"""Airflow's run for this logical date covers the day before it (a manual run's data interval
ends at its logical date): [2024-03-03, 2024-03-04)."""


def make_project(root: Path) -> Path:
    """Three users with two events a day, March 1 to 5; ``daily_spend`` run up to March 3 (so
    that ``big_spender``, which reads its files, can be applied), then every view applied."""
    new_project(root, "shop")
    days = [utc(2024, 3, d, h) for d in range(1, 6) for h in (9, 15)]
    write_parquet(
        root / "data" / "events" / "march.parquet",
        {
            "user_id": pa.array([u for _ in days for u in (1, 2, 3)], pa.int64()),
            "ts": pa.array([t for t in days for _ in (1, 2, 3)], UTC_US),
            "amount": pa.array([float(40 * u + i) for i in range(len(days)) for u in (1, 2, 3)], pa.float64()),
        },
    )
    (root / "features.py").write_text(BASE_VIEWS)
    for args in (("apply",), ("run", "daily_spend", "--end", "2024-03-03", "--no-progress")):
        outcome = featurestore("-C", root, *args)
        assert outcome.code == 0, outcome.err
    (root / "features.py").write_text(BASE_VIEWS + READER_VIEW)
    applied = featurestore("-C", root, "apply")
    assert applied.code == 0, applied.err
    assert "created  feature view big_spender" in applied.out
    return root


def install_airflow() -> Path:
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(INSTALL)],
        env={**os.environ, "AIRFLOW_VENV": str(AIRFLOW_VENV)},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"{INSTALL} failed\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    print(f"infra/airflow/install.sh: {time.monotonic() - started:.1f} s: {proc.stdout.strip()}")
    return AIRFLOW_VENV / "bin" / "airflow"


def airflow(airflow_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = subprocess.run(
        [str(airflow_bin), *args], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    print(f"airflow {' '.join(args)}: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, (
        f"airflow {' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n"
        f"--- stderr\n{proc.stderr[-6000:]}"
    )
    return proc


def airflow_time(text: str) -> datetime:
    """A time as Airflow's SQLite metadata database stores it: naive, in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_airflow_runs_the_dag_of_a_project(tmp_path: Path) -> None:
    root = make_project(tmp_path / "shop")
    dags = tmp_path / "dags"
    written = featurestore("-C", root, "airflow-dag", "--output", dags / "shop.py")
    assert written.code == 0, written.err
    assert "dependencies: daily_spend >> big_spender" in written.out

    airflow_bin = install_airflow()
    home = tmp_path / "airflow-home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow(airflow_bin, env, "db", "migrate")
    airflow(airflow_bin, env, "dags", "test", "featurestore_shop", LOGICAL_DATE)

    # What Airflow recorded: one successful DAG run and its data interval, every task succeeded.
    with sqlite3.connect(home / "airflow.db") as db:
        runs = db.execute(
            "SELECT run_id, state, data_interval_start, data_interval_end FROM dag_run WHERE dag_id = ?",
            ("featurestore_shop",),
        ).fetchall()
        assert len(runs) == 1, runs
        run_id, state, interval_start, interval_end = runs[0]
        tis = db.execute(
            "SELECT task_id, state, start_date, end_date FROM task_instance WHERE run_id = ?", (run_id,)
        ).fetchall()
    assert state == "success"
    window = (airflow_time(interval_start), airflow_time(interval_end))
    assert window == (utc(2024, 3, 3), utc(2024, 3, 4))
    assert sorted((task, ti_state) for task, ti_state, _, _ in tis) == sorted((v, "success") for v in VIEWS)
    airflow_times = {task: (airflow_time(start), airflow_time(end)) for task, _, start, end in tis}
    assert airflow_times["daily_spend"][1] <= airflow_times["big_spender"][0]

    # What our registry recorded: each view ran once, successfully, over Airflow's data interval,
    # big_spender after daily_spend had published; online equals offline.
    with FeatureStore(root) as store:
        ours = {view: store.registry.list_runs("shop", view, limit=10) for view in VIEWS}
        assert len(ours["daily_spend"]) == 2  # the run before the DAG, and Airflow's
        for view in VIEWS:
            run = ours[view][0]
            assert (run.status, run.window_start, run.window_end) == ("succeeded", *window), (view, run)
        spend, big = ours["daily_spend"][0], ours["big_spender"][0]
        assert spend.finished_at is not None and spend.finished_at <= big.started_at
        # March 2's events, published by daily_spend at as_of March 3, in this window only:
        # big_spender found them, so it read what the DAG run had just published.
        assert spend.rows_offline == big.rows_offline == 3
        for view in VIEWS:
            report = store.check_consistency(view, sample=None)
            assert (report.mismatched, report.missing, report.matched) == (0, 0, 3), (view, report)
