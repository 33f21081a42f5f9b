"""The Feast tests' shared project: a driver repository as Feast's template has it, written once in
Feast's SDK (``feast_scripts/feast_side.py``, run with Feast's interpreter) and once in ours (here),
over the same generated Parquet data.

* ``driver_hourly_stats`` (TTL 1 day): ``conv_rate``, ``acc_rate`` (null for some rows) and
  ``avg_daily_trips`` of each driver, one to four rows per driver over the last three days, the
  file's rows shuffled (an entity's latest row is not its last in the file); some drivers have
  only rows older than the TTL, some no row at all.
* ``driver_profile`` (TTL 3650 days): ``home_city`` (null for some) and ``licensed``, one or two
  rows per driver over the last year.
* Feature service ``driver_activity``: conv_rate, avg_daily_trips and home_city.

Feast's side lives in ``feast_scripts/`` rather than ``feast/``: the tests run with this folder on
``sys.path``, where a folder named ``feast`` would be found by ``importlib.util.find_spec("feast")``
(which ``featurestore.feast_import`` asks to tell whether this interpreter has Feast).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.local import LocalEngine
from featurestore import Bool, Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64, String
from featurestore.config import CONFIG_FILE_NAME, render_default_config
from featurestore.store import FeatureStore
from featurestore.validation import validate_project

FEAST_SIDE = Path(__file__).with_name("feast_scripts") / "feast_side.py"
FEAST_OPTIMIZE = "-O"
"""Feast's side runs with ``python -O``: Feast's classes carry typeguard's ``@typechecked``, which
at import re-parses and recompiles each decorated class's module (4.5 of the 6.5 s of CPU that
``import feast`` takes here, 2026-11-29) and under ``-O`` is a no-op. What it checks is the types of
the arguments our scripts give Feast's SDK, fixed definitions that pass it (the same jobs ran
without ``-O``), not anything the tests compare; nothing in Feast catches its errors. Feast's
``import-feast`` reader, being the product, runs as the product runs it (without ``-O``). ``-O``
also removes Feast's own ``assert`` statements (413 in 0.67), in its SDK and in the reference
server: the error cases compared with ours are exceptions Feast raises; a new one whose Feast
answer comes from an ``assert`` or typeguard must run without ``-O``."""
STATS, PROFILE, SERVICE = "driver_hourly_stats", "driver_profile", "driver_activity"
TTL = {STATS: timedelta(days=1), PROFILE: timedelta(days=3650)}
FEATURES = {STATS: ["conv_rate", "acc_rate", "avg_daily_trips"], PROFILE: ["home_city", "licensed"]}
REFS = [f"{view}:{f}" for view, names in FEATURES.items() for f in names]
SERVICE_FEATURES = {"conv_rate": STATS, "avg_daily_trips": STATS, "home_city": PROFILE}
CITIES = ["Lisbon", "Porto", "Braga", "Faro"]
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class DriverData:
    """What was generated: the files, ``now`` (every time is before it) and the driver ids."""

    stats_path: Path
    profile_path: Path
    now: datetime
    drivers: list[int]
    stats_rows: dict[int, list[datetime]]
    """Each driver's stats event times (to explain what a lookup or a training set finds)."""
    profile_rows: dict[int, list[datetime]]


def generate(folder: Path, n_drivers: int, seed: int = 17) -> DriverData:
    """``n_drivers`` drivers (ids from 1001): ~10 % with only stats rows past the TTL, ~5 % with no
    stats row; ~10 % of acc_rate and home_city values null."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    drivers = list(range(1001, 1001 + n_drivers))
    stats: list[dict[str, Any]] = []
    profile: list[dict[str, Any]] = []
    stats_rows: dict[int, list[datetime]] = {}
    profile_rows: dict[int, list[datetime]] = {}
    for d in drivers:
        kind = rng.random()
        if kind >= 0.05:  # the others have no stats row
            oldest_h, newest_h = (30, 72) if kind < 0.15 else (0, 72)
            times = {now - timedelta(seconds=rng.randint(oldest_h * 3600 + 60, newest_h * 3600 + 3599))}
            while len(times) < rng.randint(1, 4):
                times.add(now - timedelta(seconds=rng.randint(oldest_h * 3600 + 60, newest_h * 3600 + 3599)))
            stats_rows[d] = sorted(times)
            for t in times:
                stats.append(
                    {
                        "driver_id": d,
                        "event_timestamp": t,
                        "conv_rate": rng.random(),
                        "acc_rate": None if rng.random() < 0.1 else rng.random(),
                        "avg_daily_trips": rng.randint(0, 40),
                    }
                )
        times = {now - timedelta(days=rng.randint(1, 365), seconds=rng.randint(0, 86399))}
        if rng.random() < 0.3:
            times.add(now - timedelta(days=rng.randint(1, 365), seconds=rng.randint(0, 86399)))
        profile_rows[d] = sorted(times)
        for t in times:
            profile.append(
                {
                    "driver_id": d,
                    "updated_at": t,
                    "home_city": None if rng.random() < 0.1 else rng.choice(CITIES),
                    "licensed": rng.random() < 0.8,
                }
            )
    rng.shuffle(stats)  # late rows: the file is not in time order
    rng.shuffle(profile)
    folder.mkdir(parents=True, exist_ok=True)
    stats_path, profile_path = folder / "driver_stats.parquet", folder / "driver_profiles.parquet"
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([r["driver_id"] for r in stats], pa.int64()),
                "event_timestamp": pa.array([r["event_timestamp"] for r in stats], TS),
                "conv_rate": pa.array([r["conv_rate"] for r in stats], pa.float64()),
                "acc_rate": pa.array([r["acc_rate"] for r in stats], pa.float64()),
                "avg_daily_trips": pa.array([r["avg_daily_trips"] for r in stats], pa.int64()),
            }
        ),
        stats_path,
    )
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([r["driver_id"] for r in profile], pa.int64()),
                "updated_at": pa.array([r["updated_at"] for r in profile], TS),
                "home_city": pa.array([r["home_city"] for r in profile], pa.string()),
                "licensed": pa.array([r["licensed"] for r in profile], pa.bool_()),
            }
        ),
        profile_path,
    )
    return DriverData(stats_path, profile_path, now, drivers, stats_rows, profile_rows)


def our_definitions(stats_path: Path, profile_path: Path) -> list[object]:
    """The Feast repository's equivalent in our definitions, every name kept."""
    driver = Entity(name="driver", join_keys=("driver_id",), key_types=(Int64,))
    stats_source = FileSource(name="driver_stats", path=str(stats_path), timestamp_field="event_timestamp")
    profile_source = FileSource(name="driver_profiles", path=str(profile_path), timestamp_field="updated_at")
    stats = FeatureView(
        name=STATS,
        entities=(driver,),
        source=stats_source,
        timestamp_field="event_timestamp",
        ttl=TTL[STATS],
        features=(Feature("conv_rate", Float64), Feature("acc_rate", Float64), Feature("avg_daily_trips", Int64)),
    )
    profile = FeatureView(
        name=PROFILE,
        entities=(driver,),
        source=profile_source,
        timestamp_field="updated_at",
        ttl=TTL[PROFILE],
        features=(Feature("home_city", String), Feature("licensed", Bool)),
    )
    activity = FeatureService(
        name=SERVICE, features=(stats.select("conv_rate", "avg_daily_trips"), profile.select("home_city"))
    )
    return [driver, stats_source, profile_source, stats, profile, activity]


