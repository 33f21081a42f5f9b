"""DuckDB connections for the feature store's own queries."""

from __future__ import annotations

import os
import threading

import duckdb

_shared: duckdb.DuckDBPyConnection | None = None
_shared_lock = threading.Lock()


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB database's connection whose session time zone is UTC.

    DuckDB casts between TIMESTAMP, TIMESTAMPTZ and DATE in the session time zone, which is the
    machine's by default: a transformation's ``CAST(ts AS DATE)`` would then depend on where it
    runs. All of our times are UTC, so every connection says so. For queries that create tables
    or views (an engine's run); others take a :func:`cursor`.
    """
    con = duckdb.connect()
    con.execute("SET GLOBAL TimeZone = 'UTC'")  # GLOBAL: its cursors too (SET is the connection's own)
    return con


def cursor() -> duckdb.DuckDBPyConnection:
    """A connection of this process's shared in-memory database (time zone UTC), for queries that
    only read files and registered Arrow tables, which stay the connection's own. Opening one
    takes ~0.2 ms where a new database takes ~30 ms: what a push, a lookup's derivation or a
    training set would otherwise pay per query. Close it after use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = connect()
        return _shared.cursor()


_inherited: list[duckdb.DuckDBPyConnection] = []


def _forget_after_fork() -> None:
    # A child of fork() must not use its parent's database (its threads did not come along), nor
    # close it: closing joins threads the child does not have (a segfault, e.g. in the child that
    # pyspark forks to start Java). Kept referenced, unused, until the child execs or exits.
    global _shared, _shared_lock
    if _shared is not None:
        _inherited.append(_shared)
    _shared, _shared_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def quote(name: str) -> str:
    """An identifier (column, table) quoted for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A string literal for DuckDB SQL (a path, a value): ``str(value)`` quoted, quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"
