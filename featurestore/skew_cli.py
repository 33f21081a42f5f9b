"""``featurestore skew``: the served vectors of a feature service compared with offline.

Added to the ``featurestore`` command by :mod:`featurestore.cli`; the work is
:func:`featurestore.skew.skew_report` (``FeatureStore.skew_report``).
"""

from __future__ import annotations

import json
from typing import Any

import click


@click.command("skew")
@click.argument("service")
@click.option(
    "--since", required=True, help="First request time compared: ISO 8601 with an offset, or a date (00:00 UTC)."
)
@click.option("--until", help="Request times before this one (default: up to now).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def skew(state: Any, service: str, since: str, until: str | None, as_json: bool) -> None:
    """Compare what SERVICE's online lookups and predictions served (the served-vector log,
    serving_log in featurestore.yaml) with the offline values as of each request, per feature:
    match rate and mismatches by class (late, differs, missing_online, expired), with examples.
    The report is recorded in the registry (the UI's view and model pages, /v1/skew-reports,
    /v1/metrics)."""
    from featurestore.times import parse_time

    store = state.store()
    report = store.skew_report(
        service, parse_time(since, "--since"), parse_time(until, "--until") if until is not None else None
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())
