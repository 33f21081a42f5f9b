"""The ``featurestore`` command. Verbs match the SDK's methods; heavy modules load lazily so
``featurestore --help`` stays fast (no pyspark, cassandra-driver or great_expectations)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from featurestore.errors import FeatureStoreError

if TYPE_CHECKING:
    from featurestore.store import FeatureStore


def _parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise click.BadParameter(
            f"'{value}' is not an ISO 8601 date or time, e.g. 2024-03-01 or 2024-03-01T12:00Z", param_hint=what
        ) from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Context:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self._store: FeatureStore | None = None

    def store(self) -> FeatureStore:
        if self._store is None:
            from featurestore.store import FeatureStore

            self._store = FeatureStore(self.project_dir)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project-dir",
    "-C",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    envvar="FEATURESTORE_PROJECT_DIR",
    show_default=True,
    help="Folder holding featurestore.yaml.",
)
@click.option("--verbose", "-v", is_flag=True, help="Log what happens in detail.")
@click.version_option(package_name="featurestore")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, verbose: bool) -> None:
    """Feature store with online/offline consistency: define features once, compute them once,
    serve the same values for training and for online lookups."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from featurestore.secrets import install_log_redaction

    install_log_redaction()  # no log line shows a password (a driver's, a URL's)
    state = _Context(project_dir)
    ctx.obj = state
    ctx.call_on_close(state.close)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--project", "project_name", help="Project name (default: the folder's name).")
def init(directory: Path, project_name: str | None) -> None:
    """Create a project: featurestore.yaml, an example features.py and a small example data file."""
    from featurestore.scaffold import scaffold_project

    created = scaffold_project(directory, project_name)
    for path in created:
        click.echo(f"created {path}")
    click.echo(f"next: cd {directory} && featurestore apply && featurestore run --all")


@cli.command()
@click.pass_obj
def apply(state: _Context) -> None:
    """Validate every definition and record them in the registry (new versions when schemas change)."""
    from etl.local import LocalEngine
    from featurestore.project_files import load_definitions

    store = state.store()
    objects = load_definitions(store.config)
    report = store.apply(objects, schema_resolver=LocalEngine(store).infer_schema)
    for label, items in (("created", report.created), ("updated", report.updated), ("removed", report.removed)):
        for item in items:
            click.echo(f"{label:8} {item}")
    click.echo(f"{len(report.unchanged)} unchanged; registry: {store.registry.url}")


@cli.command()
@click.argument("views", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every feature view.")
@click.option("--start", help="Window start, inclusive (ISO 8601, UTC unless given).")
@click.option("--end", help="Window end, exclusive (ISO 8601, UTC unless given).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option(
    "--quarantine/--no-quarantine",
    default=None,
    help="Set rows failing blocking expectations aside (in the offline store's _quarantine folder) and "
    "publish the others, instead of failing the run. Default: the project's quality.quarantine (off).",
)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["local", "spark"]),
    help="Engine to run on (default: featurestore.yaml's 'engine').",
)
@click.option(
    "--allow-row-drop",
    is_flag=True,
    help="Publish even if the window ends up with fewer than half the rows published there before "
    "(by default such a run is blocked: an empty or truncated source would delete them).",
)
@click.option(
    "--backfill-from",
    help="Recompute from this date (ISO 8601) to the end (or --end), keeping the published rows the "
    "source no longer yields: fills a feature added to the view without deleting history.",
)
@click.pass_obj
def run(
    state: _Context,
    views: tuple[str, ...],
    run_all: bool,
    start: str | None,
    end: str | None,
    no_progress: bool,
    quarantine: bool | None,
    engine_name: str | None,
    allow_row_drop: bool,
    backfill_from: str | None,
) -> None:
    """Compute feature views over a window, check them with their expectations and publish them
    offline, then set online every entity the run touched to its latest offline row."""
    from etl.local import LocalEngine
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project

    store = state.store()
    project = validate_project(load_definitions(store.config))
    definitions = {v.name: v for v in project.feature_views}
    names = list(definitions) if run_all else list(views)
    if not names:
        raise click.UsageError("name the feature views to run, or pass --all")
    engine: Any = LocalEngine(store)
    if (engine_name or store.config.engine.type) == "spark":
        from etl.spark import SparkEngine  # pyspark loads only here

        engine = SparkEngine(store)
    if backfill_from is not None and start is not None:
        raise click.UsageError("give --backfill-from or --start, not both")
    for name in names:
        if name not in definitions:
            store.get_feature_view(name)  # raises "not found" with suggestions
        result = engine.run(
            name,
            start=_parse_time(backfill_from if backfill_from is not None else start, "--start"),
            end=_parse_time(end, "--end"),
            definitions=definitions,
            progress=not no_progress,
            quarantine=quarantine,
            allow_row_drop=allow_row_drop,
            merge=backfill_from is not None,
        )
        total = sum(result.timings.values())
        click.echo(
            f"{result.view}: {result.rows_offline:,} rows offline, {result.rows_online:,} online "
            f"(replacing {result.rows_before:,} rows; {result.rows_online_removed:,} entities removed online), "
            f"watermark {result.watermark}, {total:.2f}s, run {result.run_id}, quality {result.quality}"
            + (f" ({result.rows_quarantined:,} rows quarantined)" if result.rows_quarantined else "")
        )


