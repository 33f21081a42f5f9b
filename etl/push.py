"""Push ingestion: rows a service sends (a card payment it just saw), published like a run's.

``push(store, view, rows)`` (``POST /v1/push/{view}``, the Python client's ``push``) takes rows
with the view's join keys, event time and every feature, and:

1. **validates** them as one batch: the view's columns, no more and no fewer, each castable to
   its type; no null key or event time; one row per (entity, event time); the view's blocking
   row-level expectations (``not_null``, ``in_range``, ``in_set``, ``matches_regex``,
   ``unique_keys``; table-level ones such as ``row_count`` or ``fresh`` judge a run, not a
   batch). A failing batch is refused as a whole (:class:`PushRejectedError`, HTTP 422) naming
   its rows; nothing is published.
2. **publishes offline first**, under the view's publish lock, by the manifest swap of
   ``featurestore.offline.parquet``: the rows are visible to training sets and reference data
   from that instant. A row with the entity and event time of a published row replaces it, so a
   replayed push changes nothing (idempotent) and a corrected one wins.
3. **derives online** the pushed entities from offline (their latest row, which is the pushed one
   unless offline has a newer), exactly as a run does; the push's intent is settled after.

If the online store fails, the offline publish is reverted and the push is refused (HTTP 503):
nothing that was not acknowledged stays, and a retry is safe. A process killed mid-push leaves
either nothing or a committed intent the next push, run or ``featurestore repair`` completes.

**Pushes and runs.** A push takes the view's publish lock, which a run holds only to recover
and to publish (stage, commit, derive online): pushes go on while a run computes, and wait (at
most :data:`PUSH_LOCK_WAIT` s, then 503) while it publishes. A later run over a window keeps the pushed rows in it unless the run computes a row
of the same entity and event time: the source then wins. The next run of a date, or
``featurestore compact VIEW``, folds that date's push files into its partition.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.runs import checkpoint, derive_online, settle_pending, undo_publish
from featurestore.auth import local_actor
from featurestore.definitions import FeatureView
from featurestore.errors import FeatureStoreError, InvalidRequestError, PushRejectedError, RunError
from featurestore.registry.runs import PUSH_ENGINE
from featurestore.schema import view_schema
from featurestore.secrets import redact
from featurestore.store import FeatureStore
from featurestore.times import parse_time_column
from featurestore.types import UTC_TIMESTAMP

log = logging.getLogger(__name__)

ENGINE = PUSH_ENGINE
"""The engine name pushes are recorded under in the run history."""
PUSH_LOCK_WAIT = 10.0
"""Seconds a push waits for a run of the same view to finish publishing before it is refused
(503: push again); a datamart thread never waits longer."""

MAX_ROWS_NAMED = 20
"""Rows listed by number in a refusal (all of them are counted)."""


@dataclass(frozen=True)
class PushResult:
    """What a push did; recorded in the run history under ``push_id`` (engine ``push``)."""

    push_id: str | None
    """None for an empty batch: nothing was published or recorded."""
    view: str
    rows: int
    entities: int
    """Entities whose online value the push derived."""
    replaced: int
    """Published rows the push replaced (same entity and event time)."""
    watermark: datetime | None
    timings: dict[str, float]


def push(store: FeatureStore, view_name: str, rows: Any, *, actor: str | None = None) -> PushResult:
    """Validate ``rows`` (an Arrow table, a pandas DataFrame, a list of row dicts or a dict of
    columns) and publish them offline, then online (module docs). ``actor`` is recorded in the
    audit log with the push's id (default: this process's user@host)."""
    t0 = time.perf_counter()
    view = store.get_feature_view(view_name)
    offline = store.offline_store
    if not offline.accepts_pushes:
        raise InvalidRequestError(
            f"Feature view '{view.name}' cannot take pushes: its offline store (Hive) is published by Spark runs "
            "only. Write the rows to the view's source and run it instead"
        )
    table = conform_rows(view, rows)
    check_rows(view, table)
    timings = {"validate_s": time.perf_counter() - t0}
    if table.num_rows == 0:
        return PushResult(None, view.name, 0, 0, 0, None, timings)
    registry, project, who = store.registry, store.project, actor or local_actor()
    with offline.lock(view, timeout=PUSH_LOCK_WAIT):
        push_id = registry.start_run(project, view.name, engine=ENGINE, window_start=None, window_end=None)
        audit = {"run_id": push_id, "rows": table.num_rows}
        try:
            result = _publish(store, view, table, push_id, timings)
        except BaseException as err:
            message = redact(str(err) if isinstance(err, FeatureStoreError) else f"{type(err).__name__}: {err}")
            registry.finish_run(push_id, status="failed", timings=timings, error=message)
            registry.record_audit(project, who, "push", f"feature_view:{view.name}", {**audit, "status": "failed"})
            log.error("push %s to feature view '%s' failed; nothing was published: %s", push_id, view.name, message)
            if isinstance(err, FeatureStoreError) or not isinstance(err, Exception):  # ours, or an interrupt
                raise
            raise RunError(f"Push to feature view '{view.name}' failed; nothing was published: {message}") from err
        registry.finish_run(
            push_id,
            status="succeeded",
            rows_computed=table.num_rows,
            rows_offline=table.num_rows,
            rows_online=result.entities,
            timings=timings,
            watermark=result.watermark,
            entities_affected=result.entities,
        )
    registry.record_audit(
        project, who, "push", f"feature_view:{view.name}", {**audit, "status": "succeeded", "replaced": result.replaced}
    )
    timings["total_s"] = time.perf_counter() - t0
    log.info(
        "push %s to '%s': %d rows offline (%d replaced), %d entities derived online, watermark %s",
        push_id,
        view.name,
        result.rows,
        result.replaced,
        result.entities,
        result.watermark,
    )
    return result


def _publish(
    store: FeatureStore, view: FeatureView, table: pa.Table, push_id: str, timings: dict[str, float]
) -> PushResult:
    """Stage, commit, derive online and settle (the caller holds the publish lock)."""
    offline = store.offline_store
    t = time.perf_counter()
    # What a killed push or run left: marked abandoned, its unpublished files removed, its pending
    # online update derived before this push.
    # A killed push always leaves a record without an outcome (recorded before any file is
    # written), so the folders are searched only then; for files nothing names (a killed run's
    # scratch folder is its next run's to remove: a run may be computing into its own right now).
    if store.registry.abandon_runs(store.project, view.name, found_by=push_id, pushes_only=True):
        offline.remove_orphans(view)
    settle_pending(store, view)
    timings["recover_s"] = time.perf_counter() - t
    t = time.perf_counter()
    staged = offline.stage_push(view, table, run_id=push_id)
    try:
        checkpoint("staged")
        intent = staged.commit()
        timings["offline_publish_s"] = time.perf_counter() - t
        checkpoint("committed")
        entities = 0
        t = time.perf_counter()
        if view.online and not intent.empty:
            entities = derive_online(store, view, intent.derive_keys, since=intent.derive_since).written
        timings["online_write_s"] = time.perf_counter() - t
        checkpoint("derived")
        offline.settle(view, push_id, online_complete=view.online)
        checkpoint("settled")
    except BaseException:
        _undo(store, view, staged)
        raise
    return PushResult(
        push_id=push_id,
        view=view.name,
        rows=table.num_rows,
        entities=entities,
        replaced=staged.rows_before,
        watermark=staged.watermark,
        timings=timings,
    )


def _undo(store: FeatureStore, view: FeatureView, staged: Any) -> None:
    """:func:`etl.runs.undo_publish`, whose own failure is logged: the caller raises the push's error."""
    try:
        undo_publish(store, view, staged)
    except Exception as err:
        log.error(
            "feature view '%s': undoing a failed push failed (%s); the next push, run or 'featurestore repair %s' "
            "completes it",
            view.name,
            redact(str(err)),
            view.name,
        )


