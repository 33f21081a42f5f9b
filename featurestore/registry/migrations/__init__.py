"""The registry's schema migrations (Alembic), run by :func:`featurestore.registry.migration.ensure_schema`
whenever a registry is opened below the newest revision; nobody needs to run a command.

``versions/`` holds one revision per schema change, oldest first: ``v0001_baseline`` is the
schema of release 0.1 (the last without migrations), each later one a change to it. To add one,
change :mod:`featurestore.registry.schema`, then let Alembic write the revision against a
registry at head and review it (use ``op.batch_alter_table`` so that SQLite can apply it)::

    from alembic import command
    from featurestore.registry.migration import HEAD, alembic_config
    command.revision(alembic_config("sqlite:///registry.db"), "what changes", autogenerate=True,
                     rev_id="0003_what_changes")

then move ``HEAD`` to the new revision (a test checks it matches).
"""
