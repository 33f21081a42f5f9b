"""Fixtures of the integration suites: the fork server that crashes runs, and one SparkSession for
the whole test session (started only when a Spark case runs; ~15 s, as in ``tests/spark``)."""

from __future__ import annotations

from collections.abc import Iterator
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
