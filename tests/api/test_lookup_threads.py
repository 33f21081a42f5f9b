"""The online lookup's own threads (``datamart.routes.reads._LookupThreads``): results and
errors come back to the awaiting request, context variables are copied, at most ``limit``
threads run, a cancelled request's result is dropped; and the all-present count of
``ProjectMetrics.count_values``."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from types import SimpleNamespace
from typing import cast

import pytest
from prometheus_client import generate_latest

from datamart.metrics import ProjectMetrics
from datamart.routes.reads import _LookupThreads
from featurestore.lookup import FeatureStatus
from featurestore.store import FeatureStore

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_results_errors_and_context_come_back() -> None:
    threads = _LookupThreads(4)

    def boom() -> None:
        raise ValueError("no such entity")

    async def main() -> None:
        WHO.set("churn-model")
        seen = await threads.run(lambda: (WHO.get(), threading.current_thread().name))
        assert seen[0] == "churn-model"
        assert seen[1].startswith("datamart-lookup-") and seen[1] != threading.current_thread().name
        with pytest.raises(ValueError, match="no such entity"):
            await threads.run(boom)
        assert await threads.run(lambda: 7) == 7  # the thread that raised serves on

    asyncio.run(main())


def test_at_most_limit_threads_run_at_once() -> None:
    threads = _LookupThreads(3)
    running = 0
    most = 0
    lock = threading.Lock()

    def work() -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return 1

    async def main() -> int:
        return sum(await asyncio.gather(*(threads.run(work) for _ in range(12))))

    started = time.perf_counter()
    assert asyncio.run(main()) == 12
    assert most == 3, "the threads ran more (or fewer) lookups at once than their limit"
    assert time.perf_counter() - started >= 4 * 0.02  # 12 lookups, 3 at a time
    assert threads._threads == 3


def test_a_cancelled_request_drops_its_result() -> None:
    threads = _LookupThreads(2)
    release = threading.Event()

    async def main() -> None:
        future = threads.run(lambda: release.wait(5))
        future.cancel()
        release.set()
        await asyncio.sleep(0.1)  # the result arrives and is dropped without an error
        assert await threads.run(lambda: "next") == "next"

    asyncio.run(main())


def test_all_present_values_are_counted_at_once() -> None:
    metrics = ProjectMetrics(cast(FeatureStore, SimpleNamespace(project="shop", registry=None)))
    metrics.count_values("views", {"a": [FeatureStatus.PRESENT] * 3, "b": [FeatureStatus.PRESENT] * 2})
    metrics.count_values("views", {"a": []})
    text = generate_latest(metrics.registry).decode()
    assert 'featurestore_online_values_total{project="shop",status="present",target="views"} 5.0' in text
    assert 'status="missing"' not in text
