"""Online lookups: values from the online store with a status per value, TTL honoured.

This is the hot path of model services, so it stays in plain Python from the request to the
store client and back: a :class:`LookupPlan` (resolved once per feature list and cached by the
``FeatureStore``) encodes the entity keys, fetches one stored value per entity and view with
:meth:`OnlineStore.read_packed`, parses the whole batch with one ``orjson.loads`` and, in the
common case (every entity found, within TTL, written with the view's current layout), transposes
it into columns at C speed, with no Python work per entity. Other batches go through
:func:`~featurestore.online.codec.conform`, row by row. Each column's values are checked against
the feature's declared type at C speed too (:func:`~featurestore.online.codec.fits`, about 1 µs
per 100 floats); only a column holding a value of another type is checked value by value. Arrow
tables are built only when a caller asks for :attr:`OnlineResponse.values`.

Every value comes with a :class:`FeatureStatus`. A value is ``present`` only if the store holds
it, within the view's TTL, with the feature's declared type. A stored value that cannot be read
(changed by hand, truncated) or a value of another type (``"abc"`` for an int64 feature) is
``invalid`` and served as null, for that entity and feature alone: the other values of the batch
are served as usual, and a warning names the view, entity and feature.

A feature added to the view after an entity's row was written (the row's layout lacks it) reads
as null with status ``null`` until a run of the view rewrites the row: the row is stored, and
null is what it holds for that feature, as offline, where the files written before the feature
was added lack its column and a training set reads null there too. ``missing`` keeps its one
meaning, no stored row for the entity, which a service may use to tell an unknown entity.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson
import pyarrow as pa

from featurestore.definitions import FeatureView
from featurestore.errors import InvalidRequestError
from featurestore.online import OnlineStore
from featurestore.online.codec import (
    HEADER,
    MAX_MICROS,
    UNREADABLE,
    cast_keys,
    conform,
    encode_key_values,
    encode_keys,
    fits,
    layout_id,
    misfits,
    parse_values,
    pure_python_keys,
    restore_infinities,
    shown,
)
from featurestore.retrieval import ViewRequest, output_names
from featurestore.times import aware_time
from featurestore.types import ValueType

log = logging.getLogger(__name__)


class FeatureStatus(StrEnum):
    """Why a value is what it is."""

    PRESENT = "present"
    """The stored value, within the view's TTL."""
    NULL = "null"
    """A stored row within TTL whose value is null (also a feature added to the view after the
    row was written: see the module docs)."""
    MISSING = "missing"
    """No stored row for this entity."""
    EXPIRED = "expired"
    """A stored row older than the view's TTL: the value is withheld (null)."""
    INVALID = "invalid"
    """The stored value cannot be read as the feature's declared type: a value of another type
    (``"abc"`` for an int64) or a stored row that cannot be read at all (changed by hand,
    truncated). Withheld (null); re-running the view rewrites it."""


if TYPE_CHECKING:
    import pandas as pd

EntityRows: TypeAlias = "pa.Table | pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]"


