"""The ``featurestore`` command. Verbs match the SDK's methods; heavy modules load lazily so
``featurestore --help`` stays fast (no pyspark, cassandra-driver or great_expectations)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from featurestore.errors import FeatureStoreError, InvalidRequestError
from featurestore.secrets import install_log_redaction, redact, redact_url

if TYPE_CHECKING:
    from featurestore.duplicates import DuplicateMode
    from featurestore.store import FeatureStore


# How the CLI spells the SDK arguments that errors of the core name (InvalidRequestError.argument).
FLAGS = {
    "timestamp_column": "--timestamp-column",
    "full_feature_names": "--full-feature-names",
    "as_of_time": "--as-of",
    "features": "--features",
}
# Run windows (--start, --end, --backfill-from) stay within these years, leaving room for a view's
# source lookback and TTL before and after them: Python's datetime stops at years 1 and 9999.
WINDOW_FLAGS = ("--start", "--end", "--backfill-from")
WINDOW_RANGE = (datetime(1000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


def _parse_time(value: str | None, what: str) -> datetime | None:
    """A time given to flag ``what`` by the one rule of :mod:`featurestore.times` (an offset, or
    a bare date meaning 00:00 UTC; no naive times), with the core's messages as usage errors."""
    if value is None:
        return None
    from featurestore.times import parse_time

    try:
        parsed = parse_time(value, what)
    except InvalidRequestError as err:
        raise click.UsageError(str(err)) from err
    low, high = WINDOW_RANGE
    if what in WINDOW_FLAGS and not low <= parsed <= high:
        raise click.UsageError(
            f"{what} {value} is outside the range a run window may span, {low:%Y-%m-%d} to {high:%Y-%m-%d} UTC "
            f"(room for a view's source lookback and TTL); give a time in that range, or leave {what} out "
            "for no bound"
        )
    return parsed


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
@click.option("--strict", is_flag=True, help="Apply nothing when a source is missing, unreadable or fails its probe.")
@click.option(
    "--duplicates",
    "duplicate_mode",
    type=click.Choice(["warn", "error", "off"]),
    default="warn",
    show_default=True,
    help="A new feature computing what an existing one does: a warning, an error (nothing applied), or not checked.",
)
@click.option(
    "--duplicate-correlation",
    type=click.FloatRange(0, 1),
    default=0.99,
    show_default=True,
    help="|Pearson correlation| on the preview's sample from which a new feature is a duplicate.",
)
@click.pass_obj
def apply(state: _Context, strict: bool, duplicate_mode: DuplicateMode, duplicate_correlation: float) -> None:
    """Validate every definition and record them in the registry (new versions when schemas change).
    Every source is probed (see 'featurestore source check'): a bad one is a warning, or with
    --strict an error before anything is applied. The features of new or changed views are
    checked for duplicates of existing ones (see 'featurestore duplicates')."""
    from etl.local import LocalEngine
    from featurestore.duplicates_cli import apply_with_duplicates
    from featurestore.project_files import load_definitions
    from featurestore.source_cli import SourceProbesOnApply

    store = state.store()
    objects = load_definitions(store.config)
    with SourceProbesOnApply(store, objects, strict=strict) as probes:  # alongside the apply
        report = apply_with_duplicates(
            store,
            objects,
            duplicate_mode,
            lambda: store.apply(objects, schema_resolver=LocalEngine(store).infer_schema),
            correlation=duplicate_correlation,
        )
        probes.record()
    for label, items in (("created", report.created), ("updated", report.updated), ("removed", report.removed)):
        for item in items:
            click.echo(f"{label:8} {item}")
    click.echo(f"{len(report.unchanged)} unchanged; registry: {redact_url(store.registry.url)}")


