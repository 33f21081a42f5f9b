"""Named, reproducible training datasets: a training set saved once and given back identically.

Saving a dataset builds the training set of a spine as :meth:`FeatureStore.get_training_set`
does, then keeps two Parquet files in the offline store, each named by the SHA-256 of its bytes::

    <offline root>/training-datasets/spine-<sha256>.parquet   the spine, as normalized for the join
    <offline root>/training-datasets/rows-<sha256>.parquet    the rows built: spine + features

and records in the registry what it read: the feature service (or references), each view's
version and watermark, every published file and the run that published it. (``training-datasets``
cannot be a view's folder: view names have no hyphen.)

Getting the dataset back reads the rows file, checked against its hash: the same bytes whatever
runs, backfills or pushes came since. Design choice: the rows themselves are kept rather than
pinning the offline files they were built from, because runs delete the files they replace (a
pin would have to reach into every offline store's publishing and its Hive metastore) and a
saved file costs about what the training set weighs. What a rebuild today would give is
:func:`verify_training_dataset`'s answer: the rows recomputed from today's offline state,
compared row by row with the saved ones, and which runs have since replaced the ones it read.

Names are immutable: saving a name again with the same spine and features gives the saved
dataset back if the rows built now are byte-identical, and is refused otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.definitions import name_problems
from featurestore.errors import FeatureStoreError, InvalidRequestError, StoreUnavailableError
from featurestore.offline.parquet import ParquetOfflineStore
from featurestore.registry import DatasetInput, Registry, RunRecord, TrainingDatasetRecord
from featurestore.retrieval import ViewRequest, normalize_spine, training_set

log = logging.getLogger(__name__)
DATASETS_DIR = "training-datasets"
"""The folder under the offline store's root holding datasets' files."""
DESCRIPTION_MAX_LENGTH = 2000


@dataclass(frozen=True)
class TrainingDataset:
    """A saved dataset: its registry record and its rows (the spine's columns, then the features)."""

    record: TrainingDatasetRecord
    rows: pa.Table
    created: bool = False
    """Whether the call that gave it saved it (False: the dataset saved under its name before,
    given back; and a dataset read with :meth:`FeatureStore.get_training_dataset`)."""

    @property
    def name(self) -> str:
        return self.record.name


@dataclass(frozen=True)
class ReplacedRuns:
    """For one view: the runs whose files the dataset read, those of them whose files have
    since been replaced, and the runs published since (which replaced them, or added rows)."""

    view: str
    read: tuple[str, ...]
    gone: tuple[str, ...]
    """Runs some of whose files it read are no longer published (a later run or push replaced them)."""
    replaced_files: tuple[str, ...]
    """Those files (relative to the view's folder: ``date=.../<run>.parquet``)."""
    since: tuple[RunRecord | str, ...]
    """Runs (pushes, compactions) published since, as recorded (a compaction is no registry run: its id)."""
    version_then: int | None
    version_now: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "runs_read": list(self.read),
            "runs_replaced": list(self.gone),
            "files_replaced": list(self.replaced_files),
            "runs_published_since": [_run_summary(r) for r in self.since],
            "version_then": self.version_then,
            "version_now": self.version_now,
        }


