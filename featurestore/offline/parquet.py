"""The offline store on local Parquet files, partitioned by date and published atomically per run.

Layout of one view::

    <root>/<view>/date=2024-03-01/<run id>.parquet   one file per date partition and run
    <root>/<view>/_manifest.json                      the files that make up the view now

Readers use the manifest, which a run replaces in one ``os.replace``: they see all of a run or
none of it. A run rewrites exactly the date partitions its window touches (keeping rows of a
partition that fall outside the window), so re-running a window is idempotent and a backfill of
an older window leaves newer partitions alone. Files replaced by a run are deleted by the next
run, so a reader holding the previous manifest can still finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.definitions import FeatureView
from featurestore.errors import StoreUnavailableError
from featurestore.schema import view_schema

MANIFEST = "_manifest.json"


def _as_utc(when: datetime | None) -> datetime | None:
    """``when`` in UTC; a naive time is taken as UTC (as Arrow does), never as the machine's zone."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass
class StagedPublish:
    """A run's files, written but not yet visible. :meth:`commit` makes them visible at once;
    :meth:`abort` deletes them and leaves the store as it was."""

    store: ParquetOfflineStore
    view: FeatureView
    run_id: str
    new_partitions: dict[str, str]
    removed_partitions: list[str]
    rows: int
    watermark: datetime | None = None
    staged_files: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    done: bool = False

    def commit(self) -> None:
        self.store._commit(self)
        self.done = True

    def abort(self) -> None:
        """Remove the staged files; nothing to do once committed (they are published) or aborted."""
        if self.done:
            return
        for f in self.staged_files:
            f.unlink(missing_ok=True)
            f.with_suffix(".parquet.tmp").unlink(missing_ok=True)
        # Partition folders this run created, now empty: the store is left as it was.
        for d in reversed(self.created_dirs):
            with contextlib.suppress(OSError):  # not empty: another run's files
                d.rmdir()
        self.done = True


