"""``apply`` refuses what a view's offline history cannot absorb (a feature or join key changing
type, another timestamp field), saying what to do instead and listing every such problem of the
apply at once; adding or removing features keeps making new versions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from featurestore import DefinitionError, Entity, Feature, FeatureView, FileSource, Float64, Int64, String
from featurestore.registry import Registry
from featurestore.types import ValueType
from featurestore.validation import validate_project

PROJECT = "cards"


def customer(key_type: ValueType = Int64) -> Entity:
    return Entity(name="customer", join_keys=("customer_id",), key_types=(key_type,))


TRANSACTIONS = FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")


def spend(
    *features: Feature, name: str = "customer_spend", entity: Entity | None = None, ts: str = "ts"
) -> FeatureView:
    return FeatureView(
        name=name,
        entities=(entity or customer(),),
        source=TRANSACTIONS,
        timestamp_field=ts,
        ttl=timedelta(days=30),
        features=features or (Feature("spend_30d", Float64), Feature("txn_count_30d", Int64)),
    )


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    """A fresh registry on SQLite, then on PostgreSQL (``registry_url`` in tests/conftest.py)."""
    reg = Registry(registry_url)
    yield reg
    reg.close()


def apply(registry: Registry, *views: FeatureView, entity: Entity | None = None) -> list[str]:
    report = registry.apply(PROJECT, validate_project([entity or customer(), TRANSACTIONS, *views]))
    return report.created + report.updated


def test_a_feature_changing_type_is_refused_with_what_to_do_and_nothing_changes(registry: Registry) -> None:
    apply(registry, spend())
    before = registry.list_feature_views(PROJECT)

    with pytest.raises(DefinitionError) as caught:
        apply(registry, spend(Feature("spend_30d", Int64), Feature("txn_count_30d", Int64)))
    assert caught.value.problems == [
        "Feature view 'customer_spend': feature 'spend_30d' changes type from float64 to int64; the offline "
        "history holds float64 values. Add a new feature with the new type (e.g. 'spend_30d_int64') and remove "
        "the old one, or rename the view to start a new history."
    ]
    assert registry.list_feature_views(PROJECT) == before
    assert [v.version for v in registry.view_versions(PROJECT, "customer_spend")] == [1]
    assert {f.name: f.dtype for f in registry.list_features(PROJECT)} == {
        "spend_30d": "float64",
        "txn_count_30d": "int64",
    }


def test_what_the_message_suggests_is_accepted(registry: Registry) -> None:
    apply(registry, spend())
    # A new feature with the new type, the old one removed: a new version.
    assert apply(registry, spend(Feature("spend_30d_int64", Int64), Feature("txn_count_30d", Int64))) == [
        "feature view customer_spend (version 2: added spend_30d_int64; removed spend_30d)"
    ]
    # Or the view renamed, which starts a new history.
    renamed = spend(Feature("spend_30d", Int64), Feature("txn_count_30d", Int64), name="customer_spend_v2")
    assert "feature view customer_spend_v2 (version 1)" in apply(registry, renamed)


def test_adding_or_removing_a_feature_makes_a_new_version(registry: Registry) -> None:
    apply(registry, spend())
    three = (Feature("spend_30d", Float64), Feature("txn_count_30d", Int64), Feature("channel", String))
    assert apply(registry, spend(*three)) == ["feature view customer_spend (version 2: added channel)"]
    assert apply(registry, spend(three[0], three[2])) == [
        "feature view customer_spend (version 3: removed txn_count_30d)"
    ]
    assert apply(registry, spend(three[0], three[2])) == []  # the same again: nothing
    assert registry.view_version(PROJECT, "customer_spend") == 3
    assert [v.changes for v in registry.view_versions(PROJECT, "customer_spend")] == [
        "created",
        "added channel",
        "removed txn_count_30d",
    ]


def test_a_feature_removed_then_added_back_with_another_type_is_refused(registry: Registry) -> None:
    """The versions that had it wrote its old type to the offline history."""
    apply(registry, spend())
    apply(registry, spend(Feature("spend_30d", Float64)))  # txn_count_30d removed: version 2
    with pytest.raises(DefinitionError, match="feature 'txn_count_30d' changes type from int64 to float64"):
        apply(registry, spend(Feature("spend_30d", Float64), Feature("txn_count_30d", Float64)))
    # Added back with its old type: fine.
    assert apply(registry, spend()) == ["feature view customer_spend (version 3: added txn_count_30d)"]


def test_a_view_removed_then_applied_again_keeps_its_history(registry: Registry) -> None:
    apply(registry, spend())
    registry.apply(PROJECT, validate_project([customer(), TRANSACTIONS]))  # the view removed
    with pytest.raises(DefinitionError, match="feature 'spend_30d' changes type from float64 to string"):
        apply(registry, spend(Feature("spend_30d", String), Feature("txn_count_30d", Int64)))
    assert apply(registry, spend()) == ["feature view customer_spend (version 2)"]


def test_a_join_key_changing_type_is_refused(registry: Registry) -> None:
    apply(registry, spend())
    as_text = customer(String)
    with pytest.raises(DefinitionError) as caught:
        apply(registry, spend(entity=as_text), entity=as_text)
    assert caught.value.problems == [
        "Feature view 'customer_spend': join key 'customer_id' changes type from int64 to string; the offline "
        "history is keyed by int64 values. Keep the key's type (cast the column in the view's transformation), "
        "or rename the view to start a new history."
    ]
    assert registry.list_entities(PROJECT) == [customer()]


def test_a_timestamp_field_change_is_refused(registry: Registry) -> None:
    apply(registry, spend())
    with pytest.raises(DefinitionError) as caught:
        apply(registry, spend(ts="event_ts"))
    assert caught.value.problems == [
        "Feature view 'customer_spend': the timestamp field changes from 'ts' to 'event_ts'; the offline history "
        "is ordered by 'ts'. Keep 'ts' (select the new column under that name in the view's transformation), or "
        "rename the view to start a new history."
    ]


def test_every_refused_change_of_an_apply_is_reported_at_once(registry: Registry) -> None:
    apply(registry, spend(), spend(name="merchant_spend"))
    as_text = customer(String)
    retyped = (Feature("spend_30d", Int64), Feature("txn_count_30d", String))
    with pytest.raises(DefinitionError) as caught:
        apply(
            registry,
            spend(*retyped, entity=as_text, ts="event_ts"),
            spend(*retyped, name="merchant_spend", entity=as_text),
            entity=as_text,
        )
    problems = caught.value.problems
    assert [p.split(";")[0] for p in problems] == [
        "Feature view 'customer_spend': feature 'spend_30d' changes type from float64 to int64",
        "Feature view 'customer_spend': feature 'txn_count_30d' changes type from int64 to string",
        "Feature view 'customer_spend': join key 'customer_id' changes type from int64 to string",
        "Feature view 'customer_spend': the timestamp field changes from 'ts' to 'event_ts'",
        "Feature view 'merchant_spend': feature 'spend_30d' changes type from float64 to int64",
        "Feature view 'merchant_spend': feature 'txn_count_30d' changes type from int64 to string",
        "Feature view 'merchant_spend': join key 'customer_id' changes type from int64 to string",
    ]
    assert str(caught.value).startswith("7 problems in the definitions:")


def test_names_longer_than_the_registry_keeps_are_refused_alike_on_every_database(registry: Registry) -> None:
    """PostgreSQL enforces the columns' 200 characters (it failed mid-apply with a DataError),
    SQLite does not: apply refuses longer names up front on both, and keeps 200."""
    longest = "v" * 200
    assert apply(registry, spend(Feature("f" * 200, Float64), name=longest)) == [
        "entity customer",
        "source transactions",
        f"feature view {longest} (version 1)",
    ]
    assert [f.name for f in registry.list_features(PROJECT)] == ["f" * 200]

    with pytest.raises(DefinitionError) as caught:
        apply(registry, spend(Feature("g" * 201, Float64), name="w" * 201))
    assert caught.value.problems == [
        f"Feature view name '{'w' * 40}...' is 201 characters long; the registry keeps at most 200: shorten it.",
        f"Feature view '{'w' * 40}': feature name '{'g' * 40}...' is 201 characters long; the registry keeps at "
        "most 200: shorten it.",
    ]
    with pytest.raises(DefinitionError, match="Project name 'ppp"):
        registry.apply("p" * 201, validate_project([customer(), TRANSACTIONS, spend()]))
    assert [v.name for v in registry.list_feature_views(PROJECT)] == [longest]  # nothing changed
