"""An online store in this process's memory, for tests, notebooks and CI: no file, no server.

``online_store: {type: memory, name: default}``. Stores of one ``name`` in one process share
their data (a module-level table of named stores), so an engine and an SDK object built from the
same project in one process see the same values; other processes see nothing, and nothing
survives the process. Values are packed exactly as the other stores pack them
(``featurestore.online.codec``), so lookups take the same path as in production.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from featurestore.config import OnlineStoreConfig
from featurestore.definitions import FeatureView
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


class MemoryOnlineConfig(OnlineStoreConfig):
    """``online_store: {type: memory, name: default}``: the data of the in-process store named
    ``name``, shared by every store of that name in the process and lost with it."""

    type: Literal["memory"] = "memory"
    name: str = "default"


@dataclass
class _Data:
    """What one named store holds: per view, entity key to (event µs, stored value); per view,
    layout number to its names as JSON."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    values: dict[str, dict[str, tuple[int, bytes]]] = field(default_factory=dict)
    layouts: dict[str, dict[int, bytes]] = field(default_factory=dict)


_NAMED: dict[str, _Data] = {}
_NAMED_LOCK = threading.Lock()


def _named(name: str) -> _Data:
    with _NAMED_LOCK:
        data = _NAMED.get(name)
        if data is None:
            data = _NAMED[name] = _Data()
        return data


class MemoryOnlineStore:
    """Online store in a dict of this process (see the module docs). Every call holds the named
    store's lock and changes it only once everything to change is known: all or nothing."""

    transactional_writes = True
    equal_time_last_write_wins = True
    reports_skipped_older = True

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self._data = _named(name)
        self._layouts = LayoutCache()

    @classmethod
    def from_config(cls, config: MemoryOnlineConfig, project: ProjectConfig) -> MemoryOnlineStore:
        return cls(config.name)

    @staticmethod
    def discard(name: str) -> None:
        """Empty the store ``name`` in this process: every store of that name sees it empty."""
        data = _named(name)
        with data.lock:
            data.values.clear()
            data.layouts.clear()

    def prepare(self, views: Sequence[FeatureView]) -> None:
        with self._data.lock:
            for view in views:
                self._data.values.setdefault(view.name, {})

    def _record_layout(self, view: FeatureView) -> None:
        """Called holding the lock, before the values: a reader never meets a layout it cannot find."""
        self._data.layouts.setdefault(view.name, {})[layout_id(view.feature_names)] = layout_names(view)

    def _packed(self, view: FeatureView, rows: pa.Table) -> list[tuple[str, int, bytes]]:
        keys = encode_keys(view, cast_keys(view, rows))
        times = event_micros(view, rows)
        return list(zip(keys, times, encode_values(view, rows, times), strict=True))

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        if rows.num_rows == 0:
            return WriteStats(0, 0)
        packed = self._packed(view, rows)
        with self._data.lock:
            stored = self._data.values.get(view.name, {})
            changes: dict[str, tuple[int, bytes]] = {}
            written = 0
            for key, micros, value in packed:  # in order: at an equal event time the later row wins
                current = changes.get(key) or stored.get(key)
                if current is None or current[0] <= micros:
                    changes[key] = (micros, value)
                    written += 1
            self._record_layout(view)
            self._data.values.setdefault(view.name, {}).update(changes)
        return WriteStats(written=written, skipped_older=rows.num_rows - written)

    def sync(self, view: FeatureView, rows: pa.Table, removed: pa.Table) -> SyncStats:
        packed = self._packed(view, rows) if rows.num_rows else []
        gone = encode_keys(view, cast_keys(view, removed)) if removed.num_rows else []
        changes = {key: (micros, value) for key, micros, value in packed}
        with self._data.lock:
            if changes:
                self._record_layout(view)
            stored = self._data.values.setdefault(view.name, {})
            for key in gone:
                stored.pop(key, None)
            stored.update(changes)
        return SyncStats(written=len(packed), removed=len(gone))

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        key_cols = cast_keys(view, keys)
        entity_keys = encode_keys(view, key_cols)
        return decode_rows(view, key_cols, self.read_packed(view, entity_keys), features, self.layout, entity_keys)

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[bytes | None]:
        with self._data.lock:
            stored = self._data.values.get(view.name, {})
            found = [stored.get(k) for k in entity_keys]
        return [None if f is None else f[1] for f in found]

    def layout(self, view: FeatureView, layout: int) -> tuple[str, ...] | None:
        def load() -> dict[int, bytes]:
            with self._data.lock:
                return dict(self._data.layouts.get(view.name, {}))

        return self._layouts.get(view, layout, load)

    def entity_keys(self, view: FeatureView) -> list[str]:
        with self._data.lock:
            return list(self._data.values.get(view.name, {}))

    def count(self, view: FeatureView) -> int:
        with self._data.lock:
            return len(self._data.values.get(view.name, {}))

    def close(self) -> None:
        """Nothing to release: the data stays with the name for the other stores of the process."""
