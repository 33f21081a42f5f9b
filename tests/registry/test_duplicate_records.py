"""Duplicates recorded by ``featurestore apply`` (``Registry.record_duplicates``), on SQLite and
PostgreSQL: a view checked again replaces the findings naming it on either side, a removed view's
findings go, and several applies recording at once leave one row per pair and none fails on the
primary key."""

from __future__ import annotations

import threading

from featurestore.duplicates import DuplicateFinding, DuplicateKind
from featurestore.registry import Registry

WRITERS = 4
ROUNDS = 10


def finding(
    feature: str, original: str, kind: DuplicateKind = "exact", figure: float | None = None
) -> DuplicateFinding:
    return DuplicateFinding(
        feature=feature, duplicate_of=original, owner="risk@bank", kind=kind, figure=figure, rows=50
    )


def test_findings_are_replaced_by_a_new_check_and_pruned_with_their_views(registry_url: str) -> None:
    registry = Registry(registry_url)
    try:
        first = [finding("copy:a", "spend:a"), finding("copy:b", "spend:b", "correlated", 0.995)]
        registry.record_duplicates("bank", first, checked=["copy"], views=["copy", "spend", "other"])
        registry.record_duplicates("shop", [finding("x:a", "y:a")], checked=["x"], views=["x", "y"])
        assert registry.list_duplicates("bank") == first
        assert registry.list_duplicates("bank", "spend") == first and registry.list_duplicates("bank", "other") == []
        # copy checked again: only what this check found stays.
        registry.record_duplicates("bank", [first[1]], checked=["copy"], views=["copy", "spend", "other"])
        assert registry.list_duplicates("bank") == [first[1]]
        # other checked: copy's findings stay; spend removed: every finding naming it goes.
        registry.record_duplicates(
            "bank", [finding("other:c", "copy:b")], checked=["other"], views=["copy", "spend", "other"]
        )
        assert {f.feature for f in registry.list_duplicates("bank")} == {"copy:b", "other:c"}
        registry.record_duplicates("bank", [], checked=[], views=["copy", "other"])
        assert [f.feature for f in registry.list_duplicates("bank")] == ["other:c"]
        # copy checked again, found on neither side: other's finding about it goes too.
        registry.record_duplicates("bank", [], checked=["copy"], views=["copy", "other"])
        assert registry.list_duplicates("bank") == []
        assert registry.list_duplicates("shop") == [finding("x:a", "y:a")]  # another project's untouched
    finally:
        registry.close()


def test_concurrent_records_of_one_pair_keep_one_row_and_none_fails(registry_url: str) -> None:
    Registry(registry_url).close()  # the schema, before the writers race
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        registry = Registry(registry_url)  # a connection pool of its own, as another process has
        try:
            for _ in range(ROUNDS):
                barrier.wait(timeout=60)
                found = finding("copy:a", "spend:a", "equal", writer / 10)
                registry.record_duplicates("bank", [found], checked=["copy"], views=["copy", "spend"])
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
    assert errors == []
    registry = Registry(registry_url)
    try:
        (only,) = registry.list_duplicates("bank")
        assert only.feature == "copy:a" and only.figure in {w / 10 for w in range(WRITERS)}
    finally:
        registry.close()
