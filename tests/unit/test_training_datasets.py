"""Named training datasets (issue 16, part 1): saved once, given back as the same bytes after
later runs, backfills and pushes; names immutable; what they read recorded; in the lineage.

Real SQLite registry, local Parquet offline store and the DuckDB (local) engine. The view
``daily_spend`` is the one of ``test_runs.py``: each customer's card spend per day, published
at the next midnight. The spine asks for customers 1-3 at times between its rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tiny_projects import UTC_US, new_project, utc, write_parquet

from etl.local import LocalEngine
from etl.push import push
from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64, training_datasets
from featurestore.cli import cli
from featurestore.errors import InvalidRequestError, NotFoundError, StoreUnavailableError
from featurestore.store import FeatureStore
from featurestore.training_datasets import DatasetCorruptedError, parquet_bytes, sha256

VIEW = "daily_spend"
SERVICE = "spend_model"
TRANSACTIONS = [
    (1, utc(2024, 3, 1, 10), 10.0),
    (1, utc(2024, 3, 1, 12), 5.0),
    (1, utc(2024, 3, 2, 9), 7.0),
    (1, utc(2024, 3, 4, 8), 1.0),
    (2, utc(2024, 3, 1, 8), 100.0),
    (2, utc(2024, 3, 3, 20), 50.0),
    (3, utc(2024, 3, 2, 11), 3.0),
]
SPINE = {
    "customer_id": [1, 2, 3, 1, 3, 2],
    "event_timestamp": [
        utc(2024, 3, 2, 12),  # 15.0
        utc(2024, 3, 3, 6),  # 100.0
        utc(2024, 3, 3, 6),  # 3.0 (the row of 03-03, from the transaction of 03-02)
        utc(2024, 3, 6, 12),  # 1.0 (03-05's row)
        utc(2024, 3, 4, 0),  # 3.0
        utc(2024, 3, 9, 0),  # 50.0
    ],
    "label": [0, 1, 0, 1, 0, 1],
}
SPEND = [15.0, 100.0, 3.0, 1.0, 3.0, 50.0]


def definitions() -> list[Any]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    transactions = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")
    view = FeatureView(
        name=VIEW,
        entities=(customer,),
        source=transactions,
        timestamp_field="as_of",
        ttl=timedelta(days=3650),
        transformation="""
            SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of,
                   sum(amount) AS spend, count(*) AS n
            FROM transactions GROUP BY ALL
        """,
        features=(Feature("spend", Float64), Feature("n", Int64)),
    )
    return [customer, transactions, view, FeatureService(name=SERVICE, features=(view,))]


def write_transactions(root: Path, rows: list[tuple[int, Any, float]]) -> None:
    write_parquet(
        root / "data" / "transactions.parquet",
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], UTC_US),
            "amount": [r[2] for r in rows],
        },
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = new_project(tmp_path / "cards", "cards")
    write_transactions(root, TRANSACTIONS)
    with FeatureStore(root) as store:
        store.apply(definitions())
    return root


@pytest.fixture
def store(root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(root) as s:
        yield s


def run(store: FeatureStore, **window: Any) -> Any:
    views = {d.name: d for d in definitions() if isinstance(d, FeatureView)}
    result = LocalEngine(store).run(VIEW, definitions=views, progress=False, **window)
    assert result.status == "succeeded"
    return result


def spine() -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(SPINE["customer_id"], pa.int64()),
            "event_timestamp": pa.array(SPINE["event_timestamp"], UTC_US),
            "label": SPINE["label"],
        }
    )


def test_a_saved_dataset_records_what_it_read_and_comes_back_as_the_same_bytes(store: FeatureStore) -> None:
    first = run(store)
    saved = store.create_training_dataset("churn_2024_03", spine(), SERVICE, actor="ana@example", description="v1")
    assert saved.rows.column("spend").to_pylist() == SPEND
    assert saved.rows.equals(store.get_training_set(spine(), SERVICE))

    record = saved.record
    assert record.feature_service == SERVICE
    assert record.features == (f"{VIEW}:spend", f"{VIEW}:n")
    assert record.view_versions == {VIEW: 1}
    assert record.watermarks == {VIEW: utc(2024, 3, 5)}
    assert record.run_ids == (first.run_id,)
    assert {i.run_id for i in record.inputs} == {first.run_id}
    assert sorted(i.file for i in record.inputs) == [
        f"date={d}/{first.run_id}.parquet" for d in ("2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05")
    ]
    assert (record.created_by, record.description, record.spine_rows) == ("ana@example", "v1", 6)
    assert record.columns == ("customer_id", "event_timestamp", "label", "spend", "n")
    # Kept offline, content-hashed: the files are named by the hash of their bytes.
    rows_file = store.offline_store.root / record.rows_file
    assert rows_file.name == f"rows-{record.rows_sha256}.parquet"
    assert sha256(rows_file.read_bytes()) == record.rows_sha256
    assert (store.offline_store.root / record.spine_file).name == f"spine-{record.spine_sha256}.parquet"

    again = store.get_training_dataset("churn_2024_03")
    assert again.record == record
    assert sha256(parquet_bytes(again.rows)) == record.rows_sha256
    assert again.rows.equals(saved.rows)
    (audit,) = [a for a in store.registry.audit_log(store.project) if a.action == "training_dataset.create"]
    assert (audit.actor, audit.target) == ("ana@example", "training_dataset:churn_2024_03")


def test_the_dataset_is_the_same_after_a_later_run_and_verify_names_the_new_run(
    store: FeatureStore, root: Path
) -> None:
    first = run(store)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    assert store.verify_training_dataset("churn").identical

    # A transaction of customer 2 on 03-07: the row of 03-08 is what the spine row of 03-09 now sees.
    write_transactions(root, [*TRANSACTIONS, (2, utc(2024, 3, 7, 9), 20.0)])
    later = run(store, start=utc(2024, 3, 6), end=utc(2024, 3, 10))
    assert store.get_training_set(spine(), SERVICE).column("spend").to_pylist() == [*SPEND[:5], 20.0]

    back = store.get_training_dataset("churn")
    assert sha256(parquet_bytes(back.rows)) == saved.record.rows_sha256
    assert back.rows.column("spend").to_pylist() == SPEND

    report = store.verify_training_dataset("churn")
    assert not report.identical
    assert report.rows_differing == 1
    assert report.differing_by_column == {"spend": 1, "n": 0}
    (view,) = report.views
    assert view.read == (first.run_id,)
    assert view.gone == () and view.replaced_files == ()  # nothing it read was replaced: rows were added
    assert [r if isinstance(r, str) else r.id for r in view.since] == [later.run_id]
    assert report.rebuilt is not None and report.rebuilt.column("spend").to_pylist()[5] == 20.0
    assert later.run_id in report.summary() and "1 of 6 rows differ" in report.summary()


def test_the_dataset_is_the_same_after_a_backfill_that_changes_values(store: FeatureStore, root: Path) -> None:
    first = run(store)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    saved_bytes = (store.offline_store.root / saved.record.rows_file).read_bytes()

    # Customer 3's transaction of 03-02 was booked twice as large: a backfill of 03-03's row.
    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])
    backfill = run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
    assert store.get_training_set(spine(), SERVICE).column("spend").to_pylist() == [15.0, 100.0, 6.0, 1.0, 6.0, 50.0]
    run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))  # twice: the first run's file of 03-03 is deleted

    back = store.get_training_dataset("churn")
    assert parquet_bytes(back.rows) == saved_bytes
    assert back.rows.column("spend").to_pylist() == SPEND

    report = store.verify_training_dataset("churn")
    assert not report.identical
    assert (report.rows_differing, report.differing_by_column) == (2, {"spend": 2, "n": 0})
    (view,) = report.views
    assert view.gone == (first.run_id,)
    assert view.replaced_files == (f"date=2024-03-03/{first.run_id}.parquet",)
    assert backfill.run_id not in [r if isinstance(r, str) else r.id for r in view.since]  # replaced in turn
    assert len(view.since) == 1  # the second backfill
    assert "window 2024-03-03 to 2024-03-04" in report.summary()
    assert report.to_dict()["views"][0]["files_replaced"] == list(view.replaced_files)


def test_a_name_is_immutable(store: FeatureStore, root: Path) -> None:
    run(store)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    # The same spine and service on unchanged data: the saved dataset, nothing new recorded.
    same = store.create_training_dataset("churn", spine(), SERVICE)
    assert same.record == saved.record and same.rows.equals(saved.rows)
    assert (saved.created, same.created) == (True, False)
    assert len(store.list_training_datasets()) == 1

    other_spine = spine().slice(0, 3)
    with pytest.raises(InvalidRequestError) as err:
        store.create_training_dataset("churn", other_spine, SERVICE)
    message = str(err.value)
    assert "Training dataset 'churn' already exists in project 'cards'" in message
    assert "its spine differ" in message and "immutable" in message and "'churn_v2'" in message

    with pytest.raises(InvalidRequestError, match="its features differ"):
        store.create_training_dataset("churn", spine(), [f"{VIEW}:spend"])

    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])
    run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
    with pytest.raises(InvalidRequestError, match="its rows differ: the offline data changed since it was saved"):
        store.create_training_dataset("churn", spine(), SERVICE)
    assert store.get_training_dataset("churn").rows.equals(saved.rows)

    renamed = store.create_training_dataset("churn_v2", spine(), SERVICE)
    assert renamed.rows.column("spend").to_pylist() == [15.0, 100.0, 6.0, 1.0, 6.0, 50.0]
    assert [d.name for d in store.list_training_datasets()] == ["churn_v2", "churn"]


def test_an_unknown_or_invalid_name_is_refused_saying_what_to_do(store: FeatureStore) -> None:
    run(store)
    store.create_training_dataset("churn_march", spine(), SERVICE)
    with pytest.raises(NotFoundError) as err:
        store.get_training_dataset("churn_mrch")
    assert str(err.value) == "Training dataset 'churn_mrch' not found in project 'cards'. Did you mean 'churn_march'?"
    with pytest.raises(NotFoundError, match="Did you mean 'churn_march'"):
        store.verify_training_dataset("churn_marc")
    with pytest.raises(InvalidRequestError, match="Training dataset name 'churn march' is not valid"):
        store.create_training_dataset("churn march", spine(), SERVICE)


def test_datasets_are_in_the_lineage_and_stay_after_an_apply(store: FeatureStore) -> None:
    run(store)
    store.create_training_dataset("churn", spine(), SERVICE)
    edge = ("feature_view", VIEW, "training_dataset", "churn")
    assert edge in {(e.src_kind, e.src_name, e.dst_kind, e.dst_name) for e in store.registry.lineage(store.project)}
    store.apply(definitions())
    assert edge in {(e.src_kind, e.src_name, e.dst_kind, e.dst_name) for e in store.registry.lineage(store.project)}


def test_a_changed_rows_file_is_refused(store: FeatureStore) -> None:
    run(store)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    path = store.offline_store.root / saved.record.rows_file
    path.write_bytes(parquet_bytes(saved.rows.slice(0, 5)))
    with pytest.raises(DatasetCorruptedError, match="no longer has the SHA-256 recorded"):
        store.get_training_dataset("churn")


def test_the_cli_saves_shows_writes_and_verifies_a_dataset(store: FeatureStore, root: Path) -> None:
    run(store)
    pq.write_table(spine(), root / "spine.parquet")
    cli_args = ["-C", str(root)]
    saved = CliRunner().invoke(
        cli,
        [*cli_args, "training-set", "--spine", str(root / "spine.parquet"), "-f", SERVICE, "--save", "churn"],
    )
    assert saved.exit_code == 0, saved.output
    record = store.registry.get_training_dataset(store.project, "churn")
    assert f"saved training dataset churn: 6 rows (sha256 {record.rows_sha256})" in saved.output

    listed = CliRunner().invoke(cli, [*cli_args, "training-dataset"])
    assert listed.exit_code == 0 and listed.output.startswith("churn ")
    shown = CliRunner().invoke(cli, [*cli_args, "training-dataset", "churn", "--json"])
    assert json.loads(shown.output)["rows"]["sha256"] == record.rows_sha256

    out = root / "train.parquet"
    written = CliRunner().invoke(cli, [*cli_args, "training-dataset", "churn", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert pq.read_table(out).column("spend").to_pylist() == SPEND

    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])
    run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
    verified = CliRunner().invoke(cli, [*cli_args, "training-dataset", "churn", "--verify"])
    assert verified.exit_code == 0, verified.output
    assert "rebuilds differently today: 2 of 6 rows differ (spend: 2)" in verified.output

    again = CliRunner().invoke(
        cli,
        [*cli_args, "training-set", "--spine", str(root / "spine.parquet"), "-f", SERVICE, "--save", "churn"],
    )
    # Errors reach main(), which prints them: here they are the exception the command raised.
    assert isinstance(again.exception, InvalidRequestError)
    assert "already exists" in str(again.exception) and "churn_v2" in str(again.exception)
    unknown = CliRunner().invoke(cli, [*cli_args, "training-dataset", "chrn"])
    assert isinstance(unknown.exception, NotFoundError) and "Did you mean 'churn'?" in str(unknown.exception)


def test_the_dataset_is_the_same_after_a_pushed_correction(store: FeatureStore) -> None:
    first = run(store)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    # Customer 3's row of 03-03 corrected by a push (same entity and time): its date is rewritten.
    correction = push(store, VIEW, [{"customer_id": 3, "as_of": utc(2024, 3, 3), "spend": 30.0, "n": 1}])
    assert correction.replaced == 1
    assert store.get_training_set(spine(), SERVICE).column("spend").to_pylist() == [15.0, 100.0, 30.0, 1.0, 30.0, 50.0]

    assert parquet_bytes(store.get_training_dataset("churn").rows) == parquet_bytes(saved.rows)
    report = store.verify_training_dataset("churn")
    assert (report.identical, report.rows_differing) == (False, 2)
    (view,) = report.views
    assert view.gone == (first.run_id,)
    assert view.replaced_files == (f"date=2024-03-03/{first.run_id}.parquet",)
    (since,) = view.since
    assert not isinstance(since, str) and (since.id, since.engine) == (correction.push_id, "push")
    assert f"{correction.push_id} (push)" in report.summary()


def _run_during_build(monkeypatch: pytest.MonkeyPatch, runs: Any, times: int | None = None) -> list[Any]:
    """Make ``runs()`` happen after the dataset's views were snapshotted, before its rows are
    built (as a run committing while a save reads); ``times``: only on the first so many builds."""
    real = training_datasets.training_set
    done: list[Any] = []

    def racing(*args: Any, **kwargs: Any) -> pa.Table:
        if times is None or len(done) < times:
            done.append(runs())
        return real(*args, **kwargs)

    monkeypatch.setattr(training_datasets, "training_set", racing)
    return done


def test_a_run_publishing_during_the_build_is_not_claimed_by_the_record(
    store: FeatureStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(store)
    write_transactions(root, [*TRANSACTIONS, (2, utc(2024, 3, 7, 9), 20.0)])
    later = _run_during_build(monkeypatch, lambda: run(store, start=utc(2024, 3, 6), end=utc(2024, 3, 10)), times=1)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    assert len(later) == 1 and store.offline_store.watermark(VIEW) == utc(2024, 3, 8)
    # The rows come from the files published before the later run: its row of 03-08 is not in them.
    assert saved.rows.column("spend").to_pylist() == SPEND
    assert saved.record.watermarks == {VIEW: utc(2024, 3, 5)}
    assert saved.record.run_ids == (first.run_id,)


def test_files_deleted_by_runs_during_the_build_are_read_again_from_a_new_snapshot(
    store: FeatureStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(store)
    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])

    def two_backfills() -> Any:
        # The second run deletes the first run's file of 03-03, which the first one replaced.
        run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
        return run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))

    backfills = _run_during_build(monkeypatch, two_backfills, times=1)
    saved = store.create_training_dataset("churn", spine(), SERVICE)
    (last,) = backfills
    assert saved.rows.column("spend").to_pylist() == [15.0, 100.0, 6.0, 1.0, 6.0, 50.0]
    assert last.run_id in saved.record.run_ids
    assert saved.record.watermarks == {VIEW: utc(2024, 3, 5)}
    for i in saved.record.inputs:
        assert (store.offline_store.view_dir(VIEW) / i.file).exists()


def test_files_deleted_during_both_builds_give_a_clear_error(
    store: FeatureStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(store)
    write_transactions(root, [(c, t, a * 2 if c == 3 else a) for c, t, a in TRANSACTIONS])

    def two_backfills() -> Any:
        run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))
        return run(store, start=utc(2024, 3, 3), end=utc(2024, 3, 4))

    _run_during_build(monkeypatch, two_backfills)
    with pytest.raises(StoreUnavailableError) as err:
        store.create_training_dataset("churn", spine(), SERVICE)
    assert f"feature view(s) '{VIEW}'" in str(err.value) and "try again" in str(err.value)
    assert store.registry.find_training_dataset(store.project, "churn") is None


def _saved_files(store: FeatureStore) -> set[str]:
    folder = store.offline_store.root / training_datasets.DATASETS_DIR
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_a_failed_insert_leaves_no_file_behind(store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run(store)
    kept = store.create_training_dataset("churn", spine(), SERVICE)
    before = _saved_files(store)

    def down(record: Any) -> Any:
        raise RuntimeError("registry down")

    monkeypatch.setattr(store.registry, "record_training_dataset", down)
    # Same spine as 'churn' (its file is recorded: kept), other rows (a new file: removed).
    with pytest.raises(RuntimeError, match="registry down"):
        store.create_training_dataset("spend_only", spine(), [f"{VIEW}:spend"])
    assert _saved_files(store) == before
    assert store.get_training_dataset("churn").rows.equals(kept.rows)


def test_a_concurrent_save_of_the_name_keeps_its_files_and_removes_the_losers(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(store)
    real = store.registry.record_training_dataset
    winners: list[Any] = []

    def racing(record: Any) -> Any:
        if not winners:  # another save of the name commits first
            winners.append(None)
            winners[0] = store.create_training_dataset(record.name, winning_spine, SERVICE)
        return real(record)

    monkeypatch.setattr(store.registry, "record_training_dataset", racing)
    winning_spine = spine().slice(0, 3)
    with pytest.raises(InvalidRequestError, match="its spine differ"):
        store.create_training_dataset("churn", spine(), SERVICE)
    record = winners[0].record
    assert _saved_files(store) == {Path(record.spine_file).name, Path(record.rows_file).name}

    # The same dataset saved concurrently: the winner recorded this call's files, which stay.
    winners.clear()
    winning_spine = spine()
    same = store.create_training_dataset("churn_all", spine(), SERVICE)
    assert same.record == winners[0].record
    assert store.get_training_dataset("churn_all").rows.equals(same.rows)
