"""Start-up stays light: `import featurestore` and `featurestore --help` load no data library.

Checked by listing the modules a fresh interpreter has imported, not by timing (bench/startup
numbers move with the machine's load): pandas, pyarrow and numpy alone cost ~0.4 s to import, and
DuckDB and SQLAlchemy load only when a command opens a store.
"""

from __future__ import annotations

import json
import subprocess
import sys

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
