"""DuckDB connections for the feature store's own queries."""

from __future__ import annotations

import duckdb


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose session time zone is UTC.

    DuckDB casts between TIMESTAMP, TIMESTAMPTZ and DATE in the session time zone, which is the
    machine's by default: a transformation's ``CAST(ts AS DATE)`` would then depend on where it
    runs. All of our times are UTC, so every connection says so.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def quote(name: str) -> str:
    """An identifier (column, table) quoted for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'
