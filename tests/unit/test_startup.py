"""Start-up stays light: `import featurestore` and `featurestore --help` load no data library,
`apply` no pandas nor Great Expectations.

Checked by listing the modules a fresh interpreter has imported, not by timing (bench/startup
numbers move with the machine's load): pandas, pyarrow and numpy alone cost ~0.4 s to import, and
DuckDB and SQLAlchemy load only when a command opens a store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "pyarrow", "numpy", "duckdb", "sqlalchemy", "great_expectations", "pyspark", "fastapi")

LIST_MODULES = """
import json, sys
{code}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _loaded(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", LIST_MODULES.format(code=code)], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import featurestore",
        "from featurestore import Entity, Feature, FeatureView, FileSource, Float64, InRange, Int64",
        # The console script's --help: click prints the usage and exits.
        "from featurestore.cli import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass",
        "from featurestore.cli import cli\ntry:\n    cli.main(['push', '--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_no_data_library_is_imported(code: str) -> None:
    loaded = _loaded(code)
    assert not loaded & set(HEAVY), f"{code!r} imported {sorted(loaded & set(HEAVY))}"


def test_the_arrow_types_still_load_when_asked_for() -> None:
    from featurestore.types import UTC_TIMESTAMP, ValueType

    assert str(UTC_TIMESTAMP) == "timestamp[us, tz=UTC]"
    assert str(ValueType.FLOAT64.arrow) == "double"


def test_apply_checks_a_gx_expectation_without_importing_great_expectations() -> None:
    # Great Expectations takes 5-10 s to import: apply reads its installed files instead
    # (featurestore.gx_catalog), still refusing an unknown name and a bad argument.
    code = """
from datetime import timedelta
from featurestore import DefinitionError, Entity, Feature, FeatureView, FileSource, Float64, GxExpectation, Int64
from featurestore.validation import validate_project

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
source = FileSource(name="accounts", path="accounts.parquet", timestamp_field="ts")
def view(expectation):
    return FeatureView(name="accounts", entities=(customer,), source=source, timestamp_field="ts",
                       ttl=timedelta(days=1), features=(Feature("balance", Float64),), expectations=(expectation,))
validate_project([customer, source, view(GxExpectation("ExpectColumnMeanToBeBetween", {"column": "balance", "min_value": 0}))])
for bad, problem in (
    (GxExpectation("expect_column_mean_to_be_betwen", {"column": "balance"}),
     "has no expectation of that name. Did you mean 'expect_column_mean_to_be_between'"),
    (GxExpectation("expect_column_mean_to_be_between", {"column": "balance", "mostly": 0.5}),
     "unknown argument 'mostly'"),
    (GxExpectation("expect_column_mean_to_be_between", {"column": "balance", "min_value": "zero"}),
     "argument 'min_value': value is not a valid float"),
):
    try:
        validate_project([customer, source, view(bad)])
    except DefinitionError as err:
        if not any(problem in p for p in err.problems):
            raise SystemExit(f"{problem!r} not in {err.problems}")
    else:
        raise SystemExit("not refused: " + repr(bad))
"""
    assert "great_expectations" not in _loaded(code)


def test_apply_imports_no_pandas_nor_great_expectations(tmp_path: Path) -> None:
    # apply needs the registry (SQLAlchemy) and schema inference (DuckDB, Arrow), not pandas
    # (~0.35 s: the facade's training-set and lookup modules check for DataFrames without it).
    code = f"""
from pathlib import Path
from featurestore.cli import cli
from featurestore.scaffold import scaffold_project
scaffold_project(Path({str(tmp_path / "trips")!r}), "trips")
try:
    cli.main(["-C", {str(tmp_path / "trips")!r}, "apply"])
except SystemExit as done:
    if done.code:
        raise
"""
    loaded = _loaded(code)
    assert {"sqlalchemy", "duckdb"} <= loaded  # it did apply
    assert not loaded & {"pandas", "great_expectations", "pyspark", "fastapi"}, sorted(loaded)


def test_the_public_names_load_on_first_use() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import featurestore, sys; print(sorted(m for m in sys.modules if m.startswith('featurestore')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == "['featurestore']"
    import featurestore

    assert sorted(featurestore.__all__) == sorted(featurestore._EXPORTS)
    for name in featurestore.__all__:
        assert getattr(featurestore, name).__module__.startswith("featurestore.")
    with pytest.raises(AttributeError, match="has no attribute 'Entities'"):
        featurestore.Entities  # noqa: B018


def test_python_m_featurestore_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "featurestore", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.startswith("Usage: python -m featurestore [OPTIONS] COMMAND [ARGS]...")
    assert "apply" in done.stdout
