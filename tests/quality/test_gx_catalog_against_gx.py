"""featurestore.gx_catalog reads Great Expectations' installed files instead of importing it:
its answers are checked here against Great Expectations itself, for every expectation it
registers (names, class names, arguments, which are required) and for a set of argument values
of every kind (whenever the catalog gives a verdict, pydantic's must be the same, message for
message). A Great Expectations upgrade that changes any of it fails these tests."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from featurestore.gx_catalog import GxCatalog, installed_catalog
from featurestore.validation import import_great_expectations

# JSON values of every kind a GxExpectation's arguments may hold.
VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    1,
    2,
    -1,
    0.5,
    1.5,
    1e300,
    "",
    "a",
    "zero",
    "1",
    "1.5",
    "true",
    "nan",
    "2024-01-01",
    "2024-01-01T00:00:00",
    [],
    ["a"],
    [1],
    [None],
    [[1]],
    [["a", 1]],
    {},
    {"a": 1},
    {"$PARAMETER": "x"},
    "all",
    "never",
    "pandas",
    "iqr",
)


@pytest.fixture(scope="module")
def gx() -> Any:
    return import_great_expectations()


@pytest.fixture(scope="module")
def catalog() -> GxCatalog:
    found = installed_catalog()
    assert found is not None
    return found


def test_the_catalog_names_exactly_the_expectations_great_expectations_registers(gx: Any, catalog: GxCatalog) -> None:
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    registered = sorted(list_registered_expectation_implementations())
    assert catalog.names() == registered
    for name in registered:
        cls = get_expectation_impl(name)
        by_name, by_class = catalog.find(name), catalog.find(cls.__name__)
        assert by_name is not None and by_name == by_class
        assert by_name.class_name == cls.__name__
    assert catalog.find("expect_column_values_to_be_betwen") is None
    assert catalog.find("ExpectMulticolumnValuesToBeUnique") is None  # abstract (no map metric): not registered


def test_every_expectations_arguments_and_which_are_required(gx: Any, catalog: GxCatalog) -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    for name in catalog.names():
        cls = get_expectation_impl(name)
        schema = catalog.find(name)
        assert schema is not None
        assert set(schema.arguments) == set(cls.__fields__), name
        required = {n for n, f in cls.__fields__.items() if f.required}
        assert {a.name for a in schema.arguments.values() if a.required} == required, name


def _pydantic_errors(cls: type, argument: str, value: Any) -> dict[str, str] | None:
    """The first message per location under ``argument`` when Great Expectations builds ``cls``
    with that one argument (other arguments missing are other locations); None when it raises
    something else than a validation error."""
    try:
        # Some values are accepted with a deprecation warning (condition_parser='pandas'):
        # pytest would make it an error, which Great Expectations does not raise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**{argument: value})
    except Exception as err:  # pydantic's ValidationError, or an expectation's own exception
        errors = getattr(err, "errors", None)
        if not callable(errors):
            return None
        out: dict[str, str] = {}
        for e in errors():
            loc = e["loc"]
            if loc and loc[0] == argument:
                out.setdefault("".join(f".{p}" for p in loc[1:]), e["msg"])
        return out
    return {}


def test_every_verdict_on_an_argument_value_is_pydantics(gx: Any, catalog: GxCatalog) -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    verdicts = refused = 0
    disagreements = []
    for name in catalog.names():
        cls = get_expectation_impl(name)
        schema = catalog.find(name)
        assert schema is not None
        for argument in schema.arguments.values():
            for value in VALUES:
                ours = argument.problems(value)
                if ours is None:
                    continue  # left to Great Expectations
                verdicts += 1
                refused += bool(ours)
                mine: dict[str, str] = {}
                for loc, msg in ours:
                    mine.setdefault(loc, msg)
                theirs = _pydantic_errors(cls, argument.name, value)
                if mine != theirs:
                    disagreements.append((name, argument.name, value, mine, theirs))
    assert disagreements == []
    # The catalog decides most of these (a regression to "left to Great Expectations" shows here).
    assert verdicts > 15_000 and refused > 5_000, (verdicts, refused)


def test_another_major_release_is_asked_itself(gx: Any, catalog: GxCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from featurestore import DefinitionError, Entity, Feature, FeatureView, FileSource, Float64, GxExpectation, Int64
    from featurestore.validation import validate_project

    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    source = FileSource(name="accounts_source", path="accounts.parquet", timestamp_field="ts")
    both_missing = GxExpectation("expect_column_values_to_be_between", {"column": "balance"})
    view = FeatureView(
        name="accounts",
        entities=(customer,),
        source=source,
        timestamp_field="ts",
        ttl=timedelta(days=1),
        features=(Feature("balance", Float64),),
        expectations=(both_missing,),
    )
    validate_project([customer, source, view])  # the 1.x catalog leaves the root validator to the run
    monkeypatch.setattr("featurestore.gx_catalog.installed_catalog", lambda: GxCatalog(catalog.root, "2.0.0"))
    with pytest.raises(DefinitionError, match="min_value and max_value cannot both be None"):
        validate_project([customer, source, view])
