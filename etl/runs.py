"""The run pipeline, written once for every engine.

A run of a feature view over a window goes through these steps, whatever computes it::

    run lock → record start → [publish lock: recover → settle pending intents]
         → compute (engine) → gate (quality) → write partitions (engine)
         → [publish lock: stage (offline store: files, counts, intent) → guard against silent
            data loss → commit offline (+ intent, one manifest swap) → derive online from offline
            for the intent's entities → settle] → record outcome

The run lock keeps two runs of a view apart from start to end; the publish lock, taken only
around what reads or changes the manifest, lets pushes (``etl/push.py``) publish while a run
computes. A failed publish is undone before its publish lock is released.

An engine (:class:`Engine`) only computes a frame and writes it as one Parquet file per date;
the DuckDB engine (``etl/local.py``) and the Spark engine (``etl/spark.py``) plug in here, and so
can push or stream ingestion. The offline store hides Parquet versus Hive (``featurestore.offline``).

**Online is derived from offline.** The entities a run may change are those in the window's
published rows before the run and in its new rows. After the offline commit, each of them is set
online to its latest offline row (all partitions, not only the window's), or removed when offline
has none any more; TTL is applied when reading. So a re-run that retracts rows, a corrected
source or a shrunk lookback moves online back with offline, and a backfill of an older window
sets the same (newer) rows again.

**Crashes converge.** The commit records the run's intent in the same manifest swap that
publishes it; the intent is settled only after online holds the derived rows. Whatever point a
run dies at, the next run of the view (or ``featurestore repair``) finds either nothing
published and nothing pending, or the intent, and derives those entities again: derivation is
idempotent. If the online store fails during a run, the offline commit is reverted (offline is
exactly as before) and the intent stays pending until a run or repair finds the store back.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from tqdm.auto import tqdm

from featurestore.auth import local_actor
from featurestore.definitions import FeatureView
from featurestore.errors import FeatureStoreError, NotFoundError, RunError
from featurestore.feature_requests import deliver_published
from featurestore.offline import LatestRows, PublishIntent, StagedPublish
from featurestore.online import OnlineStore
from featurestore.online.codec import cast_keys, decode_keys, encode_keys
from featurestore.partitions import selection
from featurestore.schema import view_schema
from featurestore.secrets import redact
from featurestore.store import FeatureStore
from featurestore.times import naive_time_message
from quality.checked_run import CheckedFrame, check_run

log = logging.getLogger(__name__)

RUN_STEPS = 5
"""Steps of a run's progress bar: computed and checked, staged, committed offline, derived
online, recorded."""

ROW_DROP_LIMIT = 0.5
"""A run whose window holds fewer than this share of the rows published there before is
blocked unless ``allow_row_drop`` (an empty or truncated source would delete them)."""

ONLINE_BATCH_ROWS = 10_000
"""Entities per online write when the store cannot take a run in one transaction."""

CHECKPOINTS: list[Callable[[str], None]] = []
"""Called with the name of each publish phase as a run reaches it (tests crash runs there):
``computed``, ``staged``, ``committed``, ``online_batch`` (after each online batch),
``derived``, ``settled``."""


def checkpoint(phase: str) -> None:
    for hook in CHECKPOINTS:
        hook(phase)


class Engine(Protocol):
    """What an engine supplies to the pipeline: a frame and its files. Nothing else."""

    name: str
    quality_backend: str
    """The quality gate's backend for the engine's frames (``quality.checked_run.BACKENDS``)."""

    def start(self) -> None:
        """Make ready what the run needs (a Spark session, attached to a Hive store)."""

    def compute(self, view: FeatureView, start: datetime | None, end: datetime | None, scratch: Path) -> Any:
        """The view's rows with event time in ``[start, end)``, conformed to its schema, one per
        (keys, event time); refuse rows with a null key or event time. ``scratch``: a folder the
        engine may write into (removed after the run)."""

    def write_partitions(self, view: FeatureView, frame: Any, folder: Path) -> Mapping[str, Path]:
        """Write ``frame`` as one Parquet file per date of its event times (UTC), in the view's
        schema, under ``folder``; return date (``YYYY-MM-DD``) → file."""


@dataclass(frozen=True)
class RunResult:
    """What a run did; the same figures are recorded in the registry under ``run_id``."""

    run_id: str
    view: str
    status: str
    rows_computed: int
    rows_offline: int
    rows_online: int
    """Entities whose online value the run set (to their latest offline row)."""
    watermark: datetime | None
    timings: dict[str, float] = field(default_factory=dict)
    quality: str = "unchecked"
    """The quality gate's verdict: ``passed``, ``warned`` or ``quarantined`` (see ``quality.report``)."""
    rows_quarantined: int = 0
    rows_before: int = 0
    """Rows the window held offline before the run."""
    entities_affected: int = 0
    """Entities the run could change (in the window's rows before or after): derived online."""
    rows_online_removed: int = 0
    """Entities removed online because offline no longer has a row of them."""


