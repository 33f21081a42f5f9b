"""Locks that serialize the registry's read-then-write transactions between processes.

``apply`` reads what a project holds, then writes what changed, numbering a view's new version
from the latest one. Two processes doing so at once (two engineers, a CI job, the workers of a
server) would number the same version twice or insert the same rows twice, and one would fail
on the primary key. So such a transaction takes its project's lock first, as its first
statement, and holds it until it commits or rolls back; the next writer then reads what the
first one committed. Readers never wait.

- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``) on a 64-bit key made
  from the project's name; other projects' writers are not held up. This relies on READ
  COMMITTED (PostgreSQL's default): each later statement sees what the previous holder committed.
- SQLite: the database's write lock, taken by a write that changes nothing. It must come first:
  Python's sqlite3 driver begins the transaction only at its first write, so reads before it
  would see a state another process may change before this one commits. A writer waits for the
  lock up to the connection's busy timeout (the registry opens SQLite with 30 s).
- Other databases: no lock; concurrent writers of one project may fail on a primary key and
  roll back (nothing half-written), and can be retried.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from featurestore.registry.schema import views_t

MIGRATION_LOCK = "featurestore.registry:schema"
"""The advisory lock name that serializes schema migrations on PostgreSQL."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (the same in every process,
    unlike Python's ``hash``)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def lock_name(conn: sa.Connection, name: str) -> None:
    """Hold the lock called ``name`` until the transaction of ``conn`` ends (see the module)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_key(name))))
    elif dialect == "sqlite":
        conn.execute(views_t.update().where(sa.false()).values(version=views_t.c.version))


def lock_project(conn: sa.Connection, project: str) -> None:
    """Hold the lock on the project's definitions until the transaction of ``conn`` ends: call
    it first in a transaction that reads definitions and writes what follows from them."""
    lock_name(conn, f"featurestore.registry:project:{project}")
