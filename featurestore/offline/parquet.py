"""The offline store on local Parquet files, partitioned by date and published atomically per run.

Layout of one view::

    <root>/<view>/date=2024-03-01/<run id>.parquet   one file per date partition and run
    <root>/<view>/date=2024-03-01/push-<id>.parquet  rows pushed that day, not yet compacted
    <root>/<view>/_manifest.json                      the files that make up the view now
    <root>/<view>/_intents/<run id>.parquet           entities a committed run must derive online
    <root>/<view>/_staging/<run id>/                  a run's scratch files (engines write here)

Readers use the manifest, which a run replaces in one ``os.replace``: they see all of a run or
none of it. A run rewrites exactly the date partitions its window touches (keeping rows of a
partition that fall outside the window), so re-running a window is idempotent and a backfill of
an older window leaves newer partitions alone. Files replaced by a run are deleted by the next
run, so a reader holding the previous manifest can still finish.

The manifest also lists the *pending intents* (see ``featurestore.offline``): the swap that
publishes a run records, in the same write, which entities online must be derived again. A
crash at any point therefore leaves either the old manifest (nothing published, nothing pending)
or the new one with its intent, which the next run of the view, ``featurestore repair`` or
``check-consistency --repair`` completes.

**Pushed rows** (``etl/push.py``) are published by the same swap: a push whose rows are all new
adds one small file per date to the manifest's ``pushed`` list, read with the partitions; a push
that replaces published rows (same entity and event time) rewrites those dates' partitions.
Pushed rows carry a ``__pushed_at`` column (readers select the view's columns and never see it),
so a later run that rewrites a date keeps them unless its own rows have the same entity and event
time: the source then wins. The next run of a date, or :meth:`ParquetOfflineStore.compact`,
folds the date's push files into its partition.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.definitions import FeatureView
from featurestore.errors import StoreUnavailableError
from featurestore.offline import LatestRows, PublishIntent
from featurestore.schema import view_schema
from featurestore.sql import cursor as duckdb_cursor
from featurestore.sql import literal as sql_literal
from featurestore.sql import quote as _quote

MANIFEST = "_manifest.json"
MAX_PUSH_FILES = 32
"""Push files a date may hold: the push that would add one more folds them into the partition."""
PUSHED_AT = "__pushed_at"
"""The column marking pushed rows in the view's files: when they were pushed (UTC)."""
INTENTS = "_intents"
STAGING = "_staging"
PARTITION_COLUMN = "date"


def _as_utc(when: datetime | None) -> datetime | None:
    """``when`` in UTC; a naive time is taken as UTC (as Arrow does), never as the machine's zone."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _files_sql(files: Sequence[Path]) -> str:
    listed = ", ".join(sql_literal(f) for f in files)
    return f"read_parquet([{listed}], union_by_name = true)"


def conform_file_table(view: FeatureView, table: pa.Table) -> pa.Table:
    """A table read from a view's file, in the view's current schema: a feature the file was
    written without (added to the view since) is null; a column the view no longer has is dropped."""
    schema = view_schema(view)
    columns = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            columns.append(col if col.type == f.type else pc.cast(col, f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_file(view: FeatureView, path: Path) -> pa.Table:
    """One of the view's files, in the view's current schema (see :func:`conform_file_table`)."""
    return conform_file_table(view, pq.read_table(path))


def read_marked(view: FeatureView, path: Path) -> pa.Table:
    """One of the view's files in its current schema plus :data:`PUSHED_AT` (null for rows a run
    computed): what a rewrite of the file's date must carry over."""
    table = pq.read_table(path)
    marker = table.column(PUSHED_AT) if PUSHED_AT in table.column_names else pa.nulls(table.num_rows, _MARKER_TYPE)
    return conform_file_table(view, table).append_column(pa.field(PUSHED_AT, _MARKER_TYPE), marker.cast(_MARKER_TYPE))


_MARKER_TYPE = pa.timestamp("us", tz="UTC")


def with_marker(table: pa.Table, pushed_at: datetime | None) -> pa.Table:
    """``table`` (the view's columns) with :data:`PUSHED_AT` set to ``pushed_at`` (None: computed rows)."""
    if PUSHED_AT in table.column_names:
        return table
    marker = pa.array([pushed_at] * table.num_rows, _MARKER_TYPE)
    return table.append_column(pa.field(PUSHED_AT, _MARKER_TYPE), marker)