# ---------------------------------------------------------------------- validation


def conform_rows(view: FeatureView, rows: Any) -> pa.Table:
    """``rows`` as an Arrow table in the view's schema, or a :class:`PushRejectedError` naming
    the column (and row) that does not fit."""
    table = _as_table(view, rows)
    schema = view_schema(view)
    expected = [f.name for f in schema]
    missing = [c for c in expected if c not in table.column_names]
    extra = [c for c in table.column_names if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lack {missing}")
        if extra:
            parts.append(f"have columns the view does not: {extra}")
        raise PushRejectedError(
            f"Rows pushed to feature view '{view.name}' {' and '.join(parts)}; a push carries the view's join keys, "
            f"its event time and every feature: {expected}"
        )
    arrays = []
    for field in schema:
        col = table.column(field.name)
        arrays.append(_cast(view, field, col))
    out = pa.Table.from_arrays(arrays, schema=schema)
    for name in [*view.join_keys, view.timestamp_field]:
        nulls = pc.is_null(out.column(name))
        if pc.any(nulls).as_py():
            bad = _positions(nulls)
            raise PushRejectedError(
                f"Rows pushed to feature view '{view.name}' have no {name} in row(s) {_list(bad)}; every row needs "
                "its join keys and event time",
                rows=bad,
            )
    return out


def _as_table(view: FeatureView, rows: Any) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if type(rows).__name__ == "DataFrame" and hasattr(rows, "to_dict"):
        return pa.Table.from_pandas(rows, preserve_index=False)
    try:
        if isinstance(rows, Mapping):
            return pa.table({str(k): _column(v) for k, v in rows.items()})
        if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
            if not all(isinstance(r, Mapping) for r in rows):
                raise PushRejectedError(
                    f"Rows pushed to feature view '{view.name}' must be objects of column → value; got "
                    f"{sorted({type(r).__name__ for r in rows if not isinstance(r, Mapping)})}"
                )
            names = list(dict.fromkeys(k for r in rows for k in r))
            return pa.table({str(n): _column([r.get(n) for r in rows]) for n in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
        raise PushRejectedError(f"Rows pushed to feature view '{view.name}' cannot be read as a table: {err}") from err
    raise PushRejectedError(
        f"Rows pushed to feature view '{view.name}' must be a table, a DataFrame, a list of row objects or an "
        f"object of columns; got {type(rows).__name__}"
    )


def _column(values: Any) -> pa.Array:
    """A column from Python values; mixed JSON types (1 and "2") kept as text, cast per field later."""
    try:
        return pa.array(list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _cast(view: FeatureView, field: pa.Field, col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    subject = f"Column '{field.name}' of the rows pushed to feature view '{view.name}'"
    if field.type == UTC_TIMESTAMP:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                return parse_time_column(col, subject)
            except InvalidRequestError as err:
                raise PushRejectedError(str(err)) from err
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            raise PushRejectedError(
                f"{subject} holds times without a time zone; push aware times (UTC, or with an offset)"
            )
        if not (pa.types.is_timestamp(col.type) or pa.types.is_date(col.type)):
            raise PushRejectedError(f"{subject} has {col.type} values; push ISO 8601 times with an offset")
        return (
            pc.cast(col, UTC_TIMESTAMP)
            if pa.types.is_timestamp(col.type)
            else pc.cast(pc.cast(col, pa.timestamp("us")), UTC_TIMESTAMP)
        )
    if col.type == field.type:
        out = col
    else:
        try:
            out = pc.cast(col, field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
            bad = _uncastable(col, field.type)
            where = f" (row(s) {_list(bad)})" if bad else ""
            raise PushRejectedError(
                f"{subject} has {col.type} values that cannot be stored as {field.type}{where}: {err}", rows=bad
            ) from err
    if pa.types.is_floating(field.type) and out.null_count < len(out):
        out = pc.if_else(pc.is_nan(out), pa.scalar(None, field.type), out)  # NaN is no value, as in runs
    return out


def _uncastable(col: pa.ChunkedArray, to: pa.DataType) -> list[int]:
    bad = []
    for i, value in enumerate(col.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
            bad.append(i)
    return bad


def check_rows(view: FeatureView, table: pa.Table) -> None:
    """One row per (entity, event time), and the view's blocking row-level expectations."""
    on = [*view.join_keys, view.timestamp_field]
    if table.num_rows > 1:
        indexed = table.select(on).append_column("__i", pa.array(range(table.num_rows), pa.int64()))
        groups = indexed.group_by(on).aggregate([("__i", "list")])
        dups = sorted(i for ids in groups.column("__i_list").to_pylist() if len(ids) > 1 for i in ids)
        if dups:
            raise PushRejectedError(
                f"Rows pushed to feature view '{view.name}' repeat an entity at one event time ({', '.join(on)}) in "
                f"row(s) {_list(dups)}; push one row per entity and time",
                rows=dups,
            )
    from quality.rows import ROW_LEVEL, failing_rows

    checks = [e for e in view.expectations if e.severity == "block" and isinstance(e, ROW_LEVEL)]
    failed = failing_rows(view, table, checks) if checks and table.num_rows else {}
    if not failed:
        return
    bad = sorted({i for positions in failed.values() for i in positions})
    what = "; ".join(f"{e.describe()} (row(s) {_list(rows)})" for e, rows in failed.items())
    raise PushRejectedError(
        f"Rows pushed to feature view '{view.name}' fail its blocking expectation(s): {what}. Nothing was "
        "published; fix or drop those rows and push again",
        rows=bad,
    )


def _positions(mask: pa.ChunkedArray | pa.Array) -> list[int]:
    return [i for i, v in enumerate(mask.to_pylist()) if v]


def _list(rows: Sequence[int]) -> str:
    """The first :data:`MAX_ROWS_NAMED` rows, and how many more there are."""
    shown = ", ".join(str(r) for r in list(rows)[:MAX_ROWS_NAMED])
    more = len(rows) - MAX_ROWS_NAMED
    return shown + (f" and {more:,} more ({len(rows):,} in all)" if more > 0 else "")


# ---------------------------------------------------------------------- compaction


@dataclass(frozen=True)
class CompactResult:
    view: str
    dates: list[str]
    rows: int
    """Pushed rows folded into their dates' partitions."""


def compact(store: FeatureStore, view_name: str, *, actor: str | None = None) -> CompactResult:
    """Fold every date's push files into its partition (one file per date again). The rows do not
    change, so neither does online. Holds the publish lock; the next run of a date does it too."""
    view = store.get_feature_view(view_name)
    offline = store.offline_store
    with offline.lock(view):
        compaction_id = f"compact-{uuid.uuid4().hex[:12]}"
        staged = offline.compact(view, run_id=compaction_id)
        if staged is None:
            return CompactResult(view.name, [], 0)
        try:
            staged.commit()
        except BaseException:
            _undo(store, view, staged)
            raise
    result = CompactResult(view.name, sorted(staged.compacted), staged.rows)
    store.registry.record_audit(
        store.project,
        actor or local_actor(),
        "compact",
        f"feature_view:{view.name}",
        {"dates": result.dates, "rows": result.rows},
    )
    log.info("compacted '%s': %d pushed rows folded into %d date(s)", view.name, result.rows, len(result.dates))
    return result