@dataclass(frozen=True)
class DatasetVerification:
    """What rebuilding a dataset from today's offline state gives, against the saved rows.

    ``identical``: the rebuilt rows are byte for byte the saved ones. Otherwise ``rows_differing``
    rows have at least one feature value that differs (``differing_by_column`` per feature), and
    ``views`` says, per view, which runs it read are no longer published and which came since.
    ``problem``: why no rebuild was possible (a feature removed since), else None."""

    name: str
    rows: int
    identical: bool
    rows_differing: int | None
    differing_by_column: Mapping[str, int]
    views: tuple[ReplacedRuns, ...]
    rebuilt_sha256: str | None
    saved_sha256: str
    problem: str | None = None
    rebuilt: pa.Table | None = field(default=None, repr=False, compare=False)
    """The rows rebuilt today (None when no rebuild was possible)."""

    @property
    def changed_views(self) -> list[ReplacedRuns]:
        return [v for v in self.views if v.gone or v.since or v.version_then != v.version_now]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "identical": self.identical,
            "rows_differing": self.rows_differing,
            "differing_by_column": dict(self.differing_by_column),
            "views": [v.to_dict() for v in self.views],
            "rebuilt_sha256": self.rebuilt_sha256,
            "saved_sha256": self.saved_sha256,
            "problem": self.problem,
        }

    def summary(self) -> str:
        """One paragraph for people: identical, or what changed and which runs did it."""
        if self.problem:
            return f"Training dataset '{self.name}' cannot be rebuilt today: {self.problem}"
        if self.identical:
            return f"Training dataset '{self.name}' rebuilds identically today ({self.rows:,} rows, same bytes)."
        parts = [
            f"Training dataset '{self.name}' rebuilds differently today: {self.rows_differing:,} of {self.rows:,} "
            "rows differ"
            + (
                " (" + ", ".join(f"{c}: {n:,}" for c, n in self.differing_by_column.items() if n) + ")"
                if self.rows_differing
                else " (no value; the files' bytes do)"
            )
            + "."
        ]
        for v in self.changed_views:
            bits = []
            if v.gone:
                bits.append(
                    f"{len(v.replaced_files)} file(s) it read replaced since, published by run(s) " + ", ".join(v.gone)
                )
            if v.since:
                bits.append("published since: " + ", ".join(_run_text(r) for r in v.since))
            if v.version_then != v.version_now:
                bits.append(f"version {v.version_then} then, {v.version_now} now")
            parts.append(f"Feature view '{v.view}': {'; '.join(bits)}.")
        parts.append("The saved rows are unchanged: get_training_dataset gives them back as they were built.")
        return " ".join(parts)


# ------------------------------------------------------------------------------------ saving


def create_training_dataset(
    registry: Registry,
    offline: ParquetOfflineStore,
    project: str,
    name: str,
    spine: Any,
    requests: Sequence[ViewRequest],
    *,
    feature_service: str | None,
    timestamp_column: str,
    full_feature_names: bool,
    description: str,
    actor: str,
) -> tuple[TrainingDataset, bool]:
    """Build and save the dataset (see the module docs); also whether it was new (False: the
    same dataset was saved under this name before, and is returned as it was saved)."""
    check_dataset_name(name)
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidRequestError(
            f"The description of training dataset '{name}' has {len(description):,} characters; give at most "
            f"{DESCRIPTION_MAX_LENGTH:,}"
        )
    refs = tuple(f"{r.view.name}:{f}" for r in requests for f in r.features)
    normalized = normalize_spine(spine, timestamp_column, requests)
    spine_bytes = parquet_bytes(normalized)
    spine_sha = sha256(spine_bytes)
    existing = registry.find_training_dataset(project, name)
    if existing is not None:
        _refuse_unless_same_inputs(existing, spine_sha, refs, timestamp_column, full_feature_names)
    snapshot, rows = _build(
        registry, offline, project, name, normalized, timestamp_column, requests, full_feature_names
    )
    files = snapshot.files
    rows_bytes = parquet_bytes(rows)
    rows_sha = sha256(rows_bytes)
    if existing is not None:
        return _same_or_refused(offline, existing, rows_sha), False
    folder = offline.root / DATASETS_DIR
    kept = {
        "spine": _store(folder, "spine", spine_bytes, spine_sha, offline.root),
        "rows": _store(folder, "rows", rows_bytes, rows_sha, offline.root),
    }
    record = TrainingDatasetRecord(
        project=project,
        name=name,
        feature_service=feature_service,
        features=refs,
        view_versions=snapshot.versions,
        timestamp_column=timestamp_column,
        full_feature_names=full_feature_names,
        spine_file=kept["spine"][0],
        spine_sha256=spine_sha,
        spine_rows=normalized.num_rows,
        rows_file=kept["rows"][0],
        rows_sha256=rows_sha,
        columns=tuple(rows.column_names),
        watermarks=snapshot.watermarks,
        inputs=tuple(
            DatasetInput(view, str(f.relative_to(offline.view_dir(view))), offline.publisher(view, f))
            for view, paths in files.items()
            for f in paths
        ),
        run_ids=tuple(dict.fromkeys(offline.publisher(view, f) for view, paths in files.items() for f in paths)),
        created_at=datetime.now(UTC),
        created_by=actor,
        description=description,
    )
    created = False
    try:
        saved, created = registry.record_training_dataset(record)
        if not created:  # saved under this name by someone else meanwhile
            _refuse_unless_same_inputs(saved, spine_sha, refs, timestamp_column, full_feature_names)
            return _same_or_refused(offline, saved, rows_sha), False
    finally:
        if not created:  # the files this call wrote, unless a recorded dataset has them too
            _remove_unrecorded(registry, offline, [rel for rel, written in kept.values() if written])
    # A failed save of the same bytes may have removed them between their write and the insert.
    _store(folder, "spine", spine_bytes, spine_sha, offline.root)
    _store(folder, "rows", rows_bytes, rows_sha, offline.root)
    registry.record_audit(
        project,
        actor,
        "training_dataset.create",
        f"training_dataset:{name}",
        {
            "rows": rows.num_rows,
            "rows_sha256": rows_sha,
            "feature_service": feature_service,
            "runs": len(record.run_ids),
        },
    )
    return TrainingDataset(saved, rows, created=True), True


