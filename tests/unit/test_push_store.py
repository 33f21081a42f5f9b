"""The Parquet offline store's side of pushes, without a project: what a push's intent asks of the
online derivation, and that a reader holding a manifest keeps its files while pushes commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.offline.parquet import MAX_PUSH_FILES, ParquetOfflineStore
from featurestore.schema import view_schema

VIEW = FeatureView(
    name="spend",
    entities=(Entity(name="user", join_keys=("user_id",), key_types=(Int64,)),),
    source=FileSource(name="events", path="events.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=30),
    features=(Feature("amount", Float64),),
)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


def rows(*items: tuple[int, datetime, float]) -> pa.Table:
    users, times, amounts = zip(*items, strict=True)
    return pa.table({"user_id": list(users), "ts": list(times), "amount": list(amounts)}, schema=view_schema(VIEW))


def run(
    store: ParquetOfflineStore, run_id: str, table: pa.Table, start: datetime, end: datetime, scratch: Path
) -> None:
    """A run's publish of ``table`` (rows of March 1 and 2) over ``[start, end)``, committed and settled."""
    files = {}
    for day in ("2024-03-01", "2024-03-02"):
        part = table.filter(pc.equal(pc.strftime(table.column("ts"), format="%Y-%m-%d"), day))
        if part.num_rows:
            files[day] = scratch / f"{run_id}-{day}.parquet"
            pq.write_table(part, files[day])
    with store.lock(VIEW):
        staged = store.stage(VIEW, files, start=start, end=end, run_id=run_id)
        staged.commit()
        store.settle(VIEW, run_id, online_complete=True)


def test_a_push_to_a_view_never_derived_completely_derives_every_entity(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path / "offline")
    run(store, "r1", rows((1, at(1), 1.0), (2, at(1), 2.0)), at(1), at(3), tmp_path)
    store.settle(VIEW, "r1", online_complete=False)  # as after the view was offline only
    with store.lock(VIEW):
        intent = store.stage_push(VIEW, rows((2, at(5), 3.0)), run_id="p1").commit()
    assert intent.everything and intent.derive_keys is None and intent.derive_since is None
    latest = [b.rows for b in store.latest(VIEW, intent.derive_keys, since=intent.derive_since)]
    assert sorted(pa.concat_tables(latest).column("user_id").to_pylist()) == [1, 2]


def test_a_reader_keeps_its_files_while_pushes_commit(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path / "offline")
    run(store, "r1", rows((1, at(1), 1.0), (1, at(2), 2.0)), at(1), at(3), tmp_path)
    held = store.files(VIEW)  # a training set starts reading
    run(store, "r2", rows((1, at(1), 5.0), (1, at(2), 6.0)), at(1), at(3), tmp_path)  # replaces both dates
    for hour in range(3):
        with store.lock(VIEW):
            store.stage_push(VIEW, rows((7, at(9, hour), 1.0)), run_id=f"p{hour}").commit()
            store.settle(VIEW, f"p{hour}", online_complete=True)
    assert all(f.exists() for f in held), [f for f in held if not f.exists()]
    run(store, "r3", rows((1, at(1), 5.0), (1, at(2), 6.0)), at(1), at(3), tmp_path)  # the next run tidies
    assert not any(f.exists() for f in held)


def test_a_date_with_many_push_files_is_folded_by_the_next_push(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path / "offline")
    for i in range(MAX_PUSH_FILES + 1):
        with store.lock(VIEW):
            store.stage_push(VIEW, rows((i, at(4, 1), float(i))), run_id=f"p{i}").commit()
            store.settle(VIEW, f"p{i}", online_complete=True)
    assert store.pushed_files(VIEW) == {}  # the last push folded the date's files into its partition
    table = store.read(VIEW)
    assert sorted(table.column("user_id").to_pylist()) == list(range(MAX_PUSH_FILES + 1))


def test_a_lock_held_longer_than_the_timeout_is_refused_naming_the_view(tmp_path: Path) -> None:
    import threading

    import pytest

    from featurestore.errors import StoreUnavailableError

    store = ParquetOfflineStore(tmp_path / "offline")
    held, release = threading.Event(), threading.Event()

    def run_holding_the_lock() -> None:
        with store.lock(VIEW):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=run_holding_the_lock)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(StoreUnavailableError) as refused, store.lock(VIEW, timeout=0.2):
            pass
        assert "feature view 'spend' is being published by a run" in str(refused.value)
    finally:
        release.set()
        thread.join()
    with store.lock(VIEW, timeout=0.2):  # free again
        pass
