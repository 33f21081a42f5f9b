"""One module per revision (Alembic loads them by path; this file makes them a package, so they ship)."""