SNAPSHOT_LOCK_WAIT = 300.0
"""Seconds to wait for a view's publish lock to snapshot it (a run holds it while it commits
and derives online), then :class:`StoreUnavailableError`."""


@dataclass(frozen=True)
class _Snapshot:
    """What each view had published at one moment: its files, watermark and version, taken
    together under its publish lock, so the record says what the rows were built from."""

    files: dict[str, list[Path]]
    watermarks: dict[str, datetime | None]
    versions: dict[str, int]

    def missing(self) -> dict[str, list[Path]]:
        """The files of each view that are gone since (a later run replaced and deleted them)."""
        gone = {view: [f for f in paths if not f.exists()] for view, paths in self.files.items()}
        return {view: paths for view, paths in gone.items() if paths}


def _snapshot(
    registry: Registry, offline: ParquetOfflineStore, project: str, requests: Sequence[ViewRequest]
) -> _Snapshot:
    files: dict[str, list[Path]] = {}
    marks: dict[str, datetime | None] = {}
    versions: dict[str, int] = {}
    for r in requests:
        if r.view.name in files:
            continue
        # Held only while the manifest is read: a run committing meanwhile waits, not the build.
        with offline.lock(r.view, timeout=SNAPSHOT_LOCK_WAIT):
            files[r.view.name] = offline.files(r.view)
            marks[r.view.name] = offline.watermark(r.view)
            versions[r.view.name] = registry.view_version(project, r.view.name)
    return _Snapshot(files, marks, versions)


def _build(
    registry: Registry,
    offline: ParquetOfflineStore,
    project: str,
    name: str,
    spine: pa.Table,
    timestamp_column: str,
    requests: Sequence[ViewRequest],
    full_names: bool,
) -> tuple[_Snapshot, pa.Table]:
    """The rows of ``spine`` built from one snapshot of the views, and that snapshot. A run
    committing during the build may delete files the snapshot named (runs delete the files the
    previous run replaced): then once more from a new snapshot; a second time is an error."""
    for attempt in (1, 2):
        snapshot = _snapshot(registry, offline, project, requests)
        try:
            return snapshot, training_set(spine, timestamp_column, requests, snapshot.files, full_names=full_names)
        except (OSError, duckdb.Error) as err:
            gone = snapshot.missing()
            if not gone:
                raise
            if attempt == 2:
                views = ", ".join(f"'{v}'" for v in gone)
                raise StoreUnavailableError(
                    "offline store",
                    str(offline.root),
                    f"runs replaced the published files of feature view(s) {views} while training dataset '{name}' "
                    f"was being built from them, twice in a row ({len(next(iter(gone.values())))} file(s) gone, e.g. "
                    f"{next(iter(gone.values()))[0]}); try again, when the view's runs are over",
                ) from err
    raise AssertionError("unreachable")  # pragma: no cover


def check_dataset_name(name: str) -> None:
    """Raise :class:`InvalidRequestError` unless ``name`` follows the rule of every name in a project."""
    problems = name_problems("Training dataset", name)
    if problems:
        raise InvalidRequestError(problems[0])


def _refuse_unless_same_inputs(
    existing: TrainingDatasetRecord, spine_sha: str, refs: Sequence[str], timestamp_column: str, full_names: bool
) -> None:
    differences = []
    if existing.spine_sha256 != spine_sha:
        differences.append("its spine")
    if tuple(existing.features) != tuple(refs):
        differences.append("its features")
    if (existing.timestamp_column, existing.full_feature_names) != (timestamp_column, full_names):
        differences.append("its timestamp column or feature naming")
    if differences:
        raise _name_taken(existing, " and ".join(differences) + " differ")