def build_ours(root: Path, data: DriverData, online_store: str | None = None) -> Path:
    """Our project in ``root``: applied and run once (offline Parquet, online SQLite unless
    ``online_store`` gives the YAML of another ``online_store`` section)."""
    root.mkdir(parents=True, exist_ok=True)
    config = render_default_config("drivers")
    if online_store is not None:
        config = config.replace("online_store:\n  type: sqlite\n  path: data/online.db\n", online_store)
    (root / CONFIG_FILE_NAME).write_text(config)
    objects = our_definitions(data.stats_path, data.profile_path)
    with FeatureStore(root) as store:
        engine = LocalEngine(store)
        store.apply(objects, schema_resolver=engine.infer_schema)
        views = {v.name: v for v in validate_project(objects).feature_views}
        for name in views:
            engine.run(name, definitions=views, progress=False)
    return root


def run_feast(
    feast_python: Path,
    job: dict[str, Any] | list[dict[str, Any]],
    folder: Path,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> None:
    """``feast_side.py`` on ``job`` (or on several jobs, in turn, in one interpreter: importing Feast
    is what takes the time) with Feast's interpreter; fails the test with its output if it fails."""
    document = {"jobs": job if isinstance(job, list) else [job]}
    job_path = folder / f"job-{len(list(folder.glob('job-*.json')))}.json"
    job_path.write_text(json.dumps(document, default=str))
    proc = subprocess.run(
        [str(feast_python), FEAST_OPTIMIZE, str(FEAST_SIDE), str(job_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=folder,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        pytest.fail(f"Feast's side failed ({job_path}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}", pytrace=False)


@dataclass
class FeastProcess:
    """``feast_side.py`` running in the background: its jobs, then (with ``serve``) Feast's feature server."""

    proc: subprocess.Popen[bytes]
    job_path: Path
    log: Path
    done: Path

    def failure(self, what: str) -> str:
        return f"Feast's side {what} ({self.job_path}):\n{self.log.read_text()[-6000:]}"

    def wait_done(self, timeout: float = 600) -> None:
        """Until the jobs are done; fails the test with Feast's output if the process exits first."""
        deadline = time.monotonic() + timeout
        while not self.done.exists():
            if self.proc.poll() is not None:
                pytest.fail(self.failure(f"exited {self.proc.returncode}"), pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(self.failure(f"did not finish its jobs within {timeout:.0f} s"), pytrace=False)
            time.sleep(0.2)

    def stop(self) -> None:
        """Stops it and what it started (gunicorn's workers), by its process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_feast(
    feast_python: Path, jobs: list[dict[str, Any]], folder: Path, serve: dict[str, Any] | None = None
) -> FeastProcess:
    """``feast_side.py`` on ``jobs`` in the background (the caller goes on meanwhile, then calls
    ``wait_done``); with ``serve`` (``repo``, ``host``, ``port``) it then serves that repository as
    ``feast serve`` does, until ``stop``."""
    job_path = folder / f"job-{len(list(folder.glob('job-*.json')))}.json"
    done = job_path.with_suffix(".done")
    job_path.write_text(json.dumps({"jobs": jobs, "done": str(done), "serve": serve}, default=str))
    log = job_path.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(feast_python), FEAST_OPTIMIZE, str(FEAST_SIDE), str(job_path)],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its gunicorn workers too are stopped with it, by its group id
        )
    return FeastProcess(proc=proc, job_path=job_path, log=log, done=done)
