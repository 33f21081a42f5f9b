"""A stored online value that does not fit its feature's type, or cannot be read at all, is never
served as ``present``: a lookup serves it as null with status ``invalid``, for that entity and
feature alone; a read (``OnlineStore.read``) refuses it naming the entity and feature; the
consistency checker counts it as a mismatch and shows it, and never fails on it.

Values are corrupted straight in the SQLite store's table, as a bug or a hand edit would.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from published_files import publish_by_hand

from featurestore import Bool, Entity, Feature, FeatureView, FileSource, Float64, Int64, String, Timestamp
from featurestore.consistency import UNREADABLE, check_consistency
from featurestore.errors import UnreadableValueError
from featurestore.lookup import FeatureStatus, LookupPlan, OnlineResponse
from featurestore.offline.parquet import ParquetOfflineStore
from featurestore.online.codec import HEADER, MAX_MICROS, fits, misfits
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.retrieval import ViewRequest
from featurestore.schema import view_schema
from featurestore.types import ValueType

NOW = datetime.now(UTC).replace(microsecond=0)
"""Rows are written an hour ago, well within the view's TTL: lookups serve them."""
WRITTEN = NOW - timedelta(hours=1)
ACCOUNT = Entity(name="account", join_keys=("account_id",), key_types=(Int64,))
VIEW = FeatureView(
    name="balances",
    entities=(ACCOUNT,),
    source=FileSource(name="events", path="events.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=30),
    features=(
        Feature("n", Int64),
        Feature("balance", Float64),
        Feature("segment", String),
        Feature("active", Bool),
        Feature("opened", Timestamp),
    ),
)
FEATURES = VIEW.feature_names
POSITION = {f: HEADER + i for i, f in enumerate(FEATURES)}
ACCOUNTS = list(range(1, 9))


def expected(account: int) -> dict[str, Any]:
    """What the store holds for an account, as a lookup serves it."""
    return {
        "n": account * 10,
        "balance": account + 0.25,
        "segment": f"s{account}",
        "active": account % 2 == 0,
        "opened": datetime(2020, 1, account, tzinfo=UTC),
    }


def rows() -> pa.Table:
    return pa.Table.from_pylist(
        [{"account_id": a, "ts": WRITTEN, **expected(a)} for a in ACCOUNTS], schema=view_schema(VIEW)
    )


@pytest.fixture
def online(tmp_path: Path) -> Iterator[SqliteOnlineStore]:
    store = SqliteOnlineStore(tmp_path / "online.db")
    store.prepare([VIEW])
    store.write(VIEW, rows())
    yield store
    store.close()


def stored(store: SqliteOnlineStore, account: int) -> bytes:
    with sqlite3.connect(store.path) as con:
        (value,) = con.execute(f"SELECT value FROM fv_{VIEW.name} WHERE entity_key = ?", (str(account),)).fetchone()
    assert isinstance(value, bytes)
    return value


def store_bytes(store: SqliteOnlineStore, account: int, value: bytes) -> None:
    with sqlite3.connect(store.path) as con:
        con.execute(f"UPDATE fv_{VIEW.name} SET value = ? WHERE entity_key = ?", (value, str(account)))
    con.close()


def set_value(feature: str, value: Any) -> Callable[[bytes], bytes]:
    def change(before: bytes) -> bytes:
        row = orjson.loads(before)
        row[POSITION[feature]] = value
        return orjson.dumps(row)

    return change


def lookup(store: SqliteOnlineStore, accounts: list[int]) -> OnlineResponse:
    plan = LookupPlan.build([ViewRequest(VIEW, FEATURES)])
    return plan.lookup(store, {"account_id": accounts}, now=NOW)


# Each corruption: the account it hits, how its stored bytes change, the features it spoils.
CORRUPTIONS: dict[str, tuple[int, Callable[[bytes], bytes], tuple[str, ...]]] = {
    "int64-holding-a-string": (2, set_value("n", "abc"), ("n",)),
    "int64-holding-a-float": (2, set_value("n", 2.5), ("n",)),
    "int64-holding-a-bool": (2, set_value("n", True), ("n",)),
    "int64-beyond-64-bits": (2, set_value("n", 2**63), ("n",)),
    "float64-holding-a-string": (3, set_value("balance", "12.5"), ("balance",)),
    "float64-holding-a-list": (3, set_value("balance", [1.0, 2.0]), ("balance",)),
    "float64-holding-a-bool": (3, set_value("balance", False), ("balance",)),
    "float64-beyond-int64": (3, set_value("balance", 2**64 - 1), ("balance",)),
    "string-holding-a-number": (4, set_value("segment", 7), ("segment",)),
    "string-holding-an-object": (4, set_value("segment", {"a": 1}), ("segment",)),
    "bool-holding-2": (5, set_value("active", 2), ("active",)),
    "bool-holding-a-string": (5, set_value("active", "true"), ("active",)),
    "timestamp-holding-a-string": (6, set_value("opened", "2024-03-01T00:00:00Z"), ("opened",)),
    "timestamp-beyond-year-9999": (6, set_value("opened", MAX_MICROS + 1), ("opened",)),
    "truncated-json": (7, lambda b: b[: len(b) // 2], FEATURES),
    "too-few-values-for-its-layout": (7, lambda b: orjson.dumps(orjson.loads(b)[:-2]), FEATURES),
    "event-time-a-string": (7, lambda b: orjson.dumps(["yesterday", *orjson.loads(b)[1:]]), FEATURES),
    "event-time-beyond-year-9999": (7, lambda b: orjson.dumps([MAX_MICROS + 1, *orjson.loads(b)[1:]]), FEATURES),
    "not-a-list": (7, lambda b: b'{"n": 1}', FEATURES),
}


def assert_only_spoiled(response: OnlineResponse, accounts: list[int], spoiled: set[tuple[int, str]]) -> None:
    """Exactly the spoiled (account, feature) values are invalid and null; every other value of
    a stored account is present with its value; an account never stored is missing."""
    for f in FEATURES:
        for i, account in enumerate(accounts):
            value, status = response.columns[f][i], response.statuses[f][i]
            if (account, f) in spoiled:
                assert (value, status) == (None, FeatureStatus.INVALID), (account, f)
            elif account in ACCOUNTS:
                assert (value, status) == (expected(account)[f], FeatureStatus.PRESENT), (account, f)
            else:
                assert (value, status) == (None, FeatureStatus.MISSING), (account, f)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
@pytest.mark.parametrize(
    "accounts",
    [ACCOUNTS, [*ACCOUNTS, 99]],
    ids=["every-entity-found", "with-a-missing-entity"],  # the fast path and the row-by-row one
)
def test_a_lookup_serves_exactly_the_corrupt_value_as_invalid(
    online: SqliteOnlineStore, case: str, accounts: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    account, change, features = CORRUPTIONS[case]
    store_bytes(online, account, change(stored(online, account)))
    with caplog.at_level(logging.WARNING, logger="featurestore.lookup"):
        response = lookup(online, accounts)
    assert_only_spoiled(response, accounts, {(account, f) for f in features})
    # The event time is served unless the whole row cannot be read.
    when = response.event_timestamps[VIEW.name][accounts.index(account)]
    assert when == (None if features == FEATURES else WRITTEN)
    # The Arrow form holds the same nulls, in the declared types.
    assert response.values.column("n").type == pa.int64()
    assert response.values.column(features[0]).to_pylist()[accounts.index(account)] is None
    # Someone must re-run the view: the warning says which view, entity and what to run.
    (record,) = [r for r in caplog.records if r.name == "featurestore.lookup"]
    assert f"entity {account}" in record.getMessage() and "featurestore run balances" in record.getMessage()


def test_corrupt_values_of_several_entities_in_one_batch(online: SqliteOnlineStore) -> None:
    spoiled = set()
    for case in ("int64-holding-a-string", "float64-holding-a-string", "bool-holding-2", "truncated-json"):
        account, change, features = CORRUPTIONS[case]
        store_bytes(online, account, change(stored(online, account)))
        spoiled |= {(account, f) for f in features}
    store_bytes(online, 6, set_value("opened", "soon")(set_value("segment", None)(stored(online, 6))))
    spoiled.add((6, "opened"))
    response = lookup(online, ACCOUNTS)
    segment_6 = response.columns["segment"][ACCOUNTS.index(6)], response.statuses["segment"][ACCOUNTS.index(6)]
    assert segment_6 == (None, FeatureStatus.NULL)  # a stored null stays a null
    response.statuses["segment"][ACCOUNTS.index(6)] = FeatureStatus.PRESENT  # to check the rest below
    response.columns["segment"][ACCOUNTS.index(6)] = expected(6)["segment"]
    assert_only_spoiled(response, ACCOUNTS, spoiled)


def test_infinities_and_whole_numbers_are_valid_floats(online: SqliteOnlineStore) -> None:
    store_bytes(online, 2, set_value("balance", "Infinity")(stored(online, 2)))
    store_bytes(online, 3, set_value("balance", "-Infinity")(stored(online, 3)))
    store_bytes(online, 4, set_value("balance", 4)(stored(online, 4)))  # an integer, as another writer may store it
    store_bytes(online, 5, set_value("balance", "Infinityx")(stored(online, 5)))
    response = lookup(online, [2, 3, 4, 5])
    assert response.columns["balance"] == [float("inf"), float("-inf"), 4, None]
    assert response.statuses["balance"] == [FeatureStatus.PRESENT] * 3 + [FeatureStatus.INVALID]


@pytest.mark.parametrize("case", ["int64-holding-a-string", "timestamp-holding-a-string", "truncated-json"])
def test_a_read_refuses_a_corrupt_value_naming_the_entity(online: SqliteOnlineStore, case: str) -> None:
    account, change, features = CORRUPTIONS[case]
    store_bytes(online, account, change(stored(online, account)))
    keys = pa.table({"account_id": pa.array(ACCOUNTS, pa.int64())})
    named = f"'{features[0]}' for entity {account}" if len(features) == 1 else f"entity {account}"
    with pytest.raises(UnreadableValueError, match=f"{named} of feature view 'balances'.*featurestore run balances"):
        online.read(VIEW, keys, FEATURES)
    # Other entities read as before.
    others = [a for a in ACCOUNTS if a != account]
    table = online.read(VIEW, pa.table({"account_id": pa.array(others, pa.int64())}), FEATURES)
    assert table.select(FEATURES).to_pylist() == [expected(a) for a in others]


def test_the_checker_counts_corrupt_values_as_mismatches_naming_entity_and_feature(
    online: SqliteOnlineStore, tmp_path: Path
) -> None:
    offline = ParquetOfflineStore(tmp_path / "offline")
    publish_by_hand(offline.root, VIEW.name, {WRITTEN.date(): rows()}, WRITTEN)
    assert check_consistency(VIEW, offline, online, WRITTEN).consistent
    for case in ("int64-holding-a-string", "float64-holding-a-string", "bool-holding-2", "timestamp-holding-a-string"):
        account, change, _ = CORRUPTIONS[case]
        store_bytes(online, account, change(stored(online, account)))
    store_bytes(online, 7, stored(online, 7)[:20])  # truncated
    store_bytes(online, 8, set_value("segment", None)(stored(online, 8)))  # a null where offline has a value
    report = check_consistency(VIEW, offline, online, WRITTEN)
    assert (report.checked, report.matched, report.mismatched, report.missing, report.extra) == (8, 2, 6, 0, 0)
    assert report.by_feature == {"n": 1, "balance": 1, "active": 1, "opened": 1, "segment": 1, UNREADABLE: 1}
    examples = {(e["key"]["account_id"], e["feature"]): e for e in report.examples}
    assert set(examples) == {(2, "n"), (3, "balance"), (5, "active"), (6, "opened"), (7, UNREADABLE), (8, "segment")}
    assert (examples[(2, "n")]["online"], examples[(2, "n")]["offline"]) == ("abc", 20)
    assert (examples[(3, "balance")]["online"], examples[(3, "balance")]["offline"]) == ("12.5", 3.25)
    assert (examples[(5, "active")]["online"], examples[(5, "active")]["offline"]) == (2, False)
    assert examples[(6, "opened")]["online"] == "2024-03-01T00:00:00Z"
    assert "cannot be read" in examples[(7, UNREADABLE)]["online"]


def test_the_checker_counts_a_corrupt_value_even_where_offline_holds_a_null(
    online: SqliteOnlineStore, tmp_path: Path
) -> None:
    table = rows()
    table = table.set_column(table.schema.get_field_index("n"), "n", pa.array([None] * len(ACCOUNTS), pa.int64()))
    online.write(VIEW, table)  # an equal event time: the later write wins
    offline = ParquetOfflineStore(tmp_path / "offline")
    publish_by_hand(offline.root, VIEW.name, {date(WRITTEN.year, WRITTEN.month, WRITTEN.day): table}, WRITTEN)
    assert check_consistency(VIEW, offline, online, WRITTEN).consistent
    store_bytes(online, 2, set_value("n", "abc")(stored(online, 2)))
    report = check_consistency(VIEW, offline, online, WRITTEN)
    assert (report.mismatched, report.by_feature) == (1, {"n": 1})


# The type check on its own: the C-speed path (hints say no nulls, no booleans) and the general
# one must agree with the value-by-value check, on columns that fit and columns that do not.
COLUMNS: list[tuple[ValueType, list[Any], list[int]]] = [
    (ValueType.INT64, [1, -(2**63), 2**63 - 1, 0], []),
    (ValueType.INT64, [1, 2**63, 3], [1]),
    (ValueType.INT64, [1, 2.0, "3", [4], True], [1, 2, 3, 4]),
    (ValueType.FLOAT64, [1.5, 2, -0.0, float("inf")], []),
    (ValueType.FLOAT64, [1.5, "x", None, {"a": 1}, False], [1, 3, 4]),
    (ValueType.FLOAT64, [1e300, 2**63 - 1, -(2**63)], []),
    (ValueType.FLOAT64, [1.5, 2**63, -1e300], [1]),
    (ValueType.STRING, ["a", "", "Infinity"], []),
    (ValueType.STRING, ["a", 1, None, ["b"], 2.5], [1, 3, 4]),
    (ValueType.BOOL, [True, False, None], []),
    (ValueType.BOOL, [True, 1, 0, 2, "false"], [1, 2, 3, 4]),
    (ValueType.TIMESTAMP, [0, -1, MAX_MICROS, 1_700_000_000_000_000], []),
    (ValueType.TIMESTAMP, [0, MAX_MICROS + 1, "2024-01-01", 1.5e15, None], [1, 2, 3]),
]


@pytest.mark.parametrize(("dtype", "values", "bad"), COLUMNS)
def test_fits_agrees_with_the_value_by_value_check(dtype: ValueType, values: list[Any], bad: list[int]) -> None:
    assert misfits(dtype, values) == bad
    has_null, has_bool = None in values, any(type(v) is bool for v in values)
    hints = [(True, True), (has_null, has_bool), (has_null, True), (True, has_bool)]
    for may_have_null, may_have_bool in hints:
        assert fits(dtype, values, may_have_null=may_have_null, may_have_bool=may_have_bool) == (not bad)
    assert fits(dtype, []) and fits(dtype, [None, None])


def test_the_larger_page_cache_is_a_writes_own(online: SqliteOnlineStore) -> None:
    """A write and a sync raise their connection's page cache and give it back; the reading
    connections (one per datamart lookup thread) keep SQLite's default 2 MiB."""
    conn = online._conn()
    said: list[str] = []
    conn.set_trace_callback(said.append)
    online.write(VIEW, rows())
    online.sync(VIEW, rows(), rows().slice(0, 0))
    conn.set_trace_callback(None)
    caches = [s for s in said if s.startswith("PRAGMA cache_size")]
    assert caches == ["PRAGMA cache_size=-65536", "PRAGMA cache_size=-2000"] * 2, said
    assert conn.execute("PRAGMA cache_size").fetchone() == (-2000,)

    seen: list[tuple[int, ...]] = []

    def read() -> None:
        assert lookup(online, ACCOUNTS).values["n"].to_pylist() == [a * 10 for a in ACCOUNTS]
        seen.append(online._conn().execute("PRAGMA cache_size").fetchone())

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
    assert seen == [(-2000,)]


def test_a_sync_failing_midway_through_its_inserts_is_rolled_back(
    online: SqliteOnlineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite binds the third row's value and fails, after its removals and two rows' inserts:
    the store is as before."""
    import featurestore.online.sqlite as module

    before = lookup(online, ACCOUNTS).values["balance"].to_pylist()
    real = module._in_key_order
    inserted: list[int] = []

    def spoiled(rows: Any) -> list[Any]:
        ordered = real(rows)
        return [*ordered[:2], (ordered[2][0], ordered[2][1], object()), *ordered[3:]]

    def count(statement: str) -> None:
        if statement.startswith("INSERT OR REPLACE"):
            inserted.append(1)

    monkeypatch.setattr(module, "_in_key_order", spoiled)
    online._conn().set_trace_callback(count)
    table = rows()
    changed = table.set_column(table.schema.get_field_index("balance"), "balance", pa.array([-1.0] * len(ACCOUNTS)))
    with pytest.raises(sqlite3.Error):
        online.sync(VIEW, changed, rows().slice(0, 2))
    online._conn().set_trace_callback(None)
    assert len(inserted) == 2  # two rows went in before the failure
    assert lookup(online, ACCOUNTS).values["balance"].to_pylist() == before
