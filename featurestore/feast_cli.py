"""``featurestore import-feast PATH``: a Feast feature repository as a project of this store.

A command added to the ``featurestore`` group by :mod:`featurestore.cli`. Feast's SDK reads the
repository in its own Python environment (see :mod:`featurestore.feast_import`); nothing of
Feast is imported here.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import-feast")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write featurestore.yaml, features.py and IMPORT_REPORT.md into (created if missing).",
)
@click.option(
    "--feast-python",
    help="Python of an environment with feast installed (default: $FEATURESTORE_FEAST_PYTHON, this Python if it "
    "has feast, else .venv-feast/bin/python made by infra/feast/install.sh).",
)
@click.option("--force", is_flag=True, help="Overwrite the files if they exist in --out.")
def import_feast_command(path: Path, out: Path, feast_python: str | None, force: bool) -> None:
    """Import the Feast feature repository at PATH (the folder of its feature_store.yaml): write
    an equivalent project into --out, keeping every name (view:feature references stay valid),
    and print the report of what changed in behaviour and what has no equivalent here.

    Feast's own SDK reads the repository, in a Python environment of its own: Feast pins
    versions against this store's, so it is not installed alongside it."""
    from featurestore.feast_import import REPORT_FILE, import_feast

    result = import_feast(path, out, feast_python_path=feast_python, force=force)
    click.echo(result.report.markdown())
    click.echo(
        f"wrote {out / 'featurestore.yaml'}, {out / 'features.py'} and {out / REPORT_FILE}; next: "
        f"featurestore -C {out} apply, then featurestore -C {out} run --all"
    )
