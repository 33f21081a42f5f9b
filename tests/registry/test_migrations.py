"""The registry's schema migrations: a registry created by release 0.1 (before migrations) is
upgraded when opened and reads back the same; a fresh registry is the tables the code declares,
stamped at head, which the migrations build too from an empty database; upgrading is idempotent; opening a registry at head does
not import Alembic.

``tests/fixtures/registry_release_0_1.db`` was written by release 0.1 and
``registry_release_0_1.json`` is everything that release read back from it (see
``tests/fixtures/make_registry_release_0_1.py``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import featurestore.registry as registry_module
from featurestore.errors import StoreUnavailableError
from featurestore.registry import Registry, metadata, upgrade
from featurestore.registry.migration import BASELINE, HEAD, alembic_config

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASE_0_1 = FIXTURES / "registry_release_0_1.db"
RELEASE_0_1_READ_BACK = FIXTURES / "registry_release_0_1.json"
NEW_RUN_COLUMNS = ("entities_affected", "rows_online_removed")
NEW_TABLES = (
    "api_tokens",
    "audit_log",
    "alert_incidents",
    "alert_deliveries",
    "training_datasets",
    "model_versions",
    "model_traffic",
    "skew_reports",  # 0008
    "feature_requests",  # 0009
    "feature_request_votes",
    "feature_request_events",
    "feature_request_notifications",
    "source_probes",  # 0010
    "feature_duplicates",  # 0011
)  # 0003-0007


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def release_0_1(tmp_path: Path) -> str:
    """A copy of the registry release 0.1 wrote, as a URL."""
    path = tmp_path / "registry.db"
    shutil.copyfile(RELEASE_0_1, path)
    return f"sqlite:///{path}"


def revisions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return []
            return [str(v) for v in conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()]
    finally:
        engine.dispose()


def schema(url: str) -> dict[str, Any]:
    """Tables, columns (name, type, nullable, default), primary keys, indexes, unique and
    foreign keys, as SQLAlchemy reflects them; Alembic's own table left out."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
                ),
                "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                "foreign_keys": inspector.get_foreign_keys(table),
            }
            for table in sorted(inspector.get_table_names())
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


NEW_VIEW_FIELDS = ("schedule", "freshness_seconds")
"""Fields of a view's spec that release 0.1 did not write: read back as None."""


def _without_schedule(spec: dict[str, Any]) -> dict[str, Any]:
    assert {f: spec.pop(f) for f in NEW_VIEW_FIELDS} == dict.fromkeys(NEW_VIEW_FIELDS)  # not declared in 0.1
    return spec


def read_back(registry: Registry) -> dict[str, Any]:
    """What ``make_registry_release_0_1.read_back`` gathered with release 0.1, read with this
    release's API (records turned back into the plain values 0.1 gave)."""
    out: dict[str, Any] = {"projects": registry.projects()}
    for project in out["projects"]:
        views = registry.list_feature_views(project)
        runs = []
        for run in registry.list_runs(project):
            record = run.to_dict()
            assert {c: record.pop(c) for c in NEW_RUN_COLUMNS} == dict.fromkeys(NEW_RUN_COLUMNS)  # not recorded by 0.1
            runs.append(record)
        out[project] = {
            "entities": [e.to_spec() for e in registry.list_entities(project)],
            "sources": [s.to_spec() for s in registry.list_sources(project)],
            "feature_views": [_without_schedule(v.to_spec()) for v in views],
            "versions": {
                name: [
                    [x.version, x.fingerprint, x.changes, x.created_at, x.spec]
                    for x in registry.view_versions(project, name)
                ]
                for name in [*(v.name for v in views), "retired_spend"]
            },
            "current_versions": {v.name: registry.view_version(project, v.name) for v in views},
            "feature_services": [s.to_spec() for s in registry.list_feature_services(project)],
            "features": [{**dataclasses.asdict(f), "tags": list(f.tags)} for f in registry.list_features(project)],
            "models": [m.to_dict() for m in registry.list_models(project)],
            "lineage": sorted((e.to_dict() for e in registry.lineage(project)), key=lambda e: sorted(e.items())),
            "runs": runs,
            "run_quality": {r.id: registry.get_run_quality(r.id) for r in registry.list_runs(project)},
            "statistics": {v.name: registry.list_statistics(project, v.name) for v in views},
            "watermarks": registry.watermarks(project),
            "consistency": registry.list_consistency(project),
            "usage_summary": registry.usage_summary(project),
            "usage_since": registry.usage_summary(project, since=date(2024, 3, 2)),
            "most_read": registry.most_read_features(project),
            "reads_per_day": registry.reads_per_day(project),
            "unread": registry.unread_features(project, since=utc(2024, 3, 3)),
        }
    return dict(json.loads(json.dumps(out, default=str)))


