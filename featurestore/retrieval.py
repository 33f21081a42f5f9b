"""Point-in-time correct reads of the offline store, on DuckDB.

A training set keeps every spine row exactly once, in order, and gives each feature the value
of the view's latest row at or before the spine row's timestamp, provided it is no older than
the view's TTL; otherwise null. Never a value from the future, never a dropped row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.definitions import FeatureService, FeatureView
from featurestore.errors import InvalidRequestError, NotFoundError, UnreadableValueError, did_you_mean
from featurestore.schema import to_utc_timestamp, view_schema
from featurestore.sql import connect as duckdb_connect
from featurestore.sql import quote as _quote
from featurestore.types import UTC_TIMESTAMP


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
) -> list[ViewRequest]:
    """Turn ``"view:feature"`` references (or ``"view"`` for all its features, or a feature
    service) into per-view requests, in first-seen order, with "did you mean" errors."""
    if isinstance(features, FeatureService):
        pairs = [(s.view, list(s.features)) for s in features.selections()]
    else:
        if isinstance(features, str):
            features = [features]
        if not features:
            raise InvalidRequestError("No features requested: give references like 'customer_spend:spend_30d'")
        pairs = []
        for ref in features:
            view_name, sep, feat = str(ref).partition(":")
            pairs.append((view_name, [feat] if sep else []))
    grouped: dict[str, list[str]] = {}
    for view_name, feats in pairs:
        if view_name not in views:
            raise NotFoundError("feature view", view_name, project=project, candidates=views)
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
                    "ask for full feature names (full_feature_names=True) to get 'view__feature' columns"
                )
            seen[out] = r.view.name
            names[(r.view.name, f)] = out
    return names


def normalize_spine(spine: pa.Table | pd.DataFrame, timestamp_column: str, requests: Sequence[ViewRequest]) -> pa.Table:
    """Check the spine has its timestamp and every needed key, with usable types; timestamps to UTC.

    Timestamps must be timezone-aware (naive ones are rejected); ISO 8601 strings without an
    offset and dates are read as UTC."""
    if isinstance(spine, pd.DataFrame):
        try:
            spine = pa.Table.from_pandas(spine, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise InvalidRequestError(f"The spine cannot be read as a table: {err}") from err
    if timestamp_column not in spine.column_names:
        raise InvalidRequestError(
            f"The spine has no timestamp column '{timestamp_column}'.{did_you_mean(timestamp_column, spine.column_names)} "
            f"It has columns {spine.column_names}; name the column with timestamp_column=..."
        )
    missing = sorted({k for r in requests for k in r.view.join_keys if k not in spine.column_names})
    if missing:
        raise InvalidRequestError(
            f"The spine lacks entity key column(s) {missing} needed by the requested features; "
            f"it has columns {spine.column_names}"
        )
    ts = spine.column(timestamp_column)
    if pa.types.is_timestamp(ts.type) and ts.type.tz is None:
        # A naive time is local to whoever made it: reading it as UTC would silently shift every
        # row by that offset and leak or drop feature values.
        raise InvalidRequestError(
            f"The spine's timestamp column '{timestamp_column}' has no time zone ({ts.type}); give timezone-aware "
            "times, e.g. in UTC: pandas `.dt.tz_localize('UTC')`, or ISO 8601 strings ending in 'Z'"
        )
    try:
        if pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):
            parsed = pd.to_datetime(pd.Series(ts.to_pylist()), utc=True, format="ISO8601")
            ts = pa.chunked_array([pa.array(parsed, type=UTC_TIMESTAMP)])
        elif pa.types.is_timestamp(ts.type) or pa.types.is_date(ts.type):
            ts = to_utc_timestamp(ts)
        else:
            raise InvalidRequestError(
                f"The spine's timestamp column '{timestamp_column}' has type {ts.type}; give timestamps or ISO 8601 strings"
            )
    except (ValueError, pa.ArrowInvalid) as err:
        raise InvalidRequestError(
            f"The spine's timestamp column '{timestamp_column}' has a value that is not a time: {err}"
        ) from err
    if ts.null_count:
        raise InvalidRequestError(
            f"The spine's timestamp column '{timestamp_column}' has {ts.null_count} null value(s)"
        )
    spine = spine.set_column(spine.column_names.index(timestamp_column), timestamp_column, ts)
    for r in requests:
        for key, vtype in r.view.key_schema.items():
            col = spine.column(key)
            if col.type == vtype.arrow:
                continue
            try:
                spine = spine.set_column(spine.column_names.index(key), key, pc.cast(col, vtype.arrow))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise InvalidRequestError(
                    f"The spine's key column '{key}' has type {col.type}, but entity key '{key}' of feature view "
                    f"'{r.view.name}' is {vtype.value}"
                ) from err
    return spine


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
            f"The spine already has column(s) {clash} named like requested features; rename them or ask for full feature names"
        )
    con = duckdb_connect()
    try:
        work = spine.append_column("__row_id", pa.array(range(spine.num_rows), pa.int64()))
        work = work.append_column("__spine_ts", _naive(spine.column(timestamp_column)))
        con.register("spine", work.select(["__row_id", "__spine_ts", *{k for r in requests for k in r.view.join_keys}]))
        selects = ["s.__row_id"]
        joins = []
        for i, r in enumerate(requests):
            rel = f"fv{i}"
            con.register(rel, _view_relation(con, r.view, files.get(r.view.name, []), r.features))
            ts = _quote(r.view.timestamp_field)
            on = " AND ".join(f"s.{_quote(k)} = {rel}.{_quote(k)}" for k in r.view.join_keys)
            ttl_us = int(r.view.ttl.total_seconds() * 1_000_000)
            fresh = f"({rel}.{ts} IS NOT NULL AND s.__spine_ts - {rel}.{ts} <= to_microseconds({ttl_us}))"
            joins.append(f"ASOF LEFT JOIN {rel} ON {on} AND s.__spine_ts >= {rel}.{ts}")
            for f in r.features:
                selects.append(f"CASE WHEN {fresh} THEN {rel}.{_quote(f)} END AS {_quote(names[(r.view.name, f)])}")
        sql = f"SELECT {', '.join(selects)} FROM spine s {' '.join(joins)} ORDER BY s.__row_id"
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
    con = duckdb_connect()
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
