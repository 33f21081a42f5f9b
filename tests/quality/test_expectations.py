"""Expectations as definitions: typed on construction, every problem of a project reported by
``apply`` at once (unknown columns with suggestions, bad bounds, bad patterns), stored in the
registry and read back equal, and Great Expectations' own complaints about a
``GxExpectation`` (unknown name, bad arguments) turned into clear definition errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from quality_projects import USUAL, VIEW, new_project, table, utc, write_features

from featurestore import DefinitionError, Entity, Feature, FeatureView, FileSource, Float64, Int64, String
from featurestore.expectations import (
    Fresh,
    GxExpectation,
    InRange,
    InSet,
    MatchesRegex,
    NotNull,
    RowCount,
    UniqueKeys,
    expectation_from_spec,
)
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.types import ValueType
from featurestore.validation import validate_project
from quality.gate import validate

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
source = FileSource(name="accounts_source", path="data/accounts.parquet", timestamp_field="ts")


def view(*expectations: object) -> FeatureView:
    return FeatureView(
        name=VIEW,
        entities=(customer,),
        source=source,
        timestamp_field="ts",
        ttl=timedelta(days=30),
        features=(Feature("balance", Float64), Feature("segment", String), Feature("n", Int64)),
        expectations=expectations,  # type: ignore[arg-type]
    )


def problems_of(*expectations: object) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        validate_project([customer, source, view(*expectations)])
    return caught.value.problems


EVERY_KIND = (
    NotNull("segment"),
    InRange("balance", min=0, max=1e6, strict_max=True, severity="warn"),
    InSet("segment", ("mass", "affluent")),
    MatchesRegex("segment", r"^[a-z]+$"),
    UniqueKeys(),
    RowCount(min=1, max=10_000),
    Fresh(timedelta(days=2), severity="warn"),
    GxExpectation("expect_column_mean_to_be_between", {"column": "balance", "min_value": 0, "max_value": 500}),
)


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: NotNull(3), "NotNull needs a column name (a string), got 3"),
        (lambda: NotNull("x", severity="fatal"), "severity must be 'block' (the run fails) or 'warn'"),
        (lambda: InRange("x", min="0"), "InRange('x') min must be a number or None, got '0'"),
        (lambda: InSet("x", "abc"), "InSet('x') values must be a sequence of values, got 'abc'"),
        (lambda: RowCount(min=1.5), "RowCount min must be an integer or None, got 1.5"),
        (lambda: Fresh(3600), "Fresh max_age must be a datetime.timedelta, got 3600"),
        (
            lambda: GxExpectation("expect_column_max_to_be_between", {"column": "ts", "min_value": utc(2024, 1, 1)}),
            "GxExpectation('expect_column_max_to_be_between') arguments must be JSON values",
        ),
        (lambda: view("not an expectation"), "expectations must be expectations such as NotNull('col')"),
    ],
)
def test_wrong_python_types_are_refused_at_once(build: object, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        build()  # type: ignore[operator]
    assert message in str(caught.value)


def test_every_problem_of_the_expectations_is_reported_at_once_with_what_to_fix() -> None:
    problems = problems_of(
        NotNull("balanse"),
        InRange("balance", min=10, max=1),
        InRange("segment", min=0),
        InRange("n"),
        MatchesRegex("segment", "(unclosed"),
        MatchesRegex("n", "^1"),
        InSet("n", ("a",)),
        RowCount(),
        Fresh(timedelta(0)),
        GxExpectation("expect_column_values_to_be_unique", {"column": "segmnt"}),
    )
    assert problems == [
        "Feature view 'accounts': expectation balanse is not null names column 'balanse', which the view does not "
        "have. Did you mean 'balance'? Columns: ['customer_id', 'ts', 'balance', 'segment', 'n']",
        "Feature view 'accounts': expectation balance in [10, 1]: min 10 is greater than max 1",
        "Feature view 'accounts': expectation segment in [0, +inf): column 'segment' is string, not a number; "
        "InRange checks int64 and float64 columns",
        "Feature view 'accounts': expectation n in (-inf, +inf) has no bound: give min=, max= or both",
        "Feature view 'accounts': expectation segment matches /(unclosed/: the pattern is not a valid regular "
        "expression: missing ), unterminated subpattern at position 0",
        "Feature view 'accounts': expectation n matches /^1/: column 'n' is int64; MatchesRegex checks string columns",
        "Feature view 'accounts': expectation n in {'a'}: column 'n' holds numbers; give numeric values",
        "Feature view 'accounts': expectation row count in [0, +inf] has no bound: give min=, max= or both",
        "Feature view 'accounts': expectation newest event time at most 0:00:00 old: max_age must be positive, "
        "e.g. Fresh(timedelta(days=1))",
        "Feature view 'accounts': expectation expect_column_values_to_be_unique(column='segmnt') names column "
        "'segmnt', which the view does not have. Did you mean 'segment'? Columns: ['customer_id', 'ts', 'balance', "
        "'segment', 'n']",
    ]


def test_apply_refuses_a_view_with_a_bad_expectation_and_records_nothing(tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank")
    write_features(root, f'{USUAL}, InRange("balanse", min=0)')
    with FeatureStore(root) as store:
        with pytest.raises(DefinitionError, match="names column 'balanse', which the view does not have"):
            store.apply(load_definitions(store.config))
        assert [e.kind for e in store.get_feature_view(VIEW).expectations] == [
            "not_null",
            "in_range",
            "in_set",
            "unique_keys",
        ]


# ---------------------------------------------------------------------- Great Expectations' complaints


@pytest.mark.parametrize(
    ("expectation", "problem"),
    [
        (
            GxExpectation("expect_column_values_to_be_betwen", {"column": "balance", "min_value": 0}),
            "expectation expect_column_values_to_be_betwen: Great Expectations has no expectation of that name. "
            "Did you mean 'expect_column_values_to_be_between' or ",
        ),
        (
            GxExpectation("expect_column_values_to_be_between", {"column": "balance", "min_value": "zero"}),
            "expectation expect_column_values_to_be_between: argument 'min_value': value is not a valid float",
        ),
        (
            GxExpectation("expect_column_values_to_be_between", {"column": "balance", "minimum": 0}),
            "expectation expect_column_values_to_be_between: unknown argument 'minimum'; remove it or check the "
            "expectation's documented arguments",
        ),
        (
            GxExpectation("expect_column_values_to_be_in_set", {"value_set": ["a"]}),
            "expectation expect_column_values_to_be_in_set: missing argument 'column'",
        ),
        (
            GxExpectation("expect_column_values_to_be_between", {"column": "balance", "min_value": 0, "mostly": 2}),
            "expectation expect_column_values_to_be_between: argument 'mostly': ensure this value is less than or "
            "equal to 1.0",
        ),
        (
            GxExpectation("expect_column_values_to_match_regex", {"column": "segment", "regex": "(x"}),
            "'(x' is not a valid regular expression",
        ),
    ],
)
def test_great_expectations_complaints_become_clear_definition_errors(expectation: object, problem: str) -> None:
    (found,) = problems_of(expectation)
    assert found.startswith("Feature view 'accounts': ")
    assert problem in found


def test_great_expectations_checks_of_the_arguments_together_run_when_a_run_builds_the_expectation() -> None:
    # apply reads Great Expectations' files instead of importing it (5-10 s): its root
    # validators (code over several arguments) are left to the run, which builds the expectation
    # before reading any row and refuses it with the same clear error.
    both_missing = GxExpectation("expect_column_values_to_be_between", {"column": "balance"})
    project = validate_project([customer, source, view(both_missing)])
    frame = table([(1, utc(2024, 3, 1), 5.0, "mass", 1, True)]).drop_columns(["active"])
    with pytest.raises(DefinitionError) as caught:
        validate(project.feature_views[0], frame)
    assert caught.value.problems == [
        "Feature view 'accounts': expectation expect_column_values_to_be_between: bad arguments: min_value and "
        "max_value cannot both be None"
    ]


def test_a_gx_expectation_may_be_named_by_its_class_and_is_checked_by_great_expectations() -> None:
    checked = GxExpectation("ExpectColumnValuesToBeBetween", {"column": "balance", "min_value": 0})
    project = validate_project([customer, source, view(checked)])
    frame = table([(1, utc(2024, 3, 1), -1.0, "mass", 1, True), (2, utc(2024, 3, 1), 5.0, "mass", 1, True)])
    report = validate(project.feature_views[0], frame.drop_columns(["active"]))
    (result,) = report.results
    assert (result.success, result.failed_rows, result.kind) == (False, 1, "gx")
    assert result.examples == ({"customer_id": 1, "ts": utc(2024, 3, 1), "balance": -1.0},)


def test_great_expectations_failing_to_evaluate_is_a_failure_with_its_reason() -> None:
    # A frame lacking a checked column (the definitions were bypassed): Great Expectations cannot
    # evaluate the expectation; the report says why instead of passing it or crashing.
    checked = view(InRange("balance", min=0), NotNull("segment", severity="warn"))
    frame = pa.table({"customer_id": pa.array([1], pa.int64()), "ts": pa.array([utc(2024, 3, 1)]), "segment": ["a"]})
    report = validate(checked, frame)
    failed, passed = report.results
    assert (failed.success, failed.failed_rows) == (False, None)
    assert failed.error == 'Error: The column "balance" in BatchData does not exist.'
    assert passed.success
    assert report.status == "blocked"
    assert 'balance in [0, +inf): could not be evaluated: Error: The column "balance" in BatchData does not exist.' in (
        report.render()
    )


# ---------------------------------------------------------------------- specs and the registry


def test_expectations_round_trip_through_their_specs_and_json() -> None:
    for expectation in EVERY_KIND:
        spec = json.loads(json.dumps(expectation.to_spec()))
        assert expectation_from_spec(spec) == expectation
        assert hash(expectation_from_spec(spec)) == hash(expectation)
    with pytest.raises(DefinitionError, match="Unknown expectation kind 'sometimes'"):
        expectation_from_spec({"kind": "sometimes"})


def test_the_registry_gives_back_the_applied_expectations(tmp_path: Path) -> None:
    checked = view(*EVERY_KIND)
    rebuilt = FeatureView.from_spec(json.loads(json.dumps(checked.to_spec())), {"customer": customer}, source)
    assert rebuilt.expectations == EVERY_KIND
    root = new_project(tmp_path / "bank", expectations="")
    with FeatureStore(root) as store:
        store.apply([customer, source, checked])
        assert store.registry.get_feature_view(store.project, VIEW).expectations == EVERY_KIND


def test_expectations_are_not_part_of_the_schema_fingerprint() -> None:
    assert view(*EVERY_KIND).schema_fingerprint() == view().schema_fingerprint()


def test_in_set_on_a_boolean_column_takes_booleans_only() -> None:
    # DuckDB would compare true with 'yes' by casting, Great Expectations fail every row: refused.
    columns = {"customer_id": ValueType.INT64, "active": ValueType.BOOL}
    assert InSet("active", (True,)).problems("accounts", columns) == []
    assert InSet("active", ("yes", True)).problems("accounts", columns) == [
        "Feature view 'accounts': expectation active in {'yes', True}: column 'active' holds booleans; "
        "give True and/or False"
    ]
