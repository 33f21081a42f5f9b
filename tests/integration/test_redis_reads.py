"""The Redis online store's read path (``RedisOnlineStore.read_packed``): the command it packs
itself and sends on a pooled connection answers what redis-py's own ``GET``/``MGET`` answer, a
connection error on the way is retried through the client's call, and a reply error is raised
as the client raises it (then a 503, ``StoreUnavailableError``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64
from featurestore.errors import StoreUnavailableError
from featurestore.online.redis import RedisOnlineConfig, RedisOnlineStore

CUSTOMER = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
VIEW = FeatureView(
    name="spend",
    entities=(CUSTOMER,),
    source=FileSource(name="events", path="events.parquet", timestamp_field="ts"),
    timestamp_field="ts",
    ttl=timedelta(days=1),
    features=(Feature("amount", Float64),),
)


@pytest.fixture
def store(redis_server: Any, redis_client: Any) -> Iterator[RedisOnlineStore]:
    prefix = f"reads-{uuid.uuid4().hex[:8]}"
    config = RedisOnlineConfig(url=f"redis://{redis_server.host}:{redis_server.port}/0", key_prefix=prefix)
    s = RedisOnlineStore(config, project="unused")
    now = datetime.now(UTC)
    s.write(
        VIEW,
        pa.table(
            {
                "customer_id": pa.array(range(1, 151), pa.int64()),
                "ts": pa.array([now] * 150, pa.timestamp("us", tz="UTC")),
                "amount": [float(i) / 3 for i in range(1, 151)],
            }
        ),
    )
    yield s
    s.close()
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


def test_the_store_packs_its_reads_itself_where_hiredis_is_installed(store: RedisOnlineStore) -> None:
    pytest.importorskip("hiredis")
    assert store._pack is not None, "with hiredis, reads should not take redis-py's generic command path"


@pytest.mark.parametrize("count", [1, 2, 100])
def test_reads_answer_what_the_client_answers(store: RedisOnlineStore, redis_client: Any, count: int) -> None:
    keys = [str(k) for k in range(140, 140 + count)]  # 140..150 are stored, the others missing
    expected = redis_client.mget([f"{store.prefix}:{VIEW.name}:{k}" for k in keys])
    got = store.read_packed(VIEW, keys)
    assert got == expected
    assert any(v is None for v in got) == (count > 11)
    assert got[0] is not None and got[0].startswith(b"[")


def test_a_read_of_no_keys_is_empty(store: RedisOnlineStore) -> None:
    assert store.read_packed(VIEW, []) == []


@pytest.mark.parametrize("count", [1, 3])
def test_a_connection_error_on_the_way_is_retried_through_the_client(
    store: RedisOnlineStore, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    import redis

    pool: Any = store._pool
    conn = pool.get_connection()
    pool.release(conn)  # the connection the next read takes (the pool's last in, first out)
    sent = conn.send_packed_command
    failures: list[Any] = []

    def drop_once(command: Any, check_health: bool = True) -> None:
        if not failures:
            failures.append(command)
            conn.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        sent(command, check_health)

    monkeypatch.setattr(conn, "send_packed_command", drop_once)
    keys = [str(k) for k in range(1, 1 + count)]
    got = store.read_packed(VIEW, keys)
    assert failures, "the read did not take the pooled connection made to fail"
    assert [v is not None and v.startswith(b"[") for v in got] == [True] * count


def test_a_reply_error_is_a_store_unavailable_error(store: RedisOnlineStore, redis_client: Any) -> None:
    # A key another program made a hash: GET answers WRONGTYPE, as redis-py's get raises it.
    redis_client.hset(f"{store.prefix}:{VIEW.name}:999", mapping={"a": "1"})
    with pytest.raises(StoreUnavailableError, match="WRONGTYPE"):
        store.read_packed(VIEW, ["999"])
    # MGET answers nil for it, as for any key that is not a string.
    assert store.read_packed(VIEW, ["999", "1"])[0] is None


def test_reads_keep_their_connections_and_threads_never_share_one(store: RedisOnlineStore, redis_client: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    keys = [str(k) for k in range(1, 101)]
    expected = redis_client.mget([f"{store.prefix}:{VIEW.name}:{k}" for k in keys])
    pool: Any = store._pool
    store.read_packed(VIEW, keys)
    taken = len(pool._connections)
    for _ in range(20):
        assert store.read_packed(VIEW, keys) == expected
    assert len(pool._connections) == taken, "a read took a new connection where one was kept"

    def read(i: int) -> bool:
        mine = keys[i % 50 :] + keys[: i % 50]  # each thread its own order: a shared connection mixes replies
        return store.read_packed(VIEW, mine) == redis_client.mget([f"{store.prefix}:{VIEW.name}:{k}" for k in mine])

    with ThreadPoolExecutor(8) as threads:
        assert all(threads.map(read, range(400)))
    assert len(store._idle) <= 8 + taken
    store.close()
    assert not store._idle
