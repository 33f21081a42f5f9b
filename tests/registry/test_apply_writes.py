"""``Registry.apply`` of definitions it already holds changes no row (no commit to write to disk:
a repeated ``featurestore apply`` is a read), and still rewrites a view's features and the
project's lineage edges when they differ."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from featurestore import Feature, FeatureService, Float64, Int64
from featurestore.registry import FeatureRecord, LineageEdge, Registry
from featurestore.validation import validate_project
from tests.registry.test_records import CUSTOMER, PROJECT, SCORING, SPEND, TRANSACTIONS


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    """A registry on SQLite, then on PostgreSQL, holding the project and a model."""
    reg = Registry(registry_url)
    reg.apply(PROJECT, validate_project([CUSTOMER, TRANSACTIONS, SPEND, SCORING]))
    reg.register_model(PROJECT, "fraud_gbm", "scoring")
    yield reg
    reg.close()


def rows_changed(registry: Registry) -> list[tuple[str, int]]:
    """Collects (statement, rows it changed) of every INSERT, UPDATE and DELETE on the registry's
    engine from now on."""
    changed: list[tuple[str, int]] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            changed.append((statement, cursor.rowcount))

    sa.event.listen(registry._engine, "after_cursor_execute", after)
    return changed


def test_an_apply_of_the_definitions_held_changes_no_row(registry: Registry) -> None:
    changed = rows_changed(registry)
    report = registry.apply(PROJECT, validate_project([CUSTOMER, TRANSACTIONS, SPEND, SCORING]))
    assert (report.created, report.updated, report.removed) == ([], [], [])
    # SQLite's project lock is an UPDATE of no row; the next test shows changes are seen.
    assert [(s, n) for s, n in changed if n != 0] == []


def test_an_apply_rewrites_the_features_and_edges_that_differ(registry: Registry) -> None:
    described = dataclasses.replace(
        SPEND,
        features=(
            Feature("spend_30d", Float64, description="Card spend, 30 days", tags=("money", "cards")),
            Feature("txn_count_30d", Int64, owner="ops"),
        ),
    )
    fraud = FeatureService(name="fraud", features=(described.select("spend_30d"),))
    changed = rows_changed(registry)
    registry.apply(PROJECT, validate_project([CUSTOMER, TRANSACTIONS, described, fraud]))
    assert any(n for _, n in changed)
    assert registry.list_features(PROJECT) == [
        FeatureRecord("customer_spend", "spend_30d", "float64", "Card spend, 30 days", "risk", ("money", "cards")),
        FeatureRecord("customer_spend", "txn_count_30d", "int64", "", "ops", ()),
    ]
    assert sorted(registry.lineage(PROJECT), key=lambda e: (e.src_kind, e.dst_kind, e.dst_name)) == [
        LineageEdge("entity", "customer", "feature_view", "customer_spend"),
        LineageEdge("feature_service", "scoring", "model", "fraud_gbm"),  # a model's edge stays
        LineageEdge("feature_view", "customer_spend", "feature_service", "fraud"),
        LineageEdge("source", "transactions", "feature_view", "customer_spend"),
    ]
