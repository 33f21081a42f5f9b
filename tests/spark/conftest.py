"""Fixtures of the Spark suites: one SparkSession for the whole test session, and a standalone
cluster started by ``infra/spark/start.sh`` for the tests that need one.

* The session runs ``local[2]`` with Hive support, its Derby metastore and warehouse in this
  test session's temporary folder (Derby allows one process per metastore: parallel sessions
  must not share one), the UI off and small shuffles. Starting it takes 10-20 s, once.
* The cluster (a master and one worker on 127.0.0.1, on test ports) is started only for the
  tests that ask for it, and stopped at the end if this session started it. A cluster that does
  not come up FAILS those tests, with the script's output: never a skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SPARK_MASTER_PORT = int(os.environ.get("FEATURESTORE_TEST_SPARK_PORT", "17077"))
SPARK_UI_PORT = int(os.environ.get("FEATURESTORE_TEST_SPARK_UI_PORT", "18080"))
SPARK_WORKER_UI_PORT = int(os.environ.get("FEATURESTORE_TEST_SPARK_WORKER_UI_PORT", "18081"))
KEEP_SERVERS = os.environ.get("FEATURESTORE_TEST_KEEP_SERVERS", "") not in ("", "0")

TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
}


def pytest_configure(config: pytest.Config) -> None:
    # pyspark warns once that it "does not yet fully support pandas >= 3.0.0"; the suites below
    # check every value that crosses between the two, so the warning says nothing to act on.
    config.addinivalue_line("filterwarnings", "ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test session's SparkSession (local[2], Hive support, metastore in a temporary folder)."""
    from etl.spark import spark_session
    from featurestore.config import ProjectConfig, SparkEngineConfig
    from featurestore.offline.hive import HiveOfflineStore

    base = tmp_path_factory.mktemp("spark")
    hive = HiveOfflineStore(
        base / "offline", database="tests", warehouse=base / "warehouse", metastore=base / "metastore"
    )
    config = ProjectConfig(project="tests", root=base)
    session = spark_session(config, SparkEngineConfig(master="local[2]", conf=TEST_CONF), hive=hive)
    yield session
    session.stop()


@dataclass(frozen=True)
class SparkCluster:
    master_url: str
    ui_url: str
    start_output: str


def _script(action: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    path = REPO / "infra" / "spark" / f"{action}.sh"
    try:
        return subprocess.run(
            ["bash", str(path)],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"infra/spark/{action}.sh did not finish within {timeout:.0f} s: {err}", pytrace=False)


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[SparkCluster]:
    """A Spark standalone master and one worker on 127.0.0.1 (``infra/spark/start.sh``)."""
    env = {
        "SPARK_MASTER_PORT": str(SPARK_MASTER_PORT),
        "SPARK_MASTER_WEBUI_PORT": str(SPARK_UI_PORT),
        "SPARK_WORKER_WEBUI_PORT": str(SPARK_WORKER_UI_PORT),
    }
    proc = _script("start", env, 180.0)
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    if proc.returncode != 0:
        pytest.fail(f"infra/spark/start.sh exited {proc.returncode}\n{output}", pytrace=False)
    cluster = SparkCluster(
        master_url=f"spark://127.0.0.1:{SPARK_MASTER_PORT}",
        ui_url=f"http://127.0.0.1:{SPARK_UI_PORT}",
        start_output=output,
    )
    yield cluster
    if not KEEP_SERVERS and "already running" not in proc.stdout:
        _script("stop", env, 60.0)
