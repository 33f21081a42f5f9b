"""What every engine's run shares: which view definition may run, the window's checks, and
how a failed run's outcome is told (what was and was not published)."""

from __future__ import annotations

from datetime import datetime

from featurestore.definitions import FeatureView
from featurestore.errors import NotFoundError, RunError
from featurestore.online import OnlineStore
from featurestore.store import FeatureStore


def check_window(start: datetime | None, end: datetime | None) -> None:
    """A run window's bounds must be aware times, start before end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise RunError(
                f"Run window {name} {value} has no time zone; give UTC times, e.g. 2024-01-01T00:00:00+00:00"
            )
    if start is not None and end is not None and start >= end:
        raise RunError(f"Run window start {start} is not before end {end}")


def view_to_run(store: FeatureStore, view_name: str, definitions: dict[str, FeatureView] | None) -> FeatureView:
    """The view from ``definitions`` (the project's files), which must be the applied one: a
    run records the registry's version, and readers decode what it publishes with the
    registry's definition. Without ``definitions``, the registry's view (SQL only)."""
    defined = (definitions or {}).get(view_name)
    try:
        applied = store.registry.get_feature_view(store.project, view_name)
    except NotFoundError:
        if defined is None:
            raise
        raise RunError(
            f"Feature view '{view_name}' is defined but not applied; run 'featurestore apply' first"
        ) from None
    if defined is None:
        return applied
    if defined.schema_fingerprint() != applied.schema_fingerprint():
        raise RunError(
            f"Feature view '{view_name}' has changed since it was applied (its keys, features, timestamp, "
            "source, transformation or TTL differ from the registry's); run 'featurestore apply' first"
        )
    if [e.to_spec() for e in defined.expectations] != [e.to_spec() for e in applied.expectations]:
        # A run is checked against the expectations the registry shows, never others.
        raise RunError(
            f"Feature view '{view_name}': its expectations have changed since it was applied; "
            "run 'featurestore apply' first"
        )
    return defined


def failure_outcome(online_started: bool, online_store: OnlineStore | None) -> str:
    """What a failed run left behind, for its log line and error message."""
    if online_started and online_store is not None and not online_store.transactional_writes:
        return (
            "the offline store is unchanged; the online store may hold some of its rows (never "
            "replacing newer ones): re-run the window to converge"
        )
    return "nothing was published"
