"""Runs of the local engine: offline published atomically, online derived from it (including
retractions), idempotent; a failure leaves offline as it was.

The view ``daily_spend`` sums each customer's card transactions per day and publishes the sum
at the next midnight (``as_of``). Transactions (2024, UTC) and the rows they give:

==========  ===========  ======      ====  ===========  =====  =
customer    ts           amount      cust  as_of        spend  n
==========  ===========  ======      ====  ===========  =====  =
1           03-01 10:00  10.0        1     03-02 00:00  15.0   2
1           03-01 12:00   5.0        1     03-03 00:00   7.0   1
1           03-02 09:00   7.0        1     03-05 00:00   1.0   1
1           03-04 08:00   1.0        2     03-02 00:00  100.0  1
2           03-01 08:00  100.0       2     03-04 00:00  50.0   1
2           03-03 20:00  50.0        3     03-03 00:00   3.0   1
3           03-02 11:00   3.0
==========  ===========  ======      ====  ===========  =====  =

Newest row per customer (what the online store must hold after a full run): customer 1
(03-05, 1.0, 1), customer 2 (03-04, 50.0, 1), customer 3 (03-03, 3.0, 1); watermark 03-05.

A run sets online, for every customer in its window's rows before or after it, that customer's
latest offline row over all partitions, or removes the customer when offline has none left.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tiny_projects import UTC_US, machine_time_zone, new_project, tree_snapshot, utc, write_parquet

import etl.runs
from etl.local import LocalEngine
from etl.runs import repair
from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64, RunError
from featurestore.definitions import Project
from featurestore.online import EVENT_TIME_COLUMN, OnlineStore, SyncStats, WriteStats
from featurestore.store import FeatureStore, create_online_store
from featurestore.validation import validate_project

VIEW = "daily_spend"
KEYS = [1, 2, 3, 4]  # customer 4 never has data
SQL = """
    SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of,
           sum(amount) AS spend, count(*) AS n
    FROM transactions GROUP BY ALL
