"""`featurestore apply` imports what applying needs and nothing more (issue 14: apply of the demo
in at most 1 s, ~85 % of it imports).

Checked by listing the modules a fresh interpreter has imported after an apply, not by timing
(bench/startup.py times it): the registry at head is opened without Alembic, and the modules of
reads (training sets, lookups, consistency checks, the served-vector log's writer, the Parquet
offline store) are not loaded by an apply, even of a project that logs served vectors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from featurestore.scaffold import scaffold_project

pytestmark = pytest.mark.slow  # whole projects applied in subprocesses: outside `make test-fast`

APPLY = """
import json, sys
from featurestore.cli import cli

try:
    cli.main(["-C", {project!r}, "apply"])
except SystemExit as done:
    if done.code:
        raise
print(json.dumps(sorted(sys.modules)))
"""

NOT_FOR_APPLY = (
    "alembic",
    "pandas",
    "great_expectations",
    "pyspark",
    "fastapi",
    "featurestore.lookup",
    "featurestore.retrieval",
    "featurestore.training_datasets",
    "featurestore.consistency",
    "featurestore.serving_log",
    "featurestore.offline.parquet",
    # ~70 ms of CPU together: a run's (the local engine's writes, conform), not an apply's
    "pyarrow.compute",
    "pyarrow.parquet",
)
NOT_FOR_A_SQLITE_APPLY = (
    # The SQLite online store imports its value codec where it encodes or decodes: an apply
    # prepares its tables and encodes nothing (~230 ms of CPU, measured with -X importtime).
    "pyarrow",
    "numpy",
    "featurestore.online.codec",
)


def _apply(project: Path) -> set[str]:
    """The modules an ``apply`` of ``project`` in a fresh interpreter imported."""
    return _loaded_by(APPLY.format(project=str(project)))


def _loaded_by(script: str) -> set[str]:
    """The modules imported by ``script`` in a fresh interpreter; it prints them, as JSON, last."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _among(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in loaded)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "trips"
    scaffold_project(root, "trips")
    # The served-vector log on, as in the demo: its writer must still not load for an apply.
    with (root / "featurestore.yaml").open("a") as f:
        f.write("serving_log:\n  sample_rate: 1.0\n")
    return root


def test_the_first_apply_creates_the_registry_without_alembic_and_checks_its_new_views(project: Path) -> None:
    # A new registry gets the declared tables stamped at head (no Alembic, since 8a37a85); the
    # views are all new, so the exact duplicate check parses their SQL: sqlglot is loaded here
    # (the check below can fail), and only here.
    loaded = _apply(project)
    assert {"sqlalchemy", "duckdb", "featurestore.registry", "featurestore.source_probe"} <= loaded  # it applied
    assert "sqlglot" in loaded
    assert "alembic" not in loaded


def test_an_apply_of_a_registry_at_head_imports_no_module_of_reads_nor_alembic(project: Path) -> None:
    _apply(project)  # creates the registry, at head
    loaded = _apply(project)
    assert {"sqlalchemy", "duckdb", "featurestore.registry", "featurestore.source_probe"} <= loaded  # it applied
    assert _among(loaded, (*NOT_FOR_APPLY, "sqlglot")) == []  # no view is new or changed: no SQL parsed


def test_a_repeat_apply_of_a_sqlite_online_project_imports_no_arrow(project: Path) -> None:
    _apply(project)
    loaded = _apply(project)
    assert "featurestore.online.sqlite" in loaded  # the store was opened (its tables prepared)
    assert _among(loaded, NOT_FOR_A_SQLITE_APPLY) == []
    # DuckDB is still loaded here (not asserted either way): every apply checks each view's
    # output schema from DuckDB's plan (etl.local) and probes the sources.


def test_reading_the_registry_imports_no_duckdb() -> None:
    # Recorded source probes are read as SourceProbe; featurestore.source_probe imports DuckDB
    # only where it probes (every command opening the registry paid ~75 ms of CPU for it).
    script = (
        "import json, sys\n"
        "import featurestore.registry, featurestore.source_probe, featurestore.store\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = _loaded_by(script)
    assert "featurestore.registry.source_probes" in loaded
    assert _among(loaded, ("duckdb", "featurestore.sql", "pyarrow", "numpy")) == []


def test_reading_the_config_of_a_sqlite_online_project_imports_no_arrow(project: Path) -> None:
    # The SQLite store's settings live apart from the store (featurestore/online/sqlite_config.py):
    # before, every config load imported the store, its value codec, pyarrow and numpy (~300 ms).
    script = (
        "import json, sys\n"
        "from featurestore.config import ProjectConfig\n"
        f"config = ProjectConfig.load({str(project)!r})\n"
        "assert config.online_store.type == 'sqlite', config.online_store\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = _loaded_by(script)
    assert "featurestore.online.sqlite_config" in loaded
    assert _among(loaded, ("pyarrow", "numpy", "featurestore.online.sqlite", "featurestore.online.codec")) == []


def test_the_console_entry_point_freezes_the_objects_left_at_exit_and_only_then() -> None:
    # The interpreter's collections at exit would scan every object the imports made (~130 ms of
    # CPU after a repeat apply of the demo); featurestore.cli.main registers gc.freeze at exit,
    # once however often it is called. An atexit function registered before main() runs after it.
    script = (
        "import atexit, gc, sys\n"
        "calls = []\n"
        "real = gc.freeze\n"
        "def freeze():\n"
        "    calls.append(1)\n"
        "    real()\n"
        "gc.freeze = freeze\n"
        "atexit.register(lambda: print('at exit:', len(calls), gc.get_freeze_count() > 0))\n"
        "from featurestore.cli import main\n"
        "sys.argv = ['featurestore', '--help']\n"
        "main()\n"
        "main()\n"
        "print('before exit:', len(calls), gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-2:] == ["before exit: 0 False", "at exit: 1 True"]
