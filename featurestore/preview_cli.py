"""``featurestore preview VIEW``: a dry run of a view on a sample of its entities (see
:mod:`etl.preview`). A command of its own module, added to ``featurestore`` by
:mod:`featurestore.cli`; the engine and the quality gate load only when it runs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


@click.command("preview")
@click.argument("view")
@click.option("--sample", type=int, help="Compute this many entities, chosen by a hash of their keys (default 100).")
@click.option("--entities", help="Compute these entities instead: key values separated by commas (K1,K2).")
@click.option("--start", help="Window start, inclusive: ISO 8601 with an offset, or a date (00:00 UTC).")
@click.option("--end", help="Window end, exclusive: ISO 8601 with an offset, or a date (00:00 UTC).")
@click.option("--rows", "rows_shown", default=10, show_default=True, help="Rows of the output to print.")
@click.option("--json", "as_json", is_flag=True, help="Print the preview as JSON.")
@click.pass_obj
def preview(
    state: Any,
    view: str,
    sample: int | None,
    entities: str | None,
    start: str | None,
    end: str | None,
    rows_shown: int,
    as_json: bool,
) -> None:
    """Dry run of VIEW on a sample: compute it for some entities (all of their rows, so their
    aggregates are the full run's), run its quality gate and statistics, and print each step
    with its rows and time, the first rows, the expectations' results and the statistics.
    Nothing is published and no run is recorded. Uses the definitions in the project's files
    (applied or not). Exits with status 2 when a blocking expectation fails."""
    from etl.preview import preview_view
    from etl.runs import check_window
    from featurestore.cli import _parse_time
    from featurestore.errors import NotFoundError
    from featurestore.project_files import load_definitions
    from featurestore.validation import validate_project
    from quality.report import QualityReport
    from quality.statistics import render_statistics

    if sample is not None and entities:
        raise click.UsageError("give --sample or --entities, not both")
    store = state.store()
    views = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
    if view not in views:
        raise NotFoundError("feature view", view, project=store.project, candidates=views)
    window_start, window_end = _parse_time(start, "--start"), _parse_time(end, "--end")
    check_window(window_start, window_end)
    named = [e for e in (entities or "").split(",") if e.strip()] or None
    report = preview_view(
        store, views[view], sample=sample, entities=named, start=window_start, end=window_end, rows_shown=rows_shown
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        quality = QualityReport.from_dict(report.quality).render()
        click.echo(report.render(quality, render_statistics(report.statistics) if report.statistics else ""))
    if report.blocked:
        sys.exit(2)