"""


def definitions(transformation: str = SQL) -> Project:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    transactions = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")
    view = FeatureView(
        name=VIEW,
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=3650),
        transformation=transformation,
        features=(Feature("spend", Float64), Feature("n", Int64)),
    )
    return validate_project([customer, transactions, view])


def write_transactions(root: Path, rows: Sequence[tuple[int, Any, float]]) -> None:
    write_parquet(
        root / "data" / "transactions.parquet",
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], UTC_US),
            "amount": [r[2] for r in rows],
        },
    )


TRANSACTIONS = [
    (1, utc(2024, 3, 1, 10), 10.0),
    (1, utc(2024, 3, 1, 12), 5.0),
    (1, utc(2024, 3, 2, 9), 7.0),
    (1, utc(2024, 3, 4, 8), 1.0),
    (2, utc(2024, 3, 1, 8), 100.0),
    (2, utc(2024, 3, 3, 20), 50.0),
    (3, utc(2024, 3, 2, 11), 3.0),
]
ALL_ROWS = [
    (1, utc(2024, 3, 2), 15.0, 2),
    (1, utc(2024, 3, 3), 7.0, 1),
    (1, utc(2024, 3, 5), 1.0, 1),
    (2, utc(2024, 3, 2), 100.0, 1),
    (2, utc(2024, 3, 4), 50.0, 1),
    (3, utc(2024, 3, 3), 3.0, 1),
]
NEWEST_ONLINE = {1: (utc(2024, 3, 5), 1.0, 1), 2: (utc(2024, 3, 4), 50.0, 1), 3: (utc(2024, 3, 3), 3.0, 1)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = new_project(tmp_path / "cards", "cards")
    write_transactions(root, TRANSACTIONS)
    with FeatureStore(root) as store:
        project = definitions()
        store.apply([*project.entities, *project.sources, *project.feature_views])
    return root


@pytest.fixture
def store(root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(root) as s:
        yield s


def run(store: FeatureStore, **window: Any) -> Any:
    views = {v.name: v for v in definitions().feature_views}
    return LocalEngine(store).run(VIEW, definitions=views, progress=False, **window)


def offline_rows(store: FeatureStore) -> list[tuple[Any, ...]]:
    view = store.get_feature_view(VIEW)
    table = store.offline_store.read(view)
    return sorted(zip(*(table.column(c).to_pylist() for c in ("customer_id", "as_of", "spend", "n")), strict=True))


def online_rows(store: FeatureStore | OnlineStore) -> dict[int, tuple[Any, ...]]:
    """What the online store holds per customer: (event time, spend, n); absent customers left out."""
    online = store.online_store if isinstance(store, FeatureStore) else store
    view = definitions().feature_views[0]
    table = online.read(view, pa.table({"customer_id": pa.array(KEYS, pa.int64())}), ["spend", "n"])
    out = {}
    for row in table.to_pylist():
        if row[EVENT_TIME_COLUMN] is not None:
            out[row["customer_id"]] = (row[EVENT_TIME_COLUMN], row["spend"], row["n"])
    return out


# ---------------------------------------------------------------------- consistency


def test_a_run_publishes_the_same_values_offline_and_online(store: FeatureStore) -> None:
    result = run(store)
    assert result.status == "succeeded"
    assert result.watermark == utc(2024, 3, 5)
    assert offline_rows(store) == ALL_ROWS
    assert online_rows(store) == NEWEST_ONLINE

    # Online equals offline as of the watermark, for every key (read both).
    reference = store.get_reference_data(VIEW, result.watermark, include_expired=True)
    offline_as_of = {r["customer_id"]: (r["as_of"], r["spend"], r["n"]) for r in reference.to_pylist()}
    assert offline_as_of == online_rows(store)
    assert store.online_store.count(store.get_feature_view(VIEW)) == 3


def test_the_run_is_recorded_with_window_rows_watermark_and_timings(store: FeatureStore) -> None:
    result = run(store, start=utc(2024, 3, 2), end=utc(2024, 3, 4))
    # In [03-02, 03-04): four rows; newest per customer: 1 at 03-03, 2 at 03-02, 3 at 03-03.
    assert (result.rows_computed, result.rows_offline, result.rows_online) == (4, 4, 3)
    (record,) = store.registry.list_runs(store.project, VIEW)
    assert record.id == result.run_id
    assert record.status == "succeeded"
    assert record.engine == "local"
    assert record.view_version == 1
    assert (record.window_start, record.window_end) == (utc(2024, 3, 2), utc(2024, 3, 4))
    assert (record.rows_computed, record.rows_offline, record.rows_online) == (4, 4, 3)
    assert (record.entities_affected, record.rows_online_removed) == (3, 0)
    assert (result.rows_before, result.entities_affected, result.rows_online_removed) == (0, 3, 0)
    assert record.watermark == utc(2024, 3, 3)
    assert record.error is None
    assert set(record.timings) == {
        "recover_s",  # leftovers of killed runs removed, pending intents settled
        "compute_s",
        "validate_s",  # the quality gate (no expectations here: nothing to validate)
        "statistics_s",
        "offline_stage_s",
        "online_write_s",
        "offline_publish_s",
    }
    assert all(t >= 0 for t in record.timings.values())
    assert record.finished_at is not None and record.finished_at >= record.started_at
    assert store.registry.watermark(store.project, VIEW) == utc(2024, 3, 3)


# ---------------------------------------------------------------------- idempotence


def test_rerunning_everything_is_idempotent(store: FeatureStore) -> None:
    run(store)
    first_offline, first_online = offline_rows(store), online_rows(store)
    run(store)
    assert offline_rows(store) == first_offline == ALL_ROWS
    assert online_rows(store) == first_online == NEWEST_ONLINE
    runs = store.registry.list_runs(store.project, VIEW)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert [r.rows_offline for r in runs] == [6, 6]


def test_rerunning_a_window_is_idempotent(store: FeatureStore) -> None:
    window = {"start": utc(2024, 3, 3), "end": utc(2024, 3, 5)}
    run(store)
    run(store, **window)
    after_one = offline_rows(store)
    run(store, **window)
    assert offline_rows(store) == after_one == ALL_ROWS
    assert online_rows(store) == NEWEST_ONLINE
    runs = store.registry.list_runs(store.project, VIEW)
    assert [r.status for r in runs] == ["succeeded"] * 3
    # [03-03, 03-05) holds customer 1 at 03-03, customer 2 at 03-04 and customer 3 at 03-03.
    assert [r.rows_offline for r in runs[:2]] == [3, 3]


def test_a_window_replaces_only_its_rows(store: FeatureStore, root: Path) -> None:
    run(store)
    # Customer 3's transaction of 03-02 was booked twice as large; other days unchanged.
    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])
    run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
    assert offline_rows(store) == [r if r[0] != 3 else (3, utc(2024, 3, 3), 6.0, 1) for r in ALL_ROWS]
    assert online_rows(store)[3] == (utc(2024, 3, 3), 6.0, 1)


# ---------------------------------------------------------------------- online derived from offline


def test_a_backfill_of_an_older_window_leaves_the_newer_values_online(store: FeatureStore) -> None:
    newer = run(store, start=utc(2024, 3, 4), end=utc(2024, 3, 6))
    # [03-04, 03-06): customer 1 at 03-05 and customer 2 at 03-04.
    assert online_rows(store) == {1: NEWEST_ONLINE[1], 2: NEWEST_ONLINE[2]}
    assert (newer.rows_online, newer.entities_affected) == (2, 2)

    older = run(store, start=utc(2024, 3, 2), end=utc(2024, 3, 4))
    # [03-02, 03-04) touches customers 1, 2 and 3: each is set to its latest offline row over all
    # partitions, which for customers 1 and 2 is the newer row already online.
    assert (older.rows_online, older.rows_online_removed, older.entities_affected) == (3, 0, 3)
    assert online_rows(store) == NEWEST_ONLINE
    assert offline_rows(store) == ALL_ROWS
    assert store.registry.watermark(store.project, VIEW) == utc(2024, 3, 5)


def test_a_rerun_retracting_rows_moves_online_back_or_removes_the_entity(store: FeatureStore, root: Path) -> None:
    run(store)
    # Customer 1's transaction of 03-04 and customer 3's only one were never made.
    write_transactions(root, [t for t in TRANSACTIONS if t[1] != utc(2024, 3, 4, 8) and t[0] != 3])
    result = run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 6))
    # The window held four rows (1 at 03-03 and 03-05, 2 at 03-04, 3 at 03-03) and holds two:
    # half, which the row-drop guard still lets through.
    assert (result.rows_before, result.rows_offline) == (4, 2)
    assert offline_rows(store) == [r for r in ALL_ROWS if r[:2] not in ((1, utc(2024, 3, 5)), (3, utc(2024, 3, 3)))]
    # Customer 1 back to its older row, customer 3 removed, customer 2 unchanged.
    assert online_rows(store) == {1: (utc(2024, 3, 3), 7.0, 1), 2: NEWEST_ONLINE[2]}
    assert (result.entities_affected, result.rows_online, result.rows_online_removed) == (3, 2, 1)
    assert store.check_consistency(VIEW, sample=None).consistent


def test_a_window_whose_rows_vanish_is_blocked_unless_allowed(store: FeatureStore, root: Path) -> None:
    run(store)
    offline_before, online_before = tree_snapshot(store.offline_store.root), online_rows(store)
    # The source lost the transactions of 03-03 and 03-04: [03-04, 03-06) computes no row.
    write_transactions(root, [t for t in TRANSACTIONS if t[1] < utc(2024, 3, 3)])
    with pytest.raises(RunError) as blocked:
        run(store, start=utc(2024, 3, 4), end=utc(2024, 3, 6))
    message = str(blocked.value)
    assert "computed 0 row(s) where 2 are published" in message
    assert "--allow-row-drop" in message and "Nothing was published" in message
    assert tree_snapshot(store.offline_store.root) == offline_before
    assert online_rows(store) == online_before
    assert store.registry.list_runs(store.project, VIEW)[0].status == "failed"

    allowed = run(store, start=utc(2024, 3, 4), end=utc(2024, 3, 6), allow_row_drop=True)
    assert (allowed.rows_offline, allowed.rows_before, allowed.rows_online_removed) == (0, 2, 0)
    assert online_rows(store) == {1: (utc(2024, 3, 3), 7.0, 1), 2: (utc(2024, 3, 2), 100.0, 1), 3: NEWEST_ONLINE[3]}
    assert store.check_consistency(VIEW, sample=None).consistent


def test_a_merging_run_keeps_the_rows_the_source_no_longer_holds(store: FeatureStore, root: Path) -> None:
    run(store)
    # The source keeps the last days only: the transactions of 03-01 are gone.
    write_transactions(root, [t for t in TRANSACTIONS if t[1] >= utc(2024, 3, 2)])
    merged = run(store, start=utc(2024, 3, 1), end=utc(2024, 3, 6), merge=True)
    assert (merged.rows_before, merged.rows_computed) == (6, 4)
    assert offline_rows(store) == ALL_ROWS
    assert online_rows(store) == NEWEST_ONLINE
    # Without merge, the same window deletes the rows of 03-02 (published from 03-01).
    plain = run(store, start=utc(2024, 3, 1), end=utc(2024, 3, 6))
    assert plain.rows_offline == 4
    assert offline_rows(store) == [r for r in ALL_ROWS if r[1] != utc(2024, 3, 2)]
    assert online_rows(store) == NEWEST_ONLINE


def test_a_run_passes_every_publish_checkpoint_in_order(store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[tuple[str, int]] = []

    def checkpoint(phase: str) -> None:
        pending = store.offline_store.pending(store.get_feature_view(VIEW))
        reached.append((phase, len(pending)))

    monkeypatch.setattr(etl.runs, "CHECKPOINTS", [checkpoint])
    run(store)
    # The intent is pending from the commit until it is settled; SQLite writes in one batch.
    assert reached == [
        ("computed", 0),
        ("staged", 0),
        ("committed", 1),
        ("online_batch", 1),
        ("derived", 1),
        ("settled", 0),
    ]


# ---------------------------------------------------------------------- atomic failures


class FailingOnlineStore:
    """An online store whose first ``failures`` syncs fail (every one when None), delegating
    everything else to a real store."""

    transactional_writes = True
    equal_time_last_write_wins = True
    reports_skipped_older = True

    def __init__(self, inner: OnlineStore, failures: int | None = None) -> None:
        self.inner = inner
        self.failures = failures
        self.syncs = 0

    def prepare(self, views: Sequence[FeatureView]) -> None:
        self.inner.prepare(views)

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        raise OSError("simulated: the online store's disk is full")

    def sync(self, view: FeatureView, rows: pa.Table, removed: pa.Table) -> SyncStats:
        self.syncs += 1
        if self.failures is None or self.syncs <= self.failures:
            raise OSError("simulated: the online store's disk is full")
        return self.inner.sync(view, rows, removed)

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        return self.inner.read(view, keys, features)

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.read_packed(view, entity_keys)

    def layout(self, view: FeatureView, layout: int) -> Sequence[str] | None:
        return self.inner.layout(view, layout)

    def count(self, view: FeatureView) -> int:
        return self.inner.count(view)

    def close(self) -> None:
        self.inner.close()


CHANGED = [*[(c, t, a + 1) for c, t, a in TRANSACTIONS], (1, utc(2024, 3, 5, 9), 4.0)]
"""New data a successful run would publish: every amount one more, and a new day for customer 1."""
CHANGED_ONLINE = {1: (utc(2024, 3, 6), 4.0, 1), 2: (utc(2024, 3, 4), 51.0, 1), 3: (utc(2024, 3, 3), 4.0, 1)}


def test_a_run_whose_online_store_fails_reverts_offline_and_leaves_its_intent_pending(
    store: FeatureStore, root: Path
) -> None:
    run(store)
    view = store.get_feature_view(VIEW)
    files_before, rows_before, online_before = store.offline_store.files(view), offline_rows(store), online_rows(store)
    write_transactions(root, CHANGED)

    failing = FailingOnlineStore(create_online_store(store.config))
    with FeatureStore(root, online_store=failing) as broken:
        with pytest.raises(
            RunError, match=r"failed; its offline publish was reverted, so the offline store is as before"
        ):
            run(broken)
        assert failing.syncs == 2  # the run's derivation, then the undo's attempt from the reverted offline
        failed = broken.registry.list_runs(broken.project, VIEW)[0]

    assert store.offline_store.files(view) == files_before
    assert offline_rows(store) == rows_before == ALL_ROWS
    assert online_rows(store) == online_before == NEWEST_ONLINE
    assert store.offline_store.watermark(view) == utc(2024, 3, 5)
    (intent,) = store.offline_store.pending(view)
    assert (intent.run_id, intent.entities) == (failed.id, 3)
    assert failed.status == "failed"
    assert failed.error == "OSError: simulated: the online store's disk is full"
    assert {"offline_stage_s", "offline_publish_s"} <= set(failed.timings)
    assert failed.watermark is None
    assert store.registry.watermark(store.project, VIEW) == utc(2024, 3, 5)  # the first run's

    # With the store back, a repair derives the intent's entities from offline as it is.
    repaired = repair(store, VIEW, progress=False)
    assert (repaired.settled, repaired.entities) == ([failed.id], 3)
    assert store.offline_store.pending(view) == []
    assert online_rows(store) == NEWEST_ONLINE
    result = run(store)
    assert (result.rows_offline, result.rows_online) == (7, 3)
    assert online_rows(store) == CHANGED_ONLINE
    assert store.check_consistency(VIEW, sample=None).consistent


def test_a_run_whose_online_store_fails_once_is_undone_online_too(store: FeatureStore, root: Path) -> None:
    run(store)
    view = store.get_feature_view(VIEW)
    write_transactions(root, CHANGED)
    failing = FailingOnlineStore(create_online_store(store.config), failures=1)
    expected = r"failed; nothing was published: its offline publish was reverted and online derived"
    with FeatureStore(root, online_store=failing) as broken, pytest.raises(RunError, match=expected):
        run(broken)
    assert failing.syncs == 2
    assert store.offline_store.pending(view) == []
    assert offline_rows(store) == ALL_ROWS
    assert online_rows(store) == NEWEST_ONLINE
    assert store.check_consistency(VIEW, sample=None).consistent


def test_a_failing_first_run_leaves_no_offline_data(store: FeatureStore, root: Path) -> None:
    failing = FailingOnlineStore(create_online_store(store.config))
    with FeatureStore(root, online_store=failing) as broken, pytest.raises(RunError):
        run(broken)
    view = store.get_feature_view(VIEW)
    assert store.offline_store.files(view) == []
    assert store.offline_store.read(view).num_rows == 0
    # Reverted to nothing: deriving "every entity" of an empty view needs no online write, so the
    # failed run settles its own intent at once.
    assert store.offline_store.pending(view) == []
    assert online_rows(store) == {}
    result = run(store)
    assert (result.rows_offline, result.rows_online) == (6, 3)
    assert store.offline_store.pending(view) == []
    assert online_rows(store) == NEWEST_ONLINE
    # What the failed run left is gone: the files on disk are exactly the published ones.
    base = store.offline_store.view_dir(view)
    on_disk = {p for p in base.rglob("*") if p.is_file() and p.name not in (".lock", ".run.lock", "_manifest.json")}
    assert on_disk == set(store.offline_store.files(view))


def test_a_failing_transformation_is_a_failed_run_with_a_clear_error(store: FeatureStore) -> None:
    run(store)
    offline_before = tree_snapshot(store.offline_store.root)
    bad = definitions(transformation="SELECT customer_id, ts AS as_of, amount AS spend, cnt AS n FROM transactions")
    store.apply([*bad.entities, *bad.sources, *bad.feature_views])  # no schema check: the SQL is not run
    with pytest.raises(RunError) as caught:
        LocalEngine(store).run(VIEW, definitions={VIEW: bad.feature_views[0]}, progress=False)
    message = str(caught.value)
    assert "Feature view 'daily_spend': the transformation failed in DuckDB" in message
    assert '"cnt"' in message  # DuckDB names the unknown column
    failed = store.registry.list_runs(store.project, VIEW)[0]
    assert failed.status == "failed"
    assert failed.error is not None and '"cnt"' in failed.error
    assert tree_snapshot(store.offline_store.root) == offline_before
    assert online_rows(store) == NEWEST_ONLINE


def test_a_naive_window_is_refused_before_anything_runs(store: FeatureStore) -> None:
    with pytest.raises(RunError, match="has no time zone"):
        run(store, start=utc(2024, 3, 2).replace(tzinfo=None))
    assert store.registry.list_runs(store.project, VIEW) == []


def test_a_view_changed_since_it_was_applied_is_not_run(store: FeatureStore) -> None:
    # The run would publish rows the registry's definition (what readers decode with) does not describe.
    changed = definitions(transformation=SQL.replace("count(*)", "count(DISTINCT amount)"))
    with pytest.raises(RunError, match=r"has changed since it was applied.*run 'featurestore apply' first"):
        LocalEngine(store).run(VIEW, definitions={VIEW: changed.feature_views[0]}, progress=False)
    assert store.registry.list_runs(store.project, VIEW) == []
    assert store.offline_store.files(VIEW) == []


def test_reading_a_window_with_naive_bounds_is_utc_wherever_the_code_runs(store: FeatureStore) -> None:
    run(store)
    view = store.get_feature_view(VIEW)
    # [03-02 00:00, 03-02 06:00) UTC holds the two rows as of 03-02. In Tokyo, 06:00 would be the
    # previous day in UTC, and the partition of 03-02 would be skipped.
    with machine_time_zone("Asia/Tokyo"):
        table = store.offline_store.read(view, start=datetime(2024, 3, 2), end=datetime(2024, 3, 2, 6))
    assert sorted(table.column("spend").to_pylist()) == [15.0, 100.0]
