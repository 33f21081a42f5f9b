"""Online store on Apache Cassandra.

Layout: keyspace ``<keyspace>`` (the project's name by default, with any character other than a
letter, digit or underscore replaced by ``_``), one table per view, ``"fv_<View>" (entity_key
text, event_us bigint, value blob, PRIMARY KEY (entity_key, event_us)) WITH CLUSTERING ORDER BY
(event_us DESC)``: the encoded join keys, the event time in microseconds and the stored value
(``[event µs, layout, values...]``, see ``featurestore.online.codec``); table
``featurestore_layouts`` (feature_view, layout, names) records the layout of every write. A read
takes the first row of the entity's partition, i.e. the newest event time, so a row with an
older event time never shadows a newer one whatever order writes arrive in; at an *equal* event time the two writes hit the same row and the later write wins
(``equal_time_last_write_wins``), so re-running a corrected window fixes the value. Each write
also deletes the entity's rows older than itself (a range tombstone, in the same single-partition
batch), so a partition holds one live row in the steady state. A sync (``OnlineStore.sync``:
what offline says, whatever event time is stored) deletes the whole partition and inserts the
row just after, at explicit timestamps from one clock per process that the driver also uses for
every ordinary write (see :class:`_MicrosClock`).

Writes and batch reads are concurrent asynchronous requests on prepared statements, routed
token-aware to a replica. Names are quoted identifiers, so they keep their case: views ``spend`` and
``Spend`` are two tables. ``prepare`` creates only what ``system_schema`` does not already list, so
a keyspace or tables created beforehand by an administrator need no CREATE permission.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pyarrow as pa
from pydantic import AfterValidator, Field, SecretStr

from featurestore.config import Names, OnlineStoreConfig
from featurestore.definitions import FeatureView
from featurestore.errors import ConfigError, StoreUnavailableError
from featurestore.online import SyncStats, WriteStats
from featurestore.online.codec import (
    LayoutCache,
    cast_keys,
    decode_rows,
    encode_keys,
    encode_values,
    event_micros,
    layout_id,
    layout_names,
)

if TYPE_CHECKING:
    from featurestore.config import ProjectConfig

_READ_CHUNK = 10
"""Keys per multi-partition read request: 10 measured faster than 1, 25 or 100 here."""

_CREATE_LAYOUTS = "CREATE TABLE IF NOT EXISTS {table} (feature_view text, layout bigint, names blob, PRIMARY KEY (feature_view, layout))"

_KEYSPACE_NAME = re.compile(r"[A-Za-z0-9_]{1,48}")
"""What Cassandra accepts as a keyspace name, quoted or not."""


def keyspace_name(config: CassandraOnlineConfig, project: str) -> str:
    """The keyspace of a project's tables: ``keyspace`` when set, else the project's name with
    every character Cassandra does not allow in a keyspace name replaced by ``_``."""
    if config.keyspace:
        if not _KEYSPACE_NAME.fullmatch(config.keyspace):
            raise ConfigError(
                f"'{config.keyspace}' is not a Cassandra keyspace name: use at most 48 letters, digits and underscores",
                key="online_store.keyspace",
            )
        return config.keyspace
    name = re.sub(r"[^A-Za-z0-9_]", "_", project)
    if not _KEYSPACE_NAME.fullmatch(name):
        raise ConfigError(
            f"the project's name '{project}' is too long for a Cassandra keyspace name (at most 48 characters); "
            "set online_store.keyspace",
            key="online_store.keyspace",
        )
    return name


def _cql_string(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


Consistency = Literal[
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE"
]
"""The consistency levels of ``cassandra.ConsistencyLevel``, by name."""


def _with_class(replication: dict[str, Any]) -> dict[str, Any]:
    if "class" not in replication:
        raise ValueError("must be a mapping with a 'class', e.g. {class: NetworkTopologyStrategy, dc1: 3}")
    return replication


class CassandraOnlineConfig(OnlineStoreConfig):
    """``online_store: {type: cassandra, hosts: [127.0.0.1], port: 9042}``."""

    type: Literal["cassandra"] = "cassandra"
    hosts: Names = ("127.0.0.1",)
    port: int = Field(default=9042, gt=0, le=65535)
    keyspace: str = ""
    """Keyspace of the view tables; the project's name when empty (see :func:`keyspace_name`)."""
    replication: Annotated[dict[str, Any], AfterValidator(_with_class)] = Field(
        default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1}
    )
    """Replication of the keyspace when the store creates it, e.g. {class: NetworkTopologyStrategy, dc1: 3}."""
    local_dc: str = ""
    """Data center to route to (token-aware within it); empty: the contact point's."""
    consistency: Consistency = "LOCAL_QUORUM"
    concurrency: int = Field(default=64, gt=0)
    """Requests in flight per write or batch read."""
    username: str = ""
    password: SecretStr = SecretStr("")
    """Shown as ``***`` everywhere; write ``password: ${CASSANDRA_PASSWORD}`` to keep it out of the file."""
    connect_timeout: float = Field(default=10.0, gt=0)
    request_timeout: float = Field(default=10.0, gt=0)


