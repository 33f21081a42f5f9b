"""Point-in-time correct reads of the offline store, on DuckDB.

A training set keeps every spine row exactly once, in order, and gives each feature the value
of the view's latest row at or before the spine row's timestamp, provided it is no older than
the view's TTL; otherwise null. Never a value from the future, never a dropped row.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.definitions import FeatureService, FeatureView
from featurestore.errors import InvalidRequestError, NotFoundError, UnreadableValueError, did_you_mean
from featurestore.schema import to_utc_timestamp, view_schema
from featurestore.sql import cursor as duckdb_cursor
from featurestore.sql import quote as _quote
from featurestore.times import TIME_EXAMPLE, naive_time_message, parse_time_column

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ViewRequest:
    """Some features of one view, resolved against the registry."""

    view: FeatureView
    features: tuple[str, ...]


def resolve_features(
    views: Mapping[str, FeatureView],
    features: Sequence[str] | FeatureService,
    *,
    project: str | None = None,
    services: Mapping[str, FeatureService] | None = None,
) -> list[ViewRequest]:
    """Turn ``"view:feature"`` references (or ``"view"`` for all its features, or a feature
    service) into per-view requests, in first-seen order, with "did you mean" errors.

    With ``services``, a bare name that is no view may be a feature service's (expanded to its
    features), and an unknown bare name is suggested among both kinds, each named as what it is."""
    if isinstance(features, FeatureService):
        pairs = [(s.view, list(s.features)) for s in features.selections()]
    else:
        if isinstance(features, str):
            features = [features]
        if not features:
            raise InvalidRequestError(
                "No features requested: give references like 'customer_spend:spend_30d', a feature view's "
                "name or a feature service's name"
            )
        pairs = []
        for ref in features:
            view_name, sep, feat = str(ref).partition(":")
            if not sep and view_name not in views and services and view_name in services:
                pairs.extend((s.view, list(s.features)) for s in services[view_name].selections())
            else:
                pairs.append((view_name, [feat] if sep else []))
    grouped: dict[str, list[str]] = {}
    for view_name, feats in pairs:
        if view_name not in views:
            if feats or services is None:
                raise NotFoundError("feature view", view_name, project=project, candidates=views)
            # A bare name: a feature view's or a feature service's, so suggest among both.
            kinds = {**{n: "feature service" for n in services}, **{n: "feature view" for n in views}}
            raise NotFoundError(
                "feature view or feature service", view_name, project=project, candidates=kinds, kinds=kinds
            )
        view = views[view_name]
        wanted = feats or list(view.feature_names)
        bucket = grouped.setdefault(view_name, [])
        for f in wanted:
            if f not in view.feature_names:
                raise NotFoundError(
                    "feature",
                    f"{view_name}:{f}",
                    project=project,
                    candidates=[f"{v.name}:{n}" for v in views.values() for n in v.feature_names],
                )
            if f not in bucket:
                bucket.append(f)
    return [ViewRequest(views[name], tuple(feats)) for name, feats in grouped.items()]


def output_names(requests: Sequence[ViewRequest], full_names: bool) -> dict[tuple[str, str], str]:
    """Output column per (view, feature): the feature's name, or ``view__feature`` when asked or
    when two views' features share a name."""
    names: dict[tuple[str, str], str] = {}
    seen: dict[str, str] = {}
    for r in requests:
        for f in r.features:
            out = f"{r.view.name}__{f}" if full_names else f
            if out in seen:
                raise InvalidRequestError(
                    f"Feature '{f}' is requested from both '{seen[out]}' and '{r.view.name}'; "
                    "ask for full feature names ({argument}) to get 'view__feature' columns",
                    argument="full_feature_names",
                    example="True",
                )
            seen[out] = r.view.name
            names[(r.view.name, f)] = out
    return names


SpineLike: TypeAlias = (
    "pa.Table | pa.RecordBatch | pd.DataFrame | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]"
)
"""What a spine may be given as: a pandas DataFrame, a pyarrow Table (or RecordBatch), a dict of
columns (``{"customer_id": [1, 2], "event_timestamp": [...]}``) or a list of row dicts."""