class ParquetOfflineStore:
    """Offline store in a folder of Parquet files (see the module docs for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def view_dir(self, view: FeatureView | str) -> Path:
        name = view if isinstance(view, str) else view.name
        return self.root / name

    def _manifest(self, view: FeatureView | str) -> dict[str, Any]:
        path = self.view_dir(view) / MANIFEST
        if not path.exists():
            return {"partitions": {}, "superseded": [], "run_id": None, "generation": 0}
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise StoreUnavailableError("Parquet offline store", str(path), f"cannot read the manifest: {err}") from err
        return data

    def watermark(self, view: FeatureView | str) -> datetime | None:
        """The newest event time any committed run published (recorded in the manifest with the
        files, so it is right even when the process died before the registry heard of the run)."""
        value = self._manifest(view).get("watermark")
        return datetime.fromisoformat(value) if value else None

    def remove_orphans(self, view: FeatureView) -> list[Path]:
        """Delete files no manifest refers to: what runs killed before commit or abort left.
        The caller holds :meth:`lock`, so no run is staging files at the same time."""
        base = self.view_dir(view)
        manifest = self._manifest(view)
        known = set(manifest["partitions"].values()) | set(manifest.get("superseded", []))
        removed = []
        for path in sorted(base.glob("date=*/*")):
            rel = f"{path.parent.name}/{path.name}"
            if path.is_file() and rel not in known:
                path.unlink()
                removed.append(path)
        for path in base.glob(f"{MANIFEST}.*.tmp"):
            path.unlink()
            removed.append(path)
        for d in base.glob("date=*"):
            with contextlib.suppress(OSError):  # not empty
                d.rmdir()
        return removed

    def files(self, view: FeatureView | str) -> list[Path]:
        """The Parquet files that make up the view's published rows, oldest date first."""
        manifest = self._manifest(view)
        base = self.view_dir(view)
        return [base / rel for _, rel in sorted(manifest["partitions"].items())]

    def read(self, view: FeatureView, start: datetime | None = None, end: datetime | None = None) -> pa.Table:
        """Published rows with event time in ``[start, end)`` (all when not given)."""
        files = self.files(view)
        start, end = _as_utc(start), _as_utc(end)
        if start is not None or end is not None:
            lo = start.date() if start else date.min
            hi = end.date() if end else date.max
            # The first folder below the view's is the date partition (``date=YYYY-MM-DD``), whatever
            # lies below it (the Hive store keeps one folder per run there).
            base = self.view_dir(view)
            files = [f for f in files if lo <= date.fromisoformat(f.relative_to(base).parts[0][5:]) <= hi]
        if not files:
            return view_schema(view).empty_table()
        table = pa.concat_tables([pq.read_table(f, schema=view_schema(view)) for f in files])
        ts = table.column(view.timestamp_field)
        mask = None
        if start is not None:
            mask = pc.greater_equal(ts, pa.scalar(start, ts.type))
        if end is not None:
            upper = pc.less(ts, pa.scalar(end, ts.type))
            mask = upper if mask is None else pc.and_(mask, upper)
        return table if mask is None else table.filter(mask)

    @contextmanager
    def lock(self, view: FeatureView) -> Iterator[None]:
        """Hold the view's publish lock (a file lock): runs of one view stage and commit one at a time."""
        d = self.view_dir(view)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def stage(
        self,
        view: FeatureView,
        rows: pa.Table,
        *,
        start: datetime | None,
        end: datetime | None,
        run_id: str | None = None,
    ) -> StagedPublish:
        """Write a run's rows (already conformed to the view's schema) as new partition files,
        invisible until committed. ``start``/``end`` is the run's window: its partitions are
        replaced. Without a window the run replaces the whole view."""
        run_id = run_id or str(uuid.uuid4())
        base = self.view_dir(view)
        base.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest(view)
        existing: dict[str, str] = manifest["partitions"]
        ts = rows.column(view.timestamp_field)
        days = pc.cast(ts, pa.date32())
        new_dates = {d.isoformat() for d in pc.unique(days).to_pylist() if d is not None}
        if start is None and end is None:
            affected = set(existing) | new_dates
        else:
            lo = (start or datetime.min.replace(tzinfo=UTC)).astimezone(UTC).date()
            hi = (end - timedelta(microseconds=1) if end else datetime.max.replace(tzinfo=UTC)).astimezone(UTC).date()
            affected = new_dates | {d for d in existing if lo <= date.fromisoformat(d) <= hi}
        staged = StagedPublish(self, view, run_id, {}, [], rows.num_rows, watermark=pc.max(ts).as_py())
        try:
            for day in sorted(affected):
                part = rows.filter(pc.equal(days, pa.scalar(date.fromisoformat(day), pa.date32())))
                if day in existing and (start is not None or end is not None):
                    old = pq.read_table(base / existing[day], schema=view_schema(view))
                    old_ts = old.column(view.timestamp_field)
                    keep = None
                    if start is not None:
                        keep = pc.less(old_ts, pa.scalar(start, old_ts.type))
                    if end is not None:
                        after = pc.greater_equal(old_ts, pa.scalar(end, old_ts.type))
                        keep = after if keep is None else pc.or_(keep, after)
                    if keep is not None:
                        part = pa.concat_tables([old.filter(keep), part])
                if part.num_rows == 0:
                    staged.removed_partitions.append(day)
                    continue
                rel = f"date={day}/{run_id}.parquet"
                path = base / rel
                if not path.parent.exists():
                    path.parent.mkdir(parents=True)
                    staged.created_dirs.append(path.parent)
                tmp = path.with_suffix(".parquet.tmp")
                staged.staged_files.append(path)  # before writing: abort removes a partial file too
                pq.write_table(part, tmp)
                os.replace(tmp, path)
                staged.new_partitions[day] = rel
        except BaseException:
            staged.abort()
            raise
        return staged

    def _commit(self, staged: StagedPublish) -> None:
        view = staged.view
        base = self.view_dir(view)
        # The caller holds self.lock(view).
        manifest = self._manifest(view)
        partitions: dict[str, str] = dict(manifest["partitions"])
        replaced = [partitions[d] for d in (*staged.new_partitions, *staged.removed_partitions) if d in partitions]
        for day in staged.removed_partitions:
            partitions.pop(day, None)
        partitions.update(staged.new_partitions)
        # Files replaced by the previous run are no longer referenced by any manifest a
        # reader can still hold: delete them now; keep the ones this run replaces until next time.
        for rel in manifest.get("superseded", []):
            (base / rel).unlink(missing_ok=True)
        previous = manifest.get("watermark")
        marks = [m for m in (staged.watermark, datetime.fromisoformat(previous) if previous else None) if m]
        new_manifest = {
            "generation": int(manifest.get("generation", 0)) + 1,
            "watermark": max(marks).isoformat() if marks else None,
            "run_id": staged.run_id,
            "updated_at": datetime.now(UTC).isoformat(),
            "partitions": dict(sorted(partitions.items())),
            "superseded": replaced,
        }
        tmp = base / f"{MANIFEST}.{staged.run_id}.tmp"
        tmp.write_text(json.dumps(new_manifest, indent=1))
        os.replace(tmp, base / MANIFEST)