@cli.command()
@click.argument("views", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every feature view.")
@click.option("--start", help="Window start, inclusive: ISO 8601 with an offset, or a date (00:00 UTC).")
@click.option("--end", help="Window end, exclusive: ISO 8601 with an offset, or a date (00:00 UTC).")
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
    offline, then set online every entity the run touched to its latest offline row.

    A window holding no rows is said so, with the range the view's data spans, and still exits
    with status 0: a scheduled run over a quiet window is a normal outcome (declare
    RowCount(min=1) on the view to make it fail). A start not before the end is refused."""
    from etl.local import LocalEngine
    from featurestore.coverage import describe_range, window_text
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
        run_start = (
            _parse_time(backfill_from, "--backfill-from")
            if backfill_from is not None
            else _parse_time(start, "--start")
        )
        run_end = _parse_time(end, "--end")
        result = engine.run(
            name,
            start=run_start,
            end=run_end,
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
        if result.rows_computed == 0:
            view_def = definitions[name]
            where = describe_range(view_def, root=store.config.root, files=store.offline_store.files(view_def))
            click.echo(f"note: {name} has no rows {window_text(run_start, run_end)}; {where}", err=True)


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


@cli.command()
@click.argument("view")
@click.argument("rows_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def push(state: _Context, view: str, rows_file: Path) -> None:
    """Push the rows of FILE (Parquet, or CSV with a header line) into VIEW: validated as one
    batch, published offline, then online for their entities. Times need an offset ('...Z')."""
    from etl.push import push as push_rows

    result = push_rows(state.store(), view, _read_rows(rows_file, "FILE"))
    click.echo(
        f"{view}: pushed {result.rows:,} row(s) ({result.replaced:,} replaced), {result.entities:,} entities "
        f"derived online; push {result.push_id}"
    )


@cli.command()
@click.argument("view")
@click.pass_obj
def compact(state: _Context, view: str) -> None:
    """Fold VIEW's pushed files into its date partitions (the next run of a date does it too)."""
    from etl.push import compact as compact_view

    result = compact_view(state.store(), view)
    if not result.dates:
        click.echo(f"{view}: nothing to compact; no pushed file is waiting")
        return
    click.echo(f"{view}: {result.rows:,} pushed row(s) folded into {len(result.dates)} date partition(s)")


@cli.command("validate")
@click.argument("view")
@click.option("--start", help="Window start, inclusive: ISO 8601 with an offset, or a date (00:00 UTC).")
@click.option("--end", help="Window end, exclusive: ISO 8601 with an offset, or a date (00:00 UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def validate_view(state: _Context, view: str, start: str | None, end: str | None, as_json: bool) -> None:
    """Dry run of the quality gate: compute a view over a window and check its expectations,
    publishing and recording nothing. Uses the definitions in the project's files (applied or not).

    Exits with status 2 when a blocking expectation fails, and 1 when the window holds no rows
    (nothing to check: the message names the range the view's data spans) or --start is not
    before --end."""
    import tempfile

    from etl.local import LocalEngine
    from etl.runs import check_window
    from featurestore.coverage import describe_range, window_text
    from featurestore.errors import NotFoundError
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project
    from quality.files import reference_time_for, validate

    store = state.store()
    views = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
    if view not in views:
        raise NotFoundError("feature view", view, project=store.project, candidates=views)
    window_start, window_end = _parse_time(start, "--start"), _parse_time(end, "--end")
    check_window(window_start, window_end)
    with tempfile.TemporaryDirectory(prefix="featurestore-validate-") as scratch:
        frame = LocalEngine(store).compute(views[view], window_start, window_end, Path(scratch))
        if frame.num_rows == 0:
            where = describe_range(views[view], root=store.config.root, files=store.offline_store.files(views[view]))
            _no_data(
                f"{view} has no rows {window_text(window_start, window_end)}, so there is nothing to validate; {where}"
            )
        report = validate(
            views[view], frame, reference_time=reference_time_for(window_end), examples=store.config.quality.examples
        )
    click.echo(json.dumps(report.to_dict(), indent=2, default=str) if as_json else report.render())
    if report.blocked:
        sys.exit(2)


@cli.command()
@click.argument("view")
@click.option(
    "--run",
    "run_id",
    help="A run's id, or its start as the registry UI shows it (default: the view's latest successful run; "
    "'featurestore runs VIEW' lists them).",
)
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
    # The id in full, or its start as the registry UI shows it; `featurestore runs VIEW` lists them.
    record = store.registry.find_run(store.project, run_id, view=view)
    run_id = record.id
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
    click.echo(redact(json.dumps(info, indent=2, default=str)))  # a run's recorded error, say


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
            + (f"\n    {redact(r.error)}" if r.error else "")
        )


def _no_data(message: str) -> None:
    """End a command whose window, as-of time or spine selected no data: exit status 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def _write_table(table: Any, out: Path | None) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if out is None:
        click.echo(table.to_pandas().to_string(max_rows=50))
        return
    try:
        if out.suffix == ".parquet":
            pq.write_table(table, out)
        else:
            pacsv.write_csv(table, out)
    except (pa.ArrowException, OSError) as err:
        raise click.BadParameter(f"cannot write '{out}': {err}", param_hint="--out") from err
    click.echo(f"wrote {table.num_rows:,} rows to {out}")


def _read_spine(path: Path) -> Any:
    """The spine file (see :func:`_read_rows`)."""
    return _read_rows(path, "--spine")


def _read_rows(path: Path, hint: str) -> Any:
    """A table file: Parquet (by its suffix) or CSV with a header line; an unreadable one is a
    usage error naming the file and what Arrow found, not a traceback."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    try:
        return pq.read_table(path) if kind == "Parquet" else pacsv.read_csv(path)
    except (pa.ArrowException, OSError) as err:
        raise click.BadParameter(
            f"'{path}' cannot be read as {kind} ({err}); give a .parquet file or a CSV file with a header line",
            param_hint=hint,
        ) from err


@cli.command("training-set")
@click.option(
    "--spine",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Parquet or CSV: entity keys, a timestamp and any labels.",
)
@click.option("--features", "-f", multiple=True, help="view:feature, view, or a feature service name.")
@click.option("--timestamp-column", default="event_timestamp", show_default=True, help="The spine's timestamp column.")
@click.option("--full-feature-names", is_flag=True, help="Name feature columns 'view__feature'.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output .parquet or .csv (default: print)."
)
@click.option(
    "--save",
    metavar="NAME",
    help="Also save it as the training dataset NAME (its spine and rows kept offline, what it read recorded).",
)
@click.option("--description", default="", help="With --save: what the dataset is for.")
@click.pass_obj
def training_set(
    state: _Context,
    spine: Path,
    features: tuple[str, ...],
    timestamp_column: str,
    full_feature_names: bool,
    out: Path | None,
    save: str | None,
    description: str,
) -> None:
    """Build a point-in-time correct training set for a spine.

    When no spine row gets any feature value (its times lie before the data, or its keys match
    none), nothing is written or saved and the command exits with status 1, naming the spine's
    and each view's time range. With --save NAME, the rows are saved as a named training dataset
    (get it back with 'featurestore training-dataset NAME'); a name is immutable."""
    from featurestore.coverage import column_range, describe_range, rows_with_values
    from featurestore.retrieval import resolve_features

    table = _read_spine(spine)
    refs: Any = features[0] if len(features) == 1 and ":" not in features[0] else list(features)
    store = state.store()
    result = store.get_training_set(
        table, refs, timestamp_column=timestamp_column, full_feature_names=full_feature_names, consumer="cli"
    )
    feature_columns = [c for c in result.column_names if c not in table.column_names]
    if result.num_rows and rows_with_values(result, feature_columns) == 0:
        services = store.feature_services()
        requested = services[refs] if isinstance(refs, str) and refs in services else refs
        names = [r.view.name for r in resolve_features(store.feature_views(), requested)]
        where = "; ".join(
            f"{n}: {describe_range(store.get_feature_view(n), root=store.config.root, files=store.offline_store.files(n))}"
            for n in names
        )
        spine_range = column_range(result, timestamp_column)
        _no_data(
            f"none of the spine's {result.num_rows:,} rows got a feature value (a row gets a view's latest "
            f"value at or before its time, within the view's TTL); the spine's {timestamp_column} spans "
            f"{spine_range or 'nothing'}; {where}"
        )
    if save is not None:
        # Built again by the save (checked first: a name is immutable, an empty dataset useless).
        dataset = store.create_training_dataset(
            save,
            table,
            refs,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            description=description,
        )
        record = dataset.record
        click.echo(
            f"saved training dataset {record.name}: {record.spine_rows:,} rows (sha256 {record.rows_sha256}), "
            f"read {len(record.inputs)} file(s) of {len(record.run_ids)} run(s) of {', '.join(record.views)}"
        )
        result = dataset.rows
        if out is None:
            return
    _write_table(result, out)


@cli.command("training-dataset")
@click.argument("name", required=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write its saved rows: .parquet or .csv.")
@click.option("--verify", is_flag=True, help="Rebuild it from today's offline data and say what differs.")
@click.option("--json", "as_json", is_flag=True, help="Print the record (or the verification) as JSON.")
@click.pass_obj
def training_dataset(state: _Context, name: str | None, out: Path | None, verify: bool, as_json: bool) -> None:
    """Show a saved training dataset (every one, without NAME): what it read, who saved it.

    --out writes its saved rows, the same bytes whatever ran since; --verify rebuilds it from
    today's offline state and says how many rows differ and which runs replaced what it read."""
    store = state.store()
    if name is None:
        if out or verify:
            raise click.UsageError("--out and --verify need the dataset's NAME")
        records = store.list_training_datasets()
        if as_json:
            click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        elif not records:
            click.echo("No training dataset saved yet: featurestore training-set ... --save NAME")
        for r in records if not as_json else ():
            click.echo(
                f"{r.name:32} {r.spine_rows:>10,} rows  {r.feature_service or ', '.join(r.views):24} "
                f"{r.created_at:%Y-%m-%d %H:%M:%S}  {r.created_by}"
            )
        return
    if verify:
        report = store.verify_training_dataset(name)
        click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary())
        if out is not None:
            _write_table(store.get_training_dataset(name).rows, out)
        return
    if out is not None:
        _write_table(store.get_training_dataset(name).rows, out)
        return
    record = store.registry.get_training_dataset(store.project, name)
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
        return
    click.echo(f"{record.name}: {record.description}" if record.description else record.name)
    click.echo(f"  saved by {record.created_by} at {record.created_at:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"  feature service: {record.feature_service or '(feature references)'}")
    click.echo(f"  features: {', '.join(record.features)}")
    for view in record.views:
        mark = record.watermarks.get(view)
        click.echo(
            f"  {view}: version {record.view_versions.get(view)}, watermark {mark.isoformat() if mark else 'none'}, "
            f"runs {', '.join(dict.fromkeys(i.run_id for i in record.inputs if i.view == view)) or 'none'}"
        )
    click.echo(f"  rows: {record.spine_rows:,}, {record.rows_file} (sha256 {record.rows_sha256})")
    click.echo(f"  spine: {record.spine_file} (sha256 {record.spine_sha256})")


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
@click.option("--full-feature-names", is_flag=True, help="Name features 'view__feature'.")
@click.pass_obj
def lookup(state: _Context, features: tuple[str, ...], keys: tuple[str, ...], full_feature_names: bool) -> None:
    """Look up one entity's features in the online store, with a status per value."""
    row: dict[str, Any] = {}
    for item in keys:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"'{item}' is not key=value", param_hint="--key")
        row[name] = value
    refs: Any = features[0] if len(features) == 1 and ":" not in features[0] else list(features)
    response = state.store().get_online_features(refs, [row], full_feature_names=full_feature_names, consumer="cli")
    click.echo(json.dumps(response.to_rows(), indent=2, default=str))


@cli.command("reference-data")
@click.argument("view")
@click.option("--as-of", "as_of_time", required=True, help="ISO 8601 time with an offset, or a date (00:00 UTC).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output .parquet or .csv (default: print)."
)
@click.pass_obj
def reference_data(state: _Context, view: str, as_of_time: str, out: Path | None) -> None:
    """Every entity's values of a view as of a date, for analysts.

    When no entity has a value then (the time is before the view's data, or every value is older
    than the view's TTL), nothing is written and the command exits with status 1, naming the range
    the view's data spans."""
    from featurestore.coverage import describe_range, duration_text

    when = _parse_time(as_of_time, "--as-of")
    assert when is not None  # required option
    store = state.store()
    table = store.get_reference_data(view, when, consumer="cli")
    if table.num_rows == 0:
        fv = store.get_feature_view(view)
        where = describe_range(fv, root=store.config.root, files=store.offline_store.files(fv))
        within = f", within its TTL of {duration_text(fv.ttl)}" if fv.ttl else ""
        _no_data(f"{view} has no rows as of {as_of_time} (each entity's latest row at or before it{within}); {where}")
    _write_table(table, out)


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


def _tls_options(command: Any) -> Any:
    """--ssl-certfile and --ssl-keyfile: serve HTTPS directly (uvicorn's TLS), without a proxy."""
    file = click.Path(dir_okay=False, exists=True, path_type=Path)
    command = click.option("--ssl-keyfile", type=file, help="TLS private key (PEM), with --ssl-certfile.")(command)
    return click.option("--ssl-certfile", type=file, help="TLS certificate chain (PEM): serve HTTPS.")(command)


def _scheme(certfile: Path | None, keyfile: Path | None) -> str:
    if (certfile is None) != (keyfile is None):
        raise click.UsageError("--ssl-certfile and --ssl-keyfile go together: give both, or neither")
    return "https" if certfile else "http"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option(
    "--with-project",
    "more_projects",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Serve this project folder too, under /v1/projects/<name>/ (repeatable).",
)
@click.option(
    "--require-auth",
    is_flag=True,
    help="Require tokens even where featurestore.yaml leaves auth off (its auth.oidc settings still apply).",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log a line per request (default: datamart.access_log in featurestore.yaml, on).",
)
@_tls_options
@click.pass_obj
def serve(
    state: _Context,
    host: str,
    port: int,
    workers: int,
    more_projects: tuple[Path, ...],
    require_auth: bool,
    access_log: bool | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
) -> None:
    """Start the datamart API (OpenAPI docs at /docs). The project of -C is served under /v1/
    and /v1/projects/<name>/; each --with-project under /v1/projects/<name>/. A token acts
    only in its own project."""
    import os

    import uvicorn

    from featurestore.auth import REQUIRE_AUTH_ENV

    if require_auth:
        os.environ[REQUIRE_AUTH_ENV] = "1"
    _check_serving(state, host, require_auth=require_auth)
    for folder in more_projects:
        extra = _Context(folder)
        try:
            _check_serving(extra, host, require_auth=require_auth)
        finally:
            extra.close()
    folders = [state.project_dir, *more_projects]
    os.environ["FEATURESTORE_PROJECT_DIR"] = os.pathsep.join(str(f.resolve()) for f in folders)
    scheme = _scheme(ssl_certfile, ssl_keyfile)
    click.echo(f"datamart API on {scheme}://{host}:{port} (docs: {scheme}://{host}:{port}/docs)")
    uvicorn.run(
        "datamart.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=state.store().config.datamart.access_log if access_log is None else access_log,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@_tls_options
@click.pass_obj
def ui(state: _Context, host: str, port: int, ssl_certfile: Path | None, ssl_keyfile: Path | None) -> None:
    """Start the registry UI: search the catalog, feature views, lineage and usage in a browser."""
    import os

    import uvicorn

    _check_serving(state, host)
    os.environ["FEATURESTORE_PROJECT_DIR"] = str(state.project_dir.resolve())
    scheme = _scheme(ssl_certfile, ssl_keyfile)
    click.echo(f"registry UI on {scheme}://{host}:{port}/ (lineage: /lineage, usage: /usage)")
    uvicorn.run(
        "registry_ui.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


def _check_serving(state: _Context, host: str, *, require_auth: bool = False) -> None:
    from featurestore.auth import check_bind_address, required

    store = state.store()
    auth = required(store.config.auth, "1" if require_auth else None)
    check_bind_address(host, auth)
    if auth.enabled:
        active = [t for t in store.registry.tokens(store.project) if t.status() == "active"]
        click.echo(
            f"auth on: {len(active)} active token(s)"
            + (", OIDC issuer " + store.config.auth.oidc.issuer if store.config.auth.oidc else "")
        )
        if not active and store.config.auth.oidc is None:
            click.secho(
                "no active token: nobody can use this server yet; create one with "
                "'featurestore tokens create --name admin --role admin'",
                fg="yellow",
                err=True,
            )
    else:
        click.echo(f"auth off: every caller acts as a local admin (serving on {host} only)")


# ---------------------------------------------------------------------------- tokens and audit


@cli.group()
def tokens() -> None:
    """API tokens of the datamart API and the registry UI: create, list, revoke.

    These commands act on the registry directly: whoever can run them with this project's
    featurestore.yaml (and so reach its registry database) administers its tokens."""


@tokens.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. 'fraud-scorer' or 'alice'.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "engineer", "scientist", "analyst", "service"]),
    help="admin: everything; engineer: apply, runs, checks, repairs, models; scientist: catalog, training sets, "
    "reference data, statistics; analyst: catalog, reference data; service: online lookups of its models' services.",
)
@click.option(
    "--model", "models", multiple=True, help="service tokens: a model whose feature service it may read (repeat)."
)
@click.option("--expires", help="Lifetime, e.g. 90d, 12h, 30m (default: never expires).")
@click.option("--json", "as_json", is_flag=True, help="Print the token and its record as JSON.")
@click.pass_obj
def tokens_create(
    state: _Context, name: str, role: str, models: tuple[str, ...], expires: str | None, as_json: bool
) -> None:
    """Create a token. Its secret is printed once: it is stored only as a hash."""
    from featurestore.auth import local_actor, parse_duration

    store = state.store()
    expires_at = datetime.now(UTC) + parse_duration(expires, "--expires") if expires else None
    record, secret = store.registry.create_token(
        store.project, name, role, actor=local_actor(), expires_at=expires_at, models=models
    )
    if as_json:
        click.echo(json.dumps({"id": record.id, "name": record.name, "role": record.role, "token": secret}))
        return
    until = f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else ""
    click.echo(f"token '{record.name}' ({record.id}), role {record.role}, project {record.project}{until}:")
    click.echo(secret)
    click.echo(
        "Keep it now: it is not shown again. Send it as 'Authorization: Bearer <token>', or set "
        "FEATURESTORE_TOKEN for the Python client.",
        err=True,
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def tokens_list(state: _Context, as_json: bool) -> None:
    """Every token of the project (never their secrets), newest first."""
    store = state.store()
    records = store.registry.tokens(store.project)
    if as_json:
        click.echo(json.dumps([{**dataclasses.asdict(r), "status": r.status()} for r in records], default=str))
        return
    if not records:
        click.echo("no token yet: create one with 'featurestore tokens create --name NAME --role ROLE'")
    for r in records:
        used = f"last used {r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never used"
        until = f", expires {r.expires_at:%Y-%m-%d}" if r.expires_at else ""
        models = f" models {','.join(r.models)}" if r.models else ""
        click.echo(f"{r.id}  {r.name:<20} {r.role:<9} {r.status():<8} {used}{until}{models}")


@tokens.command("revoke")
@click.argument("token")
@click.pass_obj
def tokens_revoke(state: _Context, token: str) -> None:
    """Revoke TOKEN (its id, or the name of an active token). Servers stop accepting it within
    their auth.cache_seconds (10 s by default)."""
    from featurestore.auth import local_actor

    store = state.store()
    record = store.registry.revoke_token(store.project, token, actor=local_actor())
    click.echo(f"revoked token '{record.name}' ({record.id})")


@cli.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--action", help="Only this action: apply, run, repair, model.register, token.create, token.revoke.")
@click.option("--actor", help="Only this actor's changes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def audit(state: _Context, limit: int, action: str | None, actor: str | None, as_json: bool) -> None:
    """The audit log: every state change of the project, who did it and when, newest first."""
    store = state.store()
    entries = store.registry.audit_log(store.project, limit=limit, action=action, actor=actor)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(e) for e in entries], default=str))
        return
    for e in entries:
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()) if v not in (None, [], ""))
        click.echo(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<24} {e.action:<15} {e.target}  {detail}")


