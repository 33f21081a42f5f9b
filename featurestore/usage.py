"""Usage logging: every read through the SDK or the API, buffered off the hot path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from featurestore.registry import Registry, UsageEvent

log = logging.getLogger(__name__)


class UsageLog:
    """Buffers usage events and writes them to the registry in batches: when ``max_events``
    are waiting, every ``flush_interval`` seconds from a background thread, and on :meth:`close`.
    A lookup never waits for the registry's database."""

    def __init__(
        self, registry: Registry, project: str, *, flush_interval: float = 2.0, max_events: int = 1000
    ) -> None:
        self._registry = registry
        self._project = project
        self._interval = flush_interval
        self._max = max_events
        self._buffer: list[UsageEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, events: Iterable[UsageEvent]) -> None:
        with self._lock:
            self._buffer.extend(events)
            full = len(self._buffer) >= self._max
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="featurestore-usage", daemon=True)
                self._thread.start()
        if full:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            return self._registry.record_usage(self._project, batch)
        except Exception:  # usage is best effort: a read must not fail because logging did
            log.exception("could not record %d usage events in the registry", len(batch))
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
