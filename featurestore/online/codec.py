"""How entity keys and feature rows are packed into bytes by online stores.

Keys are cast to the entity's declared types first, so that ``42`` and ``"42"`` never name two
different rows.

Values: one compact JSON array per entity and view, ``[event µs, layout, value, ...]``: the
row's event time in microseconds since the epoch, the view's *layout* (a number naming its
feature names in order, see :func:`layout_id`) and the feature values in that order (timestamps
as microseconds, NaN as null). Readable with any tool; one value per entity and view, so a batch
lookup is a single multi-get; and positional, so the values of a whole batch are parsed by one
``orjson.loads`` of the joined values and transposed into columns at C speed, with no Python
work per entity. A store records the names of every layout it writes (:meth:`OnlineStore.layout`),
so rows written before a view's features changed are still read by name: a feature the row lacks
reads as null, a feature removed since is ignored.

A stored value is never taken on trust: one that cannot be read (not JSON, or not the shape of a
recorded layout) and a feature value that does not fit the feature's declared type (``"abc"``
for an int64, ``2`` for a bool) are said apart per entity and feature (:func:`decode`,
:func:`fits`), so that one corrupt value spoils neither a batch nor a consistency check.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, cast

import orjson
import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError, UnreadableValueError
from featurestore.online import EVENT_TIME_COLUMN
from featurestore.types import UTC_TIMESTAMP, ValueType

# pyarrow.compute (~60 ms of CPU to import) is imported by the functions that compute: loading a
# project's config or applying it loads this module and computes nothing.


def cast_keys(view: FeatureView, table: pa.Table) -> list[pa.Array]:
    """The view's join-key columns of ``table``, cast to the declared key types."""
    import pyarrow.compute as pc

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
    import pyarrow.compute as pc

    if len(key_columns) == 1 and pa.types.is_integer(key_columns[0].type) and not key_columns[0].null_count:
        # An integer's JSON is its decimal text: Arrow casts the whole column at C speed.
        return pc.cast(key_columns[0], pa.string()).to_pylist()  # type: ignore[no-any-return]
    columns = [c.to_pylist() for c in key_columns]
    if any(pa.types.is_timestamp(c.type) for c in key_columns):  # as microseconds since the epoch, like values
        columns = [[_jsonable(v) for v in col] for col in columns]
    if len(columns) == 1:
        return [json.dumps(v, separators=(",", ":")) for v in columns[0]]
    return [json.dumps(list(vals), separators=(",", ":")) for vals in zip(*columns, strict=True)]


def decode_keys(view: FeatureView, entity_keys: Sequence[str]) -> pa.Table:
    """The join-key columns named by encoded entity keys (the inverse of :func:`encode_keys`)."""
    values = [orjson.loads(k) for k in entity_keys]
    rows = values if len(view.key_schema) > 1 else [[v] for v in values]
    columns = {}
    for i, (key, vtype) in enumerate(view.key_schema.items()):
        column = [r[i] for r in rows]
        if vtype is ValueType.TIMESTAMP:  # keys hold timestamps as microseconds, like values
            columns[key] = pa.array(column, pa.int64()).cast(pa.timestamp("us")).cast(vtype.arrow)
        else:
            columns[key] = pa.array(column, vtype.arrow)
    return pa.table(columns)


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


HEADER = 2
"""Positions before the feature values in a stored value: event µs, layout."""


def layout_id(names: Sequence[str]) -> int:
    """The number naming a list of feature names, in order: 48 bits of its SHA-256, so it is an
    exact integer for every JSON reader (below 2**53) and two layouts of one view never share one
    in practice."""
    return int.from_bytes(hashlib.sha256("\x00".join(names).encode()).digest()[:6], "big")


def layout_names(view: FeatureView) -> bytes:
    """What a store records for the view's current layout: its feature names as a JSON array."""
    return orjson.dumps(list(view.feature_names))


def encode_values(view: FeatureView, rows: pa.Table, micros: Sequence[int]) -> list[bytes]:
    """One stored value per row: ``[event µs, layout, value, ...]`` (see the module docs)."""
    import pyarrow.compute as pc

    layout = layout_id(view.feature_names)
    cols = []
    for f in view.features:
        col = rows.column(f.name)
        if f.dtype is ValueType.TIMESTAMP:
            col = pc.cast(pc.cast(col, UTC_TIMESTAMP), pa.int64())
        values = col.to_pylist()
        if f.dtype is ValueType.FLOAT64 and pc.any(pc.is_inf(col)).as_py():
            values = [_INFINITY_TEXT.get(v, v) for v in values]
        cols.append(values)
    dumps = orjson.dumps  # NaN becomes null, as JSON has no such number
    return [dumps((m, layout, *vals)) for m, *vals in zip(micros, *cols, strict=True)]


