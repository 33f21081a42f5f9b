"""Edges of the publish protocol found in review: a run interrupted after it settled, a window
with no rows before or after, a view whose ``online`` flag changed, and a failing Hive-style
commit. The project and helpers are those of ``test_runs.py`` (``daily_spend``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_runs import NEWEST_ONLINE, VIEW, definitions, offline_rows, online_rows, run, write_transactions
from tiny_projects import utc

import etl.runs
from etl.local import LocalEngine
from featurestore import RunError
from featurestore.store import FeatureStore

pytest_plugins = ["test_runs"]  # its fixtures: root, store


def consistent(store: FeatureStore) -> bool:
    return store.check_consistency(VIEW, sample=None).consistent


def test_an_interruption_after_the_settle_keeps_what_was_published(
    store: FeatureStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(store)
    write_transactions(root, [(1, utc(2024, 3, 1, 10), 10.0), (4, utc(2024, 3, 4, 9), 9.0)])

    def interrupt(phase: str) -> None:
        if phase == "settled":
            raise KeyboardInterrupt

    monkeypatch.setattr(etl.runs, "CHECKPOINTS", [interrupt])
    with pytest.raises(KeyboardInterrupt):
        run(store, allow_row_drop=True)
    monkeypatch.setattr(etl.runs, "CHECKPOINTS", [])
    # Published and settled before the interruption: nothing was reverted, online follows offline.
    assert offline_rows(store) == [(1, utc(2024, 3, 2), 10.0, 1), (4, utc(2024, 3, 5), 9.0, 1)]
    assert set(online_rows(store)) == {1, 4}
    assert store.offline_store.pending(store.get_feature_view(VIEW)) == []
    assert consistent(store)


def test_a_window_without_rows_before_or_after_is_a_successful_run(store: FeatureStore) -> None:
    run(store)
    empty = run(store, start=utc(2024, 4, 1), end=utc(2024, 4, 2))
    assert (empty.rows_offline, empty.rows_before, empty.rows_online, empty.rows_online_removed) == (0, 0, 0, 0)
    assert online_rows(store) == NEWEST_ONLINE
    assert consistent(store)


def test_the_first_run_of_an_empty_source_succeeds(store: FeatureStore, root: Path) -> None:
    write_transactions(root, [(1, utc(2024, 5, 1, 10), 10.0)])
    result = run(store, start=utc(2024, 3, 1), end=utc(2024, 3, 10))
    assert (result.rows_offline, result.rows_online) == (0, 0)
    assert online_rows(store) == {}


def test_a_run_refuses_an_online_flag_the_registry_does_not_have(store: FeatureStore) -> None:
    view = definitions().feature_views[0]
    offline_only = {VIEW: dataclasses.replace(view, online=False)}
    with pytest.raises(RunError, match="offline only in its definition but online in the registry"):
        LocalEngine(store).run(VIEW, definitions=offline_only, progress=False)


def test_a_view_turned_online_gets_every_entity_at_its_next_windowed_run(store: FeatureStore, root: Path) -> None:
    project = definitions()
    offline_only = dataclasses.replace(project.feature_views[0], online=False)
    store.apply([*project.entities, *project.sources, offline_only])
    LocalEngine(store).run(VIEW, definitions={VIEW: offline_only}, progress=False)
    assert online_rows(store) == {}
    store.apply([*project.entities, *project.sources, *project.feature_views])
    # A window holding one customer's row only: the view's first derivation is of every entity.
    result = run(store, start=utc(2024, 3, 5), end=utc(2024, 3, 6))
    assert result.rows_online == 3
    assert online_rows(store) == NEWEST_ONLINE
    assert consistent(store)
    # From then on, a run derives its own window's entities only.
    assert run(store, start=utc(2024, 3, 5), end=utc(2024, 3, 6)).rows_online == 1


def test_a_lost_intent_file_is_repaired_by_deriving_every_entity(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(store)

    def online_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the online store is down")

    monkeypatch.setattr(etl.runs, "derive_online", online_down)
    with pytest.raises(RunError, match="the online store is down"):
        run(store, start=utc(2024, 3, 4), end=utc(2024, 3, 6))
    monkeypatch.undo()
    view = store.get_feature_view(VIEW)
    (intent,) = store.offline_store.pending(view)  # reverted, the intent stays until derived
    assert intent.keys is not None
    intent.keys.unlink()
    result = etl.runs.repair(store, VIEW, progress=False)
    assert result.settled == [intent.run_id]
    assert store.offline_store.pending(view) == []
    assert consistent(store)


def test_repair_of_every_entity_removes_what_offline_does_not_have(store: FeatureStore) -> None:
    import sqlite3

    run(store)
    view = store.get_feature_view(VIEW)
    online_db = store.config.resolve(store.config.online_store.path)  # type: ignore[union-attr]
    with sqlite3.connect(online_db) as conn:  # an entity offline never had, and a changed value
        (value,) = conn.execute("SELECT value FROM fv_daily_spend WHERE entity_key = '3'").fetchone()
        conn.execute("INSERT INTO fv_daily_spend VALUES ('99', 0, ?)", (value,))
        conn.execute("UPDATE fv_daily_spend SET value = ? WHERE entity_key = '1'", (value,))
    before = store.check_consistency(VIEW, sample=None)
    assert (before.extra, before.mismatched) == (1, 1)
    result = etl.runs.repair(store, VIEW, everything=True, progress=False)
    assert (result.entities, result.removed) == (3, 1)
    assert online_rows(store) == NEWEST_ONLINE
    assert consistent(store)
    assert store.offline_store.pending(view) == []
