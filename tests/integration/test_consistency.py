"""Online/offline consistency on real stores: after every way a view's runs can unfold, the
checker finds every key of the online store holding exactly the offline store's row as of the
view's watermark; and when a stored value is changed, deleted or added behind the feature
store's back, the checker says so, naming the key.

Runs once per online store (SQLite, Redis, Redis Cluster, Cassandra), with the embedded engine
on a small project of two views:

* ``account_balance``: rows taken as they are (one entity, values of every type, some null);
  TTL one day, so every 2024 row is long expired online and the checker must compare the
  stored values regardless.
* ``daily_card_spend``: a daily aggregate (two-column key ``country``, ``card_no``), published at
  the next midnight: late transactions change an already published value at the same event time.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import textwrap
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from crashes import RunServer

from etl.local import LocalEngine
from etl.runs import RunResult
from featurestore.config import CONFIG_FILE_NAME
from featurestore.consistency import MAX_EXAMPLES, UNREADABLE, ConsistencyReport
from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError
from featurestore.lookup import FeatureStatus
from featurestore.online.codec import cast_keys, encode_keys, layout_id
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


D = {d: utc(2024, 3, d) for d in range(1, 9)}  # D[1] .. D[8]: midnights of March 2024
BALANCES, SPEND = "account_balance", "daily_card_spend"
VIEWS = (BALANCES, SPEND)

DEFINITIONS = '''
from datetime import timedelta

from featurestore import Bool, Entity, Feature, FeatureView, FileSource, Float64, Int64, String, Timestamp

account = Entity(name="account", join_keys=("account_id",), key_types=(Int64,))
card = Entity(name="card", join_keys=("country", "card_no"), key_types=(String, Int64))
balances = FileSource(name="balances", path="data/raw/balances/*.parquet", timestamp_field="ts")
transactions = FileSource(name="transactions", path="data/raw/transactions/*.parquet", timestamp_field="ts")

account_balance = FeatureView(
    name="account_balance",
    entities=(account,),
    source=balances,
    timestamp_field="ts",
    ttl=timedelta(days=1),
    features=(
        Feature("balance", Float64),
        Feature("currency", String),
        Feature("active", Bool),
        Feature("opened_at", Timestamp),
        Feature("n_tx", Int64),
    ),
)

daily_card_spend = FeatureView(
    name="daily_card_spend",
    entities=(card,),
    source=transactions,
    timestamp_field="as_of",
    ttl=timedelta(days=3650),
    transformation="""
        SELECT country, card_no, CAST(date_trunc('day', ts) + INTERVAL 1 DAY AS TIMESTAMP) AS as_of,
               sum(amount) AS spend, count(*) AS n_tx
        FROM transactions GROUP BY ALL
    """,
    features=(Feature("spend", Float64), Feature("n_tx", Int64)),
)
'''

TS = pa.timestamp("us", tz="UTC")
BALANCE_SCHEMA = pa.schema(
    [
        ("account_id", pa.int64()),
        ("ts", TS),
        ("balance", pa.float64()),
        ("currency", pa.string()),
        ("active", pa.bool_()),
        ("opened_at", TS),
        ("n_tx", pa.int64()),
    ]
)
TRANSACTION_SCHEMA = pa.schema(
    [("country", pa.string()), ("card_no", pa.int64()), ("ts", TS), ("amount", pa.float64())]
)

N_ACCOUNTS = 400
LONE_ACCOUNT = 10_000
"""An account with a single row, at D2 + 6 h: late rows update it."""
SOLO_CARD = ("FR", 1)
"""Two transactions on D2 only (10.0 and 5.0): published once, at D3, with spend 15.0."""
EARLY_CARD = ("FR", 2)
"""One transaction on D1 only: published at D2."""


def balance_rows() -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for account in range(1, N_ACCOUNTS + 1):
        for day in range(1, 7):
            if rng.random() < 0.6:
                rows.append(
                    {
                        "account_id": account,
                        "ts": D[day] + timedelta(hours=rng.randrange(24), minutes=rng.randrange(60)),
                        "balance": None if rng.random() < 0.05 else rng.randrange(-50_000, 500_000) / 100,
                        "currency": rng.choice(["EUR", "USD", "GBP", "¥ JPY", None]),
                        "active": rng.random() < 0.9,
                        "opened_at": utc(2020, 1, 1) + timedelta(days=account, microseconds=account),
                        "n_tx": rng.randrange(0, 50),
                    }
                )
    rows.append(
        {
            "account_id": LONE_ACCOUNT,
            "ts": D[2] + timedelta(hours=6),
            "balance": 1.0,
            "currency": "EUR",
            "active": True,
            "opened_at": utc(2024, 1, 1),
            "n_tx": 1,
        }
    )
    return rows


def transaction_rows() -> list[dict[str, Any]]:
    rng = random.Random(11)
    rows = []
    for country in ("FR", "DE", "ES"):
        for card_no in range(1, 51):
            if (country, card_no) in (SOLO_CARD, EARLY_CARD):
                continue
            for day in range(1, 7):
                if rng.random() < 0.5:
                    for _ in range(rng.randrange(1, 4)):
                        # Multiples of 0.5: sums are exact whatever order DuckDB adds them in.
                        amount = rng.randrange(1, 400) / 2
                        ts = D[day] + timedelta(seconds=rng.randrange(86_400))
                        rows.append({"country": country, "card_no": card_no, "ts": ts, "amount": amount})
    rows += [
        {"country": "FR", "card_no": 1, "ts": D[2] + timedelta(hours=9), "amount": 10.0},
        {"country": "FR", "card_no": 1, "ts": D[2] + timedelta(hours=17), "amount": 5.0},
        {"country": "FR", "card_no": 2, "ts": D[1] + timedelta(hours=12), "amount": 3.5},
    ]
    return rows


Window = tuple[datetime | None, datetime | None]


def expected_entities(view: str, rows: list[dict[str, Any]], windows: list[Window], watermark: datetime) -> int:
    """How many entities have a published row at or before the watermark, computed from the raw
    data and the windows run so far, independently of the checker."""
    if view == BALANCES:
        times = [(r["account_id"], r["ts"]) for r in rows]
    else:  # the daily total, published at the next midnight
        midnight = [r["ts"].replace(hour=0, minute=0, second=0, microsecond=0) for r in rows]
        times = [((r["country"], r["card_no"]), m + timedelta(days=1)) for r, m in zip(rows, midnight, strict=True)]

    def published(t: datetime) -> bool:
        return any((start is None or start <= t) and (end is None or t < end) for start, end in windows)

    return len({key for key, t in times if t <= watermark and published(t)})


# ---------------------------------------------------------------------------- the project


@dataclass
class Project:
    """A small real project: definition file, source data, registry, offline and online stores."""

    root: Path
    store: FeatureStore
    engine: LocalEngine
    definitions: dict[str, FeatureView]
    online_config: dict[str, Any]
    balances: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    windows: dict[str, list[Window]] = field(default_factory=lambda: {view: [] for view in VIEWS})

    @property
    def kind(self) -> str:
        return str(self.online_config["type"])

    def run(self, view: str, start: datetime | None = None, end: datetime | None = None) -> RunResult:
        result = self.engine.run(view, start=start, end=end, definitions=self.definitions, progress=False)
        self.windows[view].append((start, end))
        return result

    def run_all(self, start: datetime | None = None, end: datetime | None = None) -> None:
        for view in VIEWS:
            self.run(view, start, end)

    def add_source_rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        """A new file in the source's folder, as an upstream system delivers late data."""
        schema = BALANCE_SCHEMA if name == "balances" else TRANSACTION_SCHEMA
        folder = self.root / "data" / "raw" / name
        pq.write_table(
            pa.Table.from_pylist(rows, schema=schema), folder / f"part-{len(list(folder.iterdir()))}.parquet"
        )
        (self.balances if name == "balances" else self.transactions).extend(rows)

    def check(self, view: str, sample: int | None = None) -> ConsistencyReport:
        return self.store.check_consistency(view, sample=sample)

    def assert_consistent(self, *views: str) -> None:
        for view in views or VIEWS:
            report = self.check(view)
            assert (report.mismatched, report.missing, report.extra) == (0, 0, 0), report.to_dict()
            watermark = self.store.registry.watermark(self.store.project, view)
            assert watermark is not None
            rows = self.balances if view == BALANCES else self.transactions
            expected = expected_entities(view, rows, self.windows[view], watermark)
            assert report.offline_entities == report.checked == report.matched == expected, report.to_dict()
            assert not report.sampled
            assert report.consistent
            assert report.watermark == watermark.isoformat()
            assert self.store.online_store.count(self.definitions[view]) == expected
            recorded = self.store.registry.list_consistency(self.store.project, view, limit=1)
            assert recorded and recorded[0] == json.loads(json.dumps(report.to_dict(), default=str))