@dataclass(frozen=True)
class OnlineResponse:
    """Feature values for a batch of entities, as Python lists in request order.

    ``keys``: the entity key columns (cast to the declared key types); ``columns``: one list of
    values per feature (timestamps as aware UTC datetimes, expired values as None);
    ``statuses``: each feature's status per entity; ``event_timestamps``: each view's stored event
    time per entity (None when missing); ``types``: each column's Arrow type.
    """

    keys: dict[str, list[Any]]
    columns: dict[str, list[Any]]
    statuses: dict[str, list[FeatureStatus]]
    event_micros: dict[str, list[int | None]] = field(repr=False)
    """Each view's stored event time per entity, in microseconds since the epoch (None: missing)."""
    types: dict[str, pa.DataType] = field(repr=False)
    served_at_us: int | None = field(default=None, repr=False, compare=False)
    """The instant the lookup read as now (its TTL check), in microseconds since the epoch: what
    the served-vector log records as the request time."""

    @cached_property
    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        """Each view's stored event time per entity, as aware UTC datetimes (None: missing)."""
        return {
            view: [None if m is None else _EPOCH + timedelta(microseconds=m) for m in micros]
            for view, micros in self.event_micros.items()
        }

    @cached_property
    def values(self) -> pa.Table:
        """Keys and features as one Arrow table (built on first use)."""
        data = {**self.keys, **self.columns}
        return pa.table({name: pa.array(values, self.types[name]) for name, values in data.items()})

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per entity: its keys, then ``{"value": ..., "status": ...}`` per feature."""
        n = len(next(iter(self.keys.values()))) if self.keys else 0
        rows: list[dict[str, Any]] = [{k: v[i] for k, v in self.keys.items()} for i in range(n)]
        for name, values in self.columns.items():
            statuses = self.statuses[name]
            for i, row in enumerate(rows):
                row[name] = {"value": values[i], "status": statuses[i].value}
        return rows


@dataclass(frozen=True)
class _ViewPlan:
    view: FeatureView
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    timestamp_features: frozenset[str]
    key_schema: dict[str, ValueType]
    ttl_us: int
    python_keys: bool
    layout: int
    """The view's current layout (see ``featurestore.online.codec``)."""
    width: int
    """Length of a stored value of the current layout."""
    positions: tuple[int, ...]
    """Where each requested feature sits in a stored value."""
    float_positions: tuple[int, ...]
    """Where the requested float features sit (their infinities are stored as strings)."""
    dtypes: tuple[ValueType, ...]
    """Each requested feature's declared type."""