_INFINITY_TEXT = {math.inf: "Infinity", -math.inf: "-Infinity"}
_INFINITIES = {"Infinity": math.inf, "-Infinity": -math.inf}


def restore_infinities(values: Sequence[Any]) -> tuple[Any, ...]:
    """A float feature's values as read, with the strings JSON holds infinities as made floats
    again (see :class:`Parsed`)."""
    return tuple(_INFINITIES.get(v, v) if type(v) is str else v for v in values)


def event_micros(view: FeatureView, rows: pa.Table) -> list[int]:
    import pyarrow.compute as pc

    col = pc.cast(rows.column(view.timestamp_field), UTC_TIMESTAMP)
    micros: list[int] = pc.cast(col, pa.int64()).to_pylist()
    return micros


LayoutSource = Callable[[FeatureView, int], Sequence[str] | None]
"""Feature names of a layout a store wrote for a view (``OnlineStore.layout``), None if unknown."""


class LayoutCache:
    """The layouts a store has recorded, cached in the process. A layout's names never change (its
    number is their hash), so only an unknown number makes the store look again."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], tuple[str, ...]] = {}

    def get(
        self, view: FeatureView, layout: int, load: Callable[[], Mapping[Any, bytes | str]]
    ) -> tuple[str, ...] | None:
        """The names of ``layout``; on a miss, ``load()`` (the store's records for the view: layout
        number to names as JSON) is read once more. A record whose names do not hash to its
        number is ignored."""
        names = self._known.get((view.name, layout))
        if names is None:
            for number, text in load().items():
                recorded = tuple(orjson.loads(text))
                if layout_id(recorded) == int(number):
                    self._known[(view.name, int(number))] = recorded
            names = self._known.get((view.name, layout))
        return names


class Parsed(NamedTuple):
    """A batch of stored values, parsed. The flags come from one ``memchr`` each over the bytes, so
    a reader tests values one by one only when they may be needed: ``may_have_null`` (an ``n``
    appears: JSON numbers, ``true`` and ``false`` have none, ``null`` does, strings may),
    ``may_have_infinity`` (an ``I`` appears: a float feature may hold ``"Infinity"`` or
    ``"-Infinity"``, the strings infinities are stored as, JSON having no number for them),
    ``may_have_bool`` (a ``t`` or an ``f`` appears: ``true`` and ``false`` have them, numbers
    and ``null`` do not). Searching for the whole words instead costs 30 times more (measured:
    17 µs for 100 values)."""

    rows: list[Any]
    may_have_null: bool
    may_have_infinity: bool
    may_have_bool: bool


def parse_values(raw: Sequence[bytes | None]) -> Parsed:
    """The stored values of a batch (None: missing), parsed by one ``orjson.loads`` of them all.
    A value that is not JSON comes back as :data:`UNREADABLE` (see :func:`conform`)."""
    values = cast("Sequence[bytes]", raw)
    try:
        joined = b",".join(values)  # refuses a None at C speed: no scan for one first
    except TypeError:
        values = [b"null" if v is None else v for v in raw]
        joined = b",".join(values)
    body = b"[%b]" % joined
    try:
        rows: list[Any] = orjson.loads(body)
        if len(rows) == len(values):  # a value like b"1,2" would shift the others
            return Parsed(rows, b"n" in body, b"I" in body, b"t" in body or b"f" in body)
    except orjson.JSONDecodeError:
        pass
    return Parsed([_parse_one(v) for v in values], True, True, True)


class _Unreadable:
    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Final = _Unreadable()
"""In place of a stored value that cannot be read: not JSON (e.g. truncated), or not ``[event µs,
layout, values...]`` of a layout the store has recorded (e.g. too few values for its layout)."""


def _parse_one(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return UNREADABLE


def conform(view: FeatureView, rows: list[Any], layouts: LayoutSource) -> list[Any]:
    """Parsed values rewritten, in place, to the view's current layout: ``[event µs, layout,
    value per feature of the view]`` (rows of an older layout by feature name: a feature they
    lack is None, a feature removed since is ignored), None kept for a missing row,
    :data:`UNREADABLE` for a value that cannot be read (not ``[event µs, layout, values...]`` of
    a layout the store has recorded, or an event time no reader can serve). The feature values
    are as stored: :func:`fits` tells whether they have their features' types."""
    current = layout_id(view.feature_names)
    width = HEADER + len(view.feature_names)
    for i, row in enumerate(rows):
        if row is None:
            continue
        if not (type(row) is list and len(row) >= HEADER and _fits_one(_TIMESTAMP, row[0])):
            rows[i] = UNREADABLE  # no event time a reader can serve
            continue
        if len(row) == width and row[1] == current:
            continue
        names = None
        if type(row[1]) is int:
            names = layouts(view, row[1])
            if names is not None and len(names) != len(row) - HEADER:
                names = None
        if names is None:
            rows[i] = UNREADABLE
            continue
        by_name = dict(zip(names, row[HEADER:], strict=True))
        rows[i] = [row[0], current, *(by_name.get(f) for f in view.feature_names)]
    return rows


