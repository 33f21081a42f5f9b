"""A feature view run on a Spark standalone cluster (a master and a worker on 127.0.0.1, started
by ``infra/spark/start.sh``), through the command line as a user runs it: ``featurestore run
--engine spark`` with the cluster's URL as ``engine.master`` in ``featurestore.yaml``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from conftest import SparkCluster
from spark_projects import ALL_ROWS, NEWEST_ONLINE, hive_offline, new_project, offline_rows, online_rows

from featurestore.store import FeatureStore


def test_a_run_on_the_standalone_cluster_publishes_offline_and_online(
    tmp_path: Path, spark_cluster: SparkCluster
) -> None:
    engine: dict[str, Any] = {
        "type": "spark",
        "master": spark_cluster.master_url,
        "conf": {
            "spark.ui.enabled": False,
            "spark.sql.shuffle.partitions": 4,
            "spark.executor.memory": "1g",
            "spark.cores.max": 2,
        },
    }
    # A pandas transformation: Python runs on the cluster's executors, not only the JVM.
    root = new_project(tmp_path / "cards", engine=engine, transformation="daily", offline=hive_offline())
    exe = Path(sys.executable).with_name("featurestore")
    proc = subprocess.run(
        [str(exe), "-C", str(root), "run", "--all", "--engine", "spark", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^daily_spend: 6 rows offline\b.*\b3 online\b", proc.stdout, re.M), proc.stdout + proc.stderr
    with FeatureStore(root) as store:
        assert offline_rows(store) == ALL_ROWS
        assert online_rows(store) == NEWEST_ONLINE
        (record,) = store.registry.list_runs(store.project, "daily_spend")
        assert (record.engine, record.status) == ("spark", "succeeded")
        assert (record.rows_offline, record.rows_online, record.rows_online_removed) == (6, 3, 0)
    # The cluster ran it: the master lists the finished application.
    with urllib.request.urlopen(f"{spark_cluster.ui_url}/json/", timeout=5) as response:
        master = json.load(response)
    assert master["aliveworkers"] >= 1
    assert "featurestore-cards" in [app["name"] for app in master["completedapps"]], master
