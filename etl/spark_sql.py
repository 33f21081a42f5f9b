"""DuckDB SQL, as feature views and SQL sources are written, translated to Spark SQL.

Definitions are written once, in DuckDB's dialect (the embedded engine's). The Spark engine runs
the same text after translating it with sqlglot, plus the rewrites sqlglot leaves to us because
Spark rejects what it produces. A query that cannot be translated fails the run with the query's
name and the reason, before anything is written.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from featurestore.errors import RunError


def _generator_out_of_cast(node: exp.Expression) -> exp.Expression:
    """``CAST(EXPLODE(xs) AS T)`` (DuckDB's ``CAST(unnest(generate_series(...)) AS DATE)``) becomes
    ``EXPLODE(CAST(xs AS ARRAY<T>))``: Spark does not allow a generator nested in an expression."""
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Explode | exp.Unnest):
        inner = node.this.this if isinstance(node.this, exp.Explode) else node.this.expressions[0]
        array_type = exp.DataType(this=exp.DataType.Type.ARRAY, expressions=[node.to.copy()], nested=True)
        return exp.Explode(this=exp.Cast(this=inner.copy(), to=array_type))
    return node


def to_spark_sql(query: str, *, what: str) -> str:
    """``query`` (DuckDB SQL) as Spark SQL. ``what`` names the query's owner in errors."""
    try:
        statements = sqlglot.parse(query, read="duckdb")
    except SqlglotError as err:
        raise RunError(f"{what}: its SQL cannot be parsed as DuckDB SQL: {err}") from err
    found = [s for s in statements if s is not None]
    if len(found) != 1:
        raise RunError(f"{what}: its SQL must be one query, found {len(found)} statements")
    try:
        # Through Spark's dialect first (sqlglot's DuckDB -> Spark rewrites), then our own.
        spark_sql = found[0].sql(dialect="spark")
        tree = sqlglot.parse_one(spark_sql, read="spark").transform(_generator_out_of_cast)
    except SqlglotError as err:
        raise RunError(f"{what}: its SQL cannot be translated to Spark SQL: {err}") from err
    if tree is None:  # pragma: no cover - parse_one raises rather than return nothing
        raise RunError(f"{what}: its SQL is empty")
    try:
        return str(tree.sql(dialect="spark"))
    except SqlglotError as err:
        raise RunError(f"{what}: its SQL cannot be translated to Spark SQL: {err}") from err
