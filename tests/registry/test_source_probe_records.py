"""Source probes recorded by several writers at once (``Registry.record_source_probes``): each
record replaces the source's latest probe, and none fails on the primary key (on PostgreSQL two
records used to both delete nothing, then both insert)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from featurestore.registry import Registry
from featurestore.source_probe import SourceProbe

WRITERS = 4
ROUNDS = 15


def probe(writer: int, round_: int) -> SourceProbe:
    return SourceProbe(
        source="events",
        kind="file",
        status="ok",
        message="",
        probed_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=writer * ROUNDS + round_),
        seconds=0.01,
        row_count=writer,
    )


def test_concurrent_records_of_one_source_keep_one_latest_probe_and_none_fails(registry_url: str) -> None:
    Registry(registry_url).close()  # the schema, before the writers race
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        registry = Registry(registry_url)  # a connection pool of its own, as another process has
        try:
            for round_ in range(ROUNDS):
                barrier.wait(timeout=60)
                registry.record_source_probes("shop", [probe(writer, round_)])
        except BaseException as err:  # reported below with every writer's
            errors.append(err)
            barrier.abort()
        finally:
            registry.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e for e in errors if not isinstance(e, threading.BrokenBarrierError)] == []
    registry = Registry(registry_url)
    try:
        (latest,) = registry.list_source_probes("shop")
        assert latest.source == "events" and latest.row_count in range(WRITERS)
    finally:
        registry.close()