@dataclass
class ParquetStagedPublish:
    """A run's files, written but not yet visible. :meth:`commit` makes them visible at once and
    records the run's intent; :meth:`abort` deletes them and leaves the store as it was;
    :meth:`revert`, after a commit, puts the previous partitions back."""

    store: ParquetOfflineStore
    view: FeatureView
    run_id: str
    window_start: datetime | None
    window_end: datetime | None
    new_partitions: dict[str, str] = field(default_factory=dict)
    removed_partitions: list[str] = field(default_factory=list)
    rows: int = 0
    rows_before: int = 0
    entities: int = 0
    keys_file: Path | None = None
    watermark: datetime | None = None
    staged_files: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    everything: bool = False
    """The view's online values were never derived completely: the intent is every entity."""
    new_pushed: dict[str, str] = field(default_factory=dict)
    """A push's new files, by date: added to the manifest's ``pushed`` list."""
    compacted: dict[str, list[str]] = field(default_factory=dict)
    """Push files of a date whose rows the new partition of that date now holds."""
    since: datetime | None = None
    """The intent's entities have no row changed before this time (a push): deriving them online
    reads only the partitions from its date on."""
    push: bool = False
    """A push: its commit keeps the files earlier commits replaced (a reader may still hold
    them; pushes come seconds apart), for the next run or compaction to delete."""
    committed: bool = False
    done: bool = False
    previous: dict[str, Any] | None = None

    def commit(self) -> PublishIntent:
        intent = self.store._commit(self)
        self.committed = self.done = True
        return intent

    def abort(self) -> None:
        """Remove the staged files; nothing to do once committed (they are published) or aborted."""
        if self.done or self.committed:
            return
        for f in self.staged_files:
            f.unlink(missing_ok=True)
            f.with_suffix(".parquet.tmp").unlink(missing_ok=True)
        if self.keys_file is not None:
            self.keys_file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # other runs' intents are pending in it
                self.keys_file.parent.rmdir()
        # Partition folders this run created, now empty: the store is left as it was.
        for d in reversed(self.created_dirs):
            with contextlib.suppress(OSError):  # not empty: another run's files
                d.rmdir()
        self.done = True

    def revert(self) -> None:
        """Undo a committed publish: the partitions before the run are published again (their
        files are kept until the next commit) and the run's intent stays pending, so online is
        derived again from them. Before a commit, the same as :meth:`abort`."""
        if not self.committed:
            self.abort()
            return
        self.store._revert(self)


