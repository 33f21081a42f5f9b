"""Fixtures of the integration suites: the fork server that crashes runs, and one SparkSession for
the whole test session (started only when a Spark case runs; ~15 s, as in ``tests/spark``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crashes import RunServer
from shop import SPARK_TEST_CONF


def pytest_configure(config: pytest.Config) -> None:
    # pyspark warns once that it "does not yet fully support pandas >= 3.0.0"; the Spark cases
    # compare every value that crosses between the two, so the warning says nothing to act on.
    config.addinivalue_line("filterwarnings", "ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="session")
def run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunServer]:
    """``_killable_run.py serve``: forks one child per crashed run (see ``crashes.py``)."""
    server = RunServer(tmp_path_factory.mktemp("run-server") / "stderr.log")
    yield server
    server.close()


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
    session = spark_session(config, SparkEngineConfig(master="local[2]", conf=SPARK_TEST_CONF), hive=hive)
    yield session
    session.stop()


FEAST_VENV = Path(__file__).resolve().parents[2] / ".venv-feast"


@pytest.fixture(scope="session")
def feast_python() -> Path:
    """The interpreter of Feast's own venv (``.venv-feast``, Feast 0.67), installed by
    ``infra/feast/install.sh`` when missing (idempotent: returns at once when installed; 1-2 min
    the first time, most of it compiling its bytecode). Feast pins its dependencies against ours, so it never enters the project's venv:
    tests run Feast's side as scripts with this interpreter."""
    script = FEAST_VENV.parents[0] / "infra" / "feast" / "install.sh"
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=900, check=False, env={**os.environ}
    )
    if proc.returncode != 0:
        pytest.fail(f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return FEAST_VENV / "bin" / "python"