@pytest.fixture
def project(online_store_config: dict[str, Any], tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "cards"
    for name in ("balances", "transactions"):
        (root / "data" / "raw" / name).mkdir(parents=True)
    config = {"project": "cards", "definitions": ["features.py"], "online_store": online_store_config}
    (root / CONFIG_FILE_NAME).write_text(json.dumps(config))  # JSON is YAML
    (root / "features.py").write_text(textwrap.dedent(DEFINITIONS))
    balances, transactions = balance_rows(), transaction_rows()
    pq.write_table(pa.Table.from_pylist(balances, schema=BALANCE_SCHEMA), root / "data/raw/balances/part-0.parquet")
    pq.write_table(
        pa.Table.from_pylist(transactions, schema=TRANSACTION_SCHEMA), root / "data/raw/transactions/part-0.parquet"
    )
    with FeatureStore(root) as store:
        engine = LocalEngine(store)
        objects = load_definitions(store.config)
        store.apply(objects, schema_resolver=engine.infer_schema)
        definitions = {v.name: v for v in validate_project(objects).feature_views}
        yield Project(root, store, engine, definitions, online_store_config, balances, transactions)


# ---------------------------------------------------------------------------- runs that must converge


def test_normal_run(project: Project) -> None:
    project.run_all()
    project.assert_consistent()
    # The balances are long expired: lookups withhold them, while the checker compared them.
    response = project.store.get_online_features([f"{BALANCES}:balance"], [{"account_id": 1}])
    assert response.statuses["balance"] == [FeatureStatus.EXPIRED]


def test_backfill_of_an_older_window_after_a_newer_one(project: Project) -> None:
    project.run_all(D[4], D[8])
    project.assert_consistent()
    project.run_all(D[1], D[4])
    project.assert_consistent()


def test_late_rows_with_new_event_times(project: Project) -> None:
    project.run_all()
    late_balances = [
        # An older row of an account with newer rows: offline gains a row, online keeps the newer.
        {**project.balances[0], "ts": D[2] + timedelta(hours=1, seconds=1), "balance": -1.0},
        # A new account.
        {**project.balances[0], "account_id": LONE_ACCOUNT + 1, "ts": D[3] + timedelta(hours=1), "balance": 2.0},
        # Newer than the lone account's only row: online changes.
        {**project.balances[-1], "ts": D[3] + timedelta(hours=2), "balance": 3.0},
    ]
    late_transactions = [
        # The early card's first spend on D2, published at D3: a newer row.
        {"country": "FR", "card_no": 2, "ts": D[2] + timedelta(hours=8), "amount": 7.5},
        # A new card.
        {"country": "ES", "card_no": 999, "ts": D[2] + timedelta(hours=8), "amount": 1.5},
    ]
    project.add_source_rows("balances", late_balances)
    project.add_source_rows("transactions", late_transactions)
    assert project.check(BALANCES).consistent  # nothing published yet: still consistent
    project.run_all(D[2], D[4])  # re-run the affected window
    project.assert_consistent()
    lone = project.store.online_store.read(
        project.definitions[BALANCES], pa.table({"account_id": [LONE_ACCOUNT, LONE_ACCOUNT + 1]}), ["balance"]
    )
    assert lone.column("balance").to_pylist() == [3.0, 2.0]


def test_late_rows_correcting_a_published_value_at_the_same_event_time(project: Project) -> None:
    """A late transaction changes a daily total already published at the same midnight: the
    re-run writes a different value at an equal event time, which must replace the old one."""
    project.run_all()
    project.add_source_rows(
        "transactions", [{"country": "FR", "card_no": 1, "ts": D[2] + timedelta(hours=20), "amount": 90.0}]
    )
    project.run(SPEND, D[2], D[4])
    view = project.definitions[SPEND]
    online = project.store.online_store
    (stored,) = online.read(view, pa.table({"country": ["FR"], "card_no": [1]}), ["spend", "n_tx"]).to_pylist()
    assert (stored["spend"], stored["n_tx"]) == (105.0, 3)
    project.assert_consistent()


def test_rerun_of_the_same_window(project: Project) -> None:
    project.run_all(D[1], D[8])
    project.run_all(D[1], D[8])
    project.assert_consistent()
    project.run_all(D[3], D[5])
    project.run_all()
    project.assert_consistent()


@pytest.mark.parametrize("kill_point", ["committed", "online_batch", "settled"])
def test_run_killed_mid_publish_then_rerun(project: Project, run_server: RunServer, kill_point: str) -> None:
    """A run SIGKILLed at a publish phase (``etl.runs.CHECKPOINTS``): after its commit, offline is
    ahead of online by exactly the entities of its intent not derived yet; the re-run derives
    them and closes the killed run's record."""
    project.run_all(D[1], D[4])
    project.assert_consistent()
    batch_rows = 40
    request = {
        "root": str(project.root),
        "view": BALANCES,
        "start": D[4].isoformat(),
        "end": D[8].isoformat(),
        "kill": {"phase": kill_point},
        "batch_rows": batch_rows,
    }
    killed = run_server.run(request)
    assert killed.killed and killed.ready == (kill_point, 1), killed.describe()
    (run,) = [r for r in project.store.registry.list_runs(project.store.project, BALANCES) if r.window_start == D[4]]
    assert run.status == "running"  # a killed process records nothing more

    before = project.check(BALANCES)
    offline = project.store.offline_store
    view = project.definitions[BALANCES]
    pending = offline.pending(view)
    # Every account with a row in [D4, D8) gets a newer row there: each entity of the intent
    # differs online until derived (stale, or missing for accounts new in the window).
    differing = before.mismatched + before.missing
    assert before.extra == 0
    if kill_point == "settled":
        # Both stores published and the intent settled; the offline manifest carries its
        # watermark, so the checker agrees even though the registry never heard of the run's end.
        assert pending == []
        assert before.consistent, before.to_dict()
    else:
        (intent,) = pending
        assert intent.run_id == run.id
        if kill_point == "committed":
            assert differing == intent.entities > batch_rows, before.to_dict()
        elif type(project.store.online_store).transactional_writes:
            assert before.consistent, before.to_dict()  # its one transaction is the whole derivation
        else:
            assert differing == intent.entities - batch_rows > 0, before.to_dict()  # the first batch, no more

    project.run(BALANCES, D[4], D[8])
    project.assert_consistent(BALANCES)
    assert offline.pending(view) == []
    # The re-run found the killed run's leftovers: its record is closed, its staged files gone.
    (killed_run,) = [r for r in project.store.registry.list_runs(project.store.project, BALANCES) if r.id == run.id]
    assert killed_run.status == "abandoned"
    view_dir = offline.view_dir(BALANCES)
    on_disk = {f"{p.parent.name}/{p.name}" for p in view_dir.glob("date=*/*")}
    manifest = offline._manifest(BALANCES)
    assert on_disk == set(manifest["partitions"].values()) | set(manifest["superseded"])


# ---------------------------------------------------------------------------- the checker sees tampering


class RawStore:
    """The online store's data reached behind the feature store's back, with the server's own
    client: one entity's stored value ``[event µs, layout, values...]`` (see
    ``featurestore.online.codec``), seen as (event µs, values by name). Table and key names come
    from the store itself, the data does not."""

    def __init__(self, request: pytest.FixtureRequest, project: Project) -> None:
        self.kind = project.kind
        self.store: Any = project.store.online_store
        if self.kind == "sqlite":
            self.path = project.online_config["path"]
        elif self.kind == "redis":  # a cluster client routes each key to its node
            cluster = bool(project.online_config.get("cluster"))
            self.redis = request.getfixturevalue("redis_cluster_client" if cluster else "redis_client")
        else:
            self.cql = request.getfixturevalue("cassandra_session")

    @staticmethod
    def entity(view: FeatureView, key: dict[str, Any]) -> str:
        (encoded,) = encode_keys(view, cast_keys(view, pa.Table.from_pylist([key])))
        return encoded

    def _sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    def get(self, view: FeatureView, key: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entity = self.entity(view, key)
        if self.kind == "sqlite":
            with closing(self._sqlite()) as conn:
                (value,) = conn.execute(
                    f"SELECT value FROM {self.store._table(view)} WHERE entity_key = ?", (entity,)
                ).fetchone()
        elif self.kind == "redis":
            value = self.redis.get(self.store._key(view, entity))
        else:
            (value,) = self.cql.execute(
                f"SELECT value FROM {self.store._table(view)} WHERE entity_key = %s LIMIT 1", (entity,)
            ).one()
        micros, layout, *values = json.loads(value)
        assert layout == layout_id(view.feature_names)
        return micros, dict(zip(view.feature_names, values, strict=True))

    def put(self, view: FeatureView, key: dict[str, Any], micros: int, values: dict[str, Any]) -> None:
        stored = [micros, layout_id(view.feature_names), *(values[f] for f in view.feature_names)]
        self.put_bytes(view, key, micros, json.dumps(stored, separators=(",", ":")).encode())

    def put_bytes(self, view: FeatureView, key: dict[str, Any], micros: int, packed: bytes) -> None:
        entity = self.entity(view, key)
        if self.kind == "sqlite":
            with closing(self._sqlite()) as conn:
                conn.execute(
                    f"INSERT OR REPLACE INTO {self.store._table(view)} (entity_key, event_us, value) VALUES (?, ?, ?)",
                    (entity, micros, packed),
                )
        elif self.kind == "redis":
            self.redis.set(self.store._key(view, entity), packed)
        else:  # replace the entity's rows (the store reads its newest row)
            self.cql.execute(f"DELETE FROM {self.store._table(view)} WHERE entity_key = %s", (entity,))
            self.cql.execute(
                f"INSERT INTO {self.store._table(view)} (entity_key, event_us, value) VALUES (%s, %s, %s)",
                (entity, micros, packed),
            )

    def delete(self, view: FeatureView, key: dict[str, Any]) -> None:
        entity = self.entity(view, key)
        if self.kind == "sqlite":
            with closing(self._sqlite()) as conn:
                assert conn.execute(f"DELETE FROM {self.store._table(view)} WHERE entity_key = ?", (entity,)).rowcount
        elif self.kind == "redis":
            assert self.redis.delete(self.store._key(view, entity)) == 1
        else:
            self.cql.execute(f"DELETE FROM {self.store._table(view)} WHERE entity_key = %s", (entity,))


@pytest.fixture
def raw(request: pytest.FixtureRequest, project: Project) -> RawStore:
    return RawStore(request, project)


def test_checker_reports_a_changed_value_a_deleted_key_and_an_added_key(project: Project, raw: RawStore) -> None:
    project.run_all()
    project.assert_consistent()
    view = project.definitions[BALANCES]
    changed, deleted, added = {"account_id": 7}, {"account_id": 8}, {"account_id": 123_456}
    micros, values = raw.get(view, changed)
    offline_balance = values["balance"]
    raw.put(view, changed, micros, {**values, "balance": 1234.5})
    raw.delete(view, deleted)
    raw.put(view, added, micros, values)

    report = project.check(BALANCES)
    assert (report.mismatched, report.missing, report.extra) == (1, 1, 1), report.to_dict()
    assert report.matched == report.checked - 2
    assert report.by_feature == {"balance": 1}
    assert not report.consistent
    examples = {(e["key"]["account_id"], e["feature"]): e for e in report.examples}
    assert set(examples) == {(7, "balance"), (8, "(row)")}
    assert (examples[(7, "balance")]["online"], examples[(7, "balance")]["offline"]) == (1234.5, offline_balance)
    recorded = project.store.registry.list_consistency(project.store.project, BALANCES, limit=1)[0]
    assert (recorded["consistent"], recorded["mismatched"], recorded["missing"], recorded["extra"]) == (False, 1, 1, 1)

    # A sample is checked the same way, but cannot count extra rows; its seed repeats it.
    sampled = project.check(BALANCES, sample=N_ACCOUNTS // 2)
    assert sampled.sampled and sampled.checked == N_ACCOUNTS // 2 and sampled.extra == 0
    assert sampled.seed is not None
    with pytest.raises(InvalidRequestError, match="sample must be at least 1"):
        project.check(BALANCES, sample=0)


@pytest.mark.parametrize(
    "stored",
    [b"%d|{}", b"[%d,12345,1.0,2]", b"not json at all"],
    ids=["an-older-format", "an-unknown-layout", "not-json"],
)
def test_a_value_it_cannot_read_is_named_and_a_re_run_rewrites_it(
    project: Project, raw: RawStore, stored: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    project.run(BALANCES)
    view = project.definitions[BALANCES]
    micros, _ = raw.get(view, {"account_id": 7})
    raw.put_bytes(view, {"account_id": 7}, micros, stored.replace(b"%d", str(micros).encode()))
    refs = [f"{BALANCES}:balance"]
    # A lookup serves it as invalid (null), the others as they are, and says which one to re-run.
    with caplog.at_level(logging.WARNING, logger="featurestore.lookup"):
        response = project.store.get_online_features(refs, {"account_id": [6, 7, 8]})
    expired, invalid = FeatureStatus.EXPIRED, FeatureStatus.INVALID
    assert response.statuses["balance"] == [expired, invalid, expired]
    assert "the stored row of entity 7 cannot be read" in caplog.text
    assert f"featurestore run {BALANCES}" in caplog.text
    # The checker counts it as a mismatch, and names it, rather than failing.
    report = project.check(BALANCES)
    assert (report.mismatched, report.missing, report.extra) == (1, 0, 0), report.to_dict()
    assert report.by_feature == {UNREADABLE: 1}
    assert [(e["key"], e["feature"]) for e in report.examples] == [({"account_id": 7}, UNREADABLE)]
    project.run(BALANCES)
    response = project.store.get_online_features(refs, {"account_id": [6, 7, 8]})
    assert response.statuses["balance"] == [FeatureStatus.EXPIRED] * 3  # found again (2024 rows, long expired)
    project.assert_consistent(BALANCES)


def test_examples_show_missing_rows_among_many_differing_values(project: Project, raw: RawStore) -> None:
    project.run(BALANCES)
    view = project.definitions[BALANCES]
    changed = list(range(1, 2 * MAX_EXAMPLES + 1))
    for account in changed:
        micros, values = raw.get(view, {"account_id": account})
        raw.put(view, {"account_id": account}, micros, {**values, "n_tx": -1})
    raw.delete(view, {"account_id": 100})
    report = project.check(BALANCES)
    assert (report.mismatched, report.missing, report.extra) == (len(changed), 1, 0)
    kinds = [e["kind"] for e in report.examples]
    assert kinds.count("mismatch") == MAX_EXAMPLES
    assert [e["key"] for e in report.examples if e["kind"] == "missing"] == [{"account_id": 100}]


def test_checker_reports_a_changed_event_time_on_a_compound_key(project: Project, raw: RawStore) -> None:
    project.run_all()
    view = project.definitions[SPEND]
    key = {"country": "FR", "card_no": 1}
    micros, values = raw.get(view, key)
    raw.put(view, key, micros - 1, values)  # same values, one microsecond older
    report = project.check(SPEND)
    assert (report.mismatched, report.missing, report.extra) == (1, 0, 0), report.to_dict()
    assert report.by_feature == {"as_of": 1}
    (example,) = report.examples
    assert example["key"] == key
    assert example["feature"] == "as_of"
    assert example["offline"] == D[3].isoformat()
