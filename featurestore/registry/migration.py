"""Bringing a registry database to the schema this release reads, when it is opened.

The check is plain SQLAlchemy (the tables present, the ``alembic_version`` row): a registry at
:data:`HEAD` is opened without importing Alembic, so opening it and ``featurestore --help`` stay
fast. Otherwise the migrations in :mod:`featurestore.registry.migrations` run, on the
connection the registry uses, with a configuration built here (no ``alembic.ini``):

- an empty database gets the declared tables (:mod:`featurestore.registry.schema`) at once and
  is stamped at :data:`HEAD`: running the eleven revisions one by one cost ~130 ms (SQLite copies
  a table for each batch operation) where this costs a few, and a test checks that the
  revisions build exactly the declared tables from an empty database;
- a registry written by release 0.1 (its tables, no ``alembic_version``) is adopted by the
  baseline revision, which creates nothing it already has, and then upgraded;
- a registry at an older revision is upgraded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.errors import StoreUnavailableError
from featurestore.registry.locks import MIGRATION_LOCK, lock_name
from featurestore.registry.schema import metadata, usage_daily_t
from featurestore.registry.usage import backfill_usage_daily

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

HEAD = "0011_feature_duplicates"
"""The newest revision in ``migrations/versions``: what this release reads and writes."""
BASELINE = "0001_baseline"
"""The schema of release 0.1, the last release without migrations."""
VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")
_ATTEMPTS = 4
# Alembic keeps the migration being run in module globals (``alembic.op``, ``alembic.context``):
# one migration at a time per process.
_ONE_AT_A_TIME = threading.Lock()


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration for the registry's migrations, built in code. Give ``url`` to run
    Alembic commands on their own (e.g. ``command.revision``); the registry passes its
    connection in ``attributes["connection"]`` instead."""
    from alembic.config import Config

    config = Config()
    # ConfigParser reads "%" as interpolation: double it in paths and URLs.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("file_template", "v%%(rev)s")  # versions/v0003_what_changes.py: a module name
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_revision(engine: Engine) -> tuple[set[str], list[str]]:
    """The tables of the database and the revisions in ``alembic_version`` (none: no such table,
    or empty)."""
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        if VERSION_TABLE not in tables:
            return tables, []
        versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        return tables, [str(v) for v in versions]


def ensure_schema(engine: Engine) -> None:
    """Bring the database to :data:`HEAD`. Several processes opening one registry at once (the
    workers of a server) may race to migrate it: the loser finds it done and looks again."""
    for attempt in range(_ATTEMPTS):
        tables, versions = schema_revision(engine)
        try:
            if versions == [HEAD]:
                _recreate_missing(engine, tables)
            else:
                _migrate(engine, tables, versions)
            return
        except sa.exc.SQLAlchemyError as err:
            if attempt == _ATTEMPTS - 1:
                raise
            log.info("Registry schema change failed, looking again (another process may be making it): %s", err)
            time.sleep(0.2 * (attempt + 1))


def _migrate(engine: Engine, tables: set[str], versions: list[str]) -> None:
    where = engine.url.render_as_string(hide_password=True)
    if versions:
        log.info("Upgrading the registry at %s from revision %s to %s", where, ", ".join(versions), HEAD)
    elif tables & set(metadata.tables):
        log.info("Upgrading the registry at %s, created by release 0.1, to revision %s", where, HEAD)
    else:
        _create(engine, where)  # without importing Alembic (~0.1 s)
        return
    with _quiet_alembic():  # importing it logs its plugins at INFO
        from alembic import command
        from alembic.util import CommandError

    config = alembic_config()
    try:
        with _ONE_AT_A_TIME, engine.begin() as conn, _quiet_alembic():
            if conn.dialect.name == "postgresql":
                # One process migrates at a time; the next finds the schema at head (Alembic reads
                # the revision after the lock) instead of failing on a duplicate table. (SQLite
                # has no table to lock yet: the retries of ensure_schema cover it.)
                lock_name(conn, MIGRATION_LOCK)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except CommandError as err:
        if not versions:
            raise StoreUnavailableError("Registry", where, f"its schema could not be created: {err}") from err
        # Most likely a revision this release does not know: a newer release upgraded the registry.
        raise StoreUnavailableError(
            "Registry",
            where,
            f"its schema is at revision {', '.join(versions)}, which this release of featurestore cannot "
            f"upgrade (it reads {HEAD}): a newer release upgraded it. Upgrade featurestore to use it. ({err})",
        ) from err


def _create(engine: Engine, where: str) -> None:
    """An empty database: the declared tables and ``alembic_version`` at :data:`HEAD`, in one
    transaction (what ``command.stamp`` writes, without loading the revisions). Processes
    creating one registry at once take turns (PostgreSQL: the migration lock; SQLite: its write
    lock, taken before the first table, as its driver begins no transaction for DDL) and the
    later ones find it made."""
    with _ONE_AT_A_TIME, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            lock_name(conn, MIGRATION_LOCK)
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        if set(sa.inspect(conn).get_table_names()) & {VERSION_TABLE, *metadata.tables}:
            return  # made by another process while this one waited (other applications' tables do not count)
        log.info("Creating the registry at %s (revision %s)", where, HEAD)
        metadata.create_all(conn)
        version = sa.Table(
            VERSION_TABLE,
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),  # as Alembic names it
        )
        version.create(conn)
        conn.execute(version.insert().values(version_num=HEAD))


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's own INFO lines (plugins, each revision) only when this module logs at DEBUG:
    the line above says what happens."""
    alembic_log = logging.getLogger("alembic")
    before = alembic_log.level
    if not log.isEnabledFor(logging.DEBUG):
        alembic_log.setLevel(max(before, logging.WARNING))
    try:
        yield
    finally:
        alembic_log.setLevel(before)


def _recreate_missing(engine: Engine, tables: set[str]) -> None:
    """Re-create tables dropped from a registry at head (by hand, or a partial restore) as they
    are now, as releases before migrations did on every open; a re-created ``usage_daily`` is
    filled from the usage events."""
    missing = [t for t in metadata.sorted_tables if t.name not in tables]
    if not missing:
        return
    where = engine.url.render_as_string(hide_password=True)
    log.warning("The registry at %s lacks %s: re-creating", where, ", ".join(t.name for t in missing))
    with engine.begin() as conn:
        metadata.create_all(conn, tables=missing)
        if usage_daily_t in missing:
            backfill_usage_daily(conn)