class _MicrosClock:
    """This process's write timestamps: microseconds since the epoch, strictly increasing
    (``max(now, last + 1)``) across every store and thread of the process. ``sync`` writes at
    explicit timestamps from it, and every store's driver takes its client-side timestamps from
    it too (``Cluster(timestamp_generator=...)``), so a ``write`` made after a ``sync`` in this
    process always has the later timestamp, whatever the clock does in between."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            now = time.time_ns() // 1000
            self._last = now if now > self._last else self._last + 1
            return self._last


_CLOCK = _MicrosClock()


class CassandraOnlineStore:
    """Online store on Cassandra (see the module docs for the layout and ordering rule)."""

    transactional_writes = False
    equal_time_last_write_wins = True
    reports_skipped_older = False
    """Cassandra accepts every write and resolves by timestamp on read: it cannot tell which rows
    lost to a newer stored one, so ``write`` counts all of them as written."""

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
        import cassandra.protocol

        self.config = config
        self.keyspace = keyspace_name(config, project)
        self.address = ",".join(f"{h}:{config.port}" for h in config.hosts)
        self._errors: tuple[type[Exception], ...] = (
            cassandra.DriverException,
            cassandra.RequestExecutionException,
            cassandra.RequestValidationException,
            cassandra.OperationTimedOut,
            # Server errors without a driver exception of their own (configuration, syntax,
            # overloaded, server error...) are raised as the protocol's error messages.
            cassandra.protocol.ErrorMessage,
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
        auth = PlainTextAuthProvider(config.username, config.password.get_secret_value()) if config.username else None
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
                timestamp_generator=_CLOCK,
            )
            self._session = self._cluster.connect()
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        self._prepared: dict[tuple[str, str], Any] = {}
        self._layouts = LayoutCache()

    @classmethod
    def from_config(cls, config: CassandraOnlineConfig, project: ProjectConfig) -> CassandraOnlineStore:
        return cls(config, project=project.project)

    def _table_name(self, view: FeatureView) -> str:
        # Quoted, so case-sensitive like view names themselves (letters, digits, underscores).
        return f"fv_{view.name}"

    def _table(self, view: FeatureView) -> str:
        return f'"{self.keyspace}"."{self._table_name(view)}"'

    @property
    def _layouts_table(self) -> str:
        return f'"{self.keyspace}"."featurestore_layouts"'

    @staticmethod
    def _is_missing_table(err: Exception) -> bool:
        """Whether a request failed because the keyspace or table does not exist (a view never
        prepared). Cassandra 5 says "table ... does not exist", 4.x "unconfigured table ..."."""
        import cassandra

        message = str(err)
        return isinstance(err, cassandra.InvalidRequest) and (
            "unconfigured table" in message or "does not exist" in message
        )

    def _statement(self, view: FeatureView, kind: str) -> Any:
        key = (view.name, kind)
        if key not in self._prepared:
            table = self._table(view)
            cql = {
                "insert": f"INSERT INTO {table} (entity_key, event_us, value) VALUES (?, ?, ?)",
                "delete_older": f"DELETE FROM {table} WHERE entity_key = ? AND event_us < ?",
                "insert_at": f"INSERT INTO {table} (entity_key, event_us, value) VALUES (?, ?, ?) USING TIMESTAMP ?",
                "delete_at": f"DELETE FROM {table} USING TIMESTAMP ? WHERE entity_key = ?",
                "read_one": f"SELECT entity_key, value FROM {table} WHERE entity_key = ? LIMIT 1",
                "read_many": (f"SELECT entity_key, value FROM {table} WHERE entity_key IN ? PER PARTITION LIMIT 1"),
                "save_layout": f"INSERT INTO {self._layouts_table} (feature_view, layout, names) VALUES (?, ?, ?)",
                "read_layouts": f"SELECT layout, names FROM {self._layouts_table} WHERE feature_view = ?",
            }[kind]
            self._prepared[key] = self._session.prepare(cql)
        return self._prepared[key]

    def _create(self, cql: str, what: str, *, key: str, grant: str) -> None:
        """Run a CREATE; a refusal (permissions, options) is the user's to fix, not an outage."""
        import cassandra
        import cassandra.protocol

        try:
            self._session.execute(cql)
        except (cassandra.RequestValidationException, cassandra.protocol.RequestValidationException) as err:
            raise ConfigError(
                f"Cassandra at {self.address} refused to create {what}: {err}. Check {key}, "
                f"GRANT {grant} to the store's user, or create it yourself: {cql}",
                key=key,
            ) from err

    def prepare(self, views: Sequence[FeatureView]) -> None:
        replication = (
            "{" + ", ".join(f"{_cql_string(k)}: {_cql_string(v)}" for k, v in self.config.replication.items()) + "}"
        )
        try:
            # Read what exists first: no DDL (and no CREATE permission) when the schema is there.
            keyspaces = self._session.execute(
                "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (self.keyspace,)
            )
            if keyspaces.one() is None:
                self._create(
                    f'CREATE KEYSPACE IF NOT EXISTS "{self.keyspace}" WITH replication = {replication}',
                    f"keyspace '{self.keyspace}'",
                    key="online_store.replication",
                    grant="CREATE ON ALL KEYSPACES",
                )
            tables = {
                row[0]
                for row in self._session.execute(
                    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (self.keyspace,)
                )
            }
            for view in views:
                if self._table_name(view) not in tables:
                    self._create(
                        f"CREATE TABLE IF NOT EXISTS {self._table(view)} "
                        "(entity_key text, event_us bigint, value blob, PRIMARY KEY (entity_key, event_us)) "
                        "WITH CLUSTERING ORDER BY (event_us DESC)",
                        f"the table of feature view '{view.name}'",
                        key="online_store.username",
                        grant=f'CREATE ON KEYSPACE "{self.keyspace}"',
                    )
            if "featurestore_layouts" not in tables:
                self._create(
                    _CREATE_LAYOUTS.format(table=self._layouts_table),
                    "the table of layouts",
                    key="online_store.username",
                    grant=f'CREATE ON KEYSPACE "{self.keyspace}"',
                )
            for view in views:
                self._check_layout(view)
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err

    def _check_layout(self, view: FeatureView) -> None:
        """Refuse a table of another layout (e.g. made by an older version) rather than misread it."""
        kinds = {
            row[0]: row[1]
            for row in self._session.execute(
                "SELECT column_name, kind FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
                (self.keyspace, self._table_name(view)),
            )
        }
        if kinds != {"entity_key": "partition_key", "event_us": "clustering", "value": "regular"}:
            raise ConfigError(
                f"Cassandra table {self._table(view)} of feature view '{view.name}' has another layout "
                f"({kinds}); drop it (DROP TABLE {self._table(view)}) and re-run the view to rebuild it",
                key="online_store.keyspace",
            )

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        if rows.num_rows == 0:
            return WriteStats(0, 0)
        keys = encode_keys(view, cast_keys(view, rows))
        times = event_micros(view, rows)
        values = encode_values(view, rows, times)
        insert, delete_older = self._statement(view, "insert"), self._statement(view, "delete_older")
        self._save_layout(view)

        def batches() -> Any:
            # One single-partition batch per entity: atomic and isolated on its replica.
            for key, micros, value in zip(keys, times, values, strict=True):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                batch.add(insert, (key, micros, value))
                batch.add(delete_older, (key, micros))
                yield batch, None

        try:
            results = execute_concurrent(
                self._session, batches(), concurrency=self.config.concurrency, raise_on_first_error=True
            )
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        # All count as written (see reports_skipped_older).
        return WriteStats(written=sum(1 for ok, _ in results if ok), skipped_older=0)

    def sync(self, view: FeatureView, rows: pa.Table, removed: pa.Table) -> SyncStats:
        """Per entity of ``rows``, one single-partition batch: the partition deleted at ``T - 1``
        and the row inserted at ``T``, ``T`` from this process's clock (see :class:`_MicrosClock`),
        so the partition holds exactly the new row, even when it held a newer event time; the
        partition of each removed entity deleted at its own ``T``. Not atomic across entities: a
        failure may leave some applied, and repeating the sync completes it.

        Timestamps order writes across processes only as far as their clocks agree: a ``write``
        from a machine whose clock runs behind this one's, made just after a sync, may be hidden
        by the sync's deletion."""
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        keys = encode_keys(view, cast_keys(view, rows)) if rows.num_rows else []
        times = event_micros(view, rows) if rows.num_rows else []
        values = encode_values(view, rows, times) if rows.num_rows else []
        gone = encode_keys(view, cast_keys(view, removed)) if removed.num_rows else []
        if not keys and not gone:
            return SyncStats(written=0, removed=0)
        if keys:
            self._save_layout(view)
        insert_at, delete_at = self._statement(view, "insert_at"), self._statement(view, "delete_at")

        def statements() -> Any:
            for key, micros, value in zip(keys, times, values, strict=True):
                at = _CLOCK()
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                batch.add(delete_at, (at - 1, key))
                batch.add(insert_at, (key, micros, value, at))
                yield batch, None
            for key in gone:
                yield delete_at, (_CLOCK(), key)

        try:
            execute_concurrent(
                self._session, statements(), concurrency=self.config.concurrency, raise_on_first_error=True
            )
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        return SyncStats(written=len(keys), removed=len(gone))

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        key_cols = cast_keys(view, keys)
        entity_keys = encode_keys(view, key_cols)
        return decode_rows(view, key_cols, self.read_packed(view, entity_keys), features, self.layout, entity_keys)

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[bytes | None]:
        unique = list(dict.fromkeys(entity_keys))
        found: dict[str, bytes] = {}
        try:
            if len(unique) == 1:
                results = [self._session.execute(self._statement(view, "read_one"), (unique[0],))]
            else:  # one request per chunk of keys; the coordinator asks the replicas in parallel
                stmt = self._statement(view, "read_many")
                futures = [
                    self._session.execute_async(stmt, (unique[i : i + _READ_CHUNK],))
                    for i in range(0, len(unique), _READ_CHUNK)
                ]
                results = [f.result() for f in futures]
            for result in results:
                for entity_key, value in result:
                    found[entity_key] = value
        except self._errors as err:
            if self._is_missing_table(err):  # a view never prepared holds nothing
                return [None] * len(entity_keys)
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err
        return [found.get(k) for k in entity_keys]

    def _save_layout(self, view: FeatureView) -> None:
        """Record the view's layout, before its values: a reader never meets a layout it cannot find."""
        record = (view.name, layout_id(view.feature_names), layout_names(view))
        try:
            try:
                self._session.execute(self._statement(view, "save_layout"), record)
            except self._errors as err:
                if not self._is_missing_table(err):
                    raise
                # A keyspace prepared by a version without the table (prepare() makes it now).
                self._prepared.pop((view.name, "save_layout"), None)
                self.prepare([view])
                self._session.execute(self._statement(view, "save_layout"), record)
        except self._errors as err:
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err

    def layout(self, view: FeatureView, layout: int) -> tuple[str, ...] | None:
        def load() -> dict[int, bytes]:
            try:
                return {
                    row[0]: row[1] for row in self._session.execute(self._statement(view, "read_layouts"), (view.name,))
                }
            except self._errors as err:
                if self._is_missing_table(err):
                    return {}
                raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err

        return self._layouts.get(view, layout, load)

    def entity_keys(self, view: FeatureView) -> list[str]:
        try:
            return [row[0] for row in self._session.execute(f"SELECT DISTINCT entity_key FROM {self._table(view)}")]
        except self._errors as err:
            if self._is_missing_table(err):
                return []
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err

    def count(self, view: FeatureView) -> int:
        try:
            # Entities, not rows: a backfill written after newer data leaves an older row beside it.
            rows = self._session.execute(f"SELECT DISTINCT entity_key FROM {self._table(view)}")
            return sum(1 for _ in rows)
        except self._errors as err:
            if self._is_missing_table(err):
                return 0
            raise StoreUnavailableError("Cassandra online store", self.address, str(err)) from err

    def close(self) -> None:
        self._cluster.shutdown()