# Which stored values fit a feature's type. Values are checked a column at a time with builtins
# that run at C speed and fail on the first value of another type (about 1 µs for 100 floats,
# where building the Arrow array costs 9 µs); only a column that fails is checked value by value.
# orjson reads an integer outside [-2**63, 2**64) as a float, so only the top of int64 needs a check.
_INT64_MAX = 2**63 - 1
_TWO_TO_63 = 2.0**63  # as a float: comparing a float with a large int costs more
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MICROS: Final = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
MAX_MICROS: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
"""The timestamps a reader can serve, in µs since the epoch: those Python represents (years 1 to
9999), as lookups serve datetimes. A stored event time or timestamp value outside is not read."""
# Enum members as module constants: on Python 3.11 ``ValueType.INT64`` costs 250 ns a lookup.
_INT64, _FLOAT64, _STRING, _BOOL, _TIMESTAMP = (
    ValueType.INT64,
    ValueType.FLOAT64,
    ValueType.STRING,
    ValueType.BOOL,
    ValueType.TIMESTAMP,
)
_KINDS: dict[ValueType, frozenset[type]] = {
    _INT64: frozenset({int}),
    _FLOAT64: frozenset({float, int}),
    _STRING: frozenset({str}),
    _BOOL: frozenset({bool}),
    _TIMESTAMP: frozenset({int}),
}
_NONE = type(None)


def _fits_one(dtype: ValueType, value: Any) -> bool:
    kind = type(value)
    if dtype is _INT64:
        return kind is int and value <= _INT64_MAX
    if dtype is _TIMESTAMP:
        return kind is int and MIN_MICROS <= value <= MAX_MICROS
    if dtype is _FLOAT64 and kind is int:  # Arrow takes an integer as a double only within int64
        return bool(value <= _INT64_MAX)
    return kind in _KINDS[dtype]


def _ints_in_range(dtype: ValueType, values: Iterable[int]) -> bool:
    if dtype is _INT64:
        return max(values, default=0) <= _INT64_MAX
    ints = list(values)
    return min(ints, default=0) >= MIN_MICROS and max(ints, default=0) <= MAX_MICROS


def fits(dtype: ValueType, values: Sequence[Any], may_have_null: bool = True, may_have_bool: bool = True) -> bool:
    """Whether every value of a column, as parsed (infinities restored), is null or a value of
    ``dtype``: an int64 an integer of 64 bits, a float64 a number, a string a string, a bool
    ``true`` or ``false``, a timestamp microseconds of a year from 1 to 9999. The hints of
    :class:`Parsed` let a column without nulls or booleans be checked by one ``sum`` or ``join``."""
    try:
        if not (may_have_null or may_have_bool):
            # A string, list, object or null raises. An integer beyond int64 (which Arrow will not
            # take as a double) makes the sum that large too, then checked below, unless a value
            # as large of the other sign cancels it (two corruptions; summing absolute values
            # instead would cost 1.5 µs more per 100 values).
            if dtype is _FLOAT64 and abs(sum(values, 0.0)) < _TWO_TO_63:
                return True
            if dtype is _INT64 or dtype is _TIMESTAMP:
                # A float makes the sum a float; a string, list, object or null raises.
                return type(sum(values)) is int and _ints_in_range(dtype, values)
        if dtype is _STRING and not may_have_null:
            "".join(values)  # anything but a string raises
            return True
    except TypeError:
        return False
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds <= _KINDS[dtype]:
        return False
    if dtype is _INT64 or dtype is _TIMESTAMP:
        return _ints_in_range(dtype, filter(None, values))  # without nulls (and zeros, which fit)
    if dtype is _FLOAT64 and int in kinds:  # rare: writers store doubles with a point or exponent
        return max((v for v in values if type(v) is int), default=0) <= _INT64_MAX
    return True


