"""The scheduler with a controllable clock (due runs, catch-up, no overlap, retries) on a tiny
embedded project, and ``featurestore scheduler`` as a process stopped by SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl.local import LocalEngine
from etl.scheduler import Attempt, Scheduler, SchedulerSettings
from featurestore.store import FeatureStore
from tests.unit.test_cli import featurestore
from tests.unit.tiny_projects import UTC_US, new_project, utc, write_parquet

FEATURES_PY = """\
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

rider = Entity(name="rider", join_keys=("rider_id",), key_types=(Int64,))
trips = FileSource(name="trips", path="data/trips.parquet", timestamp_field="ts")
rider_trips = FeatureView(
    name="rider_trips",
    entities=(rider,),
    source=trips,
    timestamp_field="ts",
    ttl=timedelta(days=1),
    features=(Feature("fare", Float64),),
    schedule=SCHEDULE,
    freshness=timedelta(hours=2),
)
"""


def make_project(root: Path, schedule: str = "timedelta(hours=1)", before_view: str = "") -> Path:
    """Two riders with a trip every hour of 2024-03-01, applied."""
    new_project(root, "rides")
    text = FEATURES_PY.replace("SCHEDULE", schedule)
    (root / "features.py").write_text(
        text.replace("rider_trips = FeatureView(", before_view + "rider_trips = FeatureView(")
    )
    hours = [utc(2024, 3, 1, h) for h in range(24)]
    write_parquet(
        root / "data" / "trips.parquet",
        {
            "rider_id": pa.array([1, 2] * 24, pa.int64()),
            "ts": pa.array([h for h in hours for _ in (1, 2)], UTC_US),
            "fare": pa.array([float(i) for i in range(48)], pa.float64()),
        },
    )
    applied = featurestore("-C", root, "apply")
    assert applied.code == 0, applied.err
    return root


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Engine:
    """The local engine, with a gate a test can close (a run waits at it) and failures it can inject."""

    def __init__(self, store: FeatureStore) -> None:
        self.local = LocalEngine(store)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def run(self, view_name: str, **kwargs: Any) -> object:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self.local.run(view_name, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = FeatureStore(make_project(tmp_path / "rides"))
    yield s
    s.close()


def scheduler(store: FeatureStore, clock: Clock, **settings: Any) -> tuple[Scheduler, Engine]:
    engine = Engine(store)
    settings.setdefault("poll", timedelta(days=1))  # next_wake shows the due time, not the poll cap
    return Scheduler(store, engine, settings=SchedulerSettings(**settings), clock=clock), engine


def windows(store: FeatureStore) -> list[tuple[str, datetime | None, datetime | None]]:
    """(status, window start, window end) of every run, oldest first, in UTC."""

    def aware(t: datetime | None) -> datetime | None:  # SQLite gives the registry's UTC times back naive
        return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t

    out = []
    for r in reversed(store.registry.list_runs(store.project, "rider_trips")):
        out.append((r.status, aware(r.window_start), aware(r.window_end)))
    return out


def test_runs_when_due_from_the_watermark(store: FeatureStore) -> None:
    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched, _ = scheduler(store, clock)
    assert sched.tick() == [Attempt("rider_trips", utc(2024, 3, 1, 5), None, 1)]  # first run: all history
    sched.join()
    assert store.registry.watermark(store.project, "rider_trips") == utc(2024, 3, 1, 4)
    assert sched.tick() == []  # nothing new is due
    assert sched.next_wake() == utc(2024, 3, 1, 6)
    clock.now = utc(2024, 3, 1, 6, 0, 5)
    assert sched.tick() == [Attempt("rider_trips", utc(2024, 3, 1, 6), utc(2024, 3, 1, 4), 1)]
    sched.join()
    assert windows(store) == [
        ("succeeded", None, utc(2024, 3, 1, 5)),
        ("succeeded", utc(2024, 3, 1, 4), utc(2024, 3, 1, 6)),
    ]
    sched.close()


def test_pushes_neither_move_the_window_start_nor_skip_a_due_run(store: FeatureStore) -> None:
    from etl.push import push

    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched, _ = scheduler(store, clock)
    sched.tick()
    sched.join()
    # A payment pushed with a time past the next due time (a clock ahead, say): the pushed row is
    # the view's newest data, but the source rows between the watermark and 06:00 are not computed yet.
    push(store, "rider_trips", [{"rider_id": 1, "ts": utc(2024, 3, 1, 6, 40), "fare": 9.5}])
    assert store.registry.watermark(store.project, "rider_trips") == utc(2024, 3, 1, 6, 40)
    clock.now = utc(2024, 3, 1, 6, 0, 5)
    assert sched.tick() == [Attempt("rider_trips", utc(2024, 3, 1, 6), utc(2024, 3, 1, 4), 1)]
    sched.join()
    runs = [w for w in windows(store) if w[1] is not None or w[2] is not None]
    assert runs[-1] == ("succeeded", utc(2024, 3, 1, 4), utc(2024, 3, 1, 6))
    # The run kept the pushed row (its window ends before it) and published the source's 05:00.
    offline = store.offline_store.read(store.get_feature_view("rider_trips"))
    times = set(offline.column("ts").to_pylist())
    assert utc(2024, 3, 1, 6, 40) in times and utc(2024, 3, 1, 5) in times
    sched.close()


def test_catch_up_after_downtime_is_bounded_and_oldest_first(store: FeatureStore) -> None:
    clock = Clock(utc(2024, 3, 1, 5, 30))
    first, _ = scheduler(store, clock)
    first.tick()
    first.join()
    first.close()
    # Down from 05:30 to 09:30: due times 06:00..09:00 were missed; a new process catches up the latest two.
    clock.now = utc(2024, 3, 1, 9, 30)
    sched, _ = scheduler(store, clock, max_catchup=2)
    started = [sched.tick(), sched.join(), sched.tick(), sched.join(), sched.tick()]
    assert [a.due for batch in started if batch for a in batch] == [utc(2024, 3, 1, 8), utc(2024, 3, 1, 9)]
    assert windows(store)[1:] == [
        ("succeeded", utc(2024, 3, 1, 4), utc(2024, 3, 1, 8)),  # from the watermark: 06:00 and 07:00 covered
        ("succeeded", utc(2024, 3, 1, 7), utc(2024, 3, 1, 9)),
    ]
    sched.close()


def test_a_view_still_running_is_not_started_again(store: FeatureStore) -> None:
    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched, engine = scheduler(store, clock)
    engine.gate.clear()
    assert len(sched.tick()) == 1
    assert engine.entered.wait(10)
    clock.now = utc(2024, 3, 1, 7, 30)  # two more due times while the run is held
    assert sched.tick() == []
    assert sched.tick() == []
    engine.gate.set()
    sched.join()
    assert [a.due for a in sched.tick()] == [utc(2024, 3, 1, 6)]
    sched.join()
    assert [a.due for a in sched.tick()] == [utc(2024, 3, 1, 7)]
    sched.join()
    assert [s for s, _, _ in windows(store)] == ["succeeded"] * 3  # one at a time, none twice
    sched.close()


def test_a_failing_source_is_retried_with_backoff_then_succeeds(store: FeatureStore) -> None:
    source = store.config.root / "data" / "trips.parquet"
    hidden = source.with_suffix(".away")
    source.rename(hidden)
    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched, _ = scheduler(store, clock, attempts=3, backoff=timedelta(seconds=30))
    assert len(sched.tick()) == 1
    sched.join()
    assert sched.next_wake() == utc(2024, 3, 1, 5, 30, 30)
    clock.now = utc(2024, 3, 1, 5, 30, 20)
    assert sched.tick() == []  # backing off
    clock.now = utc(2024, 3, 1, 5, 30, 30)
    assert [a.attempt for a in sched.tick()] == [2]
    sched.join()
    assert sched.next_wake() == utc(2024, 3, 1, 5, 31, 30)  # 60 s: doubled
    hidden.rename(source)
    clock.now = utc(2024, 3, 1, 5, 31, 30)
    assert [a.attempt for a in sched.tick()] == [3]
    sched.join()
    runs = list(reversed(store.registry.list_runs(store.project, "rider_trips")))
    assert [r.status for r in runs] == ["failed", "failed", "succeeded"]  # every attempt recorded
    assert all("no file matches" in (r.error or "") for r in runs[:2])
    assert sched.tick() == []
    sched.close()


def test_a_due_time_is_given_up_after_its_attempts(store: FeatureStore) -> None:
    (store.config.root / "data" / "trips.parquet").unlink()
    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched, _ = scheduler(store, clock, attempts=2, backoff=timedelta(seconds=1))
    for _ in range(2):
        assert len(sched.tick()) == 1
        sched.join()
        clock.now += timedelta(seconds=1)
    assert sched.tick() == []  # given up: the next due time (06:00) is next
    assert sched.next_wake() == utc(2024, 3, 1, 6)
    assert [s for s, _, _ in windows(store)] == ["failed", "failed"]
    sched.close()


def test_an_attempt_refused_before_the_pipeline_is_recorded_too(store: FeatureStore) -> None:
    applied = store.get_feature_view("rider_trips")
    changed = dataclasses.replace(applied, ttl=timedelta(days=2))  # edited, not applied
    clock = Clock(utc(2024, 3, 1, 5, 30))
    engine = Engine(store)
    sched = Scheduler(
        store,
        engine,
        definitions=lambda: {"rider_trips": changed},
        settings=SchedulerSettings(attempts=1),
        clock=clock,
    )
    assert len(sched.tick()) == 1
    sched.join()
    [run] = store.registry.list_runs(store.project, "rider_trips")
    assert (run.status, run.engine) == ("failed", "scheduler")
    assert run.error is not None and "has changed since it was applied" in run.error
    assert windows(store) == [("failed", None, utc(2024, 3, 1, 5))]
    sched.close()


SLOW = """

