"""Push ingestion on real stores: pushed rows are published offline then online, interleave with
batch runs and backfills, replay idempotently, survive kills at every publish phase, and every
refusal names the rows and publishes nothing.

The ``shop`` project of ``shop.py``; after each step a case checks the view four ways
(``Shop.assert_consistent``: offline equals the model, which follows pushes too; the checker and
an independent comparison find online equal to offline; nothing pending or orphaned).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from crashes import PHASES, RunProcess, RunServer
from shop import SPEND, D, Shop, micros, raw_client

from etl.push import compact, push
from featurestore.errors import PushRejectedError, StoreUnavailableError

STORES = ("sqlite", "redis", "cassandra")
per_store = pytest.mark.parametrize("online_store_config", STORES, indirect=True)
embedded = pytest.mark.parametrize("online_store_config", ["sqlite"], indirect=True)


@pytest.fixture
def shop(
    request: pytest.FixtureRequest, online_store_config: dict[str, Any], tmp_path: Path, run_server: RunServer
) -> Iterator[Shop]:
    project = Shop.create(tmp_path / "shop", online_store_config, raw_client(request, online_store_config))
    project.commands = run_server
    yield project
    project.close()


def payment(user: int, day: int, hour: int, spend: float, n: int = 1) -> dict[str, Any]:
    at = D[day] + timedelta(hours=hour)
    return {"user_id": user, "as_of": at, "spend": spend, "n": n, "big": spend > 100, "first_at": at}


def online_spend(shop: Shop, user: int) -> tuple[int, float] | None:
    row = shop.online_row(SPEND, user)
    return None if row is None else (row.micros, row.values["spend"])


@per_store
def test_pushes_interleave_with_runs_and_backfills(shop: Shop) -> None:
    shop.run(SPEND, D[1], D[6])
    shop.assert_consistent(SPEND, "first run")
    # New events after the watermark: a new user, and a newer row of a known one.
    shop.push(SPEND, [payment(1, 12, 9, 55.5), payment(4242, 12, 10, 7.0)])
    shop.assert_consistent(SPEND, "push after the watermark")
    assert online_spend(shop, 4242) == (micros(D[12] + timedelta(hours=10)), 7.0)
    assert online_spend(shop, 1) == (micros(D[12] + timedelta(hours=9)), 55.5)
    # Training sets and reference data see them at once.
    ref = shop.store.get_reference_data(SPEND, D[13], features=["spend"])
    assert {r["user_id"]: r["spend"] for r in ref.to_pylist()}[4242] == 7.0
    # A later run over a window that covers the pushed rows keeps them (the source has no row of
    # the same user and time), and publishes its own newer days.
    shop.run(SPEND, D[1], D[13])
    shop.assert_consistent(SPEND, "run over the pushed rows")
    assert online_spend(shop, 4242) == (micros(D[12] + timedelta(hours=10)), 7.0)
    # A window starting mid-day, between the two pushed rows of March 12 (as a scheduled run's,
    # which starts at the watermark): the row before it stays once, the one in it is kept.
    shop.run(SPEND, D[12] + timedelta(hours=9, minutes=30), D[14])
    shop.assert_consistent(SPEND, "mid-day window")
    shop.run(SPEND, D[12] + timedelta(hours=9, minutes=30), D[14])
    shop.assert_consistent(SPEND, "mid-day window again")
    # An older pushed row does not move online back; a backfill (merge) keeps pushed rows too.
    shop.push(SPEND, [payment(4242, 3, 1, 1.0)])
    shop.assert_consistent(SPEND, "older push")
    assert online_spend(shop, 4242) == (micros(D[12] + timedelta(hours=10)), 7.0)
    shop.run(SPEND, D[1], D[5], merge=True)
    shop.assert_consistent(SPEND, "backfill")
    shop.run(SPEND)  # the whole history again
    shop.assert_consistent(SPEND, "full re-run")
    shop.assert_cli_consistent(SPEND)


@per_store
def test_a_push_replaying_or_correcting_a_row_is_idempotent_and_the_source_wins_at_the_next_run(shop: Shop) -> None:
    shop.run(SPEND)
    user, at = sorted(shop.model[SPEND])[0]
    published = dict(shop.model[SPEND][(user, at)])
    when = D[1] + timedelta(microseconds=at - micros(D[1]))
    correction = {"user_id": user, "as_of": when, "spend": 1234.5, "n": 9, "big": True, "first_at": when}
    first = shop.push(SPEND, [correction])
    assert first.replaced == 1
    shop.assert_consistent(SPEND, "correction")
    files_before = shop.offline_rows(SPEND)
    again = shop.push(SPEND, [correction])  # a client retrying: the same rows again
    assert again.replaced == 1
    assert shop.offline_rows(SPEND) == files_before
    shop.assert_consistent(SPEND, "replay")
    # The next run over that day: the source has a row of the same user and time, and wins.
    shop.run(SPEND, D[1], D[11])
    assert shop.offline_rows(SPEND)[(user, at)]["spend"] == published["spend"]
    shop.assert_consistent(SPEND, "the source wins")


@embedded
def test_refused_batches_name_their_rows_and_publish_nothing(shop: Shop) -> None:
    shop.run(SPEND)
    tree = shop.offline_tree(SPEND)
    online = shop.online(SPEND)
    good = shop.push_rows(SPEND, [payment(1, 12, 1, 5.0), payment(2, 12, 1, 6.0)])
    cases: list[tuple[Any, str, list[int]]] = [
        ([{**good[0], "spend": "lots"}, good[1]], "cannot be stored as double", [0]),
        ([good[0], {**good[1], "user_id": None}], "no user_id in row(s) 1", [1]),
        ([good[0], dict(good[0])], "repeat an entity at one event time", [0, 1]),
        ([{k: v for k, v in good[0].items() if k != "n"}], "lack ['n']", []),
        ([{**good[0], "spnd": 1.0}], "have columns the view does not: ['spnd']", []),
        ([{**good[0], "as_of": "2024-03-12T01:00:00"}], "no time zone", []),
        ("not rows", "must be a table", []),
    ]
    for rows, words, positions in cases:
        with pytest.raises(PushRejectedError) as caught:
            push(shop.store, SPEND, rows)
        assert words in str(caught.value), (words, str(caught.value))
        assert caught.value.rows == positions, (words, caught.value.rows)
    assert shop.offline_tree(SPEND) == tree
    assert shop.online(SPEND) == online
    shop.assert_consistent(SPEND, "after refusals")


@embedded
def test_the_views_blocking_expectations_refuse_a_batch(shop: Shop) -> None:
    text = (shop.root / "features.py").read_text()
    text = text.replace(
        "ttl=timedelta(days=2),", "ttl=timedelta(days=2),\n    expectations=(InRange('spend', min=0),),", 1
    )
    text = text.replace("from featurestore import Bool,", "from featurestore import Bool, InRange,", 1)
    (shop.root / "features.py").write_text(text)
    shop.apply()
    assert shop.store.get_feature_view(SPEND).expectations, "the definitions file did not take the expectation"
    shop.run(SPEND)
    tree = shop.offline_tree(SPEND)
    rows = [payment(1, 12, 1, 5.0), payment(2, 12, 1, -3.0), payment(3, 12, 1, -1.0)]
    with pytest.raises(PushRejectedError) as caught:
        shop.push(SPEND, rows)
    assert caught.value.rows == [1, 2]
    assert "spend" in str(caught.value) and "Nothing was published" in str(caught.value)
    assert shop.offline_tree(SPEND) == tree


@embedded
def test_an_online_store_down_during_a_push_leaves_both_stores_as_before(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.run(SPEND)
    tree = shop.offline_tree(SPEND)
    online = shop.online(SPEND)
    store = type(shop.store.online_store)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("online store", "test", "down for the test")

    with monkeypatch.context() as patch:
        patch.setattr(store, "sync", down)
        with pytest.raises(StoreUnavailableError):
            push(shop.store, SPEND, shop.push_rows(SPEND, [payment(7, 12, 3, 70.0)]))
    assert shop.offline_rows(SPEND) == {k: v for k, v in shop.model[SPEND].items()}
    assert shop.online(SPEND) == online
    # The store still down, its entities' online update waits as an intent for the next push or run.
    assert [p["entities"] for p in shop.pending(SPEND)] == [1]
    assert set(shop.offline_tree(SPEND)) >= set(tree) - {"_manifest.json"}
    runs = shop.store.registry.list_runs(shop.store.project, SPEND, limit=1)
    assert runs[0].engine == "push" and runs[0].status == "failed" and "down for the test" in (runs[0].error or "")
    shop.push(SPEND, [payment(7, 12, 3, 70.0)])  # the client retries: now it lands
    shop.assert_consistent(SPEND, "retried push")


@per_store
def test_a_push_killed_at_every_publish_phase_then_the_next_push_or_run_converges(
    shop: Shop, run_server: RunServer
) -> None:
    shop.run(SPEND)
    for hour, phase in enumerate((p for p in PHASES if p != "computed"), start=1):
        rows = shop.push_rows(SPEND, [payment(1, 12, hour, 10.0 + hour), payment(900 + hour, 12, hour, 1.0)])
        request = {
            "root": str(shop.root),
            "view": SPEND,
            "push": [{**r, "as_of": r["as_of"].isoformat(), "first_at": r["first_at"].isoformat()} for r in rows],
            "kill": {"phase": phase, "occurrence": 1},
        }
        before = shop.manifest_bytes(SPEND)
        outcome = run_server.run(request)
        assert outcome.failure is None, outcome.describe()
        committed = shop.manifest_bytes(SPEND) != before and phase != "staged"
        # Killed after the swap, the rows are published (acknowledged or not); not killed, the phase
        # was never reached (no online batch on a transactional store) and the push finished.
        if committed or not outcome.killed:
            shop.pushed_into_model(SPEND, rows)
        # The next push completes what the killed one left, then publishes its own rows.
        shop.push(SPEND, [payment(2, 13, hour, float(hour))])
        shop.assert_consistent(SPEND, f"push killed at {phase}")
    # And a run after a killed push.
    rows = shop.push_rows(SPEND, [payment(3, 12, 23, 33.0)])
    request = {
        "root": str(shop.root),
        "view": SPEND,
        "push": [{**r, "as_of": r["as_of"].isoformat(), "first_at": r["first_at"].isoformat()} for r in rows],
        "kill": {"phase": "committed", "occurrence": 1},
    }
    assert run_server.run(request).killed
    shop.pushed_into_model(SPEND, rows)
    shop.run(SPEND, D[1], D[14])
    shop.assert_consistent(SPEND, "run after a killed push")


@embedded
def test_compaction_folds_pushed_files_into_partitions_without_changing_a_row(shop: Shop) -> None:
    shop.run(SPEND, D[1], D[6])
    for hour in range(3):
        shop.push(SPEND, [payment(10 + hour, 12, hour, 1.5 * hour), payment(20 + hour, 13, hour, 2.0)])
    assert len(shop.store.offline_store.pushed_files(SPEND)["2024-03-12"]) == 3
    rows = shop.offline_rows(SPEND)
    result = compact(shop.store, SPEND)
    assert (result.dates, result.rows) == (["2024-03-12", "2024-03-13"], 6)
    assert shop.store.offline_store.pushed_files(SPEND) == {}
    assert shop.offline_rows(SPEND) == rows
    shop.assert_consistent(SPEND, "compacted")
    # The marker survives compaction: a run over those dates still keeps the pushed rows.
    shop.run(SPEND, D[1], D[14])
    shop.assert_consistent(SPEND, "run after compaction")
    proc = shop.cli("compact", SPEND)
    assert proc.returncode == 0 and "nothing to compact" in proc.stdout, proc.stdout + proc.stderr


@embedded
def test_the_cli_pushes_a_csv_file(shop: Shop, tmp_path: Path) -> None:
    shop.run(SPEND)
    csv = tmp_path / "payments.csv"
    csv.write_text(
        "user_id,as_of,spend,n,big,first_at\n"
        "5,2024-03-12T08:00:00Z,12.5,1,false,2024-03-12T08:00:00Z\n"
        "6,2024-03-12T08:30:00+01:00,130.0,2,true,2024-03-12T07:30:00Z\n"
    )
    proc = shop.cli("push", SPEND, str(csv))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pushed 2 row(s)" in proc.stdout
    half_past_seven = D[12] + timedelta(hours=7, minutes=30)
    shop.pushed_into_model(
        SPEND,
        [
            {**payment(5, 12, 8, 12.5), "first_at": D[12] + timedelta(hours=8)},
            {**payment(6, 12, 7, 130.0, 2), "as_of": half_past_seven, "first_at": half_past_seven},
        ],
    )
    shop.assert_consistent(SPEND, "CLI push")
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,as_of,spend,n,big,first_at\n5,2024-03-12T08:00:00,1,1,false,2024-03-12T08:00:00Z\n")
    proc = shop.cli("push", SPEND, str(bad), executable=True)  # the real entry point, which renders errors
    assert proc.returncode != 0
    assert "time zone" in proc.stderr, proc.stderr


def test_a_table_of_the_views_types_is_taken_as_it_is() -> None:
    from etl.push import conform_rows
    from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

    view = FeatureView(
        name="v",
        entities=(Entity(name="e", join_keys=("k",), key_types=(Int64,)),),
        source=FileSource(name="s", path="x.parquet", timestamp_field="ts"),
        timestamp_field="ts",
        ttl=timedelta(days=1),
        features=(Feature("x", Float64),),
    )
    table = pa.table(
        {"k": pa.array([1], pa.int64()), "ts": pa.array([D[1]], pa.timestamp("us", tz="UTC")), "x": [float("nan")]}
    )
    out = conform_rows(view, table)
    assert out.column("x").to_pylist() == [None]  # NaN is no value, as in runs


@embedded
def test_a_push_publishes_while_a_run_of_the_view_computes_and_the_run_keeps_it(shop: Shop, tmp_path: Path) -> None:
    shop.run(SPEND, D[1], D[6])
    gate = tmp_path / "gate"
    window = (D[1], D[13])
    run = RunProcess(shop.request(SPEND, *window, pause={"phase": "computed", "until": str(gate)}), tmp_path / "r.err")
    run.wait_for("PAUSED")
    # The run holds the view's run lock, computing: a push takes the publish lock at once.
    rows = shop.push_rows(SPEND, [payment(77, 12, 5, 77.0), payment(1, 12, 6, 11.0)])
    started = time.monotonic()
    shop.push(SPEND, rows)
    assert time.monotonic() - started < 5, "the push waited for the run"
    assert online_spend(shop, 77) == (micros(D[12] + timedelta(hours=5)), 77.0)
    gate.touch()
    ran = run.finish()
    assert ran.returncode == 0 and ran.result is not None, ran.describe() + run.stderr()
    # The run staged after the push: its window's pushed rows are kept (its source has none of them).
    shop.published(SPEND, *window)
    shop.assert_consistent(SPEND, "a push while a run computed")
    assert online_spend(shop, 77) == (micros(D[12] + timedelta(hours=5)), 77.0)
