"""UsageLog.flush: once it returns, every read counted before it is in the registry, even while
another flush (the background thread's) is still writing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from featurestore.usage import UsageLog


class SlowRegistry:
    """Records usage rows; the first write waits until the test lets it finish."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.first_write_started = threading.Event()
        self.finish_first_write = threading.Event()

    def record_usage(self, project: str, events: Sequence[Any]) -> int:
        if not self.first_write_started.is_set():
            self.first_write_started.set()
            self.finish_first_write.wait(timeout=10)
        self.rows.extend(events)
        return len(events)


def test_a_flush_waits_for_a_flush_under_way() -> None:
    registry = SlowRegistry()
    usage = UsageLog(registry, "bank", flush_interval=3600)  # type: ignore[arg-type]
    usage.record("churn-service", "online", (("customer_profile", ("age",)),), 2)
    background = threading.Thread(target=usage.flush)  # as the background thread flushes
    background.start()
    assert registry.first_write_started.wait(timeout=10)
    done = threading.Event()
    caller = threading.Thread(target=lambda: (usage.flush(), done.set()))
    caller.start()
    assert not done.wait(timeout=0.3), "the second flush returned before the first one's rows were written"
    registry.finish_first_write.set()
    assert done.wait(timeout=10)
    assert [(e.consumer, e.view, e.feature, e.rows) for e in registry.rows] == [
        ("churn-service", "customer_profile", "age", 2)
    ]
    background.join(timeout=10)
    caller.join(timeout=10)
    usage.close()
