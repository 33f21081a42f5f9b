"""The scheduler with a controllable clock (due runs, catch-up, no overlap, retries) on a tiny
embedded project, and ``featurestore scheduler`` as a process stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
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


def make_project(root: Path, schedule: str = "timedelta(hours=1)") -> Path:
    """Two riders with a trip every hour of 2024-03-01, applied."""
    new_project(root, "rides")
    (root / "features.py").write_text(FEATURES_PY.replace("SCHEDULE", schedule))
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
    out = []
    for r in reversed(store.registry.list_runs(store.project, "rider_trips")):
        start, end = (
            None if t is None else t.replace(tzinfo=t.tzinfo or utc(1970, 1, 1).tzinfo)
            for t in (r.window_start, r.window_end)
        )
        out.append((r.status, start, end))
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


def test_the_scheduler_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    root = make_project(tmp_path / "rides", schedule="timedelta(seconds=1)")
    pid_file = tmp_path / "scheduler.pid"
    proc = subprocess.Popen(
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
    try:
        deadline = time.monotonic() + 60
        store = FeatureStore(root)
        try:
            while time.monotonic() < deadline:
                runs = store.registry.list_runs(store.project, "rider_trips")
                if sum(r.status == "succeeded" for r in runs) >= 2:
                    break
                assert proc.poll() is None, proc.communicate()[0]
                time.sleep(0.2)
            else:
                pytest.fail("no scheduled run was recorded within 60 s")
        finally:
            store.close()
        assert pid_file.read_text().strip() == str(proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output
        assert time.monotonic() - t0 < 15
        assert not pid_file.exists()
        assert "scheduler of project 'rides' stopped" in output
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    checked = featurestore("-C", root, "check-consistency", "rider_trips", "--all")
    assert checked.code == 0, checked.out + checked.err
    assert "checked 2 of 2 entities: 2 match, 0 differ, 0 missing online, 0 extra online" in checked.out
    listed = featurestore("-C", root, "schedule")
    line = next(line for line in listed.out.splitlines() if line.startswith("rider_trips"))
    assert "every 0:00:01" in line and "succeeded" in line and "STALE" in line  # its data is from 2024
