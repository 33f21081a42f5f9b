"""``featurestore duplicates``, and the duplicate check of ``featurestore apply`` (see
:mod:`featurestore.duplicates`). A command of its own module, added to ``featurestore`` by
:mod:`featurestore.cli`; sqlglot and the engine load only when a view is new or changed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from featurestore.definitions import FeatureView
    from featurestore.duplicates import DuplicateCheck, DuplicateFinding, DuplicateMode

T = TypeVar("T")


def check_duplicates(
    store: Any,
    objects: Sequence[object],
    *,
    by_value: bool = True,
    correlation: float | None = None,
    views: Sequence[str] | None = None,
    registered: Sequence[FeatureView] | None = None,
    cancel: threading.Event | None = None,
    budget_s: float | None = None,
) -> DuplicateCheck:
    """The exact and (with ``by_value``) value duplicates among the new or changed views of
    ``objects`` (or the views named); a note on stderr for each view whose values could not be
    computed on the sample. ``cancel``, once set, stops the check by value before its next view;
    ``budget_s``: its time budget (default :data:`etl.duplicates.DEFAULT_BUDGET_S`)."""
    from featurestore.duplicates import DEFAULT_CORRELATION, find_duplicates
    from featurestore.secrets import redact

    def compare(views: Sequence[FeatureView], registered: Sequence[FeatureView]) -> list[DuplicateFinding]:
        from etl.duplicates import DEFAULT_BUDGET_S, SampleComparer  # the engine loads only when needed

        comparer = SampleComparer(
            store,
            correlation=DEFAULT_CORRELATION if correlation is None else correlation,
            cancel=cancel,
            budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s,
        )
        found = comparer(views, registered)
        for why in comparer.failed:
            click.echo(f"note: not compared by value for duplicates: {redact(why)}", err=True)
        return found

    return find_duplicates(
        store.registry,
        store.project,
        objects,
        root=store.config.root,
        values=compare if by_value else None,
        views=views,
        registered=registered,
    )


def _report(check: DuplicateCheck, mode: DuplicateMode) -> None:
    label = "error" if mode == "error" else "warning"
    for finding in check.findings:
        click.secho(
            f"{label}: duplicate feature: {finding.render()}", fg="red" if mode == "error" else "yellow", err=True
        )


def apply_with_duplicates(
    store: Any, objects: Sequence[object], mode: DuplicateMode, apply: Callable[[], T], **options: Any
) -> T:
    """Run ``apply()`` with the duplicate check of ``mode``, and record the findings once it
    succeeded. ``error``: checked first, raising (nothing applied) when there is a finding.
    ``warn``: checked in a thread while ``apply`` runs (the views as registered are read before
    it), each finding printed as a warning. ``off``: not checked."""
    if mode == "off":
        result = apply()
        store.registry.prune_duplicates(store.project)  # a view removed unchecked takes its findings
        return result
    registered = store.registry.list_feature_views(store.project)
    if mode == "error":
        check = check_duplicates(store, objects, registered=registered, **options)
        _report(check, mode)
        if check.findings:
            raise click.ClickException(
                f"nothing applied: {len(check.findings)} new feature(s) duplicate existing ones (--duplicates error); "
                "reuse the existing features, or remove the copies, or apply with --duplicates warn"
            )
        result = apply()
    else:
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duplicates")
        future = pool.submit(check_duplicates, store, objects, registered=registered, cancel=cancel, **options)
        try:
            result = apply()
        except BaseException:
            # The apply's error first: the check stops before its next view instead of running on.
            cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        try:
            check = future.result()
        except Exception as err:  # a warning's check never fails an apply that succeeded
            from featurestore.secrets import redact

            click.echo(f"note: the duplicate check failed, nothing recorded: {redact(str(err))}", err=True)
            return result
        _report(check, mode)
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
@click.option(
    "--budget",
    type=click.FloatRange(0),
    help="With --check: seconds the comparison by value may take before it skips the views left (10).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the duplicates as JSON.")
@click.pass_obj
def duplicates(
    state: Any,
    view: str | None,
    check: bool,
    no_values: bool,
    correlation: float | None,
    budget: float | None,
    as_json: bool,
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
            store,
            objects,
            by_value=not no_values,
            correlation=correlation,
            views=None if view is None else [view],
            budget_s=budget,
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
