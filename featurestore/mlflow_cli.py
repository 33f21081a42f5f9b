"""``featurestore mlflow ...``: log a training dataset to an MLflow run, record a model version.

A click group added to the ``featurestore`` command by :mod:`featurestore.cli`. MLflow is
imported only when a command runs (``featurestore --help`` stays fast); the tracking server is
``--tracking-uri``, else ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import json
from typing import Any

import click

TRACKING_URI = click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="The MLflow tracking server, e.g. http://127.0.0.1:15500 (default: $MLFLOW_TRACKING_URI).",
)


@click.group("mlflow")
def mlflow_commands() -> None:
    """MLflow: log a saved training dataset as a run's input; record which model version was
    trained on which datasets and feature service (see README, "Training with MLflow")."""


@mlflow_commands.command("log-dataset")
@click.argument("name")
@click.option("--run-id", help="The MLflow run to log it to (default: a new run in --experiment).")
@click.option(
    "--experiment",
    help="Without --run-id: the experiment of the new run (created when missing; default: MLflow's default).",
)
@click.option("--targets", help="The dataset's label column, as MLflow's dataset targets.")
@click.option("--context", default="training", show_default=True, help="MLflow's context of the input.")
@TRACKING_URI
@click.option("--json", "as_json", is_flag=True, help="Print what was logged as JSON.")
@click.pass_obj
def log_dataset(
    state: Any,
    name: str,
    run_id: str | None,
    experiment: str | None,
    targets: str | None,
    context: str,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Log the saved training dataset NAME as an input of an MLflow run (its rows, hash, feature
    service and views' versions), tagging the run with links back to the registry."""
    from featurestore.mlflow_link import log_training_dataset

    store = state.store()
    store.get_training_dataset(name)  # an unknown name fails before a run is created for it
    if run_id is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = "0"
        if experiment:
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=f"dataset {name}")
        run_id = run.info.run_id
        logged = log_training_dataset(store, name, run_id, context=context, targets=targets, tracking_uri=tracking_uri)
        client.set_terminated(run_id)
    else:
        logged = log_training_dataset(store, name, run_id, context=context, targets=targets, tracking_uri=tracking_uri)
    if as_json:
        click.echo(json.dumps(logged.to_dict(), indent=2))
        return
    click.echo(
        f"logged training dataset {logged.dataset} ({logged.rows:,} rows, sha256 {logged.sha256}) "
        f"to MLflow run {logged.run_id} (experiment {logged.experiment_id})"
    )


@mlflow_commands.command("register")
@click.argument("model")
@click.argument("version")
@TRACKING_URI
@click.option(
    "--switch-service",
    is_flag=True,
    help="Let the version move the model to another feature service than it consumes (its service tokens "
    "then read the new one only).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_obj
def register(
    state: Any, model: str, version: str, tracking_uri: str | None, switch_service: bool, as_json: bool
) -> None:
    """Record that VERSION of MLflow's registered model MODEL was trained on the datasets its run
    logged: the model consumes their feature service, and each dataset feeds it (lineage). A
    version of another service than the model's is refused unless --switch-service."""
    from featurestore.mlflow_link import record_model_version

    record = record_model_version(
        state.store(), model, version, tracking_uri=tracking_uri, switch_service=switch_service
    )
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
        return
    views = ", ".join(f"{v} v{n}" for v, n in sorted(record.view_versions.items()))
    datasets = ", ".join(f"{d.name} ({d.sha256[:12]})" for d in record.datasets)
    click.echo(
        f"recorded model {record.model} version {record.version} (MLflow run {record.mlflow_run_id}): "
        f"feature service {record.feature_service or '-'} ({views}); training datasets {datasets}"
    )


@mlflow_commands.command("versions")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def versions(state: Any, model: str | None, as_json: bool) -> None:
    """The model versions recorded in the registry (of MODEL, when given)."""
    store = state.store()
    records = store.registry.list_model_versions(store.project, model=model)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    if not records:
        click.echo("no model version recorded" + (f" for model {model}" if model else ""))
        return
    for r in records:
        datasets = ", ".join(d.name for d in r.datasets)
        click.echo(
            f"{r.model}/{r.version}  service={r.feature_service or '-'}  datasets={datasets}  run={r.mlflow_run_id}"
        )
