"""What offline and online hold, read without the feature store's code, and compared.

The consistency checker is the feature store's own judge; these helpers are a second one that
shares none of its code, so a bug in the checker (or in the codec both sides use) cannot hide a
difference:

* Offline: the Parquet files named by the view's ``_manifest.json``, read with pyarrow only; the
  latest row per entity over all of them.
* Online: the store's own client: ``sqlite3`` on the table ``fv_<view>``, a raw Redis ``SCAN``
  and ``GET`` of ``<prefix>:<view>:<entity key>``, a raw CQL ``SELECT`` of ``"<keyspace>"."fv_<view>"``.
  Each value is the JSON array ``[event µs, layout, values...]``; the layout's feature names come
  from the store's layout records (``featurestore_layouts``, ``<prefix>#layouts:<view>``).

:func:`compare` then wants: every entity online has an offline row, and online holds exactly its
latest one (event time and every value); every entity whose latest row is within the view's TTL
(as of the watermark) is online. Online may hold rows past the TTL (TTL is applied when reading).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Row:
    """One entity's row: event time in microseconds since the epoch, values by feature name."""

    micros: int
    values: dict[str, Any]


def micros(value: datetime) -> int:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _plain(value: Any) -> Any:
    """A value as the online JSON holds it: times as microseconds, NaN as null."""
    if isinstance(value, datetime):
        return micros(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _from_json(value: Any) -> Any:
    return {"Infinity": math.inf, "-Infinity": -math.inf}.get(value, value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------- offline


def manifest(view_dir: Path) -> dict[str, Any]:
    path = view_dir / "_manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"partitions": {}, "pending": [], "superseded": []}


def offline_table(view_dir: Path) -> pa.Table | None:
    """Every published row of the view: the files its manifest names, a feature missing from an
    older file read as null."""
    m = manifest(view_dir)
    files = [view_dir / rel for _, rel in sorted(m["partitions"].items())]
    files += [view_dir / rel for _, rels in sorted(m.get("pushed", {}).items()) for rel in rels]
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def offline_latest(view_dir: Path, keys: Sequence[str], timestamp: str, features: Sequence[str]) -> dict[Key, Row]:
    """The latest published row of every entity (two rows of one entity at one time: an error)."""
    table = offline_table(view_dir)
    out: dict[Key, Row] = {}
    if table is None:
        return out
    for record in table.to_pylist():
        key = tuple(record[k] for k in keys)
        row = Row(micros(record[timestamp]), {f: _plain(record.get(f)) for f in features})
        held = out.get(key)
        assert held is None or held.micros != row.micros, f"offline holds two rows of {key} at {record[timestamp]}"
        if held is None or row.micros > held.micros:
            out[key] = row
    return out


def watermark(view_dir: Path) -> datetime | None:
    value = manifest(view_dir).get("watermark")
    return datetime.fromisoformat(value) if value else None


# ---------------------------------------------------------------------------- online


class RawOnline:
    """An online store's data read with its own client (module docs). ``config``: the project's
    ``online_store`` section; ``project``: the project's name (the default Redis prefix)."""

    def __init__(self, config: dict[str, Any], project: str, client: Any = None) -> None:
        self.kind = str(config["type"])
        self.config = config
        self.project = project
        self.client = client
        """A ``redis.Redis`` or a Cassandra session; SQLite is opened per read."""

    def _sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self.config["path"], isolation_level=None)

    def stored(self, view: str) -> dict[str, bytes]:
        """Encoded entity key -> stored bytes (Cassandra: the partition's newest row, as read)."""
        if self.kind == "sqlite":
            with closing(self._sqlite()) as conn:
                try:
                    rows = conn.execute(f'SELECT entity_key, event_us, value FROM "fv_{view}"').fetchall()
                except sqlite3.OperationalError as err:
                    if "no such table" in str(err):
                        return {}
                    raise
            for key, event_us, value in rows:  # the column newer-wins once compared must agree
                assert json.loads(value)[0] == event_us, f"{key}: event_us {event_us} but value {value!r}"
            return {key: bytes(value) for key, _, value in rows}
        if self.kind == "redis":
            prefix = f"{self.config.get('key_prefix') or self.project}:{view}:"
            names = sorted(self.client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000))
            out = {}
            for name in names:
                value = self.client.get(name)
                if value is not None:
                    out[name.decode()[len(prefix) :]] = value
            return out
        keyspace = self.config["keyspace"]
        newest: dict[str, tuple[int, bytes]] = {}
        for key, event_us, value in self.client.execute(
            f'SELECT entity_key, event_us, value FROM "{keyspace}"."fv_{view}"', timeout=60
        ):
            if key not in newest or event_us > newest[key][0]:
                newest[key] = (event_us, value)
        return {key: value for key, (_, value) in newest.items()}

    def layouts(self, view: str) -> dict[int, list[str]]:
        """Layout number -> feature names, as the store recorded them."""
        if self.kind == "sqlite":
            with closing(self._sqlite()) as conn:
                try:
                    found = conn.execute(
                        "SELECT layout, names FROM featurestore_layouts WHERE feature_view = ?", (view,)
                    ).fetchall()
                except sqlite3.OperationalError:
                    found = []
        elif self.kind == "redis":
            prefix = self.config.get("key_prefix") or self.project
            found = list(self.client.hgetall(f"{prefix}#layouts:{view}").items())
        else:
            keyspace = self.config["keyspace"]
            found = list(
                self.client.execute(
                    f'SELECT layout, names FROM "{keyspace}".featurestore_layouts WHERE feature_view = %s', (view,)
                )
            )
        return {int(number): json.loads(names) for number, names in found}

    def rows(self, view: str, keys: Sequence[str]) -> dict[Key, Row]:
        """Every entity the store holds for the view, decoded by the layout it was written in."""
        layouts = self.layouts(view)
        out: dict[Key, Row] = {}
        for encoded, value in self.stored(view).items():
            decoded = json.loads(encoded)
            key = tuple(decoded) if len(keys) > 1 else (decoded,)
            event_us, layout, *values = json.loads(value)
            assert layout in layouts, f"{view} {encoded}: layout {layout} was never recorded ({sorted(layouts)})"
            names = layouts[layout]
            assert len(names) == len(values), f"{view} {encoded}: {values} for layout {names}"
            out[key] = Row(event_us, {n: _from_json(v) for n, v in zip(names, values, strict=True)})
        return out

    def dump(self, view: str) -> dict[str, bytes]:
        """The stored bytes per entity, to compare byte for byte."""
        return self.stored(view)


# ---------------------------------------------------------------------------- comparison


def compare(
    offline: dict[Key, Row],
    online: dict[Key, Row],
    features: Sequence[str],
    *,
    ttl: timedelta,
    as_of: datetime | None,
) -> list[str]:
    """Differences between the two (empty when online holds what offline says; module docs)."""
    problems = []
    for key in sorted(set(online) - set(offline), key=repr):
        problems.append(f"{key}: online holds {online[key]}, offline has no row")
    floor = micros(as_of - ttl) if as_of is not None else None
    for key in sorted(set(offline) - set(online), key=repr):
        if floor is None or offline[key].micros >= floor:
            problems.append(f"{key}: missing online; offline's latest row {offline[key]} is within the TTL")
    for key in sorted(set(offline) & set(online), key=repr):
        want, got = offline[key], online[key]
        if got.micros != want.micros:
            problems.append(f"{key}: online event time {got.micros}, offline {want.micros}")
        for f in features:
            if not _same(got.values.get(f), want.values.get(f)):
                problems.append(f"{key}.{f}: online {got.values.get(f)!r}, offline {want.values.get(f)!r}")
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b
