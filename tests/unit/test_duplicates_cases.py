"""Duplicate features, the reviewer's cases (issue 18 part 4): queries the exact check must not
take for one another, pandas views it cannot tell apart, value checks on rare events and
filtered copies, the apply's warn mode when the check fails, and what the registry keeps."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from featurestore.definitions import Entity, Feature, FeatureView, FileSource
from featurestore.duplicates import exact_duplicates, feature_signatures
from featurestore.types import ValueType

CUSTOMER = Entity(name="customer", join_keys=("customer_id",), key_types=(ValueType.INT64,))
TX = FileSource(name="tx", path="/data/tx.parquet", timestamp_field="ts")


def sql_view(name: str, sql: str, features: tuple[str, ...] = ("x",)) -> FeatureView:
    return FeatureView(
        name=name,
        entities=(CUSTOMER,),
        source=TX,
        ttl=timedelta(days=1),
        transformation=sql,
        features=tuple(Feature(f, ValueType.FLOAT64) for f in features),
    )


DIFFERENT = {
    "self-join, current vs previous amount": (
        "SELECT a.customer_id, a.ts, a.amount AS x FROM tx a JOIN tx b ON a.customer_id = b.customer_id AND b.ts < a.ts",
        "SELECT a.customer_id, a.ts, b.amount AS x FROM tx a JOIN tx b ON a.customer_id = b.customer_id AND b.ts < a.ts",
    ),
    "another output column's alias": (
        "SELECT customer_id, ts, sum(amount) AS s, s / 2 AS x FROM tx GROUP BY customer_id, ts",
        "SELECT customer_id, ts, sum(fee) AS s, s / 2 AS x FROM tx GROUP BY customer_id, ts",
    ),
    "HAVING on another alias": (
        "SELECT customer_id, ts, count(*) AS x, sum(amount) AS s FROM tx GROUP BY customer_id, ts HAVING s > 0",
        "SELECT customer_id, ts, count(*) AS x, sum(fee) AS s FROM tx GROUP BY customer_id, ts HAVING s > 0",
    ),
    "a table alias's column names": (
        "SELECT customer_id, ts, a AS x FROM tx AS t(customer_id, ts, a, b)",
        "SELECT customer_id, ts, a AS x FROM tx AS t(customer_id, ts, b, a)",
    ),
    "GROUP BY a position of a dropped column": (
        "SELECT customer_id, max(ts) AS ts, status, sum(amount) AS x FROM tx GROUP BY 1, 3",
        "SELECT customer_id, max(ts) AS ts, region, sum(amount) AS x FROM tx GROUP BY 1, 3",
    ),
    "GROUP BY ALL over a dropped column": (
        "SELECT customer_id, max(ts) AS ts, status, sum(amount) AS x FROM tx GROUP BY ALL",
        "SELECT customer_id, max(ts) AS ts, region, sum(amount) AS x FROM tx GROUP BY ALL",
    ),
    "DISTINCT over a dropped column": (
        "SELECT DISTINCT customer_id, ts, status, amount AS x FROM tx",
        "SELECT DISTINCT customer_id, ts, region, amount AS x FROM tx",
    ),
    "a correlated subquery's outer column": (
        "SELECT p.customer_id, p.ts, (SELECT sum(q.amount) FROM tx q WHERE q.customer_id = p.customer_id) AS x "
        "FROM tx p",
        "SELECT p.customer_id, p.ts, (SELECT sum(q.amount) FROM tx q WHERE q.customer_id = q.customer_id) AS x "
        "FROM tx p",
    ),
}

SAME = {
    "aliases and qualifiers of one table": (
        "SELECT t.customer_id, t.ts, t.amount + t.fee AS x FROM tx AS t",
        "SELECT customer_id, ts, fee + amount AS total FROM tx",
    ),
    "a self-join under other aliases": (
        "SELECT a.customer_id, a.ts, b.amount AS x FROM tx a JOIN tx b ON a.customer_id = b.customer_id",
        "SELECT cur.customer_id, cur.ts, prev.amount AS x FROM tx cur JOIN tx prev ON cur.customer_id = prev.customer_id",
    ),
    "an alias inlined": (
        "SELECT customer_id, ts, sum(amount) AS s, s / 2 AS x FROM tx GROUP BY customer_id, ts",
        "SELECT customer_id, ts, sum(amount) / 2 AS x FROM tx GROUP BY 1, 2",
    ),
}


@pytest.mark.parametrize("label", sorted(DIFFERENT))
def test_queries_that_compute_other_values_are_not_exact_duplicates(label: str) -> None:
    first, second = DIFFERENT[label]
    assert exact_duplicates([sql_view("copy", second)], [sql_view("orig", first)]) == []


@pytest.mark.parametrize("label", sorted(SAME))
def test_queries_written_differently_that_compute_the_same_are_exact_duplicates(label: str) -> None:
    first, second = SAME[label]
    copy = sql_view("copy", second, ("total",) if "total" in second else ("x",))
    found = exact_duplicates([copy], [sql_view("orig", first)])
    assert [(f.feature.split(":")[0], f.duplicate_of, f.kind) for f in found] == [("copy", "orig:x", "exact")]


def test_a_query_sqlglot_cannot_tokenize_has_no_signature() -> None:
    assert feature_signatures(sql_view("broken", "SELECT customer_id, ts, 'abc AS x FROM tx")) == {}


# ------------------------------------------------------------------------------ pandas views


def region_view(name: str, region: str) -> FeatureView:
    def transform(df: Any) -> Any:
        return df[df.region == region]

    return FeatureView(
        name=name,
        entities=(CUSTOMER,),
        source=TX,
        ttl=timedelta(days=1),
        transformation=transform,
        features=(Feature("spend", ValueType.FLOAT64),),
    )


def test_pandas_views_from_one_factory_differ_by_the_values_they_close_over() -> None:
    eu, us, eu_again = region_view("spend_eu", "eu"), region_view("spend_us", "us"), region_view("eu2", "eu")
    assert exact_duplicates([us], [eu]) == []
    assert [f.duplicate_of for f in exact_duplicates([eu_again], [eu])] == ["spend_eu:spend"]


def test_lambdas_and_functions_reading_values_it_cannot_tell_have_no_signature() -> None:
    first = sql_view("first", "unused")
    threshold = object()  # its repr tells nothing of what it holds

    def reads_an_object(df: Any) -> Any:
        return df[df.amount > threshold]

    for transformation in (lambda df: df[df.amount > 1], lambda df: df[df.amount > 2], reads_an_object):
        view = dataclasses.replace(first, name="lam", transformation=transformation)
        assert feature_signatures(view) == {}
