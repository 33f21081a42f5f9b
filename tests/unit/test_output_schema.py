"""The output schema of a SQL view read from DuckDB's plan without pyarrow (featurestore/schema.py's
OutputSchema): each DuckDB type it names is the Arrow type DuckDB itself gives (checked against
DuckDB's Arrow conversion, so a DuckDB upgrade that changes one fails here), it is judged by
ValueType.accepts as the Arrow type is, and checking a project's SQL views imports neither
pyarrow nor numpy (issue 14, target 4: `featurestore apply` of the demo within 1 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from featurestore.schema import _DUCKDB_ARROW, OutputSchema
from featurestore.sql import connect
from featurestore.types import ValueType

# One column of every DuckDB type OutputSchema names, and of a few it does not.
NAMED = {
    "TINYINT": "1::TINYINT",
    "SMALLINT": "1::SMALLINT",
    "INTEGER": "1::INTEGER",
    "BIGINT": "1::BIGINT",
    "UTINYINT": "1::UTINYINT",
    "USMALLINT": "1::USMALLINT",
    "UINTEGER": "1::UINTEGER",
    "UBIGINT": "1::UBIGINT",
    "FLOAT": "1.5::FLOAT",
    "DOUBLE": "1.5::DOUBLE",
    "VARCHAR": "'x'",
    "BOOLEAN": "true",
    "DATE": "DATE '2024-03-01'",
    "TIMESTAMP": "TIMESTAMP '2024-03-01 10:00:00'",
    "TIMESTAMP_S": "TIMESTAMP '2024-03-01 10:00:00'::TIMESTAMP_S",
    "TIMESTAMP_MS": "TIMESTAMP '2024-03-01 10:00:00'::TIMESTAMP_MS",
    "TIMESTAMP_NS": "TIMESTAMP '2024-03-01 10:00:00'::TIMESTAMP_NS",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ '2024-03-01 10:00:00+02:00'",
    "DECIMAL(10,2)": "1.5::DECIMAL(10,2)",
    "DECIMAL(38,4)": "1.5::DECIMAL(38,4)",
    "DECIMAL(2,1)": "1.5",
}
NOT_NAMED = ["1::HUGEINT", "uuid()", "'a'::ENUM('a', 'b')", "[1, 2]", "{'a': 1}", "'x'::BLOB", "INTERVAL 1 DAY"]


def _relation(con: duckdb.DuckDBPyConnection, expressions: list[str]) -> duckdb.DuckDBPyRelation:
    return con.sql("SELECT " + ", ".join(f"{e} AS c{i}" for i, e in enumerate(expressions)) + " LIMIT 0")


def test_every_named_duckdb_type_is_the_arrow_type_duckdb_gives_it() -> None:
    assert set(_DUCKDB_ARROW) <= set(NAMED)  # a type added to the table is tested here too
    con = connect()  # the session time zone UTC, as every connection of the feature store
    relation = _relation(con, list(NAMED.values()))
    types = [str(t) for t in relation.types]
    assert types == list(NAMED)
    ours = OutputSchema.from_duckdb(relation.columns, types)
    assert ours is not None
    arrow = relation.to_arrow_table().schema
    assert ours.names == arrow.names
    for name in arrow.names:
        theirs = arrow.field(name).type
        assert str(ours.field(name).type) == str(theirs), name
        for value_type in ValueType:
            assert value_type.accepts(ours.field(name).type) == value_type.accepts(theirs), (name, value_type)


@pytest.mark.parametrize("expression", NOT_NAMED)
def test_a_type_not_named_is_left_to_arrow(expression: str) -> None:
    relation = _relation(connect(), ["1::BIGINT", expression])
    assert OutputSchema.from_duckdb(relation.columns, [str(t) for t in relation.types]) is None


def test_repeated_column_names_are_left_to_arrow() -> None:
    assert OutputSchema.from_duckdb(["a", "a"], ["BIGINT", "BIGINT"]) is None
    schema = OutputSchema.from_duckdb(["a", "b"], ["BIGINT", "VARCHAR"])
    assert schema is not None and schema.names == ["a", "b"]
    with pytest.raises(KeyError, match="no column 'c'"):
        schema.field("c")


def test_accepts_judges_arrow_types_as_before() -> None:
    # The kinds ValueType.accepts reads off pyarrow types: what it answered before they existed.
    cases = {
        pa.int8(): {ValueType.INT64, ValueType.FLOAT64},
        pa.uint64(): {ValueType.INT64, ValueType.FLOAT64},
        pa.float32(): {ValueType.FLOAT64},
        pa.decimal128(10, 2): {ValueType.FLOAT64},
        pa.string(): {ValueType.STRING},
        pa.large_string(): {ValueType.STRING},
        pa.bool_(): {ValueType.BOOL},
        pa.timestamp("ns"): {ValueType.TIMESTAMP},
        pa.date32(): {ValueType.TIMESTAMP},
        pa.binary(): set(),
        pa.list_(pa.int64()): set(),
    }
    for arrow_type, accepted in cases.items():
        assert {v for v in ValueType if v.accepts(arrow_type)} == accepted, arrow_type


CHECK = """
import json, sys
from featurestore.store import FeatureStore
from featurestore.project_files import load_definitions
from featurestore.validation import validate_project
from etl.local import LocalEngine

store = FeatureStore({project!r})
project = validate_project(load_definitions(store.config), LocalEngine(store).infer_schema)
assert project.feature_views, project
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.slow  # a project checked in a subprocess
def test_checking_a_project_of_sql_views_imports_no_arrow(tmp_path: Path) -> None:
    from featurestore.scaffold import scaffold_project

    root = tmp_path / "trips"
    scaffold_project(root, "trips")
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(project=str(root))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "duckdb" in loaded  # the outputs were read from DuckDB's plans
    assert sorted(m for m in ("pyarrow", "numpy", "pandas") if m in loaded) == []