def slow(frame):  # marks that a run is computing, then takes a while: a signal lands mid-run
    import pathlib
    import time

    pathlib.Path(MARKER).touch()
    time.sleep(1.5)
    return frame
"""


def slow_project(root: Path) -> tuple[Path, Path]:
    """The project with a 1-second interval and a transformation that takes 1.5 s, and the file
    it touches when a run starts computing."""
    marker = root / "data" / "computing"
    slow = SLOW.replace("MARKER", repr(str(marker)))
    make_project(root, schedule="timedelta(seconds=1),\n    transformation=slow", before_view=slow + "\n\n")
    marker.unlink()  # apply ran the transformation on a few rows to learn its schema
    return root, marker


def start_scheduler(root: Path, pid_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "featurestore.cli",
            "-C",
            str(root),
            "scheduler",
            "--poll",
            "1s",
            "--pid-file",
            str(pid_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def statuses(root: Path) -> list[str]:
    """The statuses of the view's runs, oldest first."""
    store = FeatureStore(root)
    try:
        return [r.status for r in reversed(store.registry.list_runs(store.project, "rider_trips"))]
    finally:
        store.close()


def wait_for(proc: subprocess.Popen[str], what: str, done: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            pytest.fail(f"the scheduler exited with {proc.returncode} before {what}: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.05)


def consistent(root: Path) -> None:
    checked = featurestore("-C", root, "check-consistency", "rider_trips", "--all")
    assert checked.code == 0, checked.out + checked.err
    assert "checked 2 of 2 entities: 2 match, 0 differ, 0 missing online, 0 extra online" in checked.out


def test_sigterm_mid_run_lets_the_run_finish_and_exits_0(tmp_path: Path) -> None:
    root, marker = slow_project(tmp_path / "rides")
    pid_file = tmp_path / "scheduler.pid"
    proc = start_scheduler(root, pid_file)
    try:
        wait_for(proc, "scheduled run recorded", lambda: "succeeded" in statuses(root))
        assert pid_file.read_text().strip() == str(proc.pid)
        marker.unlink()
        wait_for(proc, "second run computing", marker.exists)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output
    assert elapsed < 10, elapsed  # the run in progress (1.5 s of computing) finished, nothing more
    assert "signal 15: finishing the run in progress, then stopping" in output
    assert "scheduler of project 'rides' stopped" in output
    assert not pid_file.exists()
    runs = statuses(root)
    assert runs[-1] == "succeeded" and "running" not in runs and "abandoned" not in runs, runs
    consistent(root)
    listed = featurestore("-C", root, "schedule")
    line = next(line for line in listed.out.splitlines() if line.startswith("rider_trips"))
    assert "every 0:00:01" in line and "succeeded" in line and "STALE" in line  # its data is from 2024


def test_a_second_signal_abandons_the_run_and_a_restart_converges(tmp_path: Path) -> None:
    root, marker = slow_project(tmp_path / "rides")
    pid_file = tmp_path / "scheduler.pid"
    proc = start_scheduler(root, pid_file)
    try:
        wait_for(proc, "run computing", marker.exists)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, output
    assert statuses(root) == ["running"]  # cut short: no outcome recorded
    proc = start_scheduler(root, pid_file)  # the stale PID file does not stop it
    try:
        wait_for(proc, "run after the restart", lambda: "succeeded" in statuses(root))
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output
    assert statuses(root)[:2] == ["abandoned", "succeeded"]  # found by the next run of the view
    consistent(root)
