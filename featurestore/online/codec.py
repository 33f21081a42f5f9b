"""How entity keys and feature rows are packed into bytes by online stores.

Keys are cast to the entity's declared types first, so that ``42`` and ``"42"`` never name two
different rows. Values are one compact JSON object per row: readable with any tool, and one
value per entity and view so that a batch lookup is a single multi-get.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError
from featurestore.types import UTC_TIMESTAMP, ValueType


def cast_keys(view: FeatureView, table: pa.Table) -> list[pa.Array]:
    """The view's join-key columns of ``table``, cast to the declared key types."""
    out = []
    for key, vtype in view.key_schema.items():
        if key not in table.column_names:
            raise InvalidRequestError(
                f"Entity key '{key}' of feature view '{view.name}' is missing; got columns {table.column_names}"
            )
        col = table.column(key).combine_chunks()
        try:
            out.append(col if col.type == vtype.arrow else pc.cast(col, vtype.arrow))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise InvalidRequestError(
                f"Entity key '{key}' of feature view '{view.name}' must be {vtype.value}, got values of type {col.type}"
            ) from err
    return out


def encode_keys(view: FeatureView, key_columns: Sequence[pa.Array]) -> list[str]:
    """One string per row naming the entity: ``7`` or ``["a",7]`` for compound keys."""
    columns = [c.to_pylist() for c in key_columns]
    if any(pa.types.is_timestamp(c.type) for c in key_columns):  # as microseconds since the epoch, like values
        columns = [[_jsonable(v) for v in col] for col in columns]
    if len(columns) == 1:
        return [json.dumps(v, separators=(",", ":")) for v in columns[0]]
    return [json.dumps(list(vals), separators=(",", ":")) for vals in zip(*columns, strict=True)]


def _python_key(key: str, vtype: ValueType, value: Any, view: FeatureView) -> Any:
    """One key value cast the way :func:`cast_keys` casts it with Arrow, without Arrow."""
    if value is None:
        return None
    if vtype is ValueType.INT64:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # 42.0, as JSON clients may send
            return int(value)
        try:
            return int(value) if isinstance(value, str) else operator.index(value)
        except (TypeError, ValueError) as err:
            raise InvalidRequestError(
                f"Entity key '{key}' of feature view '{view.name}' must be int64, got {value!r}"
            ) from err
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidRequestError(f"Entity key '{key}' of feature view '{view.name}' must be string, got {value!r}")


def encode_key_values(
    view: FeatureView, key_schema: Mapping[str, ValueType], rows: Mapping[str, Sequence[Any]]
) -> list[str]:
    """:func:`encode_keys` for keys given as Python lists (the online hot path): the same
    strings, without building Arrow arrays. Only for int64 and string keys (see
    :func:`pure_python_keys`)."""
    if len(key_schema) == 1:  # fast path: one int64 or string key given with its own type
        ((key, vtype),) = key_schema.items()
        col = rows.get(key)
        if col is not None:
            kinds = set(map(type, col))  # at C speed, unlike all(... for v in col)
            if vtype is ValueType.INT64 and kinds <= {int}:
                return list(map(str, col))
            if vtype is ValueType.STRING and kinds <= {str}:
                return list(map(json.dumps, col))
    columns = []
    for key, vtype in key_schema.items():
        if key not in rows:
            raise InvalidRequestError(
                f"Entity key '{key}' of feature view '{view.name}' is missing; got columns {list(rows)}"
            )
        columns.append([_python_key(key, vtype, v, view) for v in rows[key]])
    if len(columns) == 1:
        if key_schema[next(iter(key_schema))] is ValueType.INT64:
            return ["null" if v is None else str(v) for v in columns[0]]
        return [json.dumps(v) for v in columns[0]]
    return [json.dumps(list(vals), separators=(",", ":")) for vals in zip(*columns, strict=True)]


def pure_python_keys(key_schema: Mapping[str, ValueType]) -> bool:
    """Whether :func:`encode_key_values` handles these key types (int64 and string do)."""
    return all(t in (ValueType.INT64, ValueType.STRING) for t in key_schema.values())


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return int(v.timestamp() * 1_000_000) if v.tzinfo else int(v.replace(tzinfo=UTC).timestamp() * 1_000_000)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def encode_values(view: FeatureView, rows: pa.Table) -> list[bytes]:
    """One packed value per row: ``{"feature": value, ...}``; timestamps as microseconds."""
    names = view.feature_names
    cols = []
    for f in view.features:
        col = rows.column(f.name)
        if f.dtype is ValueType.TIMESTAMP:
            col = pc.cast(pc.cast(col, UTC_TIMESTAMP), pa.int64())
        cols.append(col.to_pylist())
    return [
        json.dumps({n: _jsonable(v) for n, v in zip(names, vals, strict=True)}, separators=(",", ":")).encode()
        for vals in zip(*cols, strict=True)
    ]


def event_micros(view: FeatureView, rows: pa.Table) -> list[int]:
    col = pc.cast(rows.column(view.timestamp_field), UTC_TIMESTAMP)
    micros: list[int] = pc.cast(col, pa.int64()).to_pylist()
    return micros


def decode_rows(
    view: FeatureView,
    key_columns: Sequence[pa.Array],
    found: Sequence[tuple[int, bytes] | None],
    features: Sequence[str],
) -> pa.Table:
    """Build a read result from (event micros, packed value) per requested key (None: missing)."""
    values: dict[str, list[Any]] = {f: [] for f in features}
    times: list[int | None] = []
    for item in found:
        if item is None:
            times.append(None)
            for f in features:
                values[f].append(None)
            continue
        micros, packed = item
        times.append(micros)
        row = json.loads(packed)
        for f in features:
            values[f].append(row.get(f))
    arrays: dict[str, pa.Array] = {}
    for key, col in zip(view.key_schema, key_columns, strict=True):
        arrays[key] = col
    for f in features:
        dtype = view.feature(f).dtype
        if dtype is ValueType.TIMESTAMP:
            arrays[f] = pc.cast(pa.array(values[f], pa.int64()), UTC_TIMESTAMP)
        else:
            arrays[f] = pa.array(values[f], dtype.arrow)
    arrays["__event_timestamp"] = pc.cast(pa.array(times, pa.int64()), UTC_TIMESTAMP)
    return pa.table(arrays)
