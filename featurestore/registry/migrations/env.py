"""Alembic's entry point for the registry's migrations.

At run time the registry passes the connection to migrate in ``config.attributes["connection"]``
(see :mod:`featurestore.registry.migration`); without one (writing a revision with
``command.revision``) it connects to ``sqlalchemy.url``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from featurestore.registry.schema import metadata


def _run(connection: sa.Connection) -> None:
    # Batch mode: SQLite alters a table by copying it, which Alembic does for batch operations.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    _engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with _engine.begin() as _conn:
            _run(_conn)
    finally:
        _engine.dispose()