def _duration(value: str | None, flag: str) -> Any:
    """A ``--flag 30s`` duration (s, m, h, d, w) as a timedelta, or None."""
    if value is None:
        return None
    from featurestore.auth import parse_duration

    try:
        return parse_duration(value, flag)
    except InvalidRequestError as err:
        raise click.UsageError(str(err)) from err


@cli.command()
@click.option("--detach", is_flag=True, help="Run in the background, writing --pid-file and --log-file.")
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the process id here while running (default with --detach: scheduler.pid in the project).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --detach: append the log here (default: scheduler.log in the project).",
)
@click.option(
    "--max-catchup",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="Missed due times run per view after downtime (the latest ones, oldest first).",
)
@click.option(
    "--attempts",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Attempts per due time, the first included.",
)
@click.option(
    "--backoff",
    default="30s",
    show_default=True,
    help="Wait before the first retry (doubled for each further one), e.g. 30s, 5m.",
)
@click.option("--max-backoff", default="30m", show_default=True, help="The longest wait between retries.")
@click.option(
    "--initial-window",
    help="A view's first run (no data published yet) covers this much before its due time, e.g. 30d (default: all history).",
)
@click.option(
    "--poll",
    default="60s",
    show_default=True,
    help="The longest sleep between checks: how soon a newly applied schedule is seen.",
)
@click.pass_obj
def scheduler(
    state: _Context,
    detach: bool,
    pid_file: Path | None,
    log_file: Path | None,
    max_catchup: int,
    attempts: int,
    backoff: str,
    max_backoff: str,
    initial_window: str | None,
    poll: str,
) -> None:
    """Run every feature view that declares a schedule when it is due, until stopped.

    Each due run covers [the view's watermark, the due time). Missed due times are caught up after
    downtime, oldest first; failed runs are retried with exponential backoff; a view is never run
    twice at once. SIGTERM or SIGINT (Ctrl-C) lets the run in progress finish, then exits 0; a
    second signal exits at once, leaving that run to the publish protocol (the next run of the view
    completes or discards it)."""
    import os
    import signal

    settings: dict[str, Any] = {
        "max_catchup": max_catchup,
        "attempts": attempts,
        "backoff": _duration(backoff, "--backoff"),
        "max_backoff": _duration(max_backoff, "--max-backoff"),
        "initial_window": _duration(initial_window, "--initial-window"),
        "poll": _duration(poll, "--poll"),
    }
    root = state.project_dir
    if detach:
        import subprocess

        pid_path = (pid_file or root / "scheduler.pid").resolve()
        log_path = (log_file or root / "scheduler.log").resolve()
        _refuse_running(pid_path)
        args = [sys.executable, "-m", "featurestore.cli", "-C", str(root.resolve()), "scheduler"]
        args += ["--pid-file", str(pid_path), "--max-catchup", str(max_catchup), "--attempts", str(attempts)]
        args += ["--backoff", backoff, "--max-backoff", max_backoff, "--poll", poll]
        args += ["--initial-window", initial_window] if initial_window else []
        with open(log_path, "ab") as log_out:
            child = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log_out, stderr=log_out, start_new_session=True
            )
        click.echo(f"scheduler started in the background: pid {child.pid}, pid file {pid_path}, log {log_path}")
        return

    from etl.local import LocalEngine
    from etl.scheduler import Scheduler, SchedulerSettings
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project

    store = state.store()
    engine: Any = LocalEngine(store)
    if store.config.engine.type == "spark":
        from etl.spark import SparkEngine  # pyspark loads only here

        engine = SparkEngine(store)

    def definitions() -> dict[str, Any]:
        return {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}

    sched = Scheduler(store, engine, definitions=definitions, settings=SchedulerSettings(**settings))

    def on_signal(signum: int, frame: object) -> None:
        if sched.stopping:
            logging.getLogger(__name__).warning("second signal: exiting now; the publish protocol settles the run")
            os._exit(130)
        logging.getLogger(__name__).info("signal %d: finishing the run in progress, then stopping", signum)
        sched.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if pid_file is not None:
        _refuse_running(pid_file)
        pid_file.write_text(f"{os.getpid()}\n")
    try:
        sched.run_forever()
    finally:
        if pid_file is not None and pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()


