"""The embedded online store: one SQLite file, one table per feature view, no server."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import StoreUnavailableError
from featurestore.online import WriteStats
from featurestore.online.codec import cast_keys, decode_rows, encode_keys, encode_values, event_micros

_MAX_VARIABLES = 900  # below SQLite's default limit of host parameters per statement


class SqliteOnlineStore:
    """Online store in a SQLite file (WAL mode, so lookups never wait for a run's write).

    Layout: table ``fv_<view>`` with ``entity_key TEXT PRIMARY KEY`` (the encoded join keys),
    ``event_us INTEGER`` (event time in microseconds) and ``value BLOB`` (the packed features).
    """

    transactional_writes = True
    """A write is one SQLite transaction: all of it or nothing."""
    equal_time_last_write_wins = True
    reports_skipped_older = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn()
        except (OSError, sqlite3.Error) as err:
            raise StoreUnavailableError("SQLite online store", str(self.path), str(err)) from err

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @staticmethod
    def _table(view: FeatureView) -> str:
        return f'"fv_{view.name}"'

    def prepare(self, views: Sequence[FeatureView]) -> None:
        conn = self._conn()
        for view in views:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table(view)} "
                "(entity_key TEXT PRIMARY KEY, event_us INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
            )

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        if rows.num_rows == 0:
            return WriteStats(0, 0)
        keys = encode_keys(view, cast_keys(view, rows))
        values = encode_values(view, rows)
        times = event_micros(view, rows)
        table = self._table(view)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            conn.executemany(
                f"INSERT INTO {table} (entity_key, event_us, value) VALUES (?, ?, ?) "
                "ON CONFLICT(entity_key) DO UPDATE SET event_us = excluded.event_us, value = excluded.value "
                "WHERE excluded.event_us >= event_us",
                zip(keys, times, values, strict=True),
            )
            written = conn.total_changes - before
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return WriteStats(written=written, skipped_older=rows.num_rows - written)

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        key_cols = cast_keys(view, keys)
        return decode_rows(view, key_cols, self.read_packed(view, encode_keys(view, key_cols)), features)

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        table = self._table(view)
        conn = self._conn()
        found: dict[str, tuple[int, bytes]] = {}
        unique = list(dict.fromkeys(entity_keys))
        for start in range(0, len(unique), _MAX_VARIABLES):
            chunk = unique[start : start + _MAX_VARIABLES]
            marks = ",".join("?" * len(chunk))
            try:
                for key, micros, value in conn.execute(
                    f"SELECT entity_key, event_us, value FROM {table} WHERE entity_key IN ({marks})", chunk
                ):
                    found[key] = (micros, value)
            except sqlite3.OperationalError as err:
                if "no such table" not in str(err):
                    raise StoreUnavailableError("SQLite online store", str(self.path), str(err)) from err
        return [found.get(k) for k in entity_keys]

    def count(self, view: FeatureView) -> int:
        try:
            row = self._conn().execute(f"SELECT count(*) FROM {self._table(view)}").fetchone()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return 0
            raise StoreUnavailableError("SQLite online store", str(self.path), str(err)) from err
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