def _same_or_refused(offline: ParquetOfflineStore, existing: TrainingDatasetRecord, rows_sha: str) -> TrainingDataset:
    if existing.rows_sha256 != rows_sha:
        raise _name_taken(
            existing,
            "its rows differ: the offline data changed since it was saved (verify_training_dataset says which runs)",
        )
    return TrainingDataset(existing, read_rows(offline, existing))


def _name_taken(existing: TrainingDatasetRecord, why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Training dataset '{existing.name}' already exists in project '{existing.project}' (saved by "
        f"{existing.created_by} at {existing.created_at:%Y-%m-%d %H:%M:%S} UTC, {existing.spine_rows:,} rows) and this "
        f"one is not the same: {why}. A dataset's name is immutable: save this one under a new name, e.g. "
        f"'{_next_name(existing.name)}'"
    )


def _next_name(name: str) -> str:
    stem, _, number = name.rpartition("_v")
    if stem and number.isdigit():
        return f"{stem}_v{int(number) + 1}"
    return f"{name}_v2"


# ------------------------------------------------------------------------------------ files


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as a Parquet file, written the same way every time (what is hashed and kept)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store(folder: Path, kind: str, data: bytes, digest: str, root: Path) -> tuple[str, bool]:
    """Keep ``data`` as ``<folder>/<kind>-<digest>.parquet`` (once: the same bytes are one file)
    and return its path relative to ``root``, and whether this call wrote it."""
    path = folder / f"{kind}-{digest}.parquet"
    written = not path.exists()
    if written:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return str(path.relative_to(root)), written


def _remove_unrecorded(registry: Registry, offline: ParquetOfflineStore, files: Sequence[str]) -> None:
    """Remove the files a failed save wrote that no recorded dataset references. Runs while the
    save's error propagates: a failure here (the registry unreachable) is logged, the files kept."""
    if not files:
        return
    try:
        registry.remove_unreferenced_dataset_files(files, lambda rel: (offline.root / rel).unlink(missing_ok=True))
    except Exception:
        log.warning("could not remove the files %s of a failed training dataset save", files, exc_info=True)


def read_file_bytes(offline: ParquetOfflineStore, record: TrainingDatasetRecord, which: str) -> bytes:
    """The saved bytes of a dataset's ``spine`` or ``rows`` file, checked against their hash."""
    rel, digest = (
        (record.rows_file, record.rows_sha256) if which == "rows" else (record.spine_file, record.spine_sha256)
    )
    path = offline.root / rel
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StoreUnavailableError(
            "offline store",
            str(offline.root),
            f"the {which} file of training dataset '{record.name}' cannot be read ({err}); restore {path} from a "
            "backup (its SHA-256 must be " + digest + ")",
        ) from err
    if sha256(data) != digest:
        raise DatasetCorruptedError(
            f"The {which} file of training dataset '{record.name}' ({path}) no longer has the SHA-256 recorded when "
            f"it was saved ({digest}): it was changed or damaged. Restore it from a backup"
        )
    return data


def read_rows(offline: ParquetOfflineStore, record: TrainingDatasetRecord) -> pa.Table:
    return pq.read_table(pa.BufferReader(read_file_bytes(offline, record, "rows")))


def read_spine(offline: ParquetOfflineStore, record: TrainingDatasetRecord) -> pa.Table:
    return pq.read_table(pa.BufferReader(read_file_bytes(offline, record, "spine")))


class DatasetCorruptedError(FeatureStoreError):
    """A dataset's saved file does not have the hash recorded for it."""


# ------------------------------------------------------------------------------------ verifying


def verify_training_dataset(
    registry: Registry,
    offline: ParquetOfflineStore,
    record: TrainingDatasetRecord,
    resolve: Any,
) -> DatasetVerification:
    """Rebuild ``record`` from today's offline state and compare (see :class:`DatasetVerification`).
    ``resolve`` turns the recorded ``view:feature`` references into requests against today's views."""
    saved = read_rows(offline, record)
    spine = read_spine(offline, record)
    try:
        requests: Sequence[ViewRequest] = resolve(list(record.features))
    except FeatureStoreError as err:
        return DatasetVerification(
            name=record.name,
            rows=record.spine_rows,
            identical=False,
            rows_differing=None,
            differing_by_column={},
            views=_runs_report(registry, offline, record, {}),
            rebuilt_sha256=None,
            saved_sha256=record.rows_sha256,
            problem=f"{err} (the features it read are no longer all defined)",
        )
    files = {r.view.name: offline.files(r.view) for r in requests}
    rebuilt = training_set(spine, record.timestamp_column, requests, files, full_names=record.full_feature_names)
    rebuilt_sha = sha256(parquet_bytes(rebuilt))
    features = [c for c in saved.column_names if c not in spine.column_names]
    by_column, differing = _differences(saved, rebuilt, features)
    return DatasetVerification(
        name=record.name,
        rows=record.spine_rows,
        identical=rebuilt_sha == record.rows_sha256,
        rows_differing=differing,
        differing_by_column=by_column,
        views=_runs_report(registry, offline, record, files),
        rebuilt_sha256=rebuilt_sha,
        saved_sha256=record.rows_sha256,
        rebuilt=rebuilt,
    )


def _runs_report(
    registry: Registry, offline: ParquetOfflineStore, record: TrainingDatasetRecord, files: Mapping[str, Sequence[Path]]
) -> tuple[ReplacedRuns, ...]:
    out = []
    for view in record.views:
        inputs = [i for i in record.inputs if i.view == view]
        read = tuple(dict.fromkeys(i.run_id for i in inputs))
        paths = files.get(view) or offline.files(view)
        base = offline.view_dir(view)
        published = {str(f.relative_to(base)) for f in paths}
        now = tuple(dict.fromkeys(offline.publisher(view, f) for f in paths))
        since = tuple(_run_or_id(registry, record.project, view, r) for r in now if r not in read)
        replaced = tuple(i for i in inputs if i.file not in published)
        try:
            version_now: int | None = registry.view_version(record.project, view)
        except FeatureStoreError:
            version_now = None
        out.append(
            ReplacedRuns(
                view=view,
                read=read,
                gone=tuple(dict.fromkeys(i.run_id for i in replaced)),
                replaced_files=tuple(i.file for i in replaced),
                since=since,
                version_then=record.view_versions.get(view),
                version_now=version_now,
            )
        )
    return tuple(out)


def _run_or_id(registry: Registry, project: str, view: str, run_id: str) -> RunRecord | str:
    try:
        return registry.find_run(project, run_id, view=view)
    except FeatureStoreError:
        return run_id  # a compaction: no registry run


def _run_summary(run: RunRecord | str) -> dict[str, Any]:
    if isinstance(run, str):
        return {"run_id": run}
    return {
        "run_id": run.id,
        "engine": run.engine,
        "window_start": run.window_start.isoformat() if run.window_start else None,
        "window_end": run.window_end.isoformat() if run.window_end else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _run_text(run: RunRecord | str) -> str:
    if isinstance(run, str):
        return run
    if run.engine == "push":
        return f"{run.id} (push)"
    if run.window_start is None and run.window_end is None:
        return f"{run.id} (everything)"
    start = run.window_start.date().isoformat() if run.window_start else "…"
    end = run.window_end.date().isoformat() if run.window_end else "…"
    return f"{run.id} (window {start} to {end})"


def _differences(saved: pa.Table, rebuilt: pa.Table, features: Sequence[str]) -> tuple[dict[str, int], int]:
    """Per feature, how many rows differ between the two tables (nulls equal nulls, NaN equals
    NaN), and how many rows differ in any feature."""
    by_column: dict[str, int] = {}
    any_diff: pa.Array | None = None
    for name in features:
        if name not in rebuilt.column_names:
            diff = pa.array([True] * saved.num_rows)
        else:
            diff = _differing(saved.column(name).combine_chunks(), rebuilt.column(name).combine_chunks())
        by_column[name] = int(pc.sum(diff).as_py() or 0)
        any_diff = diff if any_diff is None else pc.or_(any_diff, diff)
    return by_column, 0 if any_diff is None else int(pc.sum(any_diff).as_py() or 0)


def _differing(a: pa.Array, b: pa.Array) -> pa.Array:
    if a.type != b.type:
        try:
            b = pc.cast(b, a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pa.array([True] * len(a))
    same = pc.fill_null(pc.equal(a, b), False)
    same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(a.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return pc.invert(same)
