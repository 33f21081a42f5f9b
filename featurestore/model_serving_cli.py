"""``featurestore model-traffic`` and ``featurestore score``: the model server's settings and batch scoring.

Commands added to the ``featurestore`` command by :mod:`featurestore.cli` (see
:mod:`featurestore.model_serving`). MLflow loads only when ``score`` loads a model; its
tracking server is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click


@click.command("model-traffic")
@click.argument("model", required=False)
@click.option("--split", help="Versions and whole percentages summing to 100, e.g. 1=90,2=10 (sticky per entity).")
@click.option("--shadow", type=int, help="A version (not in the split) that predicts too, logged and never returned.")
@click.option("--clear", is_flag=True, help="Remove the setting: the newest recorded version serves everything.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_obj
def model_traffic(
    state: Any, model: str | None, split: str | None, shadow: int | None, clear: bool, as_json: bool
) -> None:
    """Show or set how MODEL's predictions divide between its recorded versions.

    Without options: print the setting (every model's, without MODEL). --split 1=90,2=10 sends 90 %
    of the entities to version 1 and 10 % to version 2, by a hash of each entity's key, so an
    entity keeps its version while the split stands; --shadow 3 has version 3 predict for every
    entity too, its predictions logged and never returned. Kept in the registry: every datamart
    serving the project applies it within its definitions TTL."""
    from featurestore.model_serving import parse_split, set_model_traffic

    store = state.store()
    if clear or split is not None or shadow is not None:
        if model is None:
            raise click.UsageError("--split, --shadow and --clear need the MODEL")
        if clear:
            if split is not None or shadow is not None:
                raise click.UsageError("--clear takes no --split or --shadow")
            removed = store.registry.clear_model_traffic(store.project, model)
            click.echo(
                f"model {model}: {'setting removed' if removed else 'had no setting'}; its newest version serves"
            )
            return
        if split is None:
            newest = max(r.version for r in _versions(store, model))
            split = f"{newest}=100"
        record = set_model_traffic(store, model, parse_split(split), shadow=shadow)
        click.echo(f"model {model}: {_describe(record.split, record.shadow)}")
        return
    settings = [r for r in store.registry.list_model_traffic(store.project) if model is None or r.model == model]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in settings], indent=2))
        return
    if model is not None and not settings:
        newest = max(r.version for r in _versions(store, model))
        click.echo(f"model {model}: no setting; version {newest} (the newest) serves everything")
    for r in settings:
        click.echo(
            f"model {r.model}: {_describe(r.split, r.shadow)}  (set by {r.updated_by} at {r.updated_at:%Y-%m-%d %H:%M})"
        )


def _versions(store: Any, model: str) -> list[Any]:
    from featurestore.model_serving import ModelServer

    return list(ModelServer(store, ttl=0)._known(model).values())


def _describe(split: Mapping[int, int], shadow: int | None) -> str:
    parts = ", ".join(f"version {v} {p} %" for v, p in sorted(split.items()))
    return parts + (f"; shadow version {shadow}" if shadow is not None else "")


@click.command("score")
@click.argument("model")
@click.option(
    "--spine",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Parquet or CSV: entity keys and a timestamp; each row scored on its features as of its time.",
)
@click.option("--as-of", "as_of", help="Instead of a spine: score every entity as of this date or time (ISO 8601).")
@click.option("--version", type=int, help="Score with this version (default: the model's split, as online).")
@click.option("--timestamp-column", default="event_timestamp", show_default=True, help="The spine's timestamp column.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .parquet or .csv.")
@click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="The MLflow tracking server (default: $MLFLOW_TRACKING_URI)."
)
@click.pass_obj
def score_command(
    state: Any,
    model: str,
    spine: Path | None,
    as_of: str | None,
    version: int | None,
    timestamp_column: str,
    out: Path,
    tracking_uri: str | None,
) -> None:
    """Batch scoring: predict with MODEL offline, for a spine's rows (point in time) or every
    entity as of a date, reading its feature service with the same feature code as the online
    path and predicting with the same version an entity gets online. Writes the rows with their
    features, 'version' and 'prediction'."""
    from featurestore.cli import _parse_time, _read_spine, _write_table
    from featurestore.model_serving import score

    if (spine is None) == (as_of is None):
        raise click.UsageError("give --spine FILE or --as-of DATE (one of them)")
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
    table = score(
        state.store(),
        model,
        spine=None if spine is None else _read_spine(spine),
        as_of=_parse_time(as_of, "--as-of"),
        version=version,
        timestamp_column=timestamp_column,
        consumer="cli",
    )
    _write_table(table, out)