def _refuse_running(pid_file: Path) -> None:
    """Refuse to start a second scheduler over a PID file whose process is alive."""
    import os

    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except OSError:
        return  # a stale file: its process is gone
    if pid != os.getpid():
        raise click.UsageError(
            f"a scheduler is already running with pid {pid} ({pid_file}); stop it first (kill {pid})"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def schedule(state: _Context, as_json: bool) -> None:
    """List feature views with their schedule, freshness, last run, next due time and lag (now minus
    the watermark); a view whose lag exceeds its freshness is flagged STALE (one
    that has published nothing has no lag). The last run is the last batch run, not a push."""
    from featurestore.schedules import is_stale, next_due, schedule_text

    store = state.store()
    now = datetime.now(UTC)
    watermarks = store.registry.watermarks(store.project)
    rows: list[dict[str, Any]] = []
    for view in sorted(store.registry.list_feature_views(store.project), key=lambda v: v.name):
        runs = store.registry.list_runs(store.project, view.name, limit=1, batch_only=True)
        last = runs[0] if runs else None
        watermark = watermarks.get(view.name)
        lag = now - watermark if watermark else None
        stale = view.freshness is not None and is_stale(watermark, view.freshness, view.ttl, now)
        rows.append(
            {
                "view": view.name,
                "schedule": schedule_text(view.schedule) if view.schedule is not None else None,
                "freshness_seconds": view.freshness.total_seconds() if view.freshness else None,
                "last_run": {"status": last.status, "started_at": last.started_at.isoformat()} if last else None,
                "next_due": next_due(view.schedule, now).isoformat() if view.schedule is not None else None,
                "watermark": watermark.isoformat() if watermark else None,
                "lag_seconds": lag.total_seconds() if lag is not None else None,
                "stale": stale,
            }
        )
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'view':24} {'schedule':16} {'freshness':>10} {'last run':28} {'next due (UTC)':17} {'lag':>12}")
    for row in rows:
        last = row["last_run"]
        last_text = f"{last['status']} {last['started_at'][:16].replace('T', ' ')}" if last else "-"
        fresh = row["freshness_seconds"]
        lag_s = row["lag_seconds"]
        click.echo(
            f"{row['view']:24} {row['schedule'] or '-':16} {_age(fresh):>10} {last_text:28} "
            f"{(row['next_due'] or '-')[:16].replace('T', ' '):17} {_age(lag_s):>12}"
            + ("  STALE" if row["stale"] else "")
        )