# ---------------------------------------------------------------------- a registry of release 0.1


def test_a_registry_created_by_release_0_1_is_upgraded_when_opened_and_reads_back_the_same(release_0_1: str) -> None:
    assert revisions(release_0_1) == []  # no migrations then
    before = schema(release_0_1)
    assert not set(NEW_RUN_COLUMNS) & {c[0] for c in before["runs"]["columns"]}

    registry = Registry(release_0_1)
    try:
        assert revisions(release_0_1) == [HEAD]
        after = schema(release_0_1)
        assert [c[0] for c in after["runs"]["columns"]][-2:] == list(NEW_RUN_COLUMNS)
        assert set(after) == set(before) | set(NEW_TABLES)
        assert {t: s for t, s in after.items() if t in before and t != "runs"} == {
            t: s for t, s in before.items() if t != "runs"
        }
        assert read_back(registry) == json.loads(RELEASE_0_1_READ_BACK.read_text())

        # The upgraded registry keeps working: a new run records the new counts.
        run_id = registry.start_run("cards", "customer_spend", engine="local", window_start=None, window_end=None)
        registry.finish_run(run_id, status="succeeded", rows_online=5, entities_affected=4, rows_online_removed=1)
        run = registry.get_run(run_id)
        assert (run.view_version, run.entities_affected, run.rows_online_removed) == (2, 4, 1)
    finally:
        registry.close()


def test_the_baseline_is_exactly_the_schema_release_0_1_created(tmp_path: Path, release_0_1: str) -> None:
    url = f"sqlite:///{tmp_path / 'baseline.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, BASELINE)
    engine.dispose()
    assert revisions(url) == [BASELINE]
    assert schema(url) == schema(release_0_1)


def test_upgrading_is_idempotent(release_0_1: str) -> None:
    assert upgrade(release_0_1) == HEAD
    upgraded = schema(release_0_1)
    registry = Registry(release_0_1)
    first = read_back(registry)
    registry.close()

    assert upgrade(release_0_1) == HEAD
    registry = Registry(release_0_1)
    assert revisions(release_0_1) == [HEAD]
    assert schema(release_0_1) == upgraded
    assert read_back(registry) == first
    registry.close()


def test_a_fresh_registry_is_the_declared_tables_at_head_which_the_migrations_build_too(
    tmp_path: Path, release_0_1: str
) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh' / 'registry.db'}"
    Registry(fresh).close()
    assert revisions(fresh) == [HEAD]

    declared = f"sqlite:///{tmp_path / 'declared.db'}"
    engine = sa.create_engine(declared)
    metadata.create_all(engine)
    engine.dispose()
    migrated = f"sqlite:///{tmp_path / 'migrated.db'}"  # revision by revision from an empty database
    engine = sa.create_engine(migrated)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    engine.dispose()
    assert revisions(migrated) == [HEAD]
    upgrade(release_0_1)

    assert schema(fresh) == schema(declared) == schema(migrated) == schema(release_0_1)
    assert version_table(fresh) == version_table(migrated)  # as Alembic's stamp writes it
    for url in (fresh, migrated):
        engine = sa.create_engine(url)
        with engine.connect() as conn:  # nothing for Alembic's autogenerate to add either
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        engine.dispose()