@cli.command()
@click.argument("view")
@click.option("--all", "everything", is_flag=True, help="Derive every entity offline has, not only pending updates.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_obj
def repair(state: _Context, view: str, everything: bool, no_progress: bool) -> None:
    """Bring the online store in line with offline for a view: complete the online updates of
    runs that crashed or met an online store that was down (and, with --all, derive every entity)."""
    from etl.runs import repair as repair_view

    result = repair_view(state.store(), view, everything=everything, progress=not no_progress)
    if not result.settled and not everything:
        click.echo(f"{view}: nothing pending; online was last derived by a complete run (use --all to derive all)")
        return
    click.echo(
        f"{view}: {len(result.settled)} pending update(s) completed, {result.entities:,} entities derived online"
        + (f", {result.removed:,} removed" if result.removed else "")
    )


@cli.command("validate")
@click.argument("view")
@click.option("--start", help="Window start, inclusive (ISO 8601, UTC unless given).")
@click.option("--end", help="Window end, exclusive (ISO 8601, UTC unless given).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def validate_view(state: _Context, view: str, start: str | None, end: str | None, as_json: bool) -> None:
    """Dry run of the quality gate: compute a view over a window and check its expectations,
    publishing and recording nothing. Uses the definitions in the project's files (applied or not).

    Exits with status 2 when a blocking expectation fails."""
    from etl.local import LocalEngine
    from featurestore.errors import NotFoundError
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project
    from quality.gate import reference_time_for, validate

    store = state.store()
    views = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
    if view not in views:
        raise NotFoundError("feature view", view, project=store.project, candidates=views)
    window_end = _parse_time(end, "--end")
    frame = LocalEngine(store).compute(views[view], _parse_time(start, "--start"), window_end)
    report = validate(
        views[view], frame, reference_time=reference_time_for(window_end), examples=store.config.quality.examples
    )
    click.echo(json.dumps(report.to_dict(), indent=2, default=str) if as_json else report.render())
    if report.blocked:
        sys.exit(2)


@cli.command()
@click.argument("view")
@click.option("--run", "run_id", help="A run's id (default: the view's latest successful run).")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.pass_obj
def stats(state: _Context, view: str, run_id: str | None, as_json: bool) -> None:
    """Statistics of a view's run, per feature: nulls, distinct values, min, max, mean, stddev,
    histogram, and drift (PSI) against the run before it."""
    from quality.statistics import render_statistics

    store = state.store()
    store.get_feature_view(view)  # "not found" with suggestions
    if run_id is None:
        latest = store.registry.list_statistics(store.project, view, limit=1)
        if not latest:
            raise click.ClickException(f"feature view '{view}' has no successful run yet: run it first")
        run_id = latest[0]["run_id"]
    record = store.registry.get_run(run_id)
    if record.view != view:
        raise click.BadParameter(f"run {run_id} is a run of feature view '{record.view}'", param_hint="--run")
    quality = store.registry.get_run_quality(run_id) or {"statistics": {}, "validation": None}
    if as_json:
        click.echo(json.dumps({"run": record.to_dict(), **quality}, indent=2, default=str))
        return
    status = (quality["validation"] or {}).get("status", "not checked")
    click.echo(
        f"{view}: run {run_id} of {record.started_at:%Y-%m-%d %H:%M:%S} UTC, {record.status}, "
        f"{record.rows_offline or 0:,} rows published, quality {status}"
    )
    if quality["statistics"]:
        click.echo(render_statistics(quality["statistics"]))
    else:
        click.echo("no statistics: the run published nothing")


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_views(state: _Context, as_json: bool) -> None:
    """List feature views with their features."""
    store = state.store()
    views = store.registry.list_feature_views(store.project)
    if as_json:
        click.echo(json.dumps([v.to_spec() for v in views], indent=2))
        return
    for v in views:
        click.echo(f"{v.name}  [{', '.join(v.join_keys)}]  ttl={v.ttl}  {v.description}")
        for f in v.features:
            click.echo(f"    {f.name:28} {f.dtype.value:10} {f.description}")


@cli.command()
@click.argument("view")
@click.pass_obj
def describe(state: _Context, view: str) -> None:
    """Show a feature view: schema, versions, watermark and recent runs."""
    store = state.store()
    fv = store.registry.get_feature_view(store.project, view)
    info: dict[str, Any] = fv.to_spec()
    info["version"] = store.registry.view_version(store.project, view)
    info["versions"] = [
        {"version": v.version, "changes": v.changes, "at": v.created_at.isoformat()}
        for v in store.registry.view_versions(store.project, view)
    ]
    wm = store.registry.watermark(store.project, view)
    info["watermark"] = wm.isoformat() if wm else None
    info["runs"] = [r.to_dict() for r in store.registry.list_runs(store.project, view, limit=5)]
    click.echo(json.dumps(info, indent=2, default=str))


@cli.command()
@click.argument("view", required=False)
@click.option("--limit", default=20, show_default=True)
@click.pass_obj
def runs(state: _Context, view: str | None, limit: int) -> None:
    """Show run history."""
    store = state.store()
    for r in store.registry.list_runs(store.project, view, limit=limit):
        dur = f"{r.duration_seconds:.2f}s" if r.duration_seconds is not None else "-"
        click.echo(
            f"{r.started_at:%Y-%m-%d %H:%M:%S} {r.view:24} {r.status:10} rows={r.rows_offline} {dur:>8} {r.id}"
            + (f"\n    {r.error}" if r.error else "")
        )


def _write_table(table: Any, out: Path | None) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if out is None:
        click.echo(table.to_pandas().to_string(max_rows=50))
    elif out.suffix == ".parquet":
        pq.write_table(table, out)
    else:
        pacsv.write_csv(table, out)
    if out is not None:
        click.echo(f"wrote {table.num_rows:,} rows to {out}")


@cli.command("training-set")
@click.option(
    "--spine",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Parquet or CSV: entity keys, a timestamp and any labels.",
)
@click.option("--features", "-f", multiple=True, help="view:feature, view, or a feature service name.")
@click.option("--timestamp-column", default="event_timestamp", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output .parquet or .csv (default: print)."
)
@click.pass_obj
def training_set(
    state: _Context, spine: Path, features: tuple[str, ...], timestamp_column: str, out: Path | None
) -> None:
    """Build a point-in-time correct training set for a spine."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pq.read_table(spine) if spine.suffix == ".parquet" else pacsv.read_csv(spine)
    refs: Any = features[0] if len(features) == 1 and ":" not in features[0] else list(features)
    result = state.store().get_training_set(table, refs, timestamp_column=timestamp_column, consumer="cli")
    _write_table(result, out)


@cli.command()
@click.option("--features", "-f", multiple=True, required=True, help="view:feature, view, or a feature service name.")
@click.option(
    "--key",
    "-k",
    "keys",
    multiple=True,
    required=True,
    help="key=value, e.g. customer_id=42 (repeat for compound keys).",
)
@click.pass_obj
def lookup(state: _Context, features: tuple[str, ...], keys: tuple[str, ...]) -> None:
    """Look up one entity's features in the online store, with a status per value."""
    row: dict[str, Any] = {}
    for item in keys:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"'{item}' is not key=value", param_hint="--key")
        row[name] = value
    refs: Any = features[0] if len(features) == 1 and ":" not in features[0] else list(features)
    response = state.store().get_online_features(refs, [row], consumer="cli")
    click.echo(json.dumps(response.to_rows(), indent=2, default=str))


@cli.command("reference-data")
@click.argument("view")
@click.option("--as-of", "as_of_time", required=True, help="ISO 8601 date or time (UTC unless given).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output .parquet or .csv (default: print)."
)
@click.pass_obj
def reference_data(state: _Context, view: str, as_of_time: str, out: Path | None) -> None:
    """Every entity's values of a view as of a date, for analysts."""
    when = _parse_time(as_of_time, "--as-of")
    assert when is not None  # required option
    _write_table(state.store().get_reference_data(view, when, consumer="cli"), out)


@cli.command("check-consistency")
@click.argument("view")
@click.option("--sample", default=1000, show_default=True, help="Check this many random entities.")
@click.option("--all", "check_all", is_flag=True, help="Check every entity (and count extra online rows).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--repair",
    "repair_after",
    is_flag=True,
    help="When anything differs, derive every entity online from offline (featurestore repair --all) and check again.",
)
@click.pass_obj
def check_consistency(
    state: _Context, view: str, sample: int, check_all: bool, as_json: bool, repair_after: bool
) -> None:
    """Compare online values with offline values as of the view's last published watermark.

    Exits with status 2 when anything differs (after --repair: when anything still differs), so
    it can gate a deployment."""
    store = state.store()
    report = store.check_consistency(view, sample=None if check_all else sample)
    if repair_after and not report.consistent:
        from etl.runs import repair as repair_view

        _echo_consistency(report, as_json=False)
        fixed = repair_view(store, view, everything=True, progress=False)
        click.echo(f"repaired: {fixed.entities:,} entities derived online from offline, {fixed.removed:,} removed")
        report = store.check_consistency(view, sample=None if check_all else sample, seed=report.seed)
    _echo_consistency(report, as_json=as_json)
    if not report.consistent:
        sys.exit(2)


def _echo_consistency(report: Any, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(
            f"{report.view} as of {report.watermark}: checked {report.checked:,} of {report.offline_entities:,} "
            f"entities: {report.matched:,} match, {report.mismatched:,} differ, {report.missing:,} missing online"
            + ("" if report.sampled else f", {report.extra:,} extra online")
        )
        for f, n in sorted(report.by_feature.items()):
            click.echo(f"    {f}: {n:,} differing values")
        for ex in report.examples:
            click.echo(f"    e.g. {ex['key']} {ex['feature']}: online {ex['online']!r}, offline {ex['offline']!r}")


@cli.command("register-model")
@click.argument("name")
@click.option("--feature-service", required=True)
@click.option("--description", default="")
@click.pass_obj
def register_model(state: _Context, name: str, feature_service: str, description: str) -> None:
    """Record a model as a consumer of a feature service (for lineage)."""
    state.store().register_model(name, feature_service, description)
    click.echo(f"registered model {name} → feature service {feature_service}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.pass_obj
def serve(state: _Context, host: str, port: int, workers: int) -> None:
    """Start the datamart API (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    os.environ["FEATURESTORE_PROJECT_DIR"] = str(state.project_dir.resolve())
    click.echo(f"datamart API on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "datamart.app:create_app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info"
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.pass_obj
def ui(state: _Context, host: str, port: int) -> None:
    """Start the registry UI: search the catalog, feature views, lineage and usage in a browser."""
    import os

    import uvicorn

    os.environ["FEATURESTORE_PROJECT_DIR"] = str(state.project_dir.resolve())
    click.echo(f"registry UI on http://{host}:{port}/ (lineage: /lineage, usage: /usage)")
    uvicorn.run("registry_ui.app:create_app_from_env", factory=True, host=host, port=port, log_level="info")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except FeatureStoreError as err:
        from featurestore.secrets import redact

        click.secho(f"error: {redact(str(err))}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
