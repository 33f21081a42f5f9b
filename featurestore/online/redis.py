"""Online store on Redis or Redis Cluster.

Layout: one string key per entity and view, ``<prefix>:<view>:<entity key>``, whose value is
the JSON array ``[event µs, layout, value, ...]`` of ``featurestore.online.codec``. A batch
lookup of N entities is one ``MGET`` (hashes would cost N ``HGETALL`` round trips through
redis-py's encoder) and one parse of the N values together. Writes go through a Lua script that
keeps the stored value when it has a newer event time, so an older row never replaces a newer
one, even when two runs write at once. A sync (``OnlineStore.sync``: what offline says,
whatever event time is stored) sets values with ``MSET`` and deletes with ``UNLINK``. The hash
``<prefix>#layouts:<view>`` maps each layout written to its feature names (outside
``<prefix>:<view>:*``, so it is never counted as an entity).

A lookup's ``GET``/``MGET`` is packed in one call (hiredis; an ``MGET`` of ASCII keys as one
string join, half hiredis's time for 100 keys) and sent on a connection of the client's pool,
skipping redis-py's generic command path (which re-encodes every argument in Python and wraps
each call in its retry and observability bookkeeping): measured for 100 keys, redis-py's
``mget`` took ~120 µs where the same command sent so took ~67 µs. The connections a read used
are kept for the next read (taking one from the pool and giving it back cost ~11 µs a read). A
connection error on that path hands the read to the client's own call, so its retries apply as
before; without hiredis, or with a non-UTF-8 encoding in the URL, every read takes the client's
path.

On Redis Cluster the keys of a batch fall in many hash slots, so a lookup is one ``MGET`` per
slot (``mget_nonatomic``, one pipelined round trip per node), a write one ``EVALSHA`` per key
(pipelined: the keys of one script call must share a slot), a sync one ``MSET`` and one
``UNLINK`` per slot (``mset_nonatomic``, ``unlink``), and a count scans every primary.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import pyarrow as pa
from pydantic import Field

from featurestore.config import OnlineStoreConfig
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
from featurestore.secrets import redact_url

if TYPE_CHECKING:
    from featurestore.config import ProjectConfig

_CLUSTER_SYNC_CHUNK = 100_000
"""Keys per ``mset_nonatomic``/``unlink`` call of a sync on Redis Cluster. The helpers send one
command per hash slot (16,384 of them), so a bigger chunk puts more keys in each command:
measured for 100k entities on a three-primary cluster, chunks of 1,000 took 4.2 s, of 10,000
1.5 s, of 100,000 0.76 s."""

# KEYS: entity keys; ARGV: event micros and value, alternating. Returns how many were set. The
# stored event time is the number the value starts with ("[<µs>,..."); a value not in that form
# (e.g. of an older version) is replaced.
_WRITE_NEWER = """
local written = 0
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i - 1])
  local current = redis.call('GET', key)
  local stored = current and tonumber(string.match(current, '^%[(%-?%d+),'))
  if not (stored and stored > t) then
    redis.call('SET', key, ARGV[2 * i])
    written = written + 1
  end
