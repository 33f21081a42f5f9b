"""Online store on Apache Cassandra.

Layout: keyspace ``<keyspace>`` (the project's name by default), one table per view,
``fv_<view> (entity_key text PRIMARY KEY, event_us bigint, value blob)``: the encoded join keys,
the event time in microseconds and the features packed as one JSON value. Every write is
stamped ``USING TIMESTAMP <event time in µs>``, so Cassandra's last-write-wins keeps the row
with the newest event time whatever order writes arrive in: an older row never replaces a
newer one, on any replica. At an *equal* event time Cassandra breaks the tie by comparing
values, not by arrival (``equal_time_last_write_wins = False``).

Writes and batch reads are concurrent asynchronous requests on prepared statements, routed
token-aware to a replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import ConfigError, StoreUnavailableError
from featurestore.online import WriteStats
from featurestore.online.codec import cast_keys, decode_rows, encode_keys, encode_values, event_micros


@dataclass(frozen=True, kw_only=True)
class CassandraOnlineConfig:
    """``online_store: {type: cassandra, hosts: [127.0.0.1], port: 9042}``."""

    type: str = "cassandra"
    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    keyspace: str = ""
    """Keyspace of the view tables; the project's name when empty."""
    replication: dict[str, Any] = field(default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1})
    """Replication of the keyspace when the store creates it, e.g. {class: NetworkTopologyStrategy, dc1: 3}."""
    local_dc: str = ""
    """Data center to route to (token-aware within it); empty: the contact point's."""
    consistency: str = "LOCAL_QUORUM"
    concurrency: int = 64
    """Requests in flight per write or batch read."""
    username: str = ""
    password: str = ""
    connect_timeout: float = 10.0
    request_timeout: float = 10.0


class CassandraOnlineStore:
    """Online store on Cassandra (see the module docs for the layout and ordering rule)."""

    transactional_writes = False
    equal_time_last_write_wins = False

    def __init__(self, config: CassandraOnlineConfig, *, project: str) -> None:
        try:
            from cassandra import ConsistencyLevel
            from cassandra.auth import PlainTextAuthProvider
            from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
            from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        except ImportError as err:
            raise ConfigError(
                "the Cassandra online store needs cassandra-driver: pip install 'featurestore[cassandra]'",
                key="online_store.type",
            ) from err
        import cassandra

        self.config = config
        self.keyspace = config.keyspace or project
        self.address = ",".join(f"{h}:{config.port}" for h in config.hosts)
        self._errors: tuple[type[Exception], ...] = (
            cassandra.DriverException,
            cassandra.RequestExecutionException,
            cassandra.RequestValidationException,
            cassandra.OperationTimedOut,
            OSError,
        )
        try:
            level = getattr(ConsistencyLevel, config.consistency)
        except AttributeError as err:
            raise ConfigError(
                f"unknown consistency level '{config.consistency}'", key="online_store.consistency"
            ) from err
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_dc or None)),
            consistency_level=level,
            request_timeout=config.request_timeout,
        )
        auth = PlainTextAuthProvider(config.username, config.password) if config.username else None
        try:
            from cassandra.cluster import NoHostAvailable

            self._errors = (*self._errors, NoHostAvailable)
            self._cluster = Cluster(
                list(config.hosts),
                port=config.port,
                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                auth_provider=auth,
                connect_timeout=config.connect_timeout,
                protocol_version=5,
            )
            self._session = self._cluster.connect()
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        self._prepared: dict[tuple[str, str], Any] = {}

    def _table(self, view: FeatureView) -> str:
        return f'"{self.keyspace}"."fv_{view.name.lower()}"'

    def _statement(self, view: FeatureView, kind: str) -> Any:
        key = (view.name, kind)
        if key not in self._prepared:
            table = self._table(view)
            if kind == "write":
                cql = f"INSERT INTO {table} (entity_key, event_us, value) VALUES (?, ?, ?) USING TIMESTAMP ?"
            else:
                cql = f"SELECT entity_key, event_us, value FROM {table} WHERE entity_key = ?"
            self._prepared[key] = self._session.prepare(cql)
        return self._prepared[key]

    def prepare(self, views: Sequence[FeatureView]) -> None:
        replication = "{" + ", ".join(f"'{k}': '{v}'" for k, v in self.config.replication.items()) + "}"
        try:
            self._session.execute(f'CREATE KEYSPACE IF NOT EXISTS "{self.keyspace}" WITH replication = {replication}')
            for view in views:
                self._session.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table(view)} "
                    "(entity_key text PRIMARY KEY, event_us bigint, value blob)"
                )
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        from cassandra.concurrent import execute_concurrent_with_args

        if rows.num_rows == 0:
            return WriteStats(0, 0)
        keys = encode_keys(view, cast_keys(view, rows))
        values = encode_values(view, rows)
        times = event_micros(view, rows)
        stmt = self._statement(view, "write")
        params = list(zip(keys, times, values, times, strict=True))
        try:
            results = execute_concurrent_with_args(
                self._session, stmt, params, concurrency=self.config.concurrency, raise_on_first_error=True
            )
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        # Cassandra accepts every write and resolves by timestamp on read: it does not say which
        # writes lost to a newer stored row, so all count as written.
        return WriteStats(written=sum(1 for ok, _ in results if ok), skipped_older=0)

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        key_cols = cast_keys(view, keys)
        return decode_rows(view, key_cols, self.read_packed(view, encode_keys(view, key_cols)), features)

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        unique = list(dict.fromkeys(entity_keys))
        found: dict[str, tuple[int, bytes]] = {}
        try:
            stmt = self._statement(view, "read")
            if len(unique) == 1:
                rows = [self._session.execute(stmt, (unique[0],))]
            else:
                futures = [self._session.execute_async(stmt, (k,)) for k in unique]
                rows = [f.result() for f in futures]
            for result in rows:
                for entity_key, event_us, value in result:
                    found[entity_key] = (event_us, bytes(value))
        except self._errors as err:
            if "unconfigured table" in str(err):
                return [None] * len(entity_keys)
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        return [found.get(k) for k in entity_keys]

    def count(self, view: FeatureView) -> int:
        try:
            row = self._session.execute(f"SELECT count(*) FROM {self._table(view)}").one()
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._cluster.shutdown()
