"""Online stores: the latest row per entity of each feature view, for low-latency lookups.

Every store implements :class:`OnlineStore` and passes the shared contract suite in
``tests/contract``. Rows go in and come out as Arrow tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from featurestore.definitions import FeatureView

if TYPE_CHECKING:
    import pyarrow as pa

EVENT_TIME_COLUMN = "__event_timestamp"
"""Column of :meth:`OnlineStore.read` results holding each row's event time (null when missing)."""


@dataclass(frozen=True)
class WriteStats:
    """What a write did: rows that became the stored value, and rows ignored because the store
    already held a newer event time for their key."""

    written: int
    skipped_older: int


@dataclass(frozen=True)
class SyncStats:
    """What a sync did: entities whose stored value was set, and entities asked to be removed
    (whether or not the store held them)."""

    written: int
    removed: int


class OnlineStore(Protocol):
    """The interface every online store implements.

    Capabilities, declared as class attributes: ``transactional_writes`` (one ``write`` or
    ``sync`` call is all or nothing) and ``equal_time_last_write_wins`` (at an equal event time
    the later write wins; otherwise the store breaks the tie its own way, deterministically) and
    ``reports_skipped_older`` (``WriteStats.skipped_older`` counts the rows a newer stored row
    kept out; otherwise the store cannot tell and reports 0).
    """

    transactional_writes: bool
    equal_time_last_write_wins: bool
    reports_skipped_older: bool

    def prepare(self, views: Sequence[FeatureView]) -> None:
        """Create what the views need (tables, keyspaces). Idempotent."""

    def write(self, view: FeatureView, rows: pa.Table) -> WriteStats:
        """Upsert rows (join keys, the view's timestamp field, features). For each key the row with
        the newest event time wins; a row never replaces one with a newer event time; at an equal
        event time the later write wins, so re-running a corrected window fixes it."""

    def sync(self, view: FeatureView, rows: pa.Table, removed: pa.Table) -> SyncStats:
        """Make the store hold exactly what offline says for these entities, the way a run derives
        online from offline (including a retraction): for each row of ``rows`` (one row per
        entity: join keys, the view's timestamp field and features, conformed to
        ``featurestore.schema.view_schema(view)``) the stored value becomes that row, whatever
        event time the store held before (an older one too); every entity of ``removed`` (a
        table of the view's join-key columns only) is deleted, stored or not. An entity is never
        in both. Idempotent. A store with ``transactional_writes`` applies the whole call in one
        transaction (all or nothing); another may leave part of it applied when it fails, and
        repeating the call completes it."""

    def read(self, view: FeatureView, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        """One row per row of ``keys``, in order: the key columns, the requested features and
        ``__event_timestamp``; nulls where a key has no stored row."""

    def read_packed(self, view: FeatureView, entity_keys: Sequence[str]) -> list[bytes | None]:
        """The online hot path below :meth:`read`: per encoded entity key (see
        ``featurestore.online.codec``), in order, the stored value ``[event µs, layout, values...]``
        as JSON bytes, or None. No Arrow and no parsing on the way, so a lookup costs little more
        than the store's round trip."""

    def layout(self, view: FeatureView, layout: int) -> Sequence[str] | None:
        """The feature names, in order, of a layout this store has written values of ``view`` in
        (every ``write`` records its view's layout), or None if it never did."""

    def entity_keys(self, view: FeatureView) -> list[str]:
        """Every encoded entity key the store holds for the view (may scan): what a repair of
        every entity compares with offline to remove the entities offline does not have."""

    def count(self, view: FeatureView) -> int:
        """How many entities the store holds for the view (for consistency checks; may scan)."""

    def close(self) -> None:
        """Release connections."""
