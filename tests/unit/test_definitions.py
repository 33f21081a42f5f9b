"""Definitions: validation of a whole project at once, frozen objects, specs and versions.

The source used throughout, ``data/transactions.parquet``, has the columns
``customer_id: int64``, ``ts: timestamp[us, UTC]``, ``amount: double`` and ``channel: string``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from tiny_projects import UTC_US, new_project, utc, write_parquet

from etl.local import LocalEngine
from featurestore import (
    DefinitionError,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    FileSource,
    Float64,
    Int64,
    SqlSource,
    String,
)
from featurestore.definitions import FeatureSelection, StoredTransformation, source_from_spec
from featurestore.errors import RunError
from featurestore.registry import views_t
from featurestore.store import FeatureStore
from featurestore.validation import validate_project

# ---------------------------------------------------------------------- a project


def customer() -> Entity:
    return Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,), description="A card holder")


def transactions() -> FileSource:
    return FileSource(name="transactions", path="data/transactions.parquet", timestamp_field="ts")


def spend_view(**changes: object) -> FeatureView:
    """The valid view every test starts from; ``changes`` replace its fields."""
    fields: dict[str, object] = {
        "name": "customer_spend",
        "entities": (customer(),),
        "source": transactions(),
        "timestamp_field": "ts",
        "ttl": timedelta(days=30),
        "features": (Feature("amount", Float64, description="Amount of the transaction"),),
        "description": "Card spend",
    }
    fields.update(changes)
    return FeatureView(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    root = new_project(tmp_path / "cards", "cards")
    write_parquet(
        root / "data" / "transactions.parquet",
        {
            "customer_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([utc(2024, 3, 1), utc(2024, 3, 2)], UTC_US),
            "amount": [10.0, 20.0],
            "channel": ["web", "shop"],
        },
    )
    with FeatureStore(root) as s:
        yield s


def apply(store: FeatureStore, objects: list[object]) -> None:
    store.apply(objects, schema_resolver=LocalEngine(store).infer_schema)


# ---------------------------------------------------------------------- every problem at once


def test_apply_reports_every_problem_of_a_project_in_one_error(store: FeatureStore) -> None:
    cust = customer()
    good = spend_view()
    objects: list[object] = [
        cust,
        transactions(),
        good,
        # Two different entities named 'merchant'.
        Entity(name="merchant", join_keys=("merchant_id",)),
        Entity(name="merchant", join_keys=("shop_id",)),
        # An entity that does not exist, named like one that does.
        spend_view(name="spend_by_name", entities=("custmer",)),
        # A feature that is not a column of the source.
        spend_view(name="spend_usd", features=(Feature("amount_usd", Float64),)),
        # A feature whose type is not the source column's (channel is a string).
        spend_view(name="spend_channel", features=(Feature("channel", Int64),)),
        # A timestamp column the source does not have.
        spend_view(name="spend_event_time", timestamp_field="event_time"),
        # A TTL that is not positive and, on the same view, a misspelled column.
        spend_view(name="spend_no_ttl", ttl=timedelta(0), features=(Feature("amout", Float64),)),
        # A service naming a view and a feature that do not exist.
        FeatureService(name="scoring", features=("customer_spnd:amount", good.select("amont"))),
    ]
    with pytest.raises(DefinitionError) as caught:
        apply(store, objects)

    expected = [
        "Two different entity definitions are named 'merchant'",
        "Feature view 'spend_by_name' uses entity 'custmer', which is not defined. Did you mean 'customer'?",
        "Feature view 'spend_usd': feature 'amount_usd' is not a column of the output. Did you mean 'amount'?",
        "Feature view 'spend_channel': feature 'channel' is declared int64 but the output has string",
        "Feature view 'spend_event_time': the output has no timestamp column 'event_time'",
        "Feature view 'spend_no_ttl' has ttl 0:00:00, which must be positive",
        "Feature view 'spend_no_ttl': feature 'amout' is not a column of the output. Did you mean 'amount'?",
        "Feature service 'scoring' uses feature view 'customer_spnd', which is not defined. "
        "Did you mean 'customer_spend'?",
        "Feature service 'scoring' uses feature 'customer_spend:amont', which view 'customer_spend' does not define. "
        "Did you mean 'amount'?",
    ]
    problems = caught.value.problems
    for text in expected:
        assert sum(text in p for p in problems) == 1, f"{text!r} not reported exactly once in {problems}"
    assert len(problems) == len(expected), problems
    assert str(caught.value).startswith(f"{len(expected)} problems in the definitions:")
    # Nothing was recorded: the registry is still empty.
    assert store.registry.list_feature_views(store.project) == []
    assert store.registry.list_entities(store.project) == []


def test_a_valid_project_is_applied(store: FeatureStore) -> None:
    apply(store, [customer(), transactions(), spend_view()])
    assert [v.name for v in store.registry.list_feature_views(store.project)] == ["customer_spend"]


def test_missing_timestamp_field_is_one_problem(store: FeatureStore) -> None:
    with pytest.raises(DefinitionError) as caught:
        apply(store, [customer(), spend_view(timestamp_field="")])
    assert caught.value.problems == ["Feature view 'customer_spend' has no timestamp_field"]


def test_key_types_default_to_strings() -> None:
    assert Entity(name="card", join_keys=("bin", "last4"), key_types=None).key_types == (String, String)  # type: ignore[arg-type]
    assert Entity(name="card", join_keys=("bin", "last4")).key_types == (String, String)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
def test_ttl_must_be_positive(ttl: timedelta) -> None:
    with pytest.raises(DefinitionError, match=r"Feature view 'customer_spend' has ttl .* which must be positive"):
        validate_project([spend_view(ttl=ttl)])


def test_unknown_entity_without_a_near_name_has_no_suggestion() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_project([customer(), spend_view(entities=("zebra",))])
    assert caught.value.problems == ["Feature view 'customer_spend' uses entity 'zebra', which is not defined."]


def test_entities_given_by_name_are_resolved() -> None:
    project = validate_project([customer(), spend_view(entities=("customer",))])
    (view,) = project.feature_views
    assert view.join_keys == ("customer_id",)
    assert view.key_schema == {"customer_id": Int64}


def test_two_different_sources_of_one_name_inside_views_are_a_problem() -> None:
    # Neither source is declared on its own: each is known only through its view. The registry
    # keeps one source per name, so one view would silently read the other's file.
    other = FileSource(name="transactions", path="data/other.parquet", timestamp_field="ts")
    with pytest.raises(DefinitionError) as caught:
        validate_project([customer(), spend_view(), spend_view(name="spend_other", source=other)])
    assert caught.value.problems == ["Two different source definitions are named 'transactions': rename one of them"]


def test_view_names_differing_only_in_case_are_a_problem() -> None:
    # SQLite and Cassandra table names ignore case: the two views would share one online table.
    with pytest.raises(DefinitionError) as caught:
        validate_project([customer(), spend_view(), spend_view(name="Customer_Spend")])
    assert caught.value.problems == [
        "Feature views 'Customer_Spend' and 'customer_spend' differ only in case; stores that ignore case "
        "(SQLite, Cassandra, some file systems) would mix them up: rename one of them"
    ]


def test_the_same_definition_listed_twice_is_not_a_duplicate() -> None:
    view = spend_view()
    project = validate_project([customer(), customer(), view, view.source])
    assert [e.name for e in project.entities] == ["customer"]
    assert [s.name for s in project.sources] == ["transactions"]


def test_duplicate_feature_and_clash_with_a_key_are_problems() -> None:
    features = (Feature("amount", Float64), Feature("amount", Float64), Feature("customer_id", Int64))
    with pytest.raises(DefinitionError) as caught:
        validate_project([spend_view(features=features)])
    assert caught.value.problems == [
        "Feature view 'customer_spend' defines feature 'amount' twice",
        "Feature view 'customer_spend': feature 'customer_id' is also a join key",
    ]


def test_problems_of_a_source_known_only_through_its_view_are_reported() -> None:
    source = FileSource(name="transactions", path="data/transactions.json", timestamp_field="ts")
    with pytest.raises(DefinitionError, match=r"Source 'transactions': cannot tell the format"):
        validate_project([spend_view(source=source)])


def test_invalid_names_are_problems() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_project([spend_view(name="customer-spend")])
    assert caught.value.problems == [
        "Feature view name 'customer-spend' is not valid: use letters, digits and underscores, starting with a letter"
    ]


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: spend_view(ttl=30), "ttl must be a datetime.timedelta, got 30"),
        (lambda: Feature("amount", "decimal"), "Feature 'amount' has unknown type 'decimal'"),
        (lambda: Entity(name="customer", join_keys=("id",), key_types=("uuid",)), "Entity 'customer' key_types"),
        (lambda: Entity(name="customer", join_keys=42), "join_keys must be a sequence of strings"),
        (lambda: spend_view(features=("amount",)), "features must be Feature objects"),
    ],
)
def test_wrong_python_types_fail_on_construction(build: object, words: str) -> None:
    with pytest.raises(DefinitionError, match=words):
        build()  # type: ignore[operator]


def test_one_item_where_a_sequence_is_expected_is_taken_as_one_item() -> None:
    # A lone string must not become one reference per character.
    assert FeatureService(name="scoring", features="customer_spend").selections() == [
        FeatureSelection(view="customer_spend", features=())
    ]
    view = spend_view(entities="customer", features=Feature("amount", Float64))
    assert view.entities == ("customer",)
    assert view.feature_names == ("amount",)
    assert FeatureService(name="scoring", features=view).selections() == [
        FeatureSelection(view="customer_spend", features=("amount",))
    ]
    assert Entity(name="customer", join_keys="customer_id", key_types=Int64).key_types == (Int64,)
    assert SqlSource(name="web", query="SELECT 1", sources=transactions()).upstream == ("transactions",)


def test_a_service_of_something_else_fails_on_construction() -> None:
    with pytest.raises(DefinitionError, match="Feature service 'scoring' features must be feature views"):
        FeatureService(name="scoring", features=(customer(),))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- frozen


@pytest.mark.parametrize(
    ("obj", "attribute", "value"),
    [
        (customer(), "name", "client"),
        (customer(), "join_keys", ("client_id",)),
        (transactions(), "path", "elsewhere.parquet"),
        (Feature("amount", Float64), "dtype", String),
        (spend_view(), "ttl", timedelta(days=1)),
        (spend_view(), "features", ()),
        (FeatureService(name="scoring", features=("customer_spend",)), "features", ()),
    ],
)
def test_definitions_are_frozen(obj: object, attribute: str, value: object) -> None:
    before = getattr(obj, attribute)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attribute, value)
    assert getattr(obj, attribute) == before


def test_sequences_given_as_lists_are_stored_as_tuples() -> None:
    entity = Entity(name="customer", join_keys=["customer_id"], tags=["core"])  # type: ignore[arg-type]
    view = spend_view(features=[Feature("amount", Float64)], entities=[customer()])
    assert entity.join_keys == ("customer_id",)
    assert entity.tags == ("core",)
    assert isinstance(view.features, tuple)
    assert isinstance(view.entities, tuple)


# ---------------------------------------------------------------------- specs


def _through_json(spec: dict[str, object]) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(json.dumps(spec))
    return loaded


def test_entity_feature_and_service_round_trip_through_their_specs() -> None:
    entity = Entity(name="card", join_keys=("bin", "last4"), key_types=(String, Int64), owner="risk", tags=("pci",))
    feature = Feature("amount", Float64, description="Amount", owner="risk", tags=("money",))
    service = FeatureService(name="scoring", features=(FeatureSelection(view="v", features=("a", "b")),), owner="ds")
    assert Entity.from_spec(_through_json(entity.to_spec())) == entity
    assert Feature.from_spec(_through_json(feature.to_spec())) == feature
    assert FeatureService.from_spec(_through_json(service.to_spec())) == service


def test_sources_round_trip_through_their_specs() -> None:
    file_source = transactions()
    sql_source = SqlSource(
        name="web_transactions",
        query="SELECT * FROM transactions WHERE channel = 'web'",
        sources=(file_source,),
        timestamp_field="ts",
        tags=("web",),
    )
    rebuilt_file = source_from_spec(_through_json(file_source.to_spec()), {})
    rebuilt_sql = source_from_spec(_through_json(sql_source.to_spec()), {"transactions": rebuilt_file})
    assert rebuilt_file == file_source
    assert rebuilt_sql == sql_source


def test_a_view_without_transformation_round_trips_to_an_equal_view() -> None:
    view = spend_view(source_lookback=timedelta(days=7), online=False, tags=("cards",), owner="risk")
    rebuilt = FeatureView.from_spec(_through_json(view.to_spec()), {"customer": customer()}, transactions())
    assert rebuilt == view


def test_a_view_with_a_transformation_keeps_its_text() -> None:
    view = spend_view(transformation="\n    SELECT customer_id, ts, amount FROM transactions\n")
    rebuilt = FeatureView.from_spec(_through_json(view.to_spec()), {"customer": customer()}, transactions())
    assert rebuilt.transformation == StoredTransformation(
        kind="sql", text="SELECT customer_id, ts, amount FROM transactions"
    )
    assert rebuilt.to_spec() == view.to_spec()
    assert rebuilt.schema_fingerprint() == view.schema_fingerprint()


def test_the_registry_gives_back_the_applied_definitions(store: FeatureStore) -> None:
    view = spend_view(transformation="SELECT customer_id, ts, amount FROM transactions")
    service = FeatureService(name="scoring", features=(view,), description="The scoring model's features")
    apply(store, [customer(), transactions(), view, service])
    (stored,) = store.registry.list_feature_views(store.project)
    assert stored.to_spec() == view.to_spec()
    assert store.registry.list_entities(store.project) == [customer()]
    assert store.registry.list_sources(store.project) == [transactions()]
    assert [s.to_spec() for s in store.registry.list_feature_services(store.project)] == [service.to_spec()]


# ---------------------------------------------------------------------- fingerprints and versions


def test_fingerprint_follows_what_the_view_stores_not_its_metadata() -> None:
    base = spend_view().schema_fingerprint()
    assert spend_view().schema_fingerprint() == base  # built again: same
    assert spend_view(description="other", owner="someone", tags=("x",)).schema_fingerprint() == base
    amount = Feature("amount", Float64, description="another description")
    assert spend_view(features=(amount,)).schema_fingerprint() == base
    assert spend_view(features=(Feature("amount", Int64),)).schema_fingerprint() != base
    assert spend_view(features=(Feature("amount", Float64), Feature("channel", String))).schema_fingerprint() != base
    assert spend_view(timestamp_field="event_ts").schema_fingerprint() != base
    assert spend_view(transformation="SELECT * FROM transactions").schema_fingerprint() != base


def test_registry_version_bumps_only_when_the_schema_changes(store: FeatureStore) -> None:
    def version() -> int:
        return store.registry.view_version(store.project, "customer_spend")

    report = store.apply([customer(), transactions(), spend_view()])
    assert "feature view customer_spend (version 1)" in report.created
    assert version() == 1

    # The same definitions, built again: nothing changes.
    report = store.apply([customer(), transactions(), spend_view()])
    assert "feature view customer_spend" in report.unchanged
    assert report.created == report.updated == report.removed == []
    assert version() == 1

    # Metadata only: same version.
    report = store.apply([customer(), transactions(), spend_view(description="Card spend, in euros")])
    assert report.updated == ["feature view customer_spend (metadata only)"]
    assert version() == 1

    # A new feature: version 2.
    two = (Feature("amount", Float64), Feature("channel", String))
    store.apply([customer(), transactions(), spend_view(features=two)])
    assert version() == 2

    # A removed feature: version 3; applying it again keeps version 3. (A retyped one is refused:
    # tests/registry/test_history_breaking_changes.py.)
    removed = (Feature("channel", String),)
    store.apply([customer(), transactions(), spend_view(features=removed)])
    store.apply([customer(), transactions(), spend_view(features=removed)])
    assert version() == 3

    history = store.registry.view_versions(store.project, "customer_spend")
    assert [v.version for v in history] == [1, 2, 3]
    assert history[0].changes == "created"
    assert "added channel" in history[1].changes
    assert "removed amount" in history[2].changes


def web_transactions(query: str = "SELECT * FROM transactions WHERE channel = 'web'", **changes: object) -> SqlSource:
    fields: dict[str, object] = {"sources": (transactions(),), "timestamp_field": "ts"}
    fields.update(changes)
    return SqlSource(name="web_transactions", query=query, **fields)  # type: ignore[arg-type]


def test_fingerprint_follows_what_the_source_reads_not_its_metadata() -> None:
    base = spend_view(source=web_transactions()).schema_fingerprint()
    assert spend_view(source=web_transactions(description="Web only", owner="x")).schema_fingerprint() == base
    assert spend_view(source=web_transactions("SELECT * FROM transactions")).schema_fingerprint() != base
    moved = FileSource(name="transactions", path="data/v2/transactions.parquet", timestamp_field="ts")
    assert spend_view(source=web_transactions(sources=(moved,))).schema_fingerprint() != base
    assert spend_view().schema_fingerprint() != spend_view(source=moved).schema_fingerprint()


def test_a_changed_source_query_makes_a_new_version_of_the_views_reading_it(store: FeatureStore) -> None:
    apply(store, [customer(), web_transactions(), spend_view(source=web_transactions())])
    assert store.registry.view_version(store.project, "customer_spend") == 1

    # Its metadata only: the source is updated, the view is not.
    described = web_transactions(description="Web only")
    report = store.apply([customer(), described, spend_view(source=described)])
    assert report.updated == ["source web_transactions"]
    assert "feature view customer_spend" in report.unchanged

    shop = web_transactions("SELECT * FROM transactions WHERE channel = 'shop'")
    report = store.apply([customer(), shop, spend_view(source=shop)])
    assert "feature view customer_spend (version 2: changed source web_transactions (query))" in report.updated
    moved = FileSource(name="transactions", path="data/v2/transactions.parquet", timestamp_field="ts")
    upstream_moved = web_transactions(shop.query, sources=(moved,))
    store.apply([customer(), upstream_moved, spend_view(source=upstream_moved)])  # no file there: not checked
    history = store.registry.view_versions(store.project, "customer_spend")
    assert [(v.version, v.changes) for v in history] == [
        (1, "created"),
        (2, "changed source web_transactions (query)"),
        (3, "changed source web_transactions (upstream sources)"),
    ]
    assert history[1].spec["source_definition"]["query"] == shop.query  # each version records what it read


def test_a_view_whose_source_query_changed_since_apply_is_not_run(store: FeatureStore) -> None:
    apply(store, [customer(), web_transactions(), spend_view(source=web_transactions())])
    changed = spend_view(source=web_transactions("SELECT * FROM transactions"))
    with pytest.raises(RunError, match=r"has changed since it was applied.*run 'featurestore apply' first"):
        LocalEngine(store).run("customer_spend", definitions={"customer_spend": changed}, progress=False)
    assert store.offline_store.files("customer_spend") == []


def _as_applied_before_source_definitions(store: FeatureStore, view: FeatureView) -> None:
    """Rewrite the view's registry row as registries applied before sources counted by their
    definition hold it: no source definition in the spec, the fingerprint of the source's name."""
    with store.registry._engine.begin() as conn:
        row = conn.execute(sa.select(views_t.c.spec).where(views_t.c.name == view.name)).one()
        spec = json.loads(row.spec)
        del spec["source_definition"]
        conn.execute(
            views_t.update()
            .where(views_t.c.name == view.name)
            .values(spec=json.dumps(spec, sort_keys=True), fingerprint=view.legacy_schema_fingerprint())
        )


def test_a_registry_applied_before_source_definitions_gets_no_new_version_on_upgrade(store: FeatureStore) -> None:
    view = spend_view(source=web_transactions())
    apply(store, [customer(), web_transactions(), view])
    _as_applied_before_source_definitions(store, view)

    report = store.apply([customer(), web_transactions(), view])
    assert "feature view customer_spend" in report.unchanged
    assert store.registry.view_version(store.project, "customer_spend") == 1
    report = store.apply([customer(), web_transactions(), view])  # now in the new form: nothing to do
    assert "feature view customer_spend" in report.unchanged
    (row,) = store.registry.list_feature_views(store.project)
    assert row.schema_fingerprint() == view.schema_fingerprint()

    # The first apply after the upgrade that changes the query does make a version.
    _as_applied_before_source_definitions(store, view)
    shop = web_transactions("SELECT * FROM transactions WHERE channel = 'shop'")
    report = store.apply([customer(), shop, spend_view(source=shop)])
    assert "feature view customer_spend (version 2: changed source web_transactions (query))" in report.updated
