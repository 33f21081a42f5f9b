"""Consistency under torture on the Spark engine, with the Hive offline store: the cases of
``test_consistency_torture.py`` whose outcome an engine could change (what a windowed re-run
computes with a source lookback, a correction, an empty window) and a crash, checked the same
four ways (``Shop.assert_consistent``), plus the Hive table read through the metastore equal to
the manifest's files.

Spark is slow to start here (~15 s), so the session is shared by the test session and the cases
are few: the crash grid (every phase, random points) runs on the embedded engine, whose publish
path after computing is the very same code (``etl.runs``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crashes import RunProcess, RunServer
from independent import micros
from shop import CORRECTED, ONLY_D3, ONLY_D8, QUIET_AFTER_D1, RECENT, SPARK_TEST_CONF, SPEND, D, Shop, raw_client

from featurestore.errors import RunError
from featurestore.offline.hive import HiveOfflineStore

STORES = ("sqlite", "redis", "cassandra")


@pytest.fixture
def spark_shop(
    request: pytest.FixtureRequest,
    online_store_config: dict[str, Any],
    tmp_path: Path,
    spark: Any,
    run_server: RunServer,
) -> Iterator[Shop]:
    project = Shop.create(
        tmp_path / "shop",
        online_store_config,
        raw_client(request, online_store_config),
        offline={"type": "hive", "database": f"t_{uuid.uuid4().hex[:10]}", "path": "data/offline"},
        engine={"type": "spark", "master": "local[2]", "conf": SPARK_TEST_CONF},
        spark=spark,
    )
    project.commands = run_server
    yield project
    project.close()


def hive_rows(spark: Any, shop: Shop, view: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The view's rows as Spark reads its Hive table through the metastore, like :meth:`Shop.offline_rows`."""
    offline = shop.store.offline_store
    assert isinstance(offline, HiveOfflineStore)
    table = spark.table(offline.table(view)).toArrow()
    got: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in table.to_pylist():
        key = (record["user_id"], micros(record["as_of"]))
        got[key] = {f: micros(v) if f == "first_at" else v for f in shop.features(view) for v in [record[f]]}
    return got


@pytest.mark.parametrize("online_store_config", STORES, indirect=True)
def test_spark_runs_move_online_with_offline(spark_shop: Shop, spark: Any) -> None:
    shop = spark_shop
    shop.run(RECENT)
    shop.assert_consistent(RECENT, "full run on Spark")
    # The lookback no longer sees D3 and D4 for the late window: their rows leave it.
    result = shop.run(RECENT, D[6], D[12])
    assert result.rows_before > result.rows_offline
    shop.assert_consistent(RECENT, "windowed re-run on Spark")
    quiet = shop.online_row(RECENT, QUIET_AFTER_D1)
    assert quiet is not None and quiet.values == {"spend": 10.0}
    assert shop.online_row(RECENT, ONLY_D3) is None

    shop.run(SPEND)
    shop.set_day(8, [e for e in shop.source[8] if e.user not in (CORRECTED, ONLY_D8)])
    shop.run(SPEND, D[6], D[10])
    shop.assert_consistent(SPEND, "corrected window on Spark")
    corrected = shop.online_row(SPEND, CORRECTED)
    assert corrected is not None and corrected.values["spend"] == 70.0
    assert shop.online_row(SPEND, ONLY_D8) is None

    # An empty source window: blocked, nothing changed (files, metastore, online), then accepted.
    before = shop.offline_tree(SPEND), hive_rows(spark, shop, SPEND), shop.raw.dump(SPEND)
    for day in (6, 7, 8, 9):
        shop.set_day(day, [])
    with pytest.raises(RunError, match=r"computed 0 row\(s\) where [\d,]+ are published.*--allow-row-drop"):
        shop.engine.run(SPEND, start=D[7], end=D[11], definitions=shop.definitions, progress=False)
    assert (shop.offline_tree(SPEND), hive_rows(spark, shop, SPEND), shop.raw.dump(SPEND)) == before
    shop.run(SPEND, D[7], D[11], allow_row_drop=True)
    shop.assert_consistent(SPEND, "empty window accepted on Spark")

    for view in (RECENT, SPEND):
        assert hive_rows(spark, shop, view) == shop.offline_rows(view) == shop.model[view]
    shop.assert_cli_consistent(RECENT, SPEND)


@pytest.mark.parametrize("online_store_config", ["sqlite"], indirect=True)
def test_a_spark_run_killed_after_its_commit_converges_at_the_next_run(
    spark_shop: Shop, spark: Any, tmp_path: Path
) -> None:
    shop = spark_shop
    shop.run(SPEND)
    shop.mutate(random.Random(5))
    shop.set_day(9, [e for e in shop.source[9] if e.user % 3])  # some of D9's users quiet: retracted
    before = shop.manifest_bytes(SPEND)
    # A Spark run in a process of its own (its own session and Derby metastore), killed once its
    # commit swapped the metastore's partitions and the manifest, before online was derived.
    child = RunProcess(shop.request(SPEND, D[5], D[11], kill={"phase": "committed"}), tmp_path / "spark-run.err")
    child.wait_for("READY", timeout=300)
    outcome = child.kill()
    assert outcome.killed and outcome.ready == ("committed", 1), outcome.describe() + child.stderr()
    assert shop.manifest_bytes(SPEND) != before
    shop.published(SPEND, D[5], D[11])
    (intent,) = shop.pending(SPEND)
    report = shop.store.check_consistency(SPEND, sample=None)
    assert report.mismatched + report.missing > 0, report.to_dict()  # offline ahead of online

    # The next run, of another window, in this process's session (another metastore, which
    # recover() brings in line with the manifest): the killed run's intent is derived first.
    shop.run(SPEND, D[2], D[4])
    shop.assert_consistent(SPEND, "after a Spark run killed at its commit")
    assert hive_rows(spark, shop, SPEND) == shop.offline_rows(SPEND) == shop.model[SPEND]
    runs = {r.id: r for r in shop.store.registry.list_runs(shop.store.project, SPEND)}
    assert runs[intent["run_id"]].status == "abandoned"
    shop.assert_cli_consistent(SPEND)