@dataclass(frozen=True)
class DeriveStats:
    written: int
    removed: int


def check_window(start: datetime | None, end: datetime | None) -> None:
    """A run window's bounds must be aware times, start before end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise RunError(naive_time_message(f"The run window's {name}", value.isoformat()))
    if start is not None and end is not None and start >= end:
        raise RunError(f"Run window start {start} is not before end {end}")


def clamp_to_selection(
    view: FeatureView, start: datetime | None, end: datetime | None, *, today: date | None = None
) -> tuple[datetime | None, datetime | None]:
    """The run window narrowed to the dates the view's partition expressions select today: a
    run replaces every published date of its window, and the dates it did not read must keep
    their rows. A window with none of those dates is refused (nothing run, nothing changed)."""
    chosen = selection(view.source, today=today)
    if chosen is None:
        return start, end
    first = datetime.combine(chosen.first, dt_time(), UTC) if chosen.first else None
    after = datetime.combine(chosen.after, dt_time(), UTC) if chosen.after else None
    new_start = first if first is not None and (start is None or start < first) else start
    new_end = after if after is not None and (end is None or end > after) else end
    if new_start is not None and new_end is not None and new_start >= new_end:
        raise RunError(
            f"Run of feature view '{view.name}' over {_window(start, end)} reads no partition: {chosen.describe()}. "
            "Nothing was run and nothing changed; run a window within those dates, or widen the expression"
        )
    if (new_start, new_end) != (start, end):
        log.warning(
            "run of feature view '%s': window %s narrowed to %s because %s; the published rows outside it are kept",
            view.name,
            _window(start, end),
            _window(new_start, new_end),
            chosen.describe(),
        )
    return new_start, new_end


def _window(start: datetime | None, end: datetime | None) -> str:
    return f"[{start.isoformat() if start else '-inf'}, {end.isoformat() if end else '+inf'})"


def view_to_run(store: FeatureStore, view_name: str, definitions: dict[str, FeatureView] | None) -> FeatureView:
    """The view from ``definitions`` (the project's files), which must be the applied one: a
    run records the registry's version, and readers decode what it publishes with the
    registry's definition. Without ``definitions``, the registry's view (SQL only)."""
    defined = (definitions or {}).get(view_name)
    try:
        applied = store.registry.get_feature_view(store.project, view_name)
    except NotFoundError:
        if defined is None:
            raise
        raise RunError(
            f"Feature view '{view_name}' is defined but not applied; run 'featurestore apply' first"
        ) from None
    if defined is None:
        return applied
    if defined.schema_fingerprint() != applied.schema_fingerprint():
        raise RunError(
            f"Feature view '{view_name}' has changed since it was applied (its keys, features, timestamp, "
            "source, transformation or TTL differ from the registry's); run 'featurestore apply' first"
        )
    if defined.online != applied.online:
        raise RunError(
            f"Feature view '{view_name}' is {'online' if defined.online else 'offline only'} in its definition but "
            f"{'online' if applied.online else 'offline only'} in the registry; run 'featurestore apply' first"
        )
    if [e.to_spec() for e in defined.expectations] != [e.to_spec() for e in applied.expectations]:
        # A run is checked against the expectations the registry shows, never others.
        raise RunError(
            f"Feature view '{view_name}': its expectations have changed since it was applied; "
            "run 'featurestore apply' first"
        )
    return defined


# ---------------------------------------------------------------------- deriving online


def derive_online(
    store: FeatureStore,
    view: FeatureView,
    keys: Path | None,
    *,
    progress: bool = False,
    prune: bool = False,
    since: datetime | None = None,
) -> DeriveStats:
    """Set online, for every entity in ``keys`` (every entity offline has when None), the
    entity's latest offline row, and remove the entities offline has no row of. A store whose
    writes are transactional gets it in one call (all or nothing); others in batches. With
    ``prune`` (and no ``keys``), also remove every entity the online store holds that offline
    does not have (a restored or tampered store). ``since``: each entity in ``keys`` has a row
    at or after it (a push's intent), so only the dates from it on are read."""
    online: OnlineStore = store.online_store
    offline = store.offline_store
    written = removed = 0
    seen: set[str] = set()
    transactional = online.transactional_writes
    with tqdm(desc=f"online {view.name}", unit="entity", disable=not progress, leave=False) as bar:
        batches: Iterable[LatestRows] = offline.latest(
            view, keys, batch_rows=1_000_000 if transactional else ONLINE_BATCH_ROWS, since=since
        )
        if transactional:  # one call: all or nothing
            parts = list(batches)
            batches = (
                [LatestRows(_concat([b.rows for b in parts]), _concat([b.removed for b in parts]))] if parts else []
            )
        for batch in batches:
            stats = online.sync(view, batch.rows, batch.removed)
            written += stats.written
            removed += stats.removed
            if prune:
                seen.update(encode_keys(view, cast_keys(view, batch.rows)))
            bar.update(batch.rows.num_rows + batch.removed.num_rows)
            checkpoint("online_batch")
    if prune and keys is None:
        extra = [k for k in online.entity_keys(view) if k not in seen]
        if extra:
            log.warning("feature view '%s': removing %d online entities offline does not have", view.name, len(extra))
            stats = online.sync(view, view_schema(view).empty_table(), decode_keys(view, extra))
            removed += stats.removed
    return DeriveStats(written, removed)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def settle_pending(store: FeatureStore, view: FeatureView, *, progress: bool = False) -> list[PublishIntent]:
    """Complete the intents committed runs left pending (the caller holds the publish lock):
    derive online for their entities from offline as it is now, then forget them."""
    offline = store.offline_store
    pending = offline.pending(view)
    for intent in pending:
        if view.online:
            keys = intent.derive_keys
            if keys is not None and not keys.exists():
                log.warning(
                    "feature view '%s': the entities of run %s's pending online update are lost (%s); "
                    "deriving every entity instead",
                    view.name,
                    intent.run_id,
                    keys,
                )
                keys = None
            stats = derive_online(store, view, keys, progress=progress, since=intent.derive_since if keys else None)
            log.warning(
                "feature view '%s': run %s was published offline but its online update was not known to be "
                "complete; derived %d entities online from offline again (%d removed)",
                view.name,
                intent.run_id,
                stats.written,
                stats.removed,
            )
        complete = view.online and (intent.everything or offline.online_complete(view))
        offline.settle(view, intent.run_id, online_complete=complete)
    return pending


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair` did: intents settled, entities derived again."""

    view: str
    settled: list[str]
    entities: int
    removed: int


def repair(
    store: FeatureStore, view_name: str, *, everything: bool = False, progress: bool = True, actor: str | None = None
) -> RepairResult:
    """Bring the online store in line with offline for one view: settle the intents runs left
    pending (a crash, an online store that was down); with ``everything``, also derive every
    entity offline has (after a restore of the online store, say). Holds the publish lock."""
    view = store.get_feature_view(view_name)
    if not view.online:
        raise RunError(f"Feature view '{view_name}' is offline only; there is nothing online to repair")
    offline = store.offline_store
    with offline.lock(view):
        # Unpublished files a killed run left are harmless here and removed by the next run
        # (recovering a Hive store would need Spark; deriving online reads the files alone).
        pending = settle_pending(store, view, progress=progress)
        entities = sum(p.entities for p in pending)
        removed = 0
        if everything:
            stats = derive_online(store, view, None, progress=progress, prune=True)
            entities, removed = stats.written, stats.removed
    log.info(
        "repair of '%s': %d pending intent(s) settled, %d entities derived online", view_name, len(pending), entities
    )
    result = RepairResult(view_name, [p.run_id for p in pending], entities, removed)
    store.registry.record_audit(
        store.project,
        actor or local_actor(),
        "repair",
        f"feature_view:{view_name}",
        {"all": everything, "settled": result.settled, "entities": entities, "removed": removed},
    )
    return result


# ---------------------------------------------------------------------- the run


class _Run:
    """A run in progress: its id, progress bar, timings and the undo steps of a failure."""

    def __init__(self, view: FeatureView, run_id: str, bar: tqdm) -> None:
        self.view, self.run_id, self.bar = view, run_id, bar
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self.undo: list[Callable[[], object]] = []
        self.staged: StagedPublish | None = None
        """The run's staged publish, undone under the publish lock if the run fails."""
        self.outcome = "nothing was published"

    @contextmanager
    def step(self, name: str, label: str) -> Iterator[None]:
        self.bar.set_postfix_str(label)
        t0 = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def run_view(
    store: FeatureStore,
    engine: Engine,
    view_name: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    definitions: dict[str, FeatureView] | None = None,
    progress: bool = True,
    quarantine: bool | None = None,
    allow_row_drop: bool = False,
    merge: bool = False,
    describe_error: Callable[[BaseException], str] = str,
    actor: str | None = None,
) -> RunResult:
    """Run one view over ``[start, end)`` on ``engine`` through the pipeline (module docs).

    ``quarantine`` (default: the project's ``quality.quarantine``) sets rows failing blocking
    expectations aside instead of failing the run. ``allow_row_drop`` accepts a window whose
    rows fall below :data:`ROW_DROP_LIMIT` of what was published there. ``merge`` keeps the
    window's published rows the run does not recompute (a backfill of a new feature that must not
    delete history the source no longer holds). A failure publishes nothing and is recorded with
    its error; ``describe_error`` gives the message of errors that are not ours. The run, failed
    or not, is recorded in the audit log under ``actor`` (default: this process's user@host)."""
    check_window(start, end)
    view = view_to_run(store, view_name, definitions)
    start, end = clamp_to_selection(view, start, end)
    registry, project, offline = store.registry, store.project, store.offline_store
    label = "" if engine.name == "local" else f" ({engine.name})"
    bar = tqdm(total=RUN_STEPS, desc=f"run {view.name}{label}", unit="step", disable=not progress, leave=False)
    engine.start()
    with offline.run_lock(view):
        run_id = registry.start_run(project, view.name, engine=engine.name, window_start=start, window_end=end)
        run = _Run(view, run_id, bar)
        audit = {"run_id": run_id, "engine": engine.name, "start": _iso(start), "end": _iso(end)}
        try:
            result = _publish(store, engine, view, run, start, end, progress, quarantine, allow_row_drop, merge)
        except BaseException as err:
            for undo in reversed(run.undo):
                try:
                    undo()
                except Exception as undo_err:  # never hide the run's own error behind the undo's
                    undo_text = redact(str(undo_err))
                    log.error("run %s of '%s': undoing its publish failed: %s", run_id, view.name, undo_text)
                    run.outcome = (
                        f"undoing its publish failed ({undo_text}); the next run of the view or "
                        f"'featurestore repair {view.name}' completes it"
                    )
            # Recorded and logged without secrets: a driver's message may quote a URL or a setting.
            message = redact(str(err) if isinstance(err, FeatureStoreError) else describe_error(err))
            registry.finish_run(run_id, status="failed", timings=run.timings, error=f"{type(err).__name__}: {message}")
            bar.close()
            registry.record_audit(
                project, actor or local_actor(), "run", f"feature_view:{view.name}", {**audit, "status": "failed"}
            )
            log.error("run %s of feature view '%s' failed; %s: %s", run_id, view.name, run.outcome, message)
            if isinstance(err, FeatureStoreError) or not isinstance(err, Exception):  # ours, or an interrupt
                raise
            raise RunError(f"Run of feature view '{view.name}' failed; {run.outcome}: {message}") from err
        registry.finish_run(
            run_id,
            status="succeeded",
            rows_computed=result.rows_computed,
            rows_offline=result.rows_offline,
            rows_online=result.rows_online,
            timings=result.timings,
            watermark=result.watermark,
            entities_affected=result.entities_affected,
            rows_online_removed=result.rows_online_removed,
        )
        bar.close()
        registry.record_audit(
            project,
            actor or local_actor(),
            "run",
            f"feature_view:{view.name}",
            {**audit, "status": "succeeded", "rows_offline": result.rows_offline},
        )
    log.info(
        "run %s of '%s'%s: %d rows offline (%d before), %d entities derived online (%d removed), watermark %s",
        run_id,
        view.name,
        "" if engine.name == "local" else f" on {engine.name.capitalize()}",
        result.rows_offline,
        result.rows_before,
        result.rows_online,
        result.rows_online_removed,
        result.watermark,
    )
    deliver_published(store, view, result)  # the feature requests linked to what this run published
    return result


def _publish(
    store: FeatureStore,
    engine: Engine,
    view: FeatureView,
    run: _Run,
    start: datetime | None,
    end: datetime | None,
    progress: bool,
    quarantine: bool | None,
    allow_row_drop: bool,
    merge: bool,
) -> RunResult:
    """The steps of a run between its record's start and its outcome (under the view's run lock;
    the publish lock is taken to recover, then to publish: pushes go on while it computes)."""
    registry, project, offline, bar = store.registry, store.project, store.offline_store, run.bar
    with run.step("recover_s", "recovering"), offline.lock(view):
        abandoned = registry.abandon_runs(project, view.name, found_by=run.run_id)
        leftovers = offline.recover(view)
        settled = settle_pending(store, view, progress=progress)
    if abandoned or leftovers or settled:
        log.warning(
            "feature view '%s': %d earlier run(s) stopped without an outcome, now marked abandoned; removed %d "
            "unpublished file(s) they left; completed %d pending online update(s)",
            view.name,
            len(abandoned),
            len(leftovers),
            len(settled),
        )
    scratch = offline.scratch_dir(view, run.run_id)
    run.undo.append(lambda: _remove_tree(scratch))
    with run.step("compute_s", "computing"):
        frame = engine.compute(view, start, end, scratch)
    checkpoint("computed")
    checked = check_run(
        store, view, frame, run_id=run.run_id, end=end, quarantine=quarantine, backend=engine.quality_backend
    )
    run.timings.update(checked.timings)
    bar.update()
    with run.step("offline_stage_s", "writing offline"):
        partitions = engine.write_partitions(view, checked.frame, scratch / "partitions")
    with offline.lock(view):
        try:
            return _publish_staged(
                store, view, run, scratch, partitions, start, end, progress, allow_row_drop, merge, checked
            )
        except BaseException:
            # Undone before the lock goes: a push must never land between this commit and its revert.
            if run.staged is not None:
                try:
                    _undo_publish(store, view, run.staged, run)
                except Exception as undo_err:  # never hide the run's own error behind the undo's
                    undo_text = redact(str(undo_err))
                    log.error("run %s of '%s': undoing its publish failed: %s", run.run_id, view.name, undo_text)
                    run.outcome = (
                        f"undoing its publish failed ({undo_text}); the next run of the view or "
                        f"'featurestore repair {view.name}' completes it"
                    )
            raise


def _publish_staged(
    store: FeatureStore,
    view: FeatureView,
    run: _Run,
    scratch: Path,
    partitions: Mapping[str, Path],
    start: datetime | None,
    end: datetime | None,
    progress: bool,
    allow_row_drop: bool,
    merge: bool,
    checked: CheckedFrame,
) -> RunResult:
    """Stage, guard, commit, derive online and settle (the caller holds the publish lock)."""
    offline, bar = store.offline_store, run.bar
    with run.step("offline_stage_s", "writing offline"):
        staged = run.staged = offline.stage(view, partitions, start=start, end=end, run_id=run.run_id, merge=merge)
    checkpoint("staged")
    bar.update()
    _guard_row_drop(view, staged.rows, staged.rows_before, start, end, allow_row_drop=allow_row_drop or merge)
    with run.step("offline_publish_s", "publishing offline"):
        intent = staged.commit()
    checkpoint("committed")
    run.outcome = (
        "its offline publish was reverted, so the offline store is as before; online may hold part of its "
        f"update for {staged.entities:,} entities until the next run of the view or 'featurestore repair "
        f"{view.name}' derives them from offline again"
    )
    bar.update()
    derived = DeriveStats(0, 0)
    if view.online and not intent.empty:
        what = "every entity" if intent.everything else f"{staged.entities:,} entities"
        with run.step("online_write_s", f"deriving {what} online"):
            derived = derive_online(store, view, intent.derive_keys, progress=progress)
    checkpoint("derived")
    bar.update()
    offline.settle(view, run.run_id, online_complete=view.online)
    run.staged = None  # published and settled: from here on a failure must not undo it
    checkpoint("settled")
    _remove_tree(scratch)
    bar.update()
    return RunResult(
        run_id=run.run_id,
        view=view.name,
        status="succeeded",
        rows_computed=checked.rows_computed,
        rows_offline=staged.rows,
        rows_online=derived.written,
        watermark=staged.watermark,
        timings=run.timings,
        quality=checked.report.status,
        rows_quarantined=checked.rows_quarantined,
        rows_before=staged.rows_before,
        entities_affected=derived.written + derived.removed if intent.everything else staged.entities,
        rows_online_removed=derived.removed,
    )


def _undo_publish(store: FeatureStore, view: FeatureView, staged: StagedPublish, run: _Run) -> None:
    """A failed run's publish undone (:func:`undo_publish`), saying so in its outcome."""
    if undo_publish(store, view, staged):
        run.outcome = "nothing was published: its offline publish was reverted and online derived from offline again"


def undo_publish(store: FeatureStore, view: FeatureView, staged: StagedPublish) -> bool:
    """A failed publish (a run's, a push's) undone: staged files deleted or, once committed, the
    previous files published again and (best effort) online derived from them at once (every
    date: the undone rows may have been the newest). If the online store is still failing, the
    intent stays pending for the next run, push or repair. True when online was derived again.
    An error deleting or reverting the files is raised (the caller must not hide its own)."""
    if not staged.committed:
        staged.abort()
        return False
    staged.revert()
    if not view.online:
        return False
    try:
        for intent in store.offline_store.pending(view):
            if intent.run_id == staged.run_id:
                if not intent.empty:
                    derive_online(store, view, intent.derive_keys)
                complete = intent.everything or store.offline_store.online_complete(view)
                store.offline_store.settle(view, staged.run_id, online_complete=complete)
                return True
    except Exception as err:  # the store that failed the publish, most likely: the intent stays pending
        log.warning(
            "feature view '%s': online not yet derived after the failed publish: %s", view.name, redact(str(err))
        )
    return False


def _guard_row_drop(
    view: FeatureView, rows: int, before: int, start: datetime | None, end: datetime | None, *, allow_row_drop: bool
) -> None:
    """Refuse a run whose window falls sharply against what is published there (before its commit)."""
    if allow_row_drop or before == 0 or rows >= before * ROW_DROP_LIMIT:
        return
    window = f"[{start.isoformat() if start else '-inf'}, {end.isoformat() if end else '+inf'})"
    raise RunError(
        f"Run of feature view '{view.name}' over {window} computed {rows:,} row(s) where {before:,} are published; "
        f"publishing would delete {before - rows:,} row(s) offline and retract them online. Nothing was published. "
        "If the source is empty or truncated, fix it and re-run; if the rows really are gone, re-run with "
        "--allow-row-drop (SDK: allow_row_drop=True)"
    )


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # the staging folder, when no other run's scratch is in it
        path.parent.rmdir()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