def test_a_registry_is_created_in_a_database_holding_other_applications_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE other_app (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO other_app VALUES (7)")
    engine.dispose()
    registry = Registry(url)
    assert registry.projects() == []
    registry.close()
    assert revisions(url) == [HEAD]
    tables = schema(url)
    assert {t: v for t, v in tables.items() if t != "other_app"} == schema_of_declared(tmp_path)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM other_app").scalars().all() == [7]
    engine.dispose()


def version_table(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'alembic_version'").scalar())
    finally:
        engine.dispose()


def test_processes_creating_one_registry_at_once_take_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    code = (  # each opens it at one moment, after its imports
        "import logging, sys, time; logging.basicConfig(level=logging.INFO); "
        "from featurestore.registry import Registry; time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
        "Registry(sys.argv[1]).close()"
    )
    at = str(time.time() + 3)
    started = [
        subprocess.Popen([sys.executable, "-c", code, url, at], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in started]
    assert [p.returncode for p in started] == [0] * 4, errors
    assert sum("Creating the registry" in e for e in errors) == 1, errors
    assert not any("Upgrading" in e or "looking again" in e for e in errors), errors  # the others waited
    assert revisions(url) == [HEAD]
    assert schema(url) == schema_of_declared(tmp_path)


def schema_of_declared(tmp_path: Path) -> dict[str, Any]:
    declared = f"sqlite:///{tmp_path / 'declared.db'}"
    engine = sa.create_engine(declared)
    metadata.create_all(engine)
    engine.dispose()
    return schema(declared)


def test_the_migrations_downgrade_and_upgrade_again(release_0_1: str) -> None:
    """Revision 0002 undone on SQLite (batch mode copies the table): its columns go, the rows and
    indexes stay; opening the registry upgrades it again."""
    registry = Registry(release_0_1)
    runs_before = {r.id: r for r in registry.list_runs("cards")}
    registry.close()
    engine = sa.create_engine(release_0_1)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, BASELINE)
    engine.dispose()
    assert revisions(release_0_1) == [BASELINE]
    assert schema(release_0_1)["runs"] == schema(f"sqlite:///{RELEASE_0_1}")["runs"]

    registry = Registry(release_0_1)
    assert revisions(release_0_1) == [HEAD]
    assert {r.id: r for r in registry.list_runs("cards")} == runs_before
    registry.close()


# ---------------------------------------------------------------------- on PostgreSQL


def copy_release_0_1_to(url: str) -> None:
    """Release 0.1's registry moved to the database at ``url`` as 0.1 would have left it there:
    the baseline's tables (0.1's ``create_all``), no ``alembic_version``, and every row of
    ``registry_release_0_1.db``."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, BASELINE)
        conn.execute(sa.text("DROP TABLE alembic_version"))
    source = sa.create_engine(f"sqlite:///{RELEASE_0_1}")
    old, new = sa.MetaData(), sa.MetaData()
    old.reflect(source)
    new.reflect(engine)
    with source.connect() as src, engine.begin() as dst:
        for table in old.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if rows:
                dst.execute(new.tables[table.name].insert(), rows)
        for table in ("usage_events", "consistency_checks"):  # ids inserted as they were: move the sequences on
            dst.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"))
    source.dispose()
    engine.dispose()


def test_a_release_0_1_registry_on_postgresql_is_upgraded_reads_back_the_same_and_downgrades(
    postgres_database: str,
) -> None:
    url = postgres_database
    copy_release_0_1_to(url)
    assert revisions(url) == []

    registry = Registry(url)
    try:
        assert revisions(url) == [HEAD]
        assert read_back(registry) == json.loads(RELEASE_0_1_READ_BACK.read_text())
        run_id = registry.start_run("cards", "customer_spend", engine="local", window_start=None, window_end=None)
        registry.finish_run(run_id, status="succeeded", rows_online=5, entities_affected=4, rows_online_removed=1)
        run = registry.get_run(run_id)
        assert (run.view_version, run.entities_affected, run.rows_online_removed) == (2, 4, 1)
        assert run.started_at.tzinfo is UTC
        runs_before = {r.id: r for r in registry.list_runs("cards")}
    finally:
        registry.close()

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, BASELINE)
    engine.dispose()
    assert revisions(url) == [BASELINE]
    assert not set(NEW_RUN_COLUMNS) & {c[0] for c in schema(url)["runs"]["columns"]}

    registry = Registry(url)
    assert revisions(url) == [HEAD]
    after = {r.id: r for r in registry.list_runs("cards")}
    registry.close()
    assert after.keys() == runs_before.keys()
    assert after[run_id].entities_affected is None  # the downgrade dropped the column and its values
    assert {k: v for k, v in after.items() if k != run_id} == {k: v for k, v in runs_before.items() if k != run_id}


def test_a_fresh_registry_on_postgresql_is_built_by_the_migrations_into_the_declared_tables(
    postgres_databases: Callable[[], str],
) -> None:
    fresh, declared = postgres_databases(), postgres_databases()
    Registry(fresh).close()
    assert revisions(fresh) == [HEAD]
    engine = sa.create_engine(declared)
    metadata.create_all(engine)
    engine.dispose()

    assert schema(fresh) == schema(declared)
    engine = sa.create_engine(fresh)
    with engine.connect() as conn:  # nothing for Alembic's autogenerate to add either
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_head_is_the_newest_revision_and_the_baseline_the_first() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD]
    assert scripts.get_bases() == [BASELINE]
    chain = list(scripts.walk_revisions())  # newest first, one line of revisions
    assert [r.revision for r in chain][:: len(chain) - 1] == [HEAD, BASELINE]
    assert [r.down_revision for r in chain] == [r.revision for r in chain[1:]] + [None]
    assert "0002_run_online_counts" in {r.revision for r in chain}


def test_a_registry_upgraded_by_a_newer_release_is_refused_with_what_to_do(registry_url: str) -> None:
    upgrade(registry_url)
    engine = sa.create_engine(registry_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()
    with pytest.raises(StoreUnavailableError, match=r"revision 0099_from_the_future.*Upgrade featurestore"):
        Registry(registry_url)


def test_a_table_dropped_from_a_registry_at_head_is_created_again(registry_url: str) -> None:
    url = registry_url
    Registry(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE run_quality"))
    engine.dispose()
    registry = Registry(url)
    assert registry.get_run_quality("no-such-run") is None
    registry.close()
    assert revisions(url) == [HEAD]


# ---------------------------------------------------------------------- lazy import of Alembic


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_opening_a_registry_at_head_and_featurestore_help_do_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry(url).close()
    opened = run_python(
        "import sys\n"
        "from featurestore.registry import Registry\n"
        f"Registry({url!r}).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    assert opened.strip() == "False"
    helped = run_python(
        "import sys\n"
        "from featurestore.cli import main\n"
        "sys.argv = ['featurestore', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('alembic' in sys.modules)\n"
    )
    assert helped.strip().endswith("False")


def test_several_processes_opening_a_new_registry_at_once_all_succeed(registry_url: str) -> None:
    """The workers of a server opening one fresh registry race to create it: each ends at head."""
    url = registry_url
    code = f"from featurestore.registry import Registry\nRegistry({url!r}).close()\n"
    workers = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    assert revisions(url) == [HEAD]
    assert set(schema(url)) == set(metadata.tables)


def test_the_registry_package_keeps_every_name_callers_import() -> None:
    for name in ("Registry", "RunRecord", "UsageEvent", "ApplyReport", "ViewVersion", "upgrade"):
        assert hasattr(registry_module, name)
    for table in ("views_t", "usage_t", "usage_daily_t", "runs_t", "features_t", "lineage_t", "metadata"):
        assert hasattr(registry_module, table)
