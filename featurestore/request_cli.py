"""``featurestore request file|list|show|support|accept|decline|link``: feature requests.

A click group added to the ``featurestore`` command by :mod:`featurestore.cli`; the SDK is
:mod:`featurestore.feature_requests`. The CLI acts as this process's user@host (the registry's
credentials authorise it, as for ``apply``); the API and the UI check roles.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # `featurestore --help` imports no registry (SQLAlchemy)
    from featurestore.registry.requests import FeatureRequestRecord

SORTS = ("support", "due", "newest")
REQUEST_ID = click.IntRange(1, 2**31 - 1)
"""A request's number (#12 is 12)."""
TAB_NAMES = ("open", "in_progress", "delivered", "declined")


def _requests(state: Any) -> Any:
    from featurestore.feature_requests import FeatureRequests

    return FeatureRequests(state.store())


def _due(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise click.BadParameter(
            f"{value!r} is not a date: give YYYY-MM-DD, e.g. 2026-12-31", param_hint="--due"
        ) from err


def _json(record: FeatureRequestRecord) -> str:
    return json.dumps(record.to_dict(), indent=2, default=str)


def _line(r: FeatureRequestRecord) -> str:
    due = r.due.isoformat() if r.due else "no date"
    linked = f"  -> {r.view}: {', '.join(r.features)}" if r.view else ""
    return (
        f"#{r.id:<4} {r.status.value:<11} {r.support:>3} vote{'s' if r.support != 1 else ' '}  due {due:<10}  "
        f"{r.title} (entity {r.entity}, by {r.requester}){linked}"
    )


@click.group("request")
def request_commands() -> None:
    """Feature requests: file what you need, support others', and (engineers) accept, decline or
    link them to the view and features that fulfil them (see README, "Feature requests")."""


@request_commands.command("file")
@click.option("--title", required=True, help="What is needed, in a few words (search finds it): 'chargeback ratio'.")
@click.option("--entity", required=True, help="For which entity (one of the project's), e.g. customer.")
@click.option("--description", required=True, help="What exactly: how it is computed, over which window.")
@click.option("--why", "reason", required=True, help="Why: the decision or model it serves.")
@click.option("--due", help="By when (YYYY-MM-DD).")
@click.option("--model", help="The model it is for, if any.")
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@click.pass_obj
def file_request(
    state: Any,
    title: str,
    entity: str,
    description: str,
    reason: str,
    due: str | None,
    model: str | None,
    as_json: bool,
) -> None:
    """File a feature request."""
    record = _requests(state).file(
        title=title, entity=entity, description=description, reason=reason, due=_due(due), model=model
    )
    click.echo(_json(record) if as_json else f"filed feature request #{record.id}: {record.title}")


@request_commands.command("list")
@click.option("--state", "tab", type=click.Choice(TAB_NAMES), help="Only these (in_progress: accepted or linked).")
@click.option("--sort", type=click.Choice(SORTS), default="newest", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the requests as JSON.")
@click.pass_obj
def list_requests(state: Any, tab: str | None, sort: str, as_json: bool) -> None:
    """The project's feature requests."""
    found = _requests(state).list(tab=tab, sort=sort)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in found], indent=2, default=str))
        return
    if not found:
        click.echo(
            "no feature requests"
            + (f" {tab.replace('_', ' ')}" if tab else "")
            + " (file one: featurestore request file)"
        )
    for r in found:
        click.echo(_line(r))


@request_commands.command("show")
@click.argument("request_id", type=REQUEST_ID)
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@click.pass_obj
def show_request(state: Any, request_id: int, as_json: bool) -> None:
    """One request: what, why, its supporters and history."""
    r = _requests(state).get(request_id)
    if as_json:
        click.echo(_json(r))
        return
    click.echo(f"#{r.id} {r.title} [{r.status.value}]")
    click.echo(f"entity: {r.entity}   due: {r.due or 'no date'}   model: {r.model or '-'}   filed by {r.requester}")
    click.echo(f"what: {r.description}")
    click.echo(f"why: {r.reason}")
    if r.view:
        click.echo(f"linked to: {r.view}: {', '.join(r.features)}")
    if r.decline_reason:
        click.echo(f"declined by {r.decided_by}: {r.decline_reason}")
    click.echo(f"support: {r.support}")
    for s in r.supporters:
        click.echo(f"  {s.voter} ({s.at:%Y-%m-%d}): {s.comment}")
    click.echo("history:")
    for e in r.history:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(e.detail.items()) if v not in (None, "", []))
        click.echo(f"  {e.at:%Y-%m-%d %H:%M} UTC  {e.event:<10} {e.actor}" + (f"  ({detail})" if detail else ""))


@request_commands.command("support")
@click.argument("request_id", type=REQUEST_ID)
@click.option("--comment", default="", help="Why you need it too.")
@click.pass_obj
def support_request(state: Any, request_id: int, comment: str) -> None:
    """Support (vote for) a request: one vote per person."""
    r = _requests(state).support(request_id, comment=comment)
    click.echo(f"supported feature request #{r.id}: {r.support} vote{'s' if r.support != 1 else ''}")


@request_commands.command("accept")
@click.argument("request_id", type=REQUEST_ID)
@click.option("--comment", default="", help="A note to the requester.")
@click.pass_obj
def accept_request(state: Any, request_id: int, comment: str) -> None:
    """Accept an open request (engineers)."""
    r = _requests(state).accept(request_id, comment=comment)
    click.echo(f"accepted feature request #{r.id}: link it when its features are defined (featurestore request link)")


@request_commands.command("decline")
@click.argument("request_id", type=REQUEST_ID)
@click.option("--reason", required=True, help="Why, for the requester and supporters.")
@click.pass_obj
def decline_request(state: Any, request_id: int, reason: str) -> None:
    """Decline a request, with a reason (engineers)."""
    r = _requests(state).decline(request_id, reason=reason)
    click.echo(f"declined feature request #{r.id}: {r.decline_reason}")


@request_commands.command("link")
@click.argument("request_id", type=REQUEST_ID)
@click.option("--view", required=True, help="The feature view that fulfils it (applied).")
@click.option(
    "--feature", "features", multiple=True, required=True, help="A feature of the view (repeat, or comma separated)."
)
@click.pass_obj
def link_request(state: Any, request_id: int, view: str, features: tuple[str, ...]) -> None:
    """Link a request to the view and features that fulfil it; the view's next successful run
    delivers it and notifies the requester and supporters."""
    names = [n for f in features for n in f.split(",")]
    r = _requests(state).link(request_id, view=view, features=names)
    click.echo(
        f"linked feature request #{r.id} to {r.view}: {', '.join(r.features)}; the next successful run of "
        f"'{r.view}' delivers it"
    )