def misfits(dtype: ValueType, values: Sequence[Any]) -> list[int]:
    """Positions of the values that are not null and do not fit ``dtype`` (see :func:`fits`),
    checked one by one: for a column :func:`fits` rejected."""
    return [i for i, v in enumerate(values) if v is not None and not _fits_one(dtype, v)]


class Decoded(NamedTuple):
    """A batch of stored values read into the view's declared types (see :func:`decode`)."""

    table: pa.Table
    """The key columns, the requested features and ``__event_timestamp``, one row per key: nulls
    for a missing row, for a value that cannot be read and for a value of another type."""
    unreadable: dict[int, bytes]
    """Rows whose stored value cannot be read at all: position to the stored bytes."""
    invalid: dict[str, dict[int, Any]]
    """Per requested feature, rows whose stored value does not fit the feature's type: position
    to the value as stored (e.g. ``"abc"`` for an int64 feature)."""


def decode(
    view: FeatureView,
    key_columns: Sequence[pa.Array],
    raw: Sequence[bytes | None],
    features: Sequence[str],
    layouts: LayoutSource,
) -> Decoded:
    """The stored value per requested key (None: missing) as Arrow columns of the declared types,
    with what could not be read said apart rather than raised, so one bad value spoils nothing
    else (the consistency checker counts it; :func:`decode_rows` raises)."""
    import pyarrow.compute as pc

    parsed = parse_values(raw)
    conformed = conform(view, parsed.rows, layouts)
    rows = [row if type(row) is list else None for row in conformed]
    unreadable = {i: raw[i] or b"" for i, row in enumerate(conformed) if row is UNREADABLE}
    position = {f: HEADER + i for i, f in enumerate(view.feature_names)}
    arrays: dict[str, pa.Array] = dict(zip(view.key_schema, key_columns, strict=True))
    invalid: dict[str, dict[int, Any]] = {}
    for f in features:
        at = position[f]
        values: list[Any] = [None if row is None else row[at] for row in rows]
        dtype = view.feature(f).dtype
        if dtype is ValueType.FLOAT64 and parsed.may_have_infinity:
            values = list(restore_infinities(values))
        # Nulls the bytes may not show: unreadable rows, features an older layout lacks.
        if not fits(dtype, values, may_have_null=True, may_have_bool=parsed.may_have_bool):
            bad = misfits(dtype, values)
            if bad:
                invalid[f] = {i: values[i] for i in bad}
            for i in bad:
                values[i] = None
        if dtype is ValueType.TIMESTAMP:
            arrays[f] = pc.cast(pa.array(values, pa.int64()), UTC_TIMESTAMP)
        else:
            arrays[f] = pa.array(values, dtype.arrow)
    times = [None if row is None else row[0] for row in rows]
    arrays[EVENT_TIME_COLUMN] = pc.cast(pa.array(times, pa.int64()), UTC_TIMESTAMP)
    return Decoded(pa.table(arrays), unreadable, invalid)


def decode_rows(
    view: FeatureView,
    key_columns: Sequence[pa.Array],
    raw: Sequence[bytes | None],
    features: Sequence[str],
    layouts: LayoutSource,
    entity_keys: Sequence[str],
) -> pa.Table:
    """Build a read result (:meth:`OnlineStore.read`) from the stored value per requested key
    (None: missing). Raises :class:`UnreadableValueError`, naming the view, the entity and the
    feature, for a value that cannot be read or does not fit its feature's type: a read returns
    the values as stored, and a null would misstate one (lookups serve it as ``invalid``)."""
    decoded = decode(view, key_columns, raw, features, layouts)
    if decoded.unreadable:
        i, stored = next(iter(decoded.unreadable.items()))
        raise UnreadableValueError(
            f"The online store's value for entity {entity_keys[i]} of feature view '{view.name}' "
            f"cannot be read: {shown(stored)} is not [event µs, layout, values...] of a layout this store "
            f"has recorded (written by another version, or changed by hand). Re-run the view to "
            f"rewrite it: featurestore run {view.name}"
        )
    if decoded.invalid:
        f, bad = next(iter(decoded.invalid.items()))
        i, value = next(iter(bad.items()))
        raise UnreadableValueError(
            f"The online store's value of feature '{f}' for entity {entity_keys[i]} of feature view "
            f"'{view.name}' is {shown(value)}, not a value of type {view.feature(f).dtype.value} (changed by "
            f"hand, or written by another version). Re-run the view to rewrite it: featurestore run {view.name}"
        )
    return decoded.table


def shown(value: Any, limit: int = 200) -> str:
    """A stored value (bytes as stored, or a value as parsed) as text for a message or report,
    cut at ``limit`` characters."""
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # pragma: no cover - parsed JSON always dumps again
            text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
