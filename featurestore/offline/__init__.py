"""Offline stores: every computed row of every feature view, for training sets and analysis.

A run publishes through the protocol below, written once in ``etl/runs.py`` for every engine:

1. ``run_lock(view)``: one run of a view at a time, from start to end; ``lock(view)``, the
   publish lock, around every change of the manifest (steps 2-5, pushes, repairs), so pushes
   publish while a run computes.
2. ``recover(view)``: delete what killed runs left unpublished (staged files, scratch folders)
   and bring any external catalog (the Hive metastore) in line with the manifest.
3. ``stage(view, partitions, ...)``: the engine's per-date files become the run's partition
   files, invisible to readers. The store also works out which entities the run may change
   online (those in the window's published rows before the run and in its new rows): the run's
   *intent*, written to a file beside the manifest.
4. ``StagedPublish.commit()``: one atomic manifest swap publishes the partitions *and* records
   the intent as pending. A crash after it leaves the intent for the next run or a repair.
5. The run derives online from offline for the intent's entities (``latest``), then
   ``settle(view, run_id)`` removes the intent. ``StagedPublish.revert()`` puts the previous
   partitions back (the intent stays pending, so online is re-derived from them).

Nothing outside this package reads or writes a manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from featurestore.definitions import FeatureView


@dataclass(frozen=True)
class PublishIntent:
    """A committed run whose online derivation is not known to be complete: the entities in
    ``keys`` (a Parquet file of the view's join keys) must be set online to their latest offline
    row, or removed where offline has none."""

    run_id: str
    view: str
    keys: Path | None
    """None: no entity (a window empty before and after), unless ``everything``."""
    entities: int
    window_start: datetime | None
    window_end: datetime | None
    committed_at: datetime
    everything: bool = False
    """Every entity offline has: the first derivation of a view, or after it was offline only."""
    since: datetime | None = None
    """Each entity in ``keys`` has a row at or after this time (a push): deriving them reads
    only the dates from it on."""

    @property
    def derive_keys(self) -> Path | None:
        """What ``derive`` takes: the keys file, or None for every entity."""
        return None if self.everything else self.keys

    @property
    def derive_since(self) -> datetime | None:
        """What ``derive`` takes as ``since``: None (every date) unless the intent is a keys
        file of entities that each have a row from ``since`` on (a push's)."""
        return None if self.derive_keys is None else self.since

    @property
    def empty(self) -> bool:
        return not self.everything and (self.keys is None or self.entities == 0)


@dataclass(frozen=True)
class LatestRows:
    """One batch of an online derivation: ``rows`` (the latest offline row of each entity that
    has one, in the view's schema) and ``removed`` (join keys of entities offline has no row of)."""

    rows: pa.Table
    removed: pa.Table


class StagedPublish(Protocol):
    """A run's staged partitions: invisible until :meth:`commit`."""

    run_id: str
    rows: int
    """Rows the run publishes in its window (with ``merge``, the recomputed rows only: the kept
    ones are not counted)."""
    rows_before: int
    """Rows of the run's window that were published before the run."""
    entities: int
    """Entities the run may change online: in the window's rows before or after."""
    watermark: datetime | None
    new_partitions: dict[str, str]
    removed_partitions: list[str]
    committed: bool

    def commit(self) -> PublishIntent: ...
    def abort(self) -> None: ...
    def revert(self) -> None: ...


class OfflineStore(Protocol):
    """What the run pipeline, training sets and the checker need of an offline store."""

    accepts_pushes: bool
    """Whether pushed rows may be published (``stage_push``); false for the Hive store."""

    def lock(self, view: FeatureView, *, timeout: float | None = None) -> AbstractContextManager[None]: ...
    def run_lock(self, view: FeatureView) -> AbstractContextManager[None]: ...
    def recover(self, view: FeatureView) -> list[Path]: ...
    def remove_orphans(self, view: FeatureView) -> list[Path]: ...
    def scratch_dir(self, view: FeatureView, run_id: str) -> Path: ...
    def stage(
        self,
        view: FeatureView,
        partitions: Mapping[str, Path],
        *,
        start: datetime | None,
        end: datetime | None,
        run_id: str,
        merge: bool = False,
    ) -> StagedPublish: ...
    def pending(self, view: FeatureView) -> list[PublishIntent]: ...
    def settle(self, view: FeatureView, run_id: str, *, online_complete: bool) -> None: ...
    def latest(
        self, view: FeatureView, keys: Path | None, *, batch_rows: int, since: datetime | None = None
    ) -> Iterator[LatestRows]: ...
    def stage_push(self, view: FeatureView, rows: pa.Table, *, run_id: str) -> StagedPublish: ...
    def compact(self, view: FeatureView, *, run_id: str) -> StagedPublish | None: ...
    def files(self, view: FeatureView | str) -> list[Path]: ...
    def read(self, view: FeatureView, start: datetime | None = None, end: datetime | None = None) -> pa.Table: ...
    def watermark(self, view: FeatureView | str) -> datetime | None: ...
    def view_dir(self, view: FeatureView | str) -> Path: ...
