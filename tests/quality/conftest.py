"""The quality suites share ``quality_projects`` (imported by name: pytest puts this folder on
``sys.path``), one FastAPI TestClient import without its warning, and a Spark session.

``spark`` is module-scoped: a module that uses it gets a ``local[2]`` session (no Hive), stopped
at the module's end so that the Spark suites can later start theirs with Hive support; if a
session is already running (the Spark suites' own), it is used and left running.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette 1.x warns, on importing its TestClient, that it wants `httpx2` rather than `httpx`;
    # the TestClient works on httpx (see tests/api/conftest.py, which says the same).
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    # pyspark warns that it "does not yet fully support pandas >= 3.0.0" when it converts between
    # them (Spark runs, Great Expectations on Spark); the suites check every value that crosses,
    # so the warning says nothing to act on (tests/spark/conftest.py says the same).
    config.addinivalue_line("filterwarnings", "ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    from etl.spark import spark_session
    from featurestore.config import ProjectConfig, SparkEngineConfig

    running = SparkSession.getActiveSession()
    if running is not None:
        yield running
        return
    config = ProjectConfig(project="quality_tests", root=Path(tmp_path_factory.mktemp("spark")))
    conf = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
    session = spark_session(config, SparkEngineConfig(master="local[2]", conf=conf))
    yield session
    session.stop()