@cli.command()
@click.option("--open", "open_only", is_flag=True, help="Only incidents still open.")
@click.option("--view", help="Only incidents of this feature view.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1), help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def alerts(state: _Context, open_only: bool, view: str | None, limit: int, as_json: bool) -> None:
    """List alert incidents, newest first: views whose data is older than their freshness (stale) and
    scheduled runs given up after their attempts (run_failed), with the delivery of their messages to
    each channel of the alerts section of featurestore.yaml. The scheduler opens and clears them."""
    store = state.store()
    if view is not None:
        store.get_feature_view(view)  # unknown: an error with a suggestion
    incidents = store.registry.list_incidents(store.project, open_only=open_only, view=view, limit=limit)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in incidents]))
        return
    if not incidents:
        click.echo("no open alert incidents" if open_only else "no alert incidents")
        return
    click.echo(f"{'#':>5} {'state':7} {'kind':10} {'view':24} {'opened (UTC)':16} {'cleared (UTC)':16} deliveries")
    for i in incidents:
        deliveries = ", ".join(f"{d.channel} {d.message} {d.status}" for d in i.deliveries) or "-"
        cleared = f"{i.cleared_at:%Y-%m-%d %H:%M}" if i.cleared_at else "-"
        click.echo(
            f"{i.id:>5} {'open' if i.is_open else 'cleared':7} {i.kind:10} {i.view:24} {i.opened_at:%Y-%m-%d %H:%M} "
            f"{cleared:16} {deliveries}\n      {redact(i.summary)}"
        )
        for d in i.deliveries:
            if d.error and d.status != "sent":
                click.echo(f"      {d.channel} ({d.message}, {d.attempts} attempt(s)): {redact(d.error)}")


