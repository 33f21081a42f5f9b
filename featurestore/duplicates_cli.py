"""``featurestore duplicates``, and the duplicate check of ``featurestore apply`` (see
:mod:`featurestore.duplicates`). A command of its own module, added to ``featurestore`` by
:mod:`featurestore.cli`; sqlglot and the engine load only when a view is new or changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from featurestore.definitions import FeatureView
    from featurestore.duplicates import DuplicateCheck, DuplicateFinding, DuplicateMode


def check_duplicates(
    store: Any,
    objects: Sequence[object],
    *,
    by_value: bool = True,
    correlation: float | None = None,
    views: Sequence[str] | None = None,
) -> DuplicateCheck:
    """The exact and (with ``by_value``) value duplicates among the new or changed views of
    ``objects`` (or the views named); notes on stderr the views not compared by value."""
    from featurestore.duplicates import DEFAULT_CORRELATION, find_duplicates

    def compare(views: Sequence[FeatureView], registered: Sequence[FeatureView]) -> list[DuplicateFinding]:
        from etl.duplicates import SampleComparer  # the engine loads only when a view is new or changed

        limit = DEFAULT_CORRELATION if correlation is None else correlation
        return SampleComparer(store, correlation=limit)(views, registered)

    return find_duplicates(
        store.registry,
        store.project,
        objects,
        root=store.config.root,
        values=compare if by_value else None,
        views=views,
    )


def apply_with_duplicates(
    store: Any, objects: Sequence[object], mode: DuplicateMode, apply: Any, **options: Any
) -> Any:
    """Run ``apply()`` with the duplicate check of ``mode``: ``warn`` prints each finding as a
    warning, ``error`` raises before ``apply`` (nothing applied) when there is one, ``off``
    checks nothing. The findings are recorded once ``apply`` succeeded."""
    if mode == "off":
        return apply()
    check = check_duplicates(store, objects, **options)
    for finding in check.findings:
        label = "error" if mode == "error" else "warning"
        click.secho(
            f"{label}: duplicate feature: {finding.render()}", fg="red" if mode == "error" else "yellow", err=True
        )
    if check.findings and mode == "error":
        raise click.ClickException(
            f"nothing applied: {len(check.findings)} new feature(s) duplicate existing ones (--duplicates error); "
            "reuse the existing features, or remove the copies, or apply with --duplicates warn"
        )
    result = apply()
    if check.changes_records:
        store.registry.record_duplicates(store.project, check.findings, checked=check.checked, views=check.views)
    return result


@click.command("duplicates")
@click.argument("view", required=False)
@click.option(
    "--check",
    is_flag=True,
    help="Check the view (default: the new or changed views) in the project's files now, instead of "
    "listing what apply recorded.",
)
@click.option("--no-values", is_flag=True, help="With --check: compare the definitions only, not values.")
@click.option("--correlation", type=click.FloatRange(0, 1), help="With --check: the |correlation| reported (0.99).")
@click.option("--json", "as_json", is_flag=True, help="Print the duplicates as JSON.")
@click.pass_obj
def duplicates(
    state: Any, view: str | None, check: bool, no_values: bool, correlation: float | None, as_json: bool
) -> None:
    """Features that compute what another does: exact duplicates (same source and normalized
    expression), or features whose values on the preview's sample are equal or correlated with
    an existing feature's published values. Lists those recorded by 'featurestore apply' (of
    VIEW, on either side, when given); with --check, checks the project's files now."""
    store = state.store()
    if check:
        from featurestore.errors import NotFoundError
        from featurestore.project_files import load_definitions
        from featurestore.validation import validate_project

        project = validate_project(load_definitions(store.config))
        names = [v.name for v in project.feature_views]
        if view is not None and view not in names:
            raise NotFoundError("feature view", view, project=store.project, candidates=names)
        objects = [*project.entities, *project.sources, *project.feature_views]
        found = check_duplicates(
            store, objects, by_value=not no_values, correlation=correlation, views=None if view is None else [view]
        ).findings
    else:
        if view is not None:
            store.get_feature_view(view)  # not found, with suggestions
        found = tuple(store.find_recorded_duplicates(view))
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in found], indent=2))
        return
    for finding in found:
        click.echo(finding.render())
    if not found:
        click.echo("no duplicate features" + (f" of {view}" if view else ""))