SPINE_TYPES = (
    "a pandas DataFrame, a pyarrow Table, a dict of columns like {'customer_id': [1, 2], 'event_timestamp': "
    "[...]} or a list of row dicts"
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def spine_table(spine: SpineLike, what: str = "spine") -> pa.Table:
    """A spine given in any accepted shape (see :data:`SpineLike`) as an Arrow table; anything
    else, or columns Arrow cannot hold (mixed types, integers beyond 64 bits), is refused saying
    what to give instead."""
    if isinstance(spine, pa.Table):
        return spine
    if isinstance(spine, pa.RecordBatch):
        return pa.Table.from_batches([spine])
    # A DataFrame given means pandas is loaded: not importing it here saves ~0.35 s to every
    # command that opens a FeatureStore (apply, run...).
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(spine, pd.DataFrame):
        try:
            return pa.Table.from_pandas(spine, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as err:
            raise InvalidRequestError(f"The {what} cannot be read as a table: {err}") from err
    if isinstance(spine, Mapping):
        columns: dict[str, list[Any]] = {}
        for name, values in spine.items():
            if isinstance(values, str | bytes | Mapping) or not (
                isinstance(values, Sequence | pa.Array) or (pd is not None and isinstance(values, pd.Series))
            ):
                raise InvalidRequestError(
                    f"The {what}'s column '{name}' must be a list of values, one per row; got "
                    f"{type(values).__name__}. Give {SPINE_TYPES}"
                )
            tolist = getattr(values, "to_pylist", None) or getattr(values, "tolist", None)
            columns[str(name)] = tolist() if tolist is not None else list(values)
    elif (
        isinstance(spine, Sequence)
        and not isinstance(spine, str | bytes)
        and all(isinstance(row, Mapping) for row in spine)
    ):
        names = list(dict.fromkeys(str(k) for row in spine for k in row))
        columns = {n: [row.get(n) for row in spine] for n in names}
    else:
        shown = type(spine).__name__
        if isinstance(spine, Sequence) and not isinstance(spine, str | bytes) and spine:
            shown += f" of {type(spine[0]).__name__}"
        raise InvalidRequestError(f"The {what} must be {SPINE_TYPES}; got {shown}")
    if not columns:
        raise InvalidRequestError(f"The {what} is empty: give entity key columns and a timestamp column")
    lengths = {n: len(v) for n, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidRequestError(f"The {what}'s columns have different lengths: {lengths}")
    return pa.table(_arrays(columns, what))


def _arrays(columns: Mapping[str, Sequence[Any]], what: str) -> dict[str, pa.Array]:
    arrays = {}
    for name, values in columns.items():
        # Python (and JSON) integers have no size limit; Arrow's stop at 64 bits (and would raise OverflowError).
        big = next(
            (v for v in values if isinstance(v, int) and not isinstance(v, bool) and not INT64_MIN <= v <= INT64_MAX),
            None,
        )
        if big is not None:
            raise InvalidRequestError(
                f"The {what} column '{name}' has the integer {big}, beyond the 64-bit range "
                f"[{INT64_MIN}, {INT64_MAX}]; give values in that range (times as ISO 8601 strings, "
                f"e.g. '{TIME_EXAMPLE}')"
            )
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
            raise InvalidRequestError(
                f"The {what} column '{name}' mixes values of different types ({err}); give values of one type"
            ) from err
    return arrays


def normalize_spine(spine: SpineLike, timestamp_column: str, requests: Sequence[ViewRequest]) -> pa.Table:
    """Check the spine has rows, its timestamp and every needed key, with usable types.

    Times follow :mod:`featurestore.times`: a timestamp column must have a time zone (it is kept
    as given: the training set comes back in the spine's zone); a date column means 00:00 UTC; a
    text column is read as ISO 8601 times with offsets (or bare dates) and becomes
    ``timestamp[us, UTC]``. Keys are cast to their entities' types; booleans are no numbers."""
    spine = spine_table(spine)
    if spine.num_rows == 0:
        raise InvalidRequestError(
            f"The spine has no rows; give at least one row of entity keys and a timestamp ('{timestamp_column}')"
        )
    if timestamp_column not in spine.column_names:
        raise InvalidRequestError(
            f"The spine has no timestamp column '{timestamp_column}'.{did_you_mean(timestamp_column, spine.column_names)} "
            f"It has columns {spine.column_names}; name its timestamp column with {{argument}}",
            argument="timestamp_column",
        )
    missing = sorted({k for r in requests for k in r.view.join_keys if k not in spine.column_names})
    if missing:
        raise InvalidRequestError(
            f"The spine lacks entity key column(s) {missing} needed by the requested features; "
            f"it has columns {spine.column_names}"
        )
    subject = f"The spine's timestamp column '{timestamp_column}'"
    ts = spine.column(timestamp_column)
    if pa.types.is_timestamp(ts.type) and ts.type.tz is None:
        # A naive time is local to whoever made it: reading it as UTC would silently shift every
        # row by that offset and leak or drop feature values.
        first = next((v for v in ts.to_pylist() if v is not None), None)
        shown = first.isoformat() if isinstance(first, datetime) else str(first)
        raise InvalidRequestError(naive_time_message(subject, shown))
    if pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):
        ts = parse_time_column(ts, subject)
        spine = spine.set_column(spine.column_names.index(timestamp_column), timestamp_column, ts)
    elif pa.types.is_null(ts.type):
        raise InvalidRequestError(f"{subject} holds only nulls; give a time for every row, e.g. '{TIME_EXAMPLE}'")
    elif not (pa.types.is_timestamp(ts.type) or pa.types.is_date(ts.type)):
        raise InvalidRequestError(
            f"{subject} has type {ts.type}; give timestamps with a time zone, dates, or ISO 8601 strings with an "
            f"offset, e.g. '{TIME_EXAMPLE}'"
        )
    if ts.null_count:
        row = pc.index(pc.is_null(ts), True).as_py()
        raise InvalidRequestError(
            f"{subject} has {ts.null_count} null value(s), the first in row {row}; give a time for every row"
        )
    for r in requests:
        for key, vtype in r.view.key_schema.items():
            col = spine.column(key)
            if col.type == vtype.arrow:
                continue
            if pa.types.is_boolean(col.type) or (pa.types.is_null(col.type) and len(col)):
                got = "booleans" if pa.types.is_boolean(col.type) else "only nulls"
                raise InvalidRequestError(
                    f"The spine's key column '{key}' holds {got}, but entity key '{key}' of feature view "
                    f"'{r.view.name}' is {vtype.value}; give {vtype.value} values"
                )
            try:
                spine = spine.set_column(spine.column_names.index(key), key, pc.cast(col, vtype.arrow))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise InvalidRequestError(
                    f"The spine's key column '{key}' has type {col.type}, but entity key '{key}' of feature view "
                    f"'{r.view.name}' is {vtype.value}"
                ) from err
    return spine


def _join_time(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A spine's times (aware timestamps of any zone and unit, or dates) as naive UTC microseconds."""
    if pa.types.is_date(col.type):
        return pc.cast(col, pa.timestamp("us"))
    return pc.cast(col, pa.timestamp("us"), safe=False)  # an instant, whatever its zone; ns truncated


def _unused(name: str, taken: Sequence[str]) -> str:
    """``name``, or ``name`` with underscores appended, whichever no column of ``taken`` has."""
    while name in taken:
        name += "_"
    return name


def _naive(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    # DuckDB compares plain TIMESTAMPs without consulting a session time zone: all times are UTC.
    return pc.cast(col, pa.timestamp("us"))


def _view_relation(
    con: duckdb.DuckDBPyConnection, view: FeatureView, files: Sequence[Path], features: Sequence[str]
) -> pa.Table:
    """The view's rows from its Parquet files: join keys, event time (naive UTC) and ``features``
    in the view's declared types. The files may hold older versions of the view: a feature added
    since is missing from files written before it and reads as null there (all null when no file
    has it yet); a feature removed since is not read."""
    columns = [*view.join_keys, view.timestamp_field, *features]
    schema = view_schema(view)
    if not files:
        table = schema.empty_table().select(columns)
    else:
        # union_by_name: the files' columns matched by name, a column a file lacks read as null.
        rel = con.read_parquet([str(f) for f in files], union_by_name=True)
        stored = [c for c in columns if c in rel.columns]
        table = rel.select(*[duckdb.ColumnExpression(c) for c in stored]).to_arrow_table()
        arrays = [table.column(c) if c in stored else pa.nulls(table.num_rows, schema.field(c).type) for c in columns]
        table = pa.Table.from_arrays(arrays, names=columns)
        for c in features:  # a feature whose type changed: as the view now declares it
            if table.column(c).type != schema.field(c).type:
                table = table.set_column(columns.index(c), c, _cast(view, c, table.column(c), schema.field(c).type))
    ts_index = table.column_names.index(view.timestamp_field)
    return table.set_column(
        ts_index, view.timestamp_field, _naive(to_utc_timestamp(table.column(view.timestamp_field)))
    )


def _cast(view: FeatureView, feature: str, col: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    try:
        return to_utc_timestamp(col) if pa.types.is_timestamp(to) else pc.cast(col, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise UnreadableValueError(
            f"Feature '{feature}' of feature view '{view.name}' is stored offline as {col.type}, which cannot be "
            f"read as {view.feature(feature).dtype.value} as the view now declares: re-run the view to rewrite "
            f"its files (featurestore run {view.name}): {err}"
        ) from err


def training_set(
    spine: pa.Table,
    timestamp_column: str,
    requests: Sequence[ViewRequest],
    files: Mapping[str, Sequence[Path]],
    *,
    full_names: bool = False,
) -> pa.Table:
    """The spine with each requested feature joined as of each row's timestamp (see module docs).
    ``spine`` must come from :func:`normalize_spine`; ``files`` maps view names to their Parquet files."""
    names = output_names(requests, full_names)
    clash = [n for n in names.values() if n in spine.column_names]
    if clash:
        raise InvalidRequestError(
            f"The spine already has column(s) {clash} named like requested features; rename them or ask for "
            "full feature names ({argument}) to get 'view__feature' columns",
            argument="full_feature_names",
            example="True",
        )
    # The join's own columns, named so that no spine column (a user's "__row_id") is overwritten.
    keys = list(dict.fromkeys(k for r in requests for k in r.view.join_keys))
    row_id = _unused("__row_id", [*keys, *names.values()])
    spine_ts = _unused("__spine_ts", [*keys, *names.values(), row_id])
    row_q, ts_q = _quote(row_id), _quote(spine_ts)
    con = duckdb_cursor()
    try:
        work = pa.table(
            {
                row_id: pa.array(range(spine.num_rows), pa.int64()),
                spine_ts: _join_time(spine.column(timestamp_column)),
                **{k: spine.column(k) for k in keys},
            }
        )
        con.register("spine", work)
        selects = [f"s.{row_q}"]
        joins = []
        for i, r in enumerate(requests):
            rel = f"fv{i}"
            con.register(rel, _view_relation(con, r.view, files.get(r.view.name, []), r.features))
            ts = _quote(r.view.timestamp_field)
            on = " AND ".join(f"s.{_quote(k)} = {rel}.{_quote(k)}" for k in r.view.join_keys)
            ttl_us = int(r.view.ttl.total_seconds() * 1_000_000)
            fresh = f"({rel}.{ts} IS NOT NULL AND s.{ts_q} - {rel}.{ts} <= to_microseconds({ttl_us}))"
            joins.append(f"ASOF LEFT JOIN {rel} ON {on} AND s.{ts_q} >= {rel}.{ts}")
            for f in r.features:
                selects.append(f"CASE WHEN {fresh} THEN {rel}.{_quote(f)} END AS {_quote(names[(r.view.name, f)])}")
        sql = f"SELECT {', '.join(selects)} FROM spine s {' '.join(joins)} ORDER BY s.{row_q}"
        joined = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    out = spine
    for r in requests:
        for f in r.features:
            name = names[(r.view.name, f)]
            col = joined.column(name)
            want = r.view.feature(f).dtype.arrow
            col = to_utc_timestamp(col) if pa.types.is_timestamp(want) else pc.cast(col, want)
            out = out.append_column(pa.field(name, want), col)
    return out


def as_of(
    view: FeatureView, files: Sequence[Path], features: Sequence[str], when: datetime, *, include_expired: bool = False
) -> pa.Table:
    """Every entity's latest row of the view at or before ``when``, within TTL unless ``include_expired``."""
    # A naive ``when`` is UTC, as everywhere in the store (``astimezone`` would take the machine's zone).
    when_naive = when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)
    con = duckdb_cursor()
    try:
        con.register("fv", _view_relation(con, view, files, features))
        ts = _quote(view.timestamp_field)
        keys = ", ".join(_quote(k) for k in view.join_keys)
        cols = ", ".join([*(_quote(k) for k in view.join_keys), ts, *(_quote(f) for f in features)])
        ttl_us = int(view.ttl.total_seconds() * 1_000_000)
        fresh = "" if include_expired else f"WHERE $when - {ts} <= to_microseconds({ttl_us})"
        sql = (
            f"SELECT {cols} FROM (SELECT * FROM fv WHERE {ts} <= $when "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC) = 1) {fresh} ORDER BY {keys}"
        )
        table = con.sql(sql, params={"when": when_naive}).to_arrow_table()
    finally:
        con.close()
    idx = table.column_names.index(view.timestamp_field)
    table = table.set_column(idx, view.timestamp_field, to_utc_timestamp(table.column(view.timestamp_field)))
    schema = view_schema(view)
    return table.cast(pa.schema([schema.field(c) for c in table.column_names]))
