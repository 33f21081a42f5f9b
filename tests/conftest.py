"""Shared session fixtures: real Redis and Cassandra servers, started by the project's own
``infra/`` scripts, and a fresh, isolated online store configuration per test and store kind.

* Redis runs on a dedicated test port (``FEATURESTORE_TEST_REDIS_PORT``, default 16379), so a
  developer's own Redis is never touched. Each test gets its own key prefix, deleted afterwards.
* A Redis Cluster (three primaries, ``infra/redis/start-cluster.sh``) runs on dedicated ports too
  (``FEATURESTORE_TEST_REDIS_CLUSTER_PORT``, default 17100..17102). Each test gets its own key
  prefix, whose keys are deleted afterwards from every primary.
* Cassandra runs on dedicated test ports too (``FEATURESTORE_TEST_CASSANDRA_PORT``, default
  19042, and storage port ``FEATURESTORE_TEST_CASSANDRA_STORAGE_PORT``, default 17000), apart
  from a developer's node on 9042. Each test gets its own keyspace, dropped afterwards.
* PostgreSQL (for the registry, ``infra/postgres/start.sh``) runs on ``FEATURESTORE_TEST_POSTGRES_PORT``
  (default 15432). Each test gets its own database, dropped afterwards; ``registry_url`` runs a
  registry test on SQLite and on PostgreSQL.
* A start script that fails FAILS the tests that need its server, with the script's output: a
  missing server is a broken test environment, never a reason to skip.
* Servers this session started are stopped at its end; servers already running are left alone.
  ``FEATURESTORE_TEST_KEEP_SERVERS=1`` keeps them running for the next session (Cassandra takes
  a while to start).

Nothing here is autouse: unit tests start no server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"

ONLINE_STORES = ("sqlite", "redis", "redis_cluster", "cassandra")
"""The online store kinds the integration suites run once per kind (``online_store_config``'s
params). ``redis_cluster`` is the Redis store with ``cluster: true``, against a real three-primary
Redis Cluster. The contract suite runs on these and on ``memory`` (the in-process store, which
the integration suites' subprocesses could not share), choosing its kinds with a parametrize mark."""

REDIS_PORT = int(os.environ.get("FEATURESTORE_TEST_REDIS_PORT", "16379"))
REDIS_CLUSTER_PORT = int(os.environ.get("FEATURESTORE_TEST_REDIS_CLUSTER_PORT", "17100"))
"""The first of the cluster's three ports; the cluster bus uses each port + 10000."""
CASSANDRA_PORT = int(os.environ.get("FEATURESTORE_TEST_CASSANDRA_PORT", "19042"))
CASSANDRA_STORAGE_PORT = int(os.environ.get("FEATURESTORE_TEST_CASSANDRA_STORAGE_PORT", "17000"))
KEEP_SERVERS = os.environ.get("FEATURESTORE_TEST_KEEP_SERVERS", "") not in ("", "0")
START_TIMEOUT_S = {"redis": 120.0, "cassandra": 900.0}  # Cassandra may first fetch its jars with mvn


@dataclass(frozen=True)
class Server:
    """A server a start script brought up (or found running)."""

    name: str
    host: str
    port: int
    started_here: bool
    start_output: str


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _script(
    name: str, action: str, env: dict[str, str], timeout: float, variant: str = ""
) -> subprocess.CompletedProcess[str]:
    path = INFRA / name / f"{action}{variant}.sh"
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} does not exist: cannot {action} the {name} server", pytrace=False)
    try:
        return subprocess.run(
            ["bash", str(path)],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        errs = (err.stderr or b"").decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        pytest.fail(
            f"{path.relative_to(REPO)} did not finish within {timeout:.0f} s\n--- stdout\n{out}\n--- stderr\n{errs}",
            pytrace=False,
        )


def _server(name: str, port: int, env: dict[str, str], variant: str = "") -> Iterator[Server]:
    """The server of ``infra/<name>/start<variant>.sh``, stopped by ``stop<variant>.sh``."""
    host = "127.0.0.1"
    script = f"infra/{name}/start{variant}.sh"
    was_running = _answers(host, port)
    proc = _script(name, "start", env, START_TIMEOUT_S[name], variant)
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    if proc.returncode != 0:
        pytest.fail(
            f"{script} ({' '.join(f'{k}={v}' for k, v in env.items())}) exited {proc.returncode}\n{output}",
            pytrace=False,
        )
    if not _answers(host, port):
        pytest.fail(f"{script} succeeded but nothing answers on {host}:{port}\n{output}", pytrace=False)
    server = Server(name=name, host=host, port=port, started_here=not was_running, start_output=output)
    yield server
    if server.started_here and not KEEP_SERVERS:
        _script(name, "stop", env, 120.0, variant)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """Redis on the dedicated test port, started by ``infra/redis/start.sh``."""
    yield from _server("redis", REDIS_PORT, {"REDIS_PORT": str(REDIS_PORT)})


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[Server]:
    """A three-primary Redis Cluster on the dedicated test ports, started by
    ``infra/redis/start-cluster.sh`` (returns once every node reports ``cluster_state:ok``).
    ``port`` is the first node's; the client discovers the others."""
    yield from _server("redis", REDIS_CLUSTER_PORT, {"REDIS_CLUSTER_PORT": str(REDIS_CLUSTER_PORT)}, "-cluster")


@pytest.fixture(scope="session")
def cassandra_server() -> Iterator[Server]:
    """Cassandra, started by ``infra/cassandra/start.sh`` (returns once CQL answers)."""
    env = {"CASSANDRA_PORT": str(CASSANDRA_PORT), "CASSANDRA_STORAGE_PORT": str(CASSANDRA_STORAGE_PORT)}
    yield from _server("cassandra", CASSANDRA_PORT, env)


@pytest.fixture(scope="session")
def redis_client(redis_server: Server) -> Iterator[Any]:
    """A raw client of the test Redis, for cleaning up and for tampering with stored values."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster_client(redis_cluster_server: Server) -> Iterator[Any]:
    """A raw cluster client of the test Redis Cluster, for cleaning up and for tampering."""
    from redis.cluster import RedisCluster

    client = RedisCluster(host=redis_cluster_server.host, port=redis_cluster_server.port)
    yield client
    client.close()


def _delete_prefix(client: Any, prefix: str) -> None:
    """Delete the keys ``<prefix>:*``; on a cluster client, SCAN visits every primary and DEL is
    split by hash slot."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


@pytest.fixture(scope="session")
def cassandra_session(cassandra_server: Server) -> Iterator[Any]:
    """A raw CQL session on the test Cassandra, for cleaning up and for tampering with stored values."""
    from cassandra.cluster import Cluster

    cluster = Cluster([cassandra_server.host], port=cassandra_server.port, protocol_version=5)
    session = cluster.connect()
    yield session
    cluster.shutdown()


def unique_name(prefix: str) -> str:
    """A name no other test (or session) uses: valid as a Cassandra keyspace and a Redis prefix."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=ONLINE_STORES)
def online_store_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The ``online_store`` section of a project file for a fresh, empty store of each kind.

    Tests using it run once per kind of ``ONLINE_STORES``, or of the kinds a module names with
    ``pytest.mark.parametrize("online_store_config", [...], indirect=True)`` (the contract suite
    adds ``memory``). Servers start only for the kinds a test runs with.
    """
    kind: str = request.param
    if kind == "sqlite":
        yield {"type": "sqlite", "path": str(tmp_path / "online.db")}
    elif kind == "redis":
        server: Server = request.getfixturevalue("redis_server")
        client = request.getfixturevalue("redis_client")
        prefix = unique_name("fstest")
        yield {"type": "redis", "url": f"redis://{server.host}:{server.port}/0", "key_prefix": prefix}
        _delete_prefix(client, prefix)
    elif kind == "redis_cluster":
        server = request.getfixturevalue("redis_cluster_server")
        client = request.getfixturevalue("redis_cluster_client")
        prefix = unique_name("fstest")
        yield {"type": "redis", "cluster": True, "url": f"redis://{server.host}:{server.port}", "key_prefix": prefix}
        _delete_prefix(client, prefix)
    elif kind == "cassandra":
        server = request.getfixturevalue("cassandra_server")
        session = request.getfixturevalue("cassandra_session")
        keyspace = unique_name("fstest")
        yield {"type": "cassandra", "hosts": [server.host], "port": server.port, "keyspace": keyspace}
        session.execute(f'DROP KEYSPACE IF EXISTS "{keyspace}"', timeout=60)
    elif kind == "memory":
        from featurestore.online.memory import MemoryOnlineStore

        name = unique_name("fstest")
        yield {"type": "memory", "name": name}
        MemoryOnlineStore.discard(name)
    else:  # pragma: no cover - ONLINE_STORES and the contract suite list the kinds above
        raise AssertionError(kind)


# ---------------------------------------------------------------------- PostgreSQL (the registry)

POSTGRES_PORT = int(os.environ.get("FEATURESTORE_TEST_POSTGRES_PORT", "15432"))
POSTGRES_ENV = {
    "POSTGRES_PORT": str(POSTGRES_PORT),
    # A role and password for the tests only, on a server listening on 127.0.0.1.
    "POSTGRES_USER": "featurestore",
    "POSTGRES_PASSWORD": "featurestore",
    "POSTGRES_DB": "featurestore",
}
START_TIMEOUT_S["postgres"] = 600.0  # may first install Debian's postgresql with apt-get

REGISTRY_BACKENDS = ("sqlite", "postgresql")
"""The databases the registry suite runs on (``registry_url``'s params)."""


def postgres_url(server: Server, database: str) -> str:
    """The SQLAlchemy URL (psycopg 3) of a database on the test PostgreSQL, as the test role."""
    user, password = POSTGRES_ENV["POSTGRES_USER"], POSTGRES_ENV["POSTGRES_PASSWORD"]
    return f"postgresql+psycopg://{user}:{password}@{server.host}:{server.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """PostgreSQL on the dedicated test port (``FEATURESTORE_TEST_POSTGRES_PORT``, default 15432),
    started by ``infra/postgres/start.sh`` (Debian's package, installed when missing), which
    returns once the server answers and the test role (allowed to create databases) and its
    database exist."""
    yield from _server("postgres", POSTGRES_PORT, POSTGRES_ENV)


@pytest.fixture
def postgres_databases(postgres_server: Server) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases of their own on the test PostgreSQL (about 20 ms each) and
    gives their URLs; each is dropped afterwards, with whatever connections a test left open."""
    import sqlalchemy as sa

    admin = sa.create_engine(postgres_url(postgres_server, POSTGRES_ENV["POSTGRES_DB"]), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = unique_name("fstest")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
        made.append(name)
        return postgres_url(postgres_server, name)

    try:
        yield make
        with admin.connect() as conn:
            for name in made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_database(postgres_databases: Callable[[], str]) -> str:
    """The URL of a fresh, empty database of its own on the test PostgreSQL."""
    return postgres_databases()


@pytest.fixture(params=REGISTRY_BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty registry database: a SQLite file, then a database of its own on
    the test PostgreSQL (the server starts only when a test runs with ``postgresql``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


SERVER_STORES = frozenset({"redis", "redis_cluster", "cassandra"})
"""The online store kinds that need a server: their parametrizations carry the ``server`` mark."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Marked by the parameter's value, not its place in the test id, so `make test-fast`
    # (-m "not server") deselects every server parametrization however its id is composed.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("online_store_config") in SERVER_STORES:
            item.add_marker(pytest.mark.server)