class ParquetOfflineStore:
    """Offline store in a folder of Parquet files (see the module docs for the layout)."""

    accepts_pushes = True
    """Whether :meth:`stage_push` may publish pushed rows (the Hive store is published by Spark only)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def view_dir(self, view: FeatureView | str) -> Path:
        name = view if isinstance(view, str) else view.name
        return self.root / name

    def partition_file(self, day: str, run_id: str) -> str:
        """Where a run's file of one date partition goes, relative to the view's folder."""
        return f"{PARTITION_COLUMN}={day}/{run_id}.parquet"

    # ------------------------------------------------------------------ the manifest

    def _manifest(self, view: FeatureView | str) -> dict[str, Any]:
        path = self.view_dir(view) / MANIFEST
        if not path.exists():
            return {"partitions": {}, "pushed": {}, "superseded": [], "pending": [], "run_id": None, "generation": 0}
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise StoreUnavailableError("Parquet offline store", str(path), f"cannot read the manifest: {err}") from err
        data.setdefault("pending", [])
        data.setdefault("superseded", [])
        data.setdefault("pushed", {})
        return data

    def _write_manifest(self, view: FeatureView, manifest: dict[str, Any], tag: str) -> None:
        base = self.view_dir(view)
        tmp = base / f"{MANIFEST}.{tag}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, base / MANIFEST)

    def watermark(self, view: FeatureView | str) -> datetime | None:
        """The newest event time any committed run published (recorded in the manifest with the
        files, so it is right even when the process died before the registry heard of the run)."""
        value = self._manifest(view).get("watermark")
        return datetime.fromisoformat(value) if value else None

    def generation(self, view: FeatureView | str) -> int:
        """How many times the view's manifest has been replaced (a publish, a settle, a revert)."""
        return int(self._manifest(view).get("generation", 0))

    def pending(self, view: FeatureView) -> list[PublishIntent]:
        """Committed runs whose online derivation is not known to be complete, oldest first."""
        base = self.view_dir(view)
        out = []
        for item in self._manifest(view)["pending"]:
            start, end = item.get("window_start"), item.get("window_end")
            out.append(
                PublishIntent(
                    run_id=item["run_id"],
                    view=view.name,
                    keys=base / item["keys"] if item.get("keys") else None,
                    everything=bool(item.get("everything", False)),
                    entities=int(item.get("entities", 0)),
                    window_start=datetime.fromisoformat(start) if start else None,
                    window_end=datetime.fromisoformat(end) if end else None,
                    committed_at=datetime.fromisoformat(item["committed_at"]),
                    since=datetime.fromisoformat(item["since"]) if item.get("since") else None,
                )
            )
        return out

    def online_complete(self, view: FeatureView) -> bool:
        """Whether online has been derived for every entity of the view since it was last offline
        only (false for a view never derived, and for manifests of releases before intents)."""
        return bool(self._manifest(view).get("online_complete", False))

    def settle(self, view: FeatureView, run_id: str, *, online_complete: bool) -> None:
        """Forget a pending intent once online holds what offline says for its entities
        (``online_complete``: and for every entity, as after deriving an intent of all of them)."""
        manifest = self._manifest(view)
        kept = [p for p in manifest["pending"] if p["run_id"] != run_id]
        gone = [p for p in manifest["pending"] if p["run_id"] == run_id]
        if not gone and manifest.get("online_complete", False) == online_complete:
            return
        manifest["pending"] = kept
        manifest["online_complete"] = online_complete
        manifest["generation"] = int(manifest.get("generation", 0)) + 1
        self._write_manifest(view, manifest, f"settle-{run_id}")
        for p in gone:
            if p.get("keys"):
                (self.view_dir(view) / p["keys"]).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: intents still pending
            (self.view_dir(view) / INTENTS).rmdir()

    # ------------------------------------------------------------------ reading

    def files(self, view: FeatureView | str) -> list[Path]:
        """The Parquet files that make up the view's published rows, oldest date first: each
        date's partition, then the files pushed that date and not yet compacted."""
        manifest = self._manifest(view)
        base = self.view_dir(view)
        pushed: dict[str, list[str]] = manifest["pushed"]
        out = []
        for day in sorted(set(manifest["partitions"]) | set(pushed)):
            if day in manifest["partitions"]:
                out.append(base / manifest["partitions"][day])
            out.extend(base / rel for rel in pushed.get(day, []))
        return out

    def publisher(self, view: FeatureView | str, path: Path) -> str:
        """The id of the run, push or compaction that published ``path``, one of the view's
        :meth:`files`: its partition file (or, in a Hive store, folder) is named by it, a push
        file ``push-<id>.parquet``."""
        name = path.relative_to(self.view_dir(view)).parts[1]
        name = name.removesuffix(".parquet")
        return name.removeprefix("push-")

    def pushed_files(self, view: FeatureView | str) -> dict[str, list[str]]:
        """Files pushed and not yet compacted, by date (relative to the view's folder)."""
        return {d: list(f) for d, f in self._manifest(view)["pushed"].items()}

    def _day_files(self, view: FeatureView, manifest: dict[str, Any], day: str) -> list[Path]:
        base = self.view_dir(view)
        part = manifest["partitions"].get(day)
        return [*([base / part] if part else []), *(base / rel for rel in manifest["pushed"].get(day, []))]

    def _files_between(self, view: FeatureView, start: datetime | None, end: datetime | None) -> list[Path]:
        """The files of the dates from ``start``'s to ``end``'s (each date's partition, then its
        push files), chosen by the manifest's dates without listing the others."""
        manifest = self._manifest(view)
        lo = start.date().isoformat() if start else ""
        hi = end.date().isoformat() if end else "~"
        days = sorted(d for d in set(manifest["partitions"]) | set(manifest["pushed"]) if lo <= d <= hi)
        return [f for d in days for f in self._day_files(view, manifest, d)]

    def read(self, view: FeatureView, start: datetime | None = None, end: datetime | None = None) -> pa.Table:
        """Published rows with event time in ``[start, end)`` (all when not given), in the view's
        current schema (features added since a file was written read as null)."""
        start, end = _as_utc(start), _as_utc(end)
        files = self._files_between(view, start, end)
        if not files:
            return view_schema(view).empty_table()
        table = pa.concat_tables([read_file(view, f) for f in files])
        mask = _window_mask(table.column(view.timestamp_field), start, end)
        return table if mask is None else table.filter(mask)

    def latest(
        self, view: FeatureView, keys: Path | None, *, batch_rows: int = 10_000, since: datetime | None = None
    ) -> Iterator[LatestRows]:
        """The latest published row of every entity in ``keys`` (a Parquet file of join keys; every
        entity offline has when None), in batches; entities offline has no row of come back in
        ``removed``. What online must hold for those entities. ``since``: every entity in ``keys``
        has a row at or after it (pushed rows): only the dates from its date on are read."""
        files = self.files(view) if since is None else self._files_between(view, _as_utc(since), None)
        key_cols = ", ".join(_quote(k) for k in view.join_keys)
        ts = _quote(view.timestamp_field)
        schema = view_schema(view)

        def query(columns: list[str]) -> str:
            selected = ", ".join(f"t.{_quote(c)}" for c in columns)

            def newest(wanted: str | None) -> str:
                # Each entity's newest time by a hash aggregate over two columns, then its row by a
                # join on (keys, time): 2-5x faster than ranking every row with a window, and its
                # memory is the entities', not the rows'. The window left ranks ties only.
                only = f" SEMI JOIN {wanted} w USING ({key_cols})" if wanted else ""
                stamps = f"SELECT {key_cols}, max({ts}) AS __newest FROM {_files_sql(files)}{only} GROUP BY ALL"
                rank = ", ".join(f"t.{_quote(k)}" for k in view.join_keys)
                return (
                    f"SELECT {selected} FROM {_files_sql(files)} t JOIN ({stamps}) m USING ({key_cols}) "
                    f"WHERE t.{ts} = m.__newest QUALIFY row_number() OVER (PARTITION BY {rank} ORDER BY t.{ts} DESC) = 1"
                )

            if keys is None:
                return f"SELECT *, false AS __gone FROM ({newest(None)})"
            wanted = _files_sql([keys])
            if not files:
                return f"SELECT {key_cols}, true AS __gone FROM {wanted}"
            rest = ", ".join(f"r.{_quote(c)}" for c in columns if c not in view.join_keys)
            return (
                f"SELECT {', '.join(f'k.{_quote(c)}' for c in view.join_keys)}, {rest}, "
                f"r.{ts} IS NULL AS __gone FROM {wanted} k LEFT JOIN ({newest(wanted)}) r USING ({key_cols})"
            )

        if keys is None and not files:
            return
        con = duckdb_cursor()
        try:
            columns = [f.name for f in schema]
            try:
                relation = con.sql(query(columns))
            except duckdb.BinderException:
                # A feature no file has yet (added to the view since): select the columns some
                # file has (the others read as null). Found only then: reading every file's
                # schema first cost ~0.2 ms a file, 1,063 times over for a project of daily files.
                available = set().union(*(pq.read_schema(f).names for f in files))
                relation = con.sql(query([c for c in columns if c in available]))
            reader = relation.to_arrow_reader(batch_rows)
            for batch in reader:
                table = pa.Table.from_batches([batch])
                gone = table.column("__gone")
                present = table.filter(pc.invert(gone))
                removed = table.filter(gone).select(list(view.join_keys))
                yield LatestRows(
                    rows=conform_file_table(view, present.drop_columns(["__gone"])),
                    removed=removed.cast(pa.schema([schema.field(k) for k in view.join_keys])),
                )
        finally:
            con.close()

    # ------------------------------------------------------------------ publishing

    def lock_file(self, view: FeatureView, kind: str = "") -> Path:
        """The file whose lock is the view's publish lock (:meth:`lock`), or its run lock (``kind``
        ``run``: :meth:`run_lock`)."""
        d = self.view_dir(view)
        d.mkdir(parents=True, exist_ok=True)
        return d / (f".{kind}.lock" if kind else ".lock")

    @contextmanager
    def run_lock(self, view: FeatureView) -> Iterator[None]:
        """Hold the view's run lock (a file lock): one run of a view at a time, from its start to
        its outcome. A run takes the publish lock (:meth:`lock`) inside it, only while it recovers
        and while it stages, commits and derives online: pushes publish while it computes."""
        with open(self.lock_file(view, "run"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def lock(self, view: FeatureView, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the view's publish lock (a file lock): whatever changes the view's manifest (a
        run's recovery and publish, a push, a settle, a repair, a compaction) does so one at a
        time. ``timeout``: seconds to wait for it (None: as long as it takes), then
        :class:`StoreUnavailableError`."""
        path = self.lock_file(view)
        with open(path, "w") as lock:
            if timeout is None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise StoreUnavailableError(
                                "offline store",
                                str(self.view_dir(view)),
                                f"feature view '{view.name}' is being published by a run, which held its lock for "
                                f"{timeout:g} s; try again when the run is over",
                            ) from None
                        time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def scratch_dir(self, view: FeatureView, run_id: str) -> Path:
        """A folder for a run's engine to write into, beside the view's partitions (so its files
        move into place with a rename). Removed by :meth:`recover` if the run dies."""
        path = self.view_dir(view) / STAGING / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def recover(self, view: FeatureView) -> list[Path]:
        """Delete what runs killed before their commit left: scratch folders, staged files and
        intents no manifest refers to. The caller holds :meth:`lock`."""
        removed = self.remove_orphans(view)
        staging = self.view_dir(view) / STAGING
        if staging.exists():
            removed.extend(sorted(staging.iterdir()))
            shutil.rmtree(staging, ignore_errors=True)
        return removed

    def remove_orphans(self, view: FeatureView) -> list[Path]:
        """Delete files no manifest refers to: what runs killed before commit or abort left.
        The caller holds :meth:`lock`, so no run is staging files at the same time."""
        base = self.view_dir(view)
        manifest = self._manifest(view)
        known = set(manifest["partitions"].values()) | set(manifest["superseded"])
        known |= {rel for files in manifest["pushed"].values() for rel in files}
        removed = []
        for path in sorted(base.glob(f"{PARTITION_COLUMN}=*/*")):
            rel = f"{path.parent.name}/{path.name}"
            if path.is_file() and rel not in known:
                path.unlink()
                removed.append(path)
        intents = {p["keys"] for p in manifest["pending"]}
        for path in sorted(base.glob(f"{INTENTS}/*")):
            if f"{INTENTS}/{path.name}" not in intents:
                path.unlink()
                removed.append(path)
        for path in base.glob(f"{MANIFEST}.*.tmp"):
            path.unlink()
            removed.append(path)
        for d in base.glob(f"{PARTITION_COLUMN}=*"):
            with contextlib.suppress(OSError):  # not empty
                d.rmdir()
        return removed

    def stage(
        self,
        view: FeatureView,
        partitions: Mapping[str, Path],
        *,
        start: datetime | None,
        end: datetime | None,
        run_id: str,
        merge: bool = False,
    ) -> ParquetStagedPublish:
        """Make the engine's files (``partitions``: date → a Parquet file of the run's rows of
        that date, in the view's schema, all in ``[start, end)``) the run's partition files,
        invisible until committed. The window's partitions are replaced: rows of a boundary
        partition outside the window are kept; with ``merge``, published rows of the window are
        kept too unless the run has a row of the same entity and event time (a backfill that
        must not delete history the source no longer holds). Without a window the run replaces
        the whole view. Also writes the run's intent (its entities) and counts the window's rows
        before and after."""
        start, end = _as_utc(start), _as_utc(end)
        base = self.view_dir(view)
        base.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest(view)
        existing: dict[str, str] = manifest["partitions"]
        pushed: dict[str, list[str]] = manifest["pushed"]
        days = set(existing) | set(pushed)
        if start is None and end is None:
            window_days = days
        else:
            lo = start.date() if start else date.min
            hi = (end - timedelta(microseconds=1)).date() if end else date.max
            window_days = {d for d in days if lo <= date.fromisoformat(d) <= hi}
        # Merging, only the days the run has rows of change; the others are kept as they are.
        replaced_days = {d for d in partitions if d in days} if merge else window_days
        staged = ParquetStagedPublish(self, view, run_id, start, end)
        old_files = [f for d in sorted(window_days) for f in self._day_files(view, manifest, d)]
        new_files = [partitions[d] for d in sorted(partitions)]
        staged.everything = view.online and not self.online_complete(view)
        try:
            self._count_and_intent(staged, old_files, new_files, merge=merge)
            for day in sorted(set(partitions) | replaced_days):
                self._stage_partition(
                    staged, day, partitions.get(day), existing.get(day), pushed.get(day, []), merge=merge
                )
        except BaseException:
            staged.abort()
            raise
        return staged

    def stage_push(self, view: FeatureView, rows: pa.Table, *, run_id: str) -> ParquetStagedPublish:
        """Stage pushed ``rows`` (the view's schema, validated: one row per entity and event
        time), invisible until committed. A date none of whose published rows has the entity and
        event time of a pushed row gets a new push file; a date where some do is rewritten with
        the pushed rows replacing those (and its push files folded in), as is a date that holds
        :data:`MAX_PUSH_FILES` push files already. The intent is the pushed entities, each with a
        row at or after the oldest pushed time (``since``)."""
        base = self.view_dir(view)
        base.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest(view)
        table = with_marker(rows, datetime.now(UTC))
        ts = table.column(view.timestamp_field)
        days = pc.strftime(ts, format="%Y-%m-%d")
        staged = ParquetStagedPublish(self, view, run_id, None, None, push=True)
        staged.everything = view.online and not self.online_complete(view)
        staged.rows = table.num_rows
        if table.num_rows:
            low, high = pc.min_max(ts).values()
            staged.since, staged.watermark = _as_utc(low.as_py()), _as_utc(high.as_py())
        try:
            for day in sorted(set(days.to_pylist())):
                part = table.filter(pc.equal(days, day))
                existing = self._day_files(view, manifest, day)
                replaced = _overlapping(view, existing, part) if existing else 0
                if replaced or len(manifest["pushed"].get(day, [])) >= MAX_PUSH_FILES:
                    previous = pa.concat_tables([read_marked(view, f) for f in existing])
                    kept = _not_recomputed(view, previous, part)
                    staged.rows_before += replaced
                    self.write_partition(staged, day, pa.concat_tables([kept, part]), None)
                    staged.compacted[day] = list(manifest["pushed"].get(day, []))
                else:
                    self._write_push_file(staged, day, part)
            if view.online and not staged.everything and table.num_rows:
                staged.keys_file = base / INTENTS / f"{run_id}.parquet"
                staged.keys_file.parent.mkdir(exist_ok=True)
                keys = table.select(list(view.join_keys)).group_by(list(view.join_keys)).aggregate([])
                pq.write_table(keys, staged.keys_file)
                staged.entities = keys.num_rows
        except BaseException:
            staged.abort()
            raise
        return staged

    def _write_push_file(self, staged: ParquetStagedPublish, day: str, part: pa.Table) -> None:
        base = self.view_dir(staged.view)
        rel = f"{PARTITION_COLUMN}={day}/push-{staged.run_id}.parquet"
        target = base / rel
        if not target.parent.exists():
            target.parent.mkdir()
            staged.created_dirs.append(target.parent)
        staged.staged_files.append(target)
        tmp = target.with_suffix(".parquet.tmp")
        pq.write_table(part, tmp)
        os.replace(tmp, target)
        staged.new_pushed[day] = rel

    def compact(self, view: FeatureView, *, run_id: str) -> ParquetStagedPublish | None:
        """Stage each date's push files folded into its partition (None: nothing to compact).
        The rows do not change, so the commit records no intent. The caller holds :meth:`lock`."""
        manifest = self._manifest(view)
        if not manifest["pushed"]:
            return None
        staged = ParquetStagedPublish(self, view, run_id, None, None)
        try:
            for day, pushed in sorted(manifest["pushed"].items()):
                files = self._day_files(view, manifest, day)
                staged.rows += sum(pq.read_metadata(self.view_dir(view) / rel).num_rows for rel in pushed)
                self.write_partition(staged, day, pa.concat_tables([read_marked(view, f) for f in files]), None)
                staged.compacted[day] = list(pushed)
        except BaseException:
            staged.abort()
            raise
        return staged

    def _count_and_intent(
        self, staged: ParquetStagedPublish, old_files: list[Path], new_files: list[Path], *, merge: bool
    ) -> None:
        """Rows of the window before and after the run, its watermark, and its intent file: the
        entities of the window's rows before or after (what the run may change online; with
        ``merge``, only those of its new rows: the others keep their rows)."""
        view = staged.view
        ts = _quote(view.timestamp_field)
        keys = ", ".join(_quote(k) for k in view.join_keys)
        conditions = []
        params: dict[str, Any] = {}
        if staged.window_start is not None:
            conditions.append(f"{ts} >= $start")
            params["start"] = staged.window_start
        if staged.window_end is not None:
            conditions.append(f"{ts} < $end")
            params["end"] = staged.window_end
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        con = duckdb_cursor()
        try:
            parts = []
            if old_files:
                old = f"SELECT {keys} FROM {_files_sql(old_files)}{where}"
                computed = old
                # Pushed rows are kept: not counted. Their marker column exists when some file has
                # it (read by name); asked of DuckDB instead of each file's schema (~0.2 ms a file).
                marked = f"{computed} {'AND' if where else 'WHERE'} {_quote(PUSHED_AT)} IS NULL"
                try:
                    row = con.execute(f"SELECT count(*) FROM ({marked})", params).fetchone()
                except duckdb.BinderException:  # no file has the marker: no pushed row
                    row = con.execute(f"SELECT count(*) FROM ({computed})", params).fetchone()
                staged.rows_before = int(row[0]) if row else 0
                if not merge:
                    parts.append(old)
            if new_files:
                row = con.execute(f"SELECT count(*), max({ts}) FROM {_files_sql(new_files)}").fetchone()
                staged.rows = int(row[0]) if row else 0
                staged.watermark = _as_utc(row[1]) if row and row[1] is not None else None
                parts.append(f"SELECT {keys} FROM {_files_sql(new_files)}")
            if not view.online or not parts or staged.everything:
                return
            staged.keys_file = self.view_dir(view) / INTENTS / f"{staged.run_id}.parquet"
            staged.keys_file.parent.mkdir(exist_ok=True)
            union = " UNION ALL ".join(f"({p})" for p in parts)
            target = sql_literal(staged.keys_file)
            only_old = params if old_files and not merge else {}
            con.execute(f"COPY (SELECT DISTINCT * FROM ({union})) TO {target} (FORMAT parquet)", only_old)
            row = con.execute(f"SELECT count(*) FROM read_parquet({target})").fetchone()
            staged.entities = int(row[0]) if row else 0
        finally:
            con.close()

    def _stage_partition(
        self,
        staged: ParquetStagedPublish,
        day: str,
        new: Path | None,
        old: str | None,
        pushed: list[str],
        *,
        merge: bool,
    ) -> None:
        """One date partition of the run: the run's rows of the day, plus the published rows of
        the day it keeps (outside the window; pushed rows the run has no row of the same entity
        and event time of; with ``merge``, every row not recomputed). The day's push files are
        folded in (compacted)."""
        view, base = staged.view, self.view_dir(staged.view)
        keep: pa.Table | None = None
        marked = bool(pushed) or (old is not None and PUSHED_AT in pq.read_schema(base / old).names)
        windowed = staged.window_start is not None or staged.window_end is not None
        if marked:
            olds = [base / rel for rel in ([old] if old else []) + pushed]
            previous = pa.concat_tables([read_marked(view, f) for f in olds])
            inside = _window_mask(previous.column(view.timestamp_field), staged.window_start, staged.window_end)
            fresh = None if new is None else pq.read_table(new)
            if merge:
                keep = previous if fresh is None else _not_recomputed(view, previous, fresh)
            else:
                # Rows outside the window stay as they are (pushed or not); inside it, the
                # pushed rows the run has no row of the same entity and time of.
                was_pushed = pc.is_valid(previous.column(PUSHED_AT))
                kept_pushed = previous.filter(was_pushed if inside is None else pc.and_(was_pushed, inside))
                if fresh is not None:
                    kept_pushed = _not_recomputed(view, kept_pushed, fresh)
                outside = previous.filter(pc.invert(inside)) if inside is not None else None
                parts = [t for t in (outside, kept_pushed) if t is not None and t.num_rows]
                keep = pa.concat_tables(parts) if parts else None
            if keep is not None and not pc.any(pc.is_valid(keep.column(PUSHED_AT))).as_py():
                keep = keep.drop_columns([PUSHED_AT])  # no pushed row left: the plain schema again
            staged.compacted[day] = list(pushed)
        elif old is not None and (merge or windowed):
            previous = read_file(view, base / old)
            inside = _window_mask(previous.column(view.timestamp_field), staged.window_start, staged.window_end)
            if merge and new is not None:
                keep = _not_recomputed(view, previous, pq.read_table(new))
            elif merge:
                keep = previous
            elif inside is not None:
                keep = previous.filter(pc.invert(inside))
        if keep is not None and keep.num_rows == 0:
            keep = None
        if keep is None and (new is None or pq.read_metadata(new).num_rows == 0):
            if old is not None:
                staged.removed_partitions.append(day)
            return
        self.write_partition(staged, day, keep, new)

    def write_partition(self, staged: ParquetStagedPublish, day: str, keep: pa.Table | None, new: Path | None) -> None:
        """Stage the partition file of ``day``: the rows of ``keep`` (the view's columns, maybe
        with :data:`PUSHED_AT`) and of the file ``new`` (renamed into place when alone)."""
        view, base = staged.view, self.view_dir(staged.view)
        rel = self.partition_file(day, staged.run_id)
        target = base / rel
        for d in reversed([*target.relative_to(base).parents][:-1]):
            if not (base / d).exists():
                (base / d).mkdir()
                staged.created_dirs.append(base / d)
        staged.staged_files.append(target)  # before writing: abort removes a partial file too
        if keep is None and new is not None:
            os.replace(new, target)  # the engine's file as it is: same folder tree, a rename
        else:
            fresh = None if new is None else read_file(view, new)
            if keep is not None and fresh is not None and PUSHED_AT in keep.column_names:
                fresh = with_marker(fresh, None)
            parts = [t for t in (keep, fresh) if t is not None]
            tmp = target.with_suffix(".parquet.tmp")
            pq.write_table(pa.concat_tables(parts), tmp)
            os.replace(tmp, target)
        staged.new_partitions[day] = rel

    def _commit(self, staged: ParquetStagedPublish) -> PublishIntent:
        view = staged.view
        base = self.view_dir(view)
        # The caller holds self.lock(view).
        manifest = self._manifest(view)
        staged.previous = json.loads(json.dumps(manifest))
        partitions: dict[str, str] = dict(manifest["partitions"])
        replaced = [partitions[d] for d in (*staged.new_partitions, *staged.removed_partitions) if d in partitions]
        for day in staged.removed_partitions:
            partitions.pop(day, None)
        partitions.update(staged.new_partitions)
        pushed: dict[str, list[str]] = {d: list(f) for d, f in manifest["pushed"].items()}
        for day, absorbed in staged.compacted.items():
            left = [rel for rel in pushed.get(day, []) if rel not in absorbed]
            replaced.extend(rel for rel in pushed.get(day, []) if rel in absorbed)
            if left:
                pushed[day] = left
            else:
                pushed.pop(day, None)
        for day, rel in staged.new_pushed.items():
            pushed.setdefault(day, []).append(rel)
        # Files replaced by the previous run are no longer referenced by any manifest a
        # reader can still hold: delete them now; keep the ones this run replaces until next time.
        # A push deletes nothing: it comes seconds after the last commit, when readers of the
        # manifest before it may still be reading (runs and compactions come minutes apart).
        if staged.push:
            replaced = [*manifest["superseded"], *replaced]
        else:
            for rel in manifest["superseded"]:
                (base / rel).unlink(missing_ok=True)
        previous = manifest.get("watermark")
        marks = [m for m in (staged.watermark, datetime.fromisoformat(previous) if previous else None) if m]
        now = datetime.now(UTC)
        pending = list(manifest["pending"])
        intent = PublishIntent(
            run_id=staged.run_id,
            view=view.name,
            keys=None if staged.everything else staged.keys_file,
            entities=staged.entities,
            window_start=staged.window_start,
            window_end=staged.window_end,
            committed_at=now,
            everything=staged.everything,
            since=staged.since,
        )
        if staged.everything or staged.keys_file is not None:
            pending.append(
                {
                    "run_id": staged.run_id,
                    "everything": staged.everything,
                    "keys": None if intent.keys is None else f"{INTENTS}/{intent.keys.name}",
                    "entities": staged.entities,
                    "window_start": staged.window_start.isoformat() if staged.window_start else None,
                    "window_end": staged.window_end.isoformat() if staged.window_end else None,
                    "committed_at": now.isoformat(),
                    "since": staged.since.isoformat() if staged.since else None,
                }
            )
        new_manifest = {
            "generation": int(manifest.get("generation", 0)) + 1,
            "watermark": max(marks).isoformat() if marks else None,
            "run_id": staged.run_id,
            "updated_at": now.isoformat(),
            "partitions": dict(sorted(partitions.items())),
            "pushed": dict(sorted(pushed.items())),
            "superseded": replaced,
            "pending": pending,
            # Kept while the view stays online; an offline-only view's next derivation is of all.
            "online_complete": bool(manifest.get("online_complete", False)) and view.online,
        }
        self._write_manifest(view, new_manifest, staged.run_id)
        staged.committed = True  # at once: an interruption from here on must not delete these files
        return intent

    def _revert(self, staged: ParquetStagedPublish) -> None:
        previous = staged.previous or {}
        manifest = self._manifest(staged.view)
        reverted = {
            "generation": int(manifest.get("generation", 0)) + 1,
            "watermark": previous.get("watermark"),
            "run_id": previous.get("run_id"),
            "updated_at": datetime.now(UTC).isoformat(),
            "partitions": previous.get("partitions", {}),
            "pushed": previous.get("pushed", {}),
            # The run's own files: unreferenced now, deleted at the next commit (a reader may
            # still hold the manifest that named them).
            "superseded": sorted(
                set(previous.get("superseded", []))
                | (
                    {*staged.new_partitions.values(), *staged.new_pushed.values()}
                    - set(previous.get("partitions", {}).values())
                )
            ),
            # The run's rows are gone again: its entities' latest rows may now be older than its
            # ``since``, so their derivation reads every date.
            "pending": [
                {k: v for k, v in p.items() if k != "since"} if p["run_id"] == staged.run_id else p
                for p in manifest["pending"]
            ],
            "online_complete": manifest.get("online_complete", False),
        }
        self._write_manifest(staged.view, reverted, f"revert-{staged.run_id}")


def _window_mask(
    ts: pa.ChunkedArray | pa.Array, start: datetime | None, end: datetime | None
) -> pa.ChunkedArray | pa.Array | None:
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, pa.scalar(start, ts.type))
    if end is not None:
        upper = pc.less(ts, pa.scalar(end, ts.type))
        mask = upper if mask is None else pc.and_(mask, upper)
    return mask


def _overlapping(view: FeatureView, files: Sequence[Path], rows: pa.Table) -> int:
    """How many published rows in ``files`` have the entity and event time of a row of ``rows``."""
    on = ", ".join(_quote(c) for c in (*view.join_keys, view.timestamp_field))
    con = duckdb_cursor()
    try:
        con.register("pushed", rows.select([*view.join_keys, view.timestamp_field]))
        row = con.execute(f"SELECT count(*) FROM {_files_sql(files)} t SEMI JOIN pushed USING ({on})").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _not_recomputed(view: FeatureView, previous: pa.Table, new: pa.Table) -> pa.Table:
    """Rows of ``previous`` whose (keys, event time) ``new`` has no row of."""
    on = [*view.join_keys, view.timestamp_field]
    marker = new.select(on).append_column("__new", pa.array([True] * new.num_rows, pa.bool_()))
    joined = previous.join(marker, keys=on, join_type="left outer")
    kept = joined.filter(pc.is_null(joined.column("__new"))).drop_columns(["__new"])
    return kept.select(previous.column_names).cast(previous.schema)
