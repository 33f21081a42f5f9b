"""Usage logging: every read through the SDK or the API, counted off the hot path.

A read costs one dictionary update: reads are rolled up in memory per consumer, kind, feature
list and minute, and written to the registry as one row per feature, consumer, kind and minute
(with the number of reads and rows) by a background thread. So the registry grows with the
number of distinct readers and features per minute, not with traffic, and a lookup never waits
for the registry's database.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from featurestore.registry import Registry, UsageEvent

log = logging.getLogger(__name__)

ReadSignature = tuple[tuple[str, tuple[str, ...]], ...]
"""What a read touched: (view, features) pairs."""

_Bucket = tuple[str, str, ReadSignature, int]  # consumer, kind, signature, minute (epoch seconds // 60)


class UsageLog:
    """Counts reads and writes them to the registry in batches: every ``flush_interval``
    seconds from a background thread, when ``max_buckets`` distinct buckets are waiting, on
    :meth:`flush` and on :meth:`close`. Usage is best effort: a failure to record is logged,
    never raised to the reader."""

    def __init__(
        self, registry: Registry, project: str, *, flush_interval: float = 2.0, max_buckets: int = 10_000
    ) -> None:
        self._registry = registry
        self._project = project
        self._interval = flush_interval
        self._max = max_buckets
        self._counts: dict[_Bucket, list[int | float]] = {}  # [reads, rows, last read as epoch seconds]
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time (see flush)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, consumer: str, kind: str, signature: ReadSignature, rows: int) -> None:
        """Count one read of ``rows`` rows of the features in ``signature`` by ``consumer``."""
        now = datetime.now(UTC).timestamp()
        bucket = (consumer, kind, signature, int(now // 60))
        with self._lock:
            counts = self._counts.get(bucket)
            if counts is None:
                self._counts[bucket] = [1, rows, now]
            else:
                counts[0] += 1
                counts[1] += rows
                counts[2] = now
            full = len(self._counts) >= self._max
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="featurestore-usage", daemon=True)
                self._thread.start()
        if full:
            self.flush()

    def pending(self) -> int:
        """Reads counted but not yet written to the registry."""
        with self._lock:
            return int(sum(c[0] for c in self._counts.values()))

    def flush(self) -> int:
        """Write what was counted; returns the number of registry rows written. Returns once
        every read counted before the call is in the registry: a flush under way (the
        background thread's) is waited for, not overtaken."""
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, {}
            if not counts:
                return 0
            events = _events(counts)
            try:
                return self._registry.record_usage(self._project, events)
            except Exception:  # usage is best effort: a read must not fail because logging did
                log.exception("could not record %d usage rows in the registry", len(events))
                return 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _events(counts: dict[_Bucket, list[int | float]]) -> list[UsageEvent]:
    merged: dict[tuple[str, str, str, str, int], list[int | float]] = {}
    for (consumer, kind, signature, minute), (reads, rows, last) in counts.items():
        for view, features in signature:
            for feature in features:
                key = (consumer, kind, view, feature, minute)
                total = merged.get(key)
                if total is None:
                    merged[key] = [reads, rows, last]
                else:
                    total[0] += reads
                    total[1] += rows
                    total[2] = max(total[2], last)
    return [
        UsageEvent(
            consumer=consumer,
            kind=kind,
            view=view,
            feature=feature,
            reads=int(reads),
            rows=int(rows),
            at=datetime.fromtimestamp(last, UTC),
        )
        for (consumer, kind, view, feature, _), (reads, rows, last) in merged.items()
    ]