end
return written
"""


def _command_packer(connection_kwargs: dict[str, Any]) -> Callable[[tuple[str, ...]], bytes] | None:
    """hiredis's ``pack_command`` when it encodes keys as the client would (UTF-8, strict, the
    defaults; a URL may choose others), else None: reads then take the client's own path."""
    try:
        from hiredis import pack_command
    except ImportError:
        return None
    encoding = str(connection_kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8") or connection_kwargs.get("encoding_errors", "strict") != "strict":
        return None
    return cast("Callable[[tuple[str, ...]], bytes]", pack_command)


def _mget_command(prefix: str, keys: Sequence[str], heads: dict[int, str]) -> bytes | None:
    """``MGET`` of ``prefix + key`` for each key, as the Redis protocol sends it (the bytes
    hiredis's ``pack_command`` makes), by one string join: what precedes each key (its name's
    ``$<length>`` and the prefix) is taken, at C speed, from ``heads``, a table of the key
    lengths met (hiredis packs each argument in turn, ~2x slower for 100 keys). None when a key
    or the prefix is not ASCII (its length in bytes would differ)."""
    parts: list[str] = [""] * (2 * len(keys))
    try:
        parts[0::2] = map(heads.__getitem__, map(len, keys))
    except KeyError:
        if len(heads) > 1000:  # keys of ever new lengths: keep the table small
            heads.clear()
        met = {length: f"\r\n${len(prefix) + length}\r\n{prefix}" for length in set(map(len, keys))}
        heads.update(met)
        parts[0::2] = map(met.__getitem__, map(len, keys))
    parts[1::2] = keys
    text = f"*{len(keys) + 1}\r\n$4\r\nMGET{''.join(parts)}\r\n"
    return text.encode() if text.isascii() else None


class RedisOnlineConfig(OnlineStoreConfig):
    """``online_store: {type: redis, url: redis://127.0.0.1:6379/0}``; ``cluster: true`` for Redis Cluster."""

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    """``redis://[user:password@]host:port/db`` (``rediss://`` for TLS); the password is never
    shown (write ``redis://:${REDIS_PASSWORD}@host/0`` to keep it out of the file)."""
    cluster: bool = False
    key_prefix: str = ""
    """Prefix of every key; the project's name when empty, so projects can share a server."""
    batch_size: int = Field(default=1000, gt=0)
    """Entities per pipelined write batch, and per ``MSET`` of a sync."""
    max_connections: int = Field(default=64, gt=0)
    socket_timeout: float = Field(default=5.0, gt=0)


class RedisOnlineStore:
    """Online store on Redis (see the module docs for the key and value layout)."""

    transactional_writes = False
    equal_time_last_write_wins = True
    reports_skipped_older = True

    def __init__(self, config: RedisOnlineConfig, *, project: str) -> None:
        try:
            import redis
            import redis.cluster
        except ImportError as err:
            raise ConfigError(
                "the Redis online store needs the redis client: pip install 'featurestore[redis]'",
                key="online_store.type",
            ) from err
        self.config = config
        self.address = redact_url(config.url)
        """Where the store is, as errors show it: the URL without its password."""
        self.prefix = config.key_prefix or project
        self._layouts = LayoutCache()
        # The cluster client raises RedisClusterException, which is no RedisError, when no node
        # answers or a slot has no node (SlotNotCoveredError).
        self._redis_errors: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)
        self._no_script: type[Exception] = redis.exceptions.NoScriptError
        self._pack: Callable[[tuple[str, ...]], bytes] | None = None  # see _read_direct
        try:
            if config.cluster:
                self._client: Any = redis.cluster.RedisCluster.from_url(
                    config.url, socket_timeout=config.socket_timeout, max_connections=config.max_connections
                )
                self._client.ping(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
                # Bound once: the hot path pays no test of the mode per lookup.
                self._mget: Any = self._client.mget_nonatomic
            else:
                pool = redis.BlockingConnectionPool.from_url(
                    config.url, max_connections=config.max_connections, socket_timeout=config.socket_timeout
                )
                self._client = redis.Redis(connection_pool=pool)
                self._client.ping()
                self._mget = self._client.mget
                self._pool: Any = pool
                self._pack = _command_packer(pool.connection_kwargs)
                self._idle: list[Any] = []  # connections of the pool kept between reads (_read_direct)
                self._idle_pid = os.getpid()  # a forked child opens its own
                self._mget_heads: dict[str, dict[int, str]] = {}  # per key prefix, see _mget_command
                self._connection_errors = (redis.ConnectionError, redis.TimeoutError)
            self._script = self._client.register_script(_WRITE_NEWER)
            if config.cluster:
                self._client.script_load(_WRITE_NEWER)  # on every primary, for pipelined EVALSHA
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err

    @classmethod
    def from_config(cls, config: RedisOnlineConfig, project: ProjectConfig) -> RedisOnlineStore:
        return cls(config, project=project.project)

    def _key(self, view: FeatureView, entity: str) -> str:
        return f"{self.prefix}:{view.name}:{entity}"

    def _layouts_key(self, view: FeatureView) -> str:
        return f"{self.prefix}#layouts:{view.name}"

    def prepare(self, views: Sequence[FeatureView]) -> None:
        """Redis needs no schema; only checks that the server (every primary of a cluster) answers."""
        try:
            if self.config.cluster:
                self._client.ping(target_nodes=self._client.PRIMARIES)
            else:
                self._client.ping()
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        if rows.num_rows == 0:
            return WriteStats(0, 0)
        keys = [self._key(view, k) for k in encode_keys(view, cast_keys(view, rows))]
        times = event_micros(view, rows)
        values = encode_values(view, rows, times)
        written = 0
        size = max(1, self.config.batch_size)
        try:
            # Before the values: a reader never meets a layout it cannot find.
            self._client.hset(self._layouts_key(view), str(layout_id(view.feature_names)), layout_names(view))
            for start in range(0, len(keys), size):
                batch = range(start, min(start + size, len(keys)))
                if self.config.cluster:
                    written += self._write_cluster_batch([(keys[i], times[i], values[i]) for i in batch])
                else:
                    args: list[Any] = []
                    for i in batch:
                        args.extend((times[i], values[i]))
                    written += int(self._script(keys=[keys[i] for i in batch], args=args))
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err
        return WriteStats(written=written, skipped_older=rows.num_rows - written)

    def _write_cluster_batch(self, batch: Sequence[tuple[str, int, bytes]]) -> int:
        """One script call per key (the keys of a call must share a hash slot), pipelined: the
        cluster pipeline sends each node its calls in one round trip and follows redirections.
        redis-py's cluster pipeline blocks the ``evalsha`` method that ``Script`` calls, so this
        sends ``EVALSHA`` as a raw command (as redis-py's own ``mget_nonatomic`` does). When a
        node lacks the script (restarted, or a replica promoted since it was loaded), it is loaded
        on every primary and the batch sent once more: harmless, as a repeated call leaves the
        stored value as it was and counts the same."""
        try:
            return self._eval_pipelined(batch)
        except self._no_script:
            self._client.script_load(_WRITE_NEWER)
            return self._eval_pipelined(batch)

    def _eval_pipelined(self, batch: Sequence[tuple[str, int, bytes]]) -> int:
        pipe = self._client.pipeline(transaction=False)
        sha = self._script.sha
        for key, micros, value in batch:
            pipe.execute_command("EVALSHA", sha, 1, key, micros, value)
        return sum(int(n) for n in pipe.execute())

    def sync(self, view: FeatureView, rows: pa.Table, removed: pa.Table) -> SyncStats:
        """The layout recorded, then the values set with ``MSET`` whatever they held (no script:
        measured for 100k entities, ``MSET`` in chunks of 1,000 took 0.23 s where pipelined
        ``SET`` took 1.8 s, and NOTES.md measured the newer-wins script at ten times ``MSET``'s
        server time), and the removed keys unlinked. On a cluster, ``mset_nonatomic`` and
        ``unlink`` split each chunk by hash slot. Not atomic: a failure may leave some chunks
        applied, and repeating the sync completes it."""
        keys = [self._key(view, k) for k in encode_keys(view, cast_keys(view, rows))] if rows.num_rows else []
        values = encode_values(view, rows, event_micros(view, rows)) if rows.num_rows else []
        gone = [self._key(view, k) for k in encode_keys(view, cast_keys(view, removed))] if removed.num_rows else []
        size = max(self.config.batch_size, _CLUSTER_SYNC_CHUNK) if self.config.cluster else self.config.batch_size
        client = self._client
        try:
            if keys:
                client.hset(self._layouts_key(view), str(layout_id(view.feature_names)), layout_names(view))
            mset = client.mset_nonatomic if self.config.cluster else client.mset
            for start in range(0, len(keys), size):
                mset(dict(zip(keys[start : start + size], values[start : start + size], strict=True)))
            for start in range(0, len(gone), size):
                client.unlink(*gone[start : start + size])
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err
        return SyncStats(written=len(keys), removed=len(gone))

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        key_cols = cast_keys(view, keys)
        entity_keys = encode_keys(view, key_cols)
        return decode_rows(view, key_cols, self.read_packed(view, entity_keys), features, self.layout, entity_keys)

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[bytes | None]:
        if not entity_keys:
            return []
        prefix = f"{self.prefix}:{view.name}:"
        try:
            if self._pack is not None:
                return self._read_direct(self._pack, prefix, entity_keys)
            names = list(map(prefix.__add__, entity_keys))
            # One key (the common lookup): GET, a little cheaper than an MGET of one in redis-py.
            return [self._client.get(names[0])] if len(names) == 1 else self._mget(names)
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err

    def _read_direct(
        self, pack: Callable[[tuple[str, ...]], bytes], prefix: str, keys: Sequence[str]
    ) -> list[bytes | None]:
        """``GET`` (one key) or ``MGET``, packed once and sent on a connection of the client's pool
        (see the module docs), kept for the next read. Taking the connection fails as the client's
        call would (redis-py retries a connect inside it). A connection or timeout error on the
        way (redis-py drops the connection as it raises) gives the connection back to the pool
        and hands the read to the client's call, which retries as it is configured to; a reply
        error (e.g. ``WRONGTYPE`` for a ``GET`` of a key another program made a hash) is raised
        as the client's call raises it."""
        one = len(keys) == 1
        if one:
            packed = pack(("GET", prefix + keys[0]))
        else:
            heads = self._mget_heads.get(prefix)
            if heads is None:
                heads = self._mget_heads[prefix] = {}
            packed = _mget_command(prefix, keys, heads) or pack(("MGET", *map(prefix.__add__, keys)))
        if self._idle_pid != os.getpid():  # forked: the parent's connections are not ours
            self._idle_pid = os.getpid()
            self._idle = []
        idle = self._idle
        try:
            conn = idle.pop()  # atomic: threads never share a connection
        except IndexError:
            conn = self._pool.get_connection()
        try:
            conn.send_packed_command([packed])
            reply = conn.read_response()
        except self._connection_errors:
            self._pool.release(conn)  # redis-py dropped it as it raised
            names = list(map(prefix.__add__, keys))
            return [self._client.get(names[0])] if one else self._mget(names)
        except BaseException:
            idle.append(conn)  # a reply error leaves it ready; others dropped it (it reconnects)
            raise
        idle.append(conn)
        return [reply] if one else cast("list[bytes | None]", reply)

    def layout(self, view: FeatureView, layout: int) -> tuple[str, ...] | None:
        def load() -> dict[bytes, bytes]:
            try:
                recorded: dict[bytes, bytes] = self._client.hgetall(self._layouts_key(view))
            except self._redis_errors as err:
                raise StoreUnavailableError("Redis online store", self.address, str(err)) from err
            return recorded

        return self._layouts.get(view, layout, load)

    def _scan(self, view: FeatureView) -> Any:
        """The view's entity keys, scanned (every primary of a cluster)."""
        literal = re.sub(r"([\\*?\[\]])", r"\\\1", self._key(view, ""))  # glob characters of the prefix
        return self._client.scan_iter(match=literal + "*", count=1000)

    def entity_keys(self, view: FeatureView) -> list[str]:
        start = len(self._key(view, ""))
        try:
            return [(k.decode() if isinstance(k, bytes) else str(k))[start:] for k in self._scan(view)]
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err

    def count(self, view: FeatureView) -> int:
        try:
            return sum(1 for _ in self._scan(view))
        except self._redis_errors as err:
            raise StoreUnavailableError("Redis online store", self.address, str(err)) from err

    def close(self) -> None:
        if not self.config.cluster:
            while self._idle:
                self._pool.release(self._idle.pop())
            self._pool.disconnect()
        self._client.close()