def _age(seconds: float | None) -> str:
    """A duration in its largest whole unit: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f}{unit}" if unit == "d" else f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds:.0f}s"


def _featurestore_executable() -> Path | None:
    """The absolute path of the ``featurestore`` command running now: the console script this
    process was started as, else the one beside this Python (a venv's bin), else on PATH."""
    import shutil

    started_as = Path(sys.argv[0])
    candidates = [started_as] if started_as.name == "featurestore" else []
    candidates.append(Path(sys.executable).with_name("featurestore"))
    found = shutil.which("featurestore")
    candidates += [Path(found)] if found else []
    return next((c.absolute() for c in candidates if c.is_file()), None)


@cli.command("airflow-dag")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the DAG file here, e.g. into Airflow's dags folder (default: print it).",
)
@click.option(
    "--all", "include_all", is_flag=True, help="A task for every feature view, not only those with a schedule."
)
@click.option(
    "--schedule",
    help="The DAG's schedule: a cron expression in UTC ('0 * * * *') or an interval (1h, 30m, 1d). "
    "Default: the one schedule the views declare (required when they differ or none has one).",
)
@click.option(
    "--featurestore-bin",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The featurestore executable the tasks run, as Airflow's workers see it (default: the absolute "
    "path of this one).",
)
@click.option("--dag-id", help="The DAG's id (default: featurestore_<project>).")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(0), help="Retries of a failed task.")
@click.option(
    "--retry-delay",
    default="30s",
    show_default=True,
    help="Wait before the first retry (doubled for each further one, up to --max-retry-delay).",
)
@click.option("--max-retry-delay", default="30m", show_default=True, help="The longest wait between retries.")
@click.pass_obj
def airflow_dag(
    state: _Context,
    output: Path | None,
    include_all: bool,
    schedule: str | None,
    featurestore_bin: Path | None,
    dag_id: str | None,
    retries: int,
    retry_delay: str,
    max_retry_delay: str,
) -> None:
    """Write an Apache Airflow (3.x) DAG file that runs the project's feature views.

    One task per feature view in the registry that declares a schedule (every view with --all),
    each running 'featurestore -C PROJECT run VIEW --start <data interval start> --end <data
    interval end> --no-progress' through Airflow's BashOperator. A view whose source reads files
    of another view's offline folder runs after it. One DAG run at a time, a view never twice at
    once, failed tasks retried with exponential backoff. Write the file again after an apply that
    adds, removes or reschedules views."""
    from featurestore.airflow_dag import parse_schedule, plan_dag, render_dag

    executable = featurestore_bin or _featurestore_executable()
    if executable is None:
        raise click.UsageError("cannot find the featurestore executable: give its path with --featurestore-bin")
    try:
        dag_schedule = parse_schedule(schedule) if schedule is not None else None
    except InvalidRequestError as err:
        raise click.UsageError(str(err)) from err
    store = state.store()
    dag = plan_dag(
        store.project,
        store.registry.list_feature_views(store.project),
        project_dir=state.project_dir.resolve(),
        output_folder=store.offline_store.view_dir,
        featurestore_bin=str(executable.absolute()),
        include_all=include_all,
        schedule=dag_schedule,
        dag_id=dag_id,
        retries=retries,
        retry_delay=_duration(retry_delay, "--retry-delay"),
        max_retry_delay=_duration(max_retry_delay, "--max-retry-delay"),
    )
    for note in dag.notes:
        click.echo(f"note: {note}", err=True)
    source = render_dag(dag)
    if output is None:
        click.echo(source, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(source)
    edges = ", ".join(f"{up} >> {down}" for up, down in dag.edges) or "none"
    click.echo(
        f"wrote {output}: DAG {dag.dag_id}, {len(dag.tasks)} task(s) ({', '.join(t.view for t in dag.tasks)}), "
        f"dependencies: {edges}"
    )


# `featurestore mlflow log-dataset | register | versions` (MLflow loads only when one runs).
from featurestore.mlflow_cli import mlflow_commands  # noqa: E402  (a group of its own module)

cli.add_command(mlflow_commands)

# `featurestore model-traffic` and `featurestore score` (the model server; MLflow loads only to score).
from featurestore.model_serving_cli import model_traffic, score_command  # noqa: E402  (commands of their own module)

cli.add_command(model_traffic)
cli.add_command(score_command)

# `featurestore request file|list|show|support|accept|decline|link` (feature requests).
from featurestore.request_cli import request_commands  # noqa: E402  (a group of its own module)

cli.add_command(request_commands)

# `featurestore import-feast PATH --out DIR` (a Feast repository, read by Feast in its own venv).
from featurestore.feast_cli import import_feast_command  # noqa: E402  (a command of its own module)

cli.add_command(import_feast_command)

# `featurestore skew SERVICE --since DATE` (served vectors against offline).
from featurestore.skew_cli import skew  # noqa: E402  (a command of its own module)

cli.add_command(skew)

# `featurestore source check` (source probes) and `featurestore preview VIEW` (a dry run on a sample).
from featurestore.preview_cli import preview  # noqa: E402  (a command of its own module)
from featurestore.source_cli import source_commands  # noqa: E402  (a group of its own module)

cli.add_command(source_commands)
cli.add_command(preview)

from featurestore.duplicates_cli import duplicates  # noqa: E402

cli.add_command(duplicates)


def main() -> None:
    _skip_collections_at_exit()
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
        # An error naming an SDK argument (timestamp_column=...) names the CLI's flag instead.
        message = err.render(FLAGS) if isinstance(err, InvalidRequestError) else str(err)
        click.secho(f"error: {redact(message)}", fg="red", err=True)
        sys.exit(1)
    except Exception:
        # Not ours: a bug, or a driver's error no store turned into one. The traceback helps a bug
        # report, but a driver may have put a URL with its password in it: printed redacted.
        import traceback

        click.secho(redact(traceback.format_exc()), fg="red", err=True)
        sys.exit(1)


def _skip_collections_at_exit() -> None:
    """At the interpreter's exit, before it is torn down, the objects left are frozen (``gc.freeze``):
    its garbage collections then skip them instead of scanning every object the imports made
    (~130 ms of CPU after a repeat apply of the demo, measured). No code of ours waits for a
    collection at exit: a command's stores and connections are closed by its context, temporary
    folders by their own atexit finalizers. Registered once, and only at exit, so that a process
    calling :func:`main` (a test) is otherwise unchanged."""
    import atexit
    import gc

    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


if __name__ == "__main__":
    main()