@dataclass(frozen=True)
class LookupPlan:
    """A resolved feature list, ready to look up: built once per list of references and reused."""

    requests: tuple[ViewRequest, ...]
    views: tuple[_ViewPlan, ...]
    key_schema: dict[str, ValueType]
    types: dict[str, pa.DataType]

    @classmethod
    def build(cls, requests: Sequence[ViewRequest], *, full_names: bool = False) -> LookupPlan:
        names = output_names(requests, full_names)
        views = []
        key_schema: dict[str, ValueType] = {}
        types: dict[str, pa.DataType] = {}
        for r in requests:
            if not r.view.online:
                raise InvalidRequestError(
                    f"Feature view '{r.view.name}' is offline only (online=False); it cannot be looked up online"
                )
            schema = r.view.key_schema
            for k, t in schema.items():
                key_schema.setdefault(k, t)
                types.setdefault(k, t.arrow)
            outputs = tuple(names[(r.view.name, f)] for f in r.features)
            for f, out in zip(r.features, outputs, strict=True):
                types[out] = r.view.feature(f).dtype.arrow
            views.append(
                _ViewPlan(
                    view=r.view,
                    features=r.features,
                    outputs=outputs,
                    timestamp_features=frozenset(
                        f for f in r.features if r.view.feature(f).dtype is ValueType.TIMESTAMP
                    ),
                    key_schema=schema,
                    ttl_us=int(r.view.ttl.total_seconds() * 1_000_000),
                    python_keys=pure_python_keys(schema),
                    layout=layout_id(r.view.feature_names),
                    width=HEADER + len(r.view.feature_names),
                    positions=tuple(HEADER + r.view.feature_names.index(f) for f in r.features),
                    float_positions=tuple(
                        HEADER + r.view.feature_names.index(f)
                        for f in r.features
                        if r.view.feature(f).dtype is ValueType.FLOAT64
                    ),
                    dtypes=tuple(r.view.feature(f).dtype for f in r.features),
                )
            )
        return cls(tuple(requests), tuple(views), key_schema, types)

    @cached_property
    def key_names(self) -> list[str]:
        return list(self.key_schema)

    @cached_property
    def int64_key(self) -> str | None:
        """The key when every view of the plan is keyed by it alone, an int64, else None."""
        if len(self.key_schema) != 1:
            return None
        ((key, vtype),) = self.key_schema.items()
        if vtype is not ValueType.INT64 or any(p.key_schema != self.key_schema for p in self.views):
            return None
        return key

    @cached_property
    def usage_key(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """What a lookup with this plan reads, as logged in usage: (view, features) pairs."""
        return tuple((r.view.name, r.features) for r in self.requests)

    def lookup(self, store: OnlineStore, entity_rows: EntityRows, *, now: datetime | None = None) -> OnlineResponse:
        columns = entity_columns(entity_rows, self.key_names)
        n = len(next(iter(columns.values()), []))
        if now is not None:
            now = aware_time(now, "The now argument")
        # The common case, one int64 key given as integers of 64 bits: checked, cast and encoded
        # for every view at once (what _check_keys, encode_key_values and _cast_key_column do).
        shared: list[str] | None = None
        if self.int64_key is not None:
            shared = _int64_keys(columns[self.int64_key])
        if shared is None:
            _check_keys(self.views, columns)
        now_us = time.time_ns() // 1000 if now is None else (now - _EPOCH) // _MICROSECOND
        keys: dict[str, list[Any]] = {}
        values: dict[str, list[Any]] = {}
        statuses: dict[str, list[FeatureStatus]] = {}
        event_micros: dict[str, list[int | None]] = {}
        for plan in self.views:
            if shared is not None:
                encoded = shared
            elif plan.python_keys:
                encoded = encode_key_values(plan.view, plan.key_schema, columns)
            else:  # key types Python cannot cast exactly like Arrow: let Arrow do it
                table = pa.table({k: columns[k] for k in plan.key_schema})
                encoded = encode_keys(plan.view, cast_keys(plan.view, table))
            for k, vtype in plan.key_schema.items():
                if k not in keys:
                    keys[k] = columns[k] if shared is not None else _cast_key_column(plan.view, k, vtype, columns[k])
            raw = store.read_packed(plan.view, encoded)
            if len(raw) != n:
                raise RuntimeError(f"online store returned {len(raw)} values for {n} keys of '{plan.view.name}'")
            rows, may_have_null, may_have_infinity, may_have_bool = parse_values(raw)
            cols = _fast_columns(plan, rows, n, now_us)
            states: list[FeatureStatus | None] | None = None  # per row: MISSING, EXPIRED or INVALID, else None
            if cols is None:
                cols, states = _columns(plan, conform(plan.view, rows, store.layout), now_us)
                may_have_null = True  # missing, expired and rewritten rows hold nulls the bytes did not show
            if may_have_infinity:
                for position in plan.float_positions:
                    cols[position] = restore_infinities(cols[position])
            event_micros[plan.view.name] = list(cols[0])
            invalid: list[tuple[str, int, Any]] = []  # (feature, row, value as stored)
            for f, out, position, dtype in zip(plan.features, plan.outputs, plan.positions, plan.dtypes, strict=True):
                vals = list(cols[position])
                bad: list[int] = []
                if not fits(dtype, vals, may_have_null, may_have_bool):
                    bad = misfits(dtype, vals)
                    for i in bad:
                        invalid.append((f, i, vals[i]))
                        vals[i] = None
                has_null = (may_have_null or bool(bad)) and None in vals
                if f in plan.timestamp_features:
                    vals = [None if v is None else _EPOCH + timedelta(microseconds=v) for v in vals]
                values[out] = vals
                if states is None and not has_null:  # the common case, at C speed
                    status = [_PRESENT] * n
                elif states is None:
                    status = [_NULL if v is None else _PRESENT for v in vals]
                else:
                    status = [s or (_NULL if v is None else _PRESENT) for s, v in zip(states, vals, strict=True)]
                for i in bad:
                    status[i] = FeatureStatus.INVALID
                statuses[out] = status
            if invalid or (states is not None and FeatureStatus.INVALID in states):
                _warn_invalid(plan, encoded, rows, invalid)
        return OnlineResponse(
            keys=keys,
            columns=values,
            statuses=statuses,
            event_micros=event_micros,
            types=self.types,
            served_at_us=now_us,
        )


def _int64_keys(col: list[Any]) -> list[str] | None:
    """The keys' text when every one is an integer of 64 bits (``bool`` excluded), else None:
    orjson writes the list at C speed and refuses what is not JSON; digits, minus signs and
    commas alone show that every value was an integer (a bool writes ``true``, a float a point
    or exponent); only numbers of 19 digits or more are compared with int64's bounds. About 5 µs
    for 100 keys, where checking types and bounds and ``str`` of each took 20 µs."""
    if not col:
        return None
    try:
        text = orjson.dumps(col)
    except TypeError:  # beyond 64 bits, or not JSON at all
        return None
    if text[1:-1].translate(None, b"0123456789-,"):
        return None
    keys = text[1:-1].decode().split(",")
    if max(map(len, keys)) >= 19 and (min(col) < INT64_MIN or max(col) > INT64_MAX):
        return None
    return keys


def _fast_columns(plan: _ViewPlan, rows: list[Any], n: int, now_us: int) -> list[tuple[Any, ...]] | None:
    """The batch's values as columns (event µs, layout, then the view's features) when every
    entity was found, within TTL, in the view's current layout; else None (see :func:`_columns`)."""
    if n == 0:
        return None
    try:  # a missing row (None) fails zip at C speed, like any other value that is no list
        cols = list(zip(*rows, strict=True))
        times = cols[0]
        if len(cols) != plan.width or cols[1].count(plan.layout) != n or min(times) < now_us - plan.ttl_us:
            return None
        if max(times) > MAX_MICROS:  # an event time no datetime can hold: conform says it cannot be read
            return None
    except (TypeError, ValueError):  # values that are no lists or differ in length, times that are no numbers
        return None
    return cols


def _columns(
    plan: _ViewPlan, rows: Sequence[Any], now_us: int
) -> tuple[list[tuple[Any, ...]], list[FeatureStatus | None]]:
    """Columns of conformed rows (see :func:`conform`) with each row's state: MISSING, EXPIRED
    or INVALID (cannot be read) rows read as nulls (an expired row's event µs kept), others as
    stored (state None)."""
    empty = [None] * plan.width
    kept: list[list[Any]] = []
    states: list[FeatureStatus | None] = []
    for row in rows:
        if row is None:
            kept.append(empty)
            states.append(FeatureStatus.MISSING)
        elif row is UNREADABLE:
            kept.append(empty)
            states.append(FeatureStatus.INVALID)
        elif now_us - row[0] > plan.ttl_us:
            kept.append([row[0], *empty[1:]])
            states.append(FeatureStatus.EXPIRED)
        else:
            kept.append(row)
            states.append(None)
    cols = list(zip(*kept, strict=True)) if kept else [()] * plan.width
    return cols, states


def _warn_invalid(
    plan: _ViewPlan, entity_keys: Sequence[str], rows: Sequence[Any], invalid: list[tuple[str, int, Any]]
) -> None:
    """Say, once per lookup, which stored values were served as ``invalid``: someone must re-run the view."""
    unreadable = [i for i, row in enumerate(rows) if row is UNREADABLE]
    if unreadable:
        example = f"the stored row of entity {entity_keys[unreadable[0]]} cannot be read"
    else:
        f, i, value = invalid[0]
        dtype = plan.view.feature(f).dtype.value
        example = f"feature '{f}' of entity {entity_keys[i]} holds {shown(value)}, not a value of type {dtype}"
    log.warning(
        "Feature view '%s': %d stored row(s) cannot be read and %d value(s) do not fit their feature's type; "
        "they are served as invalid (null), e.g. %s. Re-run the view to rewrite them: featurestore run %s",
        plan.view.name,
        len(unreadable),
        len(invalid),
        example,
        plan.view.name,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NULL = FeatureStatus.NULL
_PRESENT = FeatureStatus.PRESENT


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _check_keys(plans: Sequence[_ViewPlan], columns: Mapping[str, list[Any]]) -> None:
    """Refuse key values that are no key of their declared type, before anything is read: a
    boolean (``True`` is no customer 1), an integer beyond 64 bits for an int64 key (no entity has
    it: ``2**63`` is a mistake, not a missing entity), or a column mixing types (``[1, "2"]``).
    Checked at C speed in the common case (one type per column, integers in range)."""
    seen: set[str] = set()
    for plan in plans:
        for key, vtype in plan.key_schema.items():
            if key in seen or key not in columns:
                continue
            seen.add(key)
            values = columns[key]
            kinds = set(map(type, values))
            if vtype is ValueType.INT64 and kinds <= {int, type(None)}:
                ints = values if kinds == {int} else [v for v in values if v is not None]
                if ints and (min(ints) < INT64_MIN or max(ints) > INT64_MAX):
                    bad = next(v for v in ints if not INT64_MIN <= v <= INT64_MAX)
                    raise _key_error(plan, key, vtype, bad, f"beyond the 64-bit range [{INT64_MIN}, {INT64_MAX}]")
                continue
            kinds.discard(type(None))
            if len(kinds) <= 1 and bool not in kinds:
                continue  # one type: cast, or refused with the key's type, by the codec
            if vtype is not ValueType.BOOL and bool in kinds:
                bad = next(v for v in values if isinstance(v, bool))
                raise _key_error(plan, key, vtype, bad, "a boolean, not a key")
            if len(kinds) > 1:
                first = next(v for v in values if v is not None)
                bad = next(v for v in values if v is not None and type(v) is not type(first))
                why = f"of type {type(bad).__name__} where the column's first value, {first!r}, is of type {type(first).__name__}"
                raise _key_error(plan, key, vtype, bad, why, "give every value of a key column with one type")


def _key_error(plan: _ViewPlan, key: str, vtype: ValueType, value: Any, why: str, fix: str = "") -> InvalidRequestError:
    entity = next((e.name for e in plan.view.resolved_entities() if key in e.join_keys), None)
    owner = f"entity '{entity}' (feature view '{plan.view.name}')" if entity else f"feature view '{plan.view.name}'"
    shown_value = repr(value) if len(repr(value)) <= 100 else repr(value)[:100] + "..."
    return InvalidRequestError(
        f"Entity key '{key}' of {owner} is {vtype.value}, but the request gives it {shown_value}, {why}; "
        f"{fix or f'give {vtype.value} values'}, e.g. {{'{key}': {_KEY_EXAMPLES.get(vtype, '[...]')}}}"
    )


_KEY_EXAMPLES = {ValueType.INT64: "[1, 2]", ValueType.STRING: "['a', 'b']"}


def _cast_key_column(view: FeatureView, key: str, vtype: ValueType, values: list[Any]) -> list[Any]:
    kinds = set(map(type, values))
    if (vtype is ValueType.INT64 and kinds <= {int}) or (vtype is ValueType.STRING and kinds <= {str}):
        return values
    cast: list[Any] = cast_keys(view, pa.table({key: pa.array(values)}))[0].to_pylist()
    return cast


def _is_dataframe(value: object) -> bool:
    # A DataFrame given means pandas is loaded: not importing it saves ~0.35 s to every command
    # that opens a FeatureStore.
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def entity_columns(entity_rows: EntityRows, required: Sequence[str]) -> dict[str, list[Any]]:
    """Entity rows in any accepted shape as key columns (Python lists of one length), with
    clear errors for a missing key, ragged columns or an empty request."""
    if isinstance(entity_rows, pa.Table):
        columns: dict[str, list[Any]] = entity_rows.to_pydict()
    elif _is_dataframe(entity_rows):
        columns = {str(c): entity_rows[c].tolist() for c in entity_rows.columns}  # type: ignore[union-attr]
    elif type(entity_rows) is dict and all(type(v) is list for v in entity_rows.values()):
        columns = entity_rows  # the common case (JSON bodies, SDK calls): nothing to convert
    elif isinstance(entity_rows, Mapping):
        columns = {}
        for name, vals in entity_rows.items():
            if isinstance(vals, str | bytes | Mapping) or not hasattr(vals, "__len__"):
                raise InvalidRequestError(
                    f"Entity key column '{name}' must be a list of values, e.g. {{'{name}': [1, 2]}}; got {vals!r}"
                )
            tolist = getattr(vals, "to_pylist", None) or getattr(vals, "tolist", None)
            columns[str(name)] = tolist() if tolist is not None else list(vals)
    else:
        rows = list(entity_rows)
        columns = {k: [] for k in required}
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidRequestError(f"Entity row {i} must be a mapping of key to value, got {row!r}")
            for k in required:
                if k not in row:
                    raise InvalidRequestError(f"Entity row {i} lacks key '{k}'; it has {sorted(row)}")
                columns[k].append(row[k])
    missing = [k for k in required if k not in columns]
    if missing:
        raise InvalidRequestError(f"Entity rows lack key(s) {missing}; they have {sorted(columns)}")
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidRequestError(f"The entity key columns have different lengths: {lengths}")
    return {k: columns[k] for k in required}
